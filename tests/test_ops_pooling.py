"""pool2d_forward / pool2d_backward against the loop reference and numerical gradients."""

import numpy as np
import pytest

from cnn.ops.pooling import pool2d_backward, pool2d_forward
from cnn.ops.reference import pool2d_backward_reference, pool2d_reference
from cnn.ops.shapes import window_output_shape
from cnn.utils.gradient_check import numerical_gradient, relative_error

MODES = ["max", "avg"]
NO_PADDING = ((0, 0), (0, 0))

# (N, C, (H, W), pool_size, stride, padding): padding is a mode or explicit amounts.
CASES = [
    (2, 3, (8, 6), (2, 2), (2, 2), "valid"),  # tiled path
    (1, 2, (9, 9), (3, 3), (3, 3), "valid"),  # tiled path
    (2, 2, (6, 8), (3, 2), (3, 2), "valid"),  # tiled path, non-square
    (2, 2, (7, 5), (2, 2), (2, 2), "valid"),  # trailing row and column dropped
    (3, 1, (7, 7), (3, 3), (2, 2), "valid"),  # overlapping windows
    (2, 2, (7, 6), (2, 2), (2, 2), "same"),  # padding at the end only
    (1, 3, (5, 6), (3, 3), (1, 1), "same"),
    (2, 2, (6, 7), (2, 3), (1, 2), "valid"),
    (4, 1, (9, 8), (2, 2), (3, 3), "valid"),  # stride > pool: gaps
    (1, 2, (6, 6), (3, 2), (2, 1), ((1, 2), (1, 0))),
    (2, 1, (5, 5), (5, 5), (1, 1), "valid"),
    (2, 2, (4, 6), (2, 2), (2, 2), ((1, 1), (1, 1))),
    (1, 1, (8, 3), (4, 1), (2, 1), "same"),
    (2, 3, (4, 6), (1, 2), (1, 2), "valid"),  # tiled path, windows one row high
    (3, 2, (6, 4), (2, 1), (2, 1), "valid"),  # tiled path, windows one column wide
]


def _random_cases(count, seed):
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < count:
        pool = tuple(int(k) for k in rng.integers(1, 5, size=2))
        stride = tuple(int(s) for s in rng.integers(1, 4, size=2))
        hw = tuple(int(s) for s in rng.integers(3, 10, size=2))
        pad = tuple(
            tuple(int(p) for p in rng.integers(0, k, size=2)) for k in pool
        )  # < pool size, so no window is all padding
        padding = ["valid", "same", pad][rng.integers(3)]
        out_hw, _ = window_output_shape(hw, pool, stride, padding)
        if min(out_hw) >= 1:
            n, c = (int(v) for v in rng.integers(1, 4, size=2))
            cases.append((n, c, hw, pool, stride, padding))
    return cases


ALL_CASES = CASES + _random_cases(30, seed=11)


def _operands(case, rng, dtype=np.float64):
    n, c, hw, pool, stride, padding = case
    x = rng.standard_normal((n, c, *hw)).astype(dtype)
    return x, pool, stride, window_output_shape(hw, pool, stride, padding)[1]


@pytest.mark.parametrize("case", ALL_CASES, ids=str)
@pytest.mark.parametrize("mode", MODES)
def test_forward_matches_reference(case, mode):
    x, pool, stride, padding = _operands(case, np.random.default_rng(0))
    y, _ = pool2d_forward(x, pool, stride, padding, mode)
    np.testing.assert_allclose(y, pool2d_reference(x, pool, stride, padding, mode), atol=1e-12)


@pytest.mark.parametrize("case", ALL_CASES, ids=str)
@pytest.mark.parametrize("mode", MODES)
def test_backward_matches_reference(case, mode):
    rng = np.random.default_rng(1)
    x, pool, stride, padding = _operands(case, rng)
    y, cache = pool2d_forward(x, pool, stride, padding, mode)
    dy = rng.standard_normal(y.shape)
    dx = pool2d_backward(dy, cache)
    assert dx.shape == x.shape
    expected = pool2d_backward_reference(dy, x, pool, stride, padding, mode)
    np.testing.assert_allclose(dx, expected, atol=1e-12)


GRADIENT_CASES = [case for case in CASES if case[0] * case[1] <= 4] + _random_cases(6, seed=12)


@pytest.mark.parametrize("case", GRADIENT_CASES, ids=str)
@pytest.mark.parametrize("mode", MODES)
def test_gradient_matches_numerical(case, mode):
    rng = np.random.default_rng(2)
    x, pool, stride, padding = _operands(case, rng)
    y, cache = pool2d_forward(x, pool, stride, padding, mode)
    r = rng.standard_normal(y.shape)

    def loss():
        return np.sum(pool2d_forward(x, pool, stride, padding, mode)[0] * r)

    dx = pool2d_backward(r, cache)
    assert relative_error(dx, numerical_gradient(loss, x)) < 1e-6


