"""The seed's slow oracles (cnn.utils.standard) against cnn.ops.reference."""

import numpy as np
import pytest

from cnn.ops.reference import (
    conv2d_backward_reference,
    conv2d_reference,
    pool2d_backward_reference,
    pool2d_reference,
)
from cnn.utils import standard


def relu_gradient(z):
    return z > 0


@pytest.mark.parametrize("padding", [0, 1, 2])
@pytest.mark.parametrize("kernel_hw", [(3, 3), (2, 3), (5, 1)])
def test_conv_equals_reference(padding, kernel_hw):
    rng = np.random.default_rng(0)
    x, kernel = rng.standard_normal((2, 3, 6, 7)), rng.standard_normal((2, 3, *kernel_hw))
    np.testing.assert_allclose(
        standard.conv(x, kernel, padding),
        conv2d_reference(x, kernel, None, 1, padding),
        atol=1e-12,
    )


def test_conv_does_not_flip_the_kernel():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    kernel = np.zeros((1, 1, 2, 2))
    kernel[0, 0, 0, 0] = 1.0
    np.testing.assert_array_equal(standard.conv(x, kernel)[0, 0], x[0, 0, :3, :3])


@pytest.mark.parametrize("kernel_hw", [(3, 3), (2, 3), (4, 2)])
@pytest.mark.parametrize("activation_gradient", [relu_gradient, None])
def test_conv_bp_standard_matches_reference(kernel_hw, activation_gradient):
    rng = np.random.default_rng(1)
    n = 3
    x, kernel = rng.standard_normal((n, 2, 7, 6)), rng.standard_normal((4, 2, *kernel_hw))
    z = standard.conv(x, kernel)
    error = rng.standard_normal(z.shape)
    grad, error_bp = standard.conv_bp_standard(x, z, error, kernel, activation_gradient)
    delta = error if activation_gradient is None else error * activation_gradient(z)
    dx, dw, _ = conv2d_backward_reference(delta, x, kernel, 1, 0, has_bias=False)
    np.testing.assert_allclose(error_bp, dx, atol=1e-12)
    np.testing.assert_allclose(grad, dw / n, atol=1e-12)


def test_conv_bp_standard_flips_the_kernel_where_the_seed_did_not():
    rng = np.random.default_rng(2)
    x, kernel = rng.standard_normal((1, 1, 5, 5)), rng.standard_normal((1, 1, 3, 3))
    z = standard.conv(x, kernel)
    error = rng.standard_normal(z.shape)
    _, error_bp = standard.conv_bp_standard(x, z, error, kernel, None)
    seed_error_bp = standard.conv(error, kernel.transpose(1, 0, 2, 3), padding=2)  # no flip
    flipped = standard.conv(error, kernel.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1], padding=2)
    np.testing.assert_allclose(error_bp, flipped, atol=1e-12)
    assert not np.allclose(error_bp, seed_error_bp)


@pytest.mark.parametrize("kernel_shape", [(2, 2), (3, 3), (2, 3), (3, 2)])
def test_pools_equal_reference(kernel_shape):
    x = np.random.default_rng(3).standard_normal((2, 3, 7, 8))  # mostly not tiled
    z_avg = standard.pool(x, kernel_shape, mode=0)
    z_max, max_id = standard.pool(x, kernel_shape, mode=1)
    for z, mode in ((z_avg, "avg"), (z_max, "max")):
        expected = pool2d_reference(x, kernel_shape, kernel_shape, 0, mode)
        np.testing.assert_allclose(z, expected, atol=1e-12)
    assert max_id.shape == z_max.shape


def test_conv_bp_standard_rejects_padded_outputs():
    x, kernel = np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 3, 3))
    z = standard.conv(x, kernel, padding=1)
    with pytest.raises(ValueError, match="unpadded"):
        standard.conv_bp_standard(x, z, z, kernel, None)


def test_max_pool_on_negative_inputs():
    x = -1 - np.random.default_rng(4).random((2, 2, 6, 6))
    z, max_id = standard.max_pool(x, (2, 2))
    assert np.all(z < -1)  # the seed's zero start gave 0 here
    np.testing.assert_array_equal(z, pool2d_reference(x, (2, 2), (2, 2), 0, "max"))


@pytest.mark.parametrize("kernel_shape", [(2, 3), (3, 2)])
def test_max_id_is_row_major_within_the_window(kernel_shape):
    kh, kw = kernel_shape
    x = np.random.default_rng(5).standard_normal((1, 2, 2 * kh, 3 * kw))
    z, max_id = standard.max_pool(x, kernel_shape)
    rows = np.arange(2)[:, None] * kh + max_id // kw
    cols = np.arange(3)[None, :] * kw + max_id % kw
    for c in range(2):
        np.testing.assert_array_equal(x[0, c][rows[0, c], cols[0, c]], z[0, c])


def test_max_pool_ties_pick_the_first_cell():
    z, max_id = standard.max_pool(np.zeros((1, 1, 2, 2)), (2, 2))
    assert z[0, 0, 0, 0] == 0 and max_id[0, 0, 0, 0] == 0


@pytest.mark.parametrize("kernel_shape", [(2, 2), (2, 3)])
@pytest.mark.parametrize("hw", [(6, 6), (7, 8)])
def test_pool_backwards_equal_reference(kernel_shape, hw):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 2, *hw))
    z, max_id = standard.max_pool(x, kernel_shape)
    error = rng.standard_normal(z.shape)
    max_bp = standard.max_pool_backward(error, max_id, kernel_shape, input_shape=x.shape)
    avg_bp = standard.average_pool_backward(error, kernel_shape, input_shape=x.shape)
    for got, mode in ((max_bp, "max"), (avg_bp, "avg")):
        expected = pool2d_backward_reference(error, x, kernel_shape, kernel_shape, 0, mode)
        np.testing.assert_allclose(got, expected, atol=1e-12)


def test_pool_backward_without_input_shape_keeps_the_seed_shape():
    error = np.ones((1, 1, 3, 2))
    assert standard.average_pool_backward(error, (2, 3)).shape == (1, 1, 6, 6)
    max_id = np.zeros((1, 1, 3, 2), dtype=int)
    assert standard.max_pool_backward(error, max_id, (2, 3)).shape == (1, 1, 6, 6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_preserved(dtype):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 2, 6, 6)).astype(dtype)
    kernel = rng.standard_normal((3, 2, 3, 3)).astype(dtype)
    z = standard.conv(x, kernel)
    grad, error_bp = standard.conv_bp_standard(x, z, np.ones_like(z), kernel, relu_gradient)
    z_max, max_id = standard.max_pool(x, (2, 2))
    outputs = [
        z,
        grad,
        error_bp,
        standard.average_pool(x, (2, 2)),
        z_max,
        standard.average_pool_backward(z_max, (2, 2)),
        standard.max_pool_backward(z_max, max_id, (2, 2)),
    ]
    assert all(out.dtype == dtype for out in outputs)
