"""conv2d_forward / conv2d_backward against the loop reference and numerical gradients."""

import numpy as np
import pytest

from cnn.ops.conv import conv2d_backward, conv2d_forward
from cnn.ops.reference import conv2d_backward_reference, conv2d_reference
from cnn.ops.shapes import window_output_shape
from cnn.utils.gradient_check import numerical_gradient, relative_error

# (N, C, F, (H, W), kernel, stride, padding): padding is a mode or explicit amounts.
CASES = [
    (1, 1, 1, (5, 5), (1, 1), (1, 1), "valid"),
    (2, 3, 2, (7, 6), (3, 3), (1, 1), "same"),
    (3, 2, 3, (8, 7), (3, 2), (2, 1), "valid"),  # the windows do not tile the input
    (2, 1, 2, (6, 9), (5, 5), (1, 1), "full"),
    (4, 2, 2, (9, 8), (2, 4), (3, 2), ((1, 2), (0, 3))),
    (1, 3, 4, (7, 7), (4, 4), (2, 2), "same"),  # even kernel: asymmetric 'same' padding
    (2, 2, 3, (5, 8), (1, 3), (1, 3), "full"),
    (2, 1, 1, (10, 10), (5, 3), (3, 3), ((2, 0), (1, 1))),
    (3, 3, 2, (6, 6), (2, 2), (2, 2), "valid"),
    (1, 2, 2, (4, 4), (4, 4), (1, 1), "valid"),  # a single output position
    (2, 2, 2, (7, 5), (3, 3), (3, 1), "same"),
    (1, 1, 3, (9, 4), (2, 1), (2, 1), ((0, 1), (2, 0))),
]


def _random_cases(count, seed):
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < count:
        kernel = tuple(int(k) for k in rng.integers(1, 6, size=2))
        stride = tuple(int(s) for s in rng.integers(1, 4, size=2))
        hw = tuple(int(s) for s in rng.integers(3, 10, size=2))
        padding = [
            "valid",
            "same",
            "full",
            tuple(tuple(int(p) for p in rng.integers(0, 3, size=2)) for _ in range(2)),
        ][rng.integers(4)]
        out_hw, _ = window_output_shape(hw, kernel, stride, padding)
        if min(out_hw) >= 1:
            n, c, f = (int(v) for v in rng.integers(1, 4, size=3))
            cases.append((n, c, f, hw, kernel, stride, padding))
    return cases


ALL_CASES = CASES + _random_cases(30, seed=1)


def _explicit(hw, kernel, stride, padding):
    return window_output_shape(hw, kernel, stride, padding)[1]


