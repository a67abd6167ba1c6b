"""im2col/col2im (cnn.ops.im2col) and the seed's index helpers (cnn.utils.im2col)."""

import numpy as np
import pytest

from cnn.ops.im2col import col2im, im2col, pad_spatial
from cnn.ops.reference import conv2d_reference, im2col_reference, pool2d_reference
from cnn.utils import im2col as seed
from cnn.utils.standard import max_pool

# (N, C, (Hp, Wp), kernel, stride): Hp, Wp are the sizes after padding.
GEOMETRIES = [
    (1, 1, (5, 5), (1, 1), (1, 1)),
    (2, 3, (7, 6), (3, 3), (1, 1)),
    (3, 2, (8, 7), (3, 2), (2, 1)),  # the windows do not tile the input
    (2, 1, (9, 9), (5, 5), (2, 2)),
    (4, 2, (9, 8), (2, 4), (3, 2)),
    (1, 3, (7, 7), (4, 4), (2, 2)),
    (2, 2, (5, 8), (1, 3), (1, 3)),
    (2, 1, (10, 10), (5, 3), (3, 3)),
    (1, 2, (4, 4), (4, 4), (1, 1)),
    (2, 2, (6, 9), (2, 1), (1, 3)),
]


def _out_hw(hw, kernel, stride):
    return tuple((n - k) // s + 1 for n, k, s in zip(hw, kernel, stride))


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_im2col_matches_reference(geometry):
    n, c, hw, kernel, stride = geometry
    x = np.random.default_rng(0).standard_normal((n, c, *hw))
    out_hw = _out_hw(hw, kernel, stride)
    cols = im2col(x, kernel, stride, out_hw)
    assert cols.shape == (c * kernel[0] * kernel[1], n * out_hw[0] * out_hw[1])
    np.testing.assert_array_equal(cols, im2col_reference(x, kernel, stride, out_hw))


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_col2im_is_the_adjoint_of_im2col(geometry):
    n, c, hw, kernel, stride = geometry
    rng = np.random.default_rng(1)
    out_hw = _out_hw(hw, kernel, stride)
    x = rng.standard_normal((n, c, *hw))
    cols = rng.standard_normal(im2col(x, kernel, stride, out_hw).shape)
    lhs = np.sum(im2col(x, kernel, stride, out_hw) * cols)
    rhs = np.sum(x * col2im(cols, x.shape, kernel, stride, out_hw))
    assert lhs == pytest.approx(rhs, rel=1e-12)


def test_col2im_adds_overlapping_windows():
    cols = np.ones((4, 4))  # 1 sample, 1 channel, 2x2 kernel, 2x2 output on a 3x3 input
    x = col2im(cols, (1, 1, 3, 3), (2, 2), (1, 1), (2, 2))
    np.testing.assert_array_equal(x[0, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])


def test_conv_is_one_gemm_with_this_layout():
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((4, 3, 3, 2))
    cols = im2col(x, (3, 2), (1, 1), (4, 4))
    y = (w.reshape(4, -1) @ cols).reshape(4, 2, 4, 4).transpose(1, 0, 2, 3)
    np.testing.assert_allclose(y, conv2d_reference(x, w, None, 1, 0), atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_preserved(dtype):
    x = np.random.default_rng(3).standard_normal((2, 2, 5, 5)).astype(dtype)
    cols = im2col(x, (3, 3), (1, 1), (3, 3))
    assert cols.dtype == dtype
    assert col2im(cols, x.shape, (3, 3), (1, 1), (3, 3)).dtype == dtype


def test_wrong_out_hw_raises():
    with pytest.raises(ValueError, match="out_hw"):
        im2col(np.zeros((1, 1, 5, 5)), (3, 3), (1, 1), (4, 4))
    with pytest.raises(ValueError, match="cols"):
        col2im(np.zeros((9, 8)), (1, 1, 5, 5), (3, 3), (1, 1), (3, 3))


# The seed's helpers: int padding on every side, int or pair stride.
# (N, C, (H, W), (fh, fw), padding, stride)
SEED_GEOMETRIES = [
    (2, 3, (7, 7), (3, 3), 1, 1),
    (3, 2, (8, 6), (3, 2), 0, 2),
    (1, 1, (5, 5), (5, 5), 2, 1),
    (2, 2, (9, 7), (2, 4), 1, 3),
    (4, 1, (6, 6), (1, 1), 0, (2, 1)),
    (2, 2, (7, 8), (4, 3), 2, (1, 3)),
]


@pytest.mark.parametrize("geometry", SEED_GEOMETRIES, ids=str)
def test_seed_im2col_indices_equals_ops_im2col(geometry):
    n, c, hw, (fh, fw), p, stride = geometry
    x = np.random.default_rng(4).standard_normal((n, c, *hw))
    stride2 = (stride, stride) if isinstance(stride, int) else stride
    x_padded = pad_spatial(x, ((p, p), (p, p)))
    out_hw = _out_hw(x_padded.shape[2:], (fh, fw), stride2)
    k, i, j = seed.get_im2col_indices(x.shape, fh, fw, p, stride)
    assert k.shape == (c * fh * fw, 1)
    assert i.shape == j.shape == (c * fh * fw, out_hw[0] * out_hw[1])
    np.testing.assert_array_equal(
        seed.im2col_indices(x, fh, fw, p, stride), im2col(x_padded, (fh, fw), stride2, out_hw)
    )


@pytest.mark.parametrize("geometry", SEED_GEOMETRIES, ids=str)
def test_seed_col2im_indices_is_the_adjoint(geometry):
    n, c, hw, (fh, fw), p, stride = geometry
    rng = np.random.default_rng(5)
    x = rng.standard_normal((n, c, *hw))
    cols = seed.im2col_indices(x, fh, fw, p, stride)
    c_random = rng.standard_normal(cols.shape)
    back = seed.col2im_indices(c_random, x.shape, fh, fw, p, stride)
    assert back.shape == x.shape
    assert np.sum(cols * c_random) == pytest.approx(np.sum(x * back), rel=1e-12)


@pytest.mark.parametrize("geometry", SEED_GEOMETRIES, ids=str)
def test_seed_conv_im2col_matches_reference(geometry):
    n, c, hw, (fh, fw), p, stride = geometry
    rng = np.random.default_rng(6)
    x, kernel = rng.standard_normal((n, c, *hw)), rng.standard_normal((3, c, fh, fw))
    np.testing.assert_allclose(
        seed.conv_im2col(x, kernel, p, stride),
        conv2d_reference(x, kernel, None, stride, p),
        atol=1e-12,
    )


@pytest.mark.parametrize("kernel_shape", [(2, 2), (3, 3), (2, 3), (3, 1)])
def test_seed_pool_im2col_matches_reference(kernel_shape):
    x = np.random.default_rng(7).standard_normal((3, 2, 7, 8))  # not tiled by most kernels
    z_avg = seed.pool_im2col(x, kernel_shape, mode=0)
    z_max, max_id = seed.pool_im2col(x, kernel_shape, mode=1)
    for z, mode in ((z_avg, "avg"), (z_max, "max")):
        np.testing.assert_allclose(
            z, pool2d_reference(x, kernel_shape, kernel_shape, 0, mode), atol=1e-12
        )
    z_standard, id_standard = max_pool(x, kernel_shape)
    np.testing.assert_array_equal(max_id, id_standard)
    np.testing.assert_array_equal(z_max, z_standard)


def test_seed_max_pool_im2col_on_negative_inputs():
    x = -1 - np.random.default_rng(8).random((2, 2, 4, 6))
    z, max_id = seed.max_pool_im2col(x, (2, 3))
    np.testing.assert_array_equal(z, pool2d_reference(x, (2, 3), (2, 3), 0, "max"))
    assert np.all(z < -1) and max_id.max() < 6


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_seed_helpers_preserve_dtype(dtype):
    x = np.random.default_rng(9).standard_normal((2, 2, 6, 6)).astype(dtype)
    kernel = np.ones((3, 2, 3, 3), dtype=dtype)
    cols = seed.im2col_indices(x, 3, 3, 1, 1)
    assert cols.dtype == dtype
    assert seed.col2im_indices(cols, x.shape, 3, 3, 1, 1).dtype == dtype
    assert seed.conv_im2col(x, kernel, 1).dtype == dtype
    assert seed.average_pool_im2col(x, (2, 2)).dtype == dtype
    assert seed.max_pool_im2col(x, (2, 2))[0].dtype == dtype


@pytest.mark.parametrize("padding", ["same", -1, 1.5])
def test_seed_padding_must_be_an_int_amount(padding):
    with pytest.raises(ValueError, match="padding"):
        seed.im2col_indices(np.zeros((1, 1, 5, 5)), 3, 3, padding)