@pytest.mark.parametrize(
    "shape, pool, stride, padding, tiled",
    [
        ((1, 1, 6, 6), (2, 2), (2, 2), NO_PADDING, True),
        ((1, 1, 6, 6), (3, 2), (3, 2), NO_PADDING, True),
        ((1, 1, 7, 6), (2, 2), (2, 2), NO_PADDING, False),  # does not tile
        ((1, 1, 6, 6), (2, 2), (1, 1), NO_PADDING, False),  # overlaps
        ((1, 1, 6, 6), (2, 2), (2, 2), ((0, 1), (0, 1)), False),  # padded
    ],
)
def test_tiled_path_only_where_the_windows_tile(shape, pool, stride, padding, tiled):
    _, cache = pool2d_forward(np.zeros(shape), pool, stride, padding, "max")
    assert cache.tiled is tiled


@pytest.mark.parametrize("pool", [(2, 2), (3, 2), (2, 3)])
def test_max_ties_go_to_the_first_cell_on_both_paths(pool):
    rng = np.random.default_rng(3)
    ph, pw = pool
    # Values from {0, 1} after a ReLU-like clamp: many windows hold several equal maxima.
    x = rng.integers(0, 2, size=(2, 2, 3 * ph, 2 * pw)).astype(np.float64)
    x_untiled = np.concatenate([x, np.full((2, 2, 1, 2 * pw), 5.0)], axis=2)  # extra row
    y, tiled_cache = pool2d_forward(x, pool, pool, NO_PADDING, "max")
    _, general_cache = pool2d_forward(x_untiled, pool, pool, NO_PADDING, "max")
    assert tiled_cache.tiled and not general_cache.tiled
    dy = rng.standard_normal(y.shape)
    dx_tiled = pool2d_backward(dy, tiled_cache)
    dx_general = pool2d_backward(dy, general_cache)
    np.testing.assert_array_equal(dx_tiled, dx_general[:, :, : 3 * ph])
    expected = pool2d_backward_reference(dy, x, pool, pool, NO_PADDING, "max")
    np.testing.assert_array_equal(dx_tiled, expected)
    # Exactly one cell per window receives the gradient.
    assert np.count_nonzero(dx_tiled) == np.count_nonzero(dy)


def test_all_equal_window_sends_gradient_to_its_top_left_cell():
    x = np.zeros((1, 1, 4, 4))
    y, cache = pool2d_forward(x, (2, 2), (2, 2), NO_PADDING, "max")
    dx = pool2d_backward(np.ones_like(y), cache)
    expected = np.zeros((4, 4))
    expected[::2, ::2] = 1
    np.testing.assert_array_equal(dx[0, 0], expected)


def test_padding_never_wins_a_max():
    x = -1 - np.random.default_rng(4).random((2, 2, 5, 5))  # all < -1
    padding = window_output_shape((5, 5), (3, 3), (2, 2), "same")[1]
    y, cache = pool2d_forward(x, (3, 3), (2, 2), padding, "max")
    assert np.all(y < -1)
    np.testing.assert_array_equal(y, pool2d_reference(x, (3, 3), (2, 2), padding, "max"))
    dx = pool2d_backward(np.ones_like(y), cache)
    assert dx.sum() == y.size  # no gradient lost to the padding


def test_average_does_not_count_padding():
    x = np.ones((1, 2, 5, 7))
    padding = window_output_shape((5, 7), (2, 3), (2, 2), "same")[1]
    assert padding != NO_PADDING
    y, _ = pool2d_forward(x, (2, 3), (2, 2), padding, "avg")
    np.testing.assert_allclose(y, 1.0)


def test_overlapping_max_gradients_accumulate():
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 1.0  # the max of all four 2x2 windows
    y, cache = pool2d_forward(x, (2, 2), (1, 1), NO_PADDING, "max")
    dx = pool2d_backward(np.ones_like(y), cache)
    assert dx[0, 0, 1, 1] == 4 and dx.sum() == 4


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", [CASES[0], CASES[4], CASES[9]], ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_preserved(mode, case, dtype):
    rng = np.random.default_rng(5)
    x, pool, stride, padding = _operands(case, rng, dtype)
    y, cache = pool2d_forward(x, pool, stride, padding, mode)
    dx = pool2d_backward(rng.standard_normal(y.shape).astype(dtype), cache)
    assert y.dtype == dtype and dx.dtype == dtype


def test_stride_defaults_to_pool_size():
    x = np.random.default_rng(6).standard_normal((1, 1, 6, 6))
    y, cache = pool2d_forward(x, (3, 2), None, NO_PADDING, "max")
    assert y.shape == (1, 1, 2, 3) and cache.stride == (3, 2)


def test_unknown_mode_raises():
    with pytest.raises(ValueError, match="'median'"):
        pool2d_forward(np.zeros((1, 1, 4, 4)), (2, 2), (2, 2), NO_PADDING, "median")


def test_empty_output_names_the_sizes():
    with pytest.raises(ValueError, match=r"empty.*\(3, 3\)"):
        pool2d_forward(np.zeros((1, 1, 2, 2)), (3, 3), (1, 1), NO_PADDING, "max")


def test_window_entirely_in_padding_raises():
    with pytest.raises(ValueError, match="only padding"):
        pool2d_forward(np.zeros((1, 1, 4, 4)), (2, 2), (2, 2), ((2, 0), (0, 0)), "avg")


def test_wrong_dy_shape_raises():
    _, cache = pool2d_forward(np.zeros((1, 2, 4, 4)), (2, 2), (2, 2), NO_PADDING, "avg")
    with pytest.raises(ValueError, match="dy"):
        pool2d_backward(np.zeros((1, 2, 3, 3)), cache)