def _operands(case, rng, dtype=np.float64):
    n, c, f, hw, kernel, stride, padding = case
    x = rng.standard_normal((n, c, *hw)).astype(dtype)
    w = rng.standard_normal((f, c, *kernel)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    return x, w, b, stride, _explicit(hw, kernel, stride, padding)


@pytest.mark.parametrize("case", ALL_CASES, ids=str)
@pytest.mark.parametrize("use_bias", [True, False])
def test_forward_matches_reference(case, use_bias):
    x, w, b, stride, padding = _operands(case, np.random.default_rng(0))
    b = b if use_bias else None
    y, _ = conv2d_forward(x, w, b, stride, padding)
    np.testing.assert_allclose(y, conv2d_reference(x, w, b, stride, padding), atol=1e-10)


@pytest.mark.parametrize("case", ALL_CASES, ids=str)
@pytest.mark.parametrize("use_bias", [True, False])
def test_backward_matches_reference(case, use_bias):
    rng = np.random.default_rng(1)
    x, w, b, stride, padding = _operands(case, rng)
    y, cache = conv2d_forward(x, w, b if use_bias else None, stride, padding)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = conv2d_backward(dy, cache)
    dx_ref, dw_ref, db_ref = conv2d_backward_reference(dy, x, w, stride, padding, use_bias)
    assert dx.shape == x.shape and dw.shape == w.shape
    np.testing.assert_allclose(dx, dx_ref, atol=1e-10)
    np.testing.assert_allclose(dw, dw_ref, atol=1e-10)
    if use_bias:
        np.testing.assert_allclose(db, db_ref, atol=1e-10)
    else:
        assert db is None


@pytest.mark.parametrize("case", ALL_CASES[:8], ids=str)
def test_need_dx_false_skips_dx_only(case):
    rng = np.random.default_rng(2)
    x, w, b, stride, padding = _operands(case, rng)
    y, cache = conv2d_forward(x, w, b, stride, padding)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = conv2d_backward(dy, cache, need_dx=False)
    _, dw_full, db_full = conv2d_backward(dy, cache)
    assert dx is None
    np.testing.assert_array_equal(dw, dw_full)
    np.testing.assert_array_equal(db, db_full)


# Small enough for central differences over every entry of x, w and b.
GRADIENT_CASES = [
    (2, 2, 2, (5, 5), (3, 3), (1, 1), "valid"),
    (1, 2, 3, (5, 6), (3, 2), (2, 1), "same"),
    (2, 1, 2, (4, 5), (2, 3), (1, 2), "full"),
    (1, 3, 2, (6, 5), (2, 2), (3, 3), ((1, 0), (2, 1))),  # stride > kernel: gaps
    (2, 2, 1, (7, 6), (4, 3), (2, 2), "valid"),  # trailing rows the windows miss
    (1, 1, 2, (5, 5), (5, 5), (1, 1), "same"),
    (2, 2, 2, (6, 4), (1, 1), (2, 1), ((0, 2), (1, 0))),
] + _random_cases(6, seed=3)


@pytest.mark.parametrize("case", GRADIENT_CASES, ids=str)
def test_gradients_match_numerical(case):
    rng = np.random.default_rng(4)
    x, w, b, stride, padding = _operands(case, rng)
    r = rng.standard_normal(conv2d_forward(x, w, b, stride, padding)[0].shape)

    def loss():
        return np.sum(conv2d_forward(x, w, b, stride, padding)[0] * r)

    _, cache = conv2d_forward(x, w, b, stride, padding)
    dx, dw, db = conv2d_backward(r, cache)
    assert relative_error(dx, numerical_gradient(loss, x)) < 1e-6
    assert relative_error(dw, numerical_gradient(loss, w)) < 1e-6
    assert relative_error(db, numerical_gradient(loss, b)) < 1e-6


def test_forward_is_cross_correlation_without_kernel_flip():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    w = np.zeros((1, 1, 2, 2))
    w[0, 0, 0, 0] = 1.0  # picks the top-left cell of each window
    y, _ = conv2d_forward(x, w, None)
    np.testing.assert_array_equal(y[0, 0], x[0, 0, :3, :3])


def test_padding_mode_name_equals_explicit_amounts():
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((2, 2, 7, 6)), rng.standard_normal((3, 2, 4, 3))
    explicit = _explicit((7, 6), (4, 3), (2, 1), "same")
    y_mode, cache = conv2d_forward(x, w, None, (2, 1), "same")
    y_explicit, _ = conv2d_forward(x, w, None, (2, 1), explicit)
    np.testing.assert_array_equal(y_mode, y_explicit)
    assert cache.padding == explicit


def test_cache_holds_the_padded_input_channels_last_and_geometry():
    rng = np.random.default_rng(6)
    x, w = rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((4, 3, 3, 2))
    _, cache = conv2d_forward(x, w, None, (2, 1), ((1, 0), (0, 1)))
    assert cache.x_padded.shape == (2, 7, 6, 3)
    np.testing.assert_array_equal(cache.x_padded[:, 1:, :5], x.transpose(0, 2, 3, 1))
    assert cache.x_shape == (2, 3, 6, 5) and cache.out_hw == (3, 5)
    assert cache.stride == (2, 1) and cache.padding == ((1, 0), (0, 1))
    assert cache.w is w and cache.has_bias is False


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_preserved(dtype):
    rng = np.random.default_rng(7)
    x, w, b, stride, padding = _operands(CASES[4], rng, dtype)
    y, cache = conv2d_forward(x, w, b, stride, padding)
    dx, dw, db = conv2d_backward(rng.standard_normal(y.shape).astype(dtype), cache)
    assert {a.dtype for a in (y, dx, dw, db)} == {np.dtype(dtype)}


def test_float32_close_to_float64():
    rng = np.random.default_rng(8)
    x, w, b, stride, padding = _operands(CASES[1], rng)
    y64, _ = conv2d_forward(x, w, b, stride, padding)
    x32, w32, b32 = (a.astype(np.float32) for a in (x, w, b))
    y32, _ = conv2d_forward(x32, w32, b32, stride, padding)
    np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-4)


def test_channel_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3, 8, 8\).*\(4, 2, 3, 3\)"):
        conv2d_forward(np.zeros((2, 3, 8, 8)), np.zeros((4, 2, 3, 3)), None)


def test_empty_output_raises():
    with pytest.raises(ValueError, match="empty"):
        conv2d_forward(np.zeros((1, 1, 2, 5)), np.zeros((1, 1, 3, 3)), None)


def test_bias_shape_is_checked():
    with pytest.raises(ValueError, match="bias"):
        conv2d_forward(np.zeros((1, 1, 5, 5)), np.zeros((2, 1, 3, 3)), np.zeros(3))


def test_wrong_dy_shape_raises():
    y, cache = conv2d_forward(np.zeros((2, 1, 5, 5)), np.zeros((2, 1, 3, 3)), None)
    with pytest.raises(ValueError, match="dy"):
        conv2d_backward(np.zeros((2, 2, 2, 2)), cache)
