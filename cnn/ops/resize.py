"""Upsampling of channels-last (N, H, W, C) batches by integer factors, and its gradient.

* ``"nearest"``: every pixel becomes an ``sh x sw`` block; the gradient of a pixel is the
  sum over its block.
* ``"bilinear"``: half-pixel centres, as Keras (``tf.image.resize``) and PyTorch
  (``align_corners=False``): output pixel ``o`` samples the input at ``(o + 0.5) / s - 0.5``,
  clamped to the edge pixels. The map is separable, ``y = A_h x A_w^T`` per channel, so the
  forward pass is two small matrix products and the backward pass their transposes.
"""

from __future__ import annotations

from cnn.backend import xp

INTERPOLATIONS = ("nearest", "bilinear")


def linear_resize_matrix(size, factor, dtype):
    """(size * factor, size): row ``o`` holds the two weights of output pixel ``o``."""
    return window_resize_matrix(size, 0, size, size * factor, dtype)


def window_resize_matrix(size, start, length, out, dtype):
    """(out, size): the pixels ``start:start + length`` of an axis of ``size`` resized to
    ``out`` bilinearly with half-pixel centres (output pixel ``o`` reads the window at
    ``(o + 0.5) * length / out - 0.5``, clamped to its edge pixels); zero outside the window."""
    source = (xp.arange(out, dtype=xp.float64) + 0.5) * (length / out) - 0.5
    source = xp.clip(source, 0, length - 1)
    below = xp.floor(source).astype(xp.int64)
    above = xp.minimum(below + 1, length - 1)
    weight = source - below
    matrix = xp.zeros((out, size), dtype=xp.float64)
    rows = xp.arange(out)
    matrix[rows, start + below] += 1 - weight
    matrix[rows, start + above] += weight
    return matrix.astype(dtype)


def upsample_forward(x, size, interpolation="nearest"):
    """(N, H, W, C) -> (N, H * sh, W * sw, C), a new C-contiguous array."""
    sh, sw = size
    if interpolation == "nearest":
        n, h, w, c = x.shape
        y = xp.broadcast_to(x[:, :, None, :, None, :], (n, h, sh, w, sw, c))
        return xp.ascontiguousarray(y).reshape(n, h * sh, w * sw, c)
    rows, cols = _matrices(x.shape[1:3], size, x.dtype)
    y = xp.einsum("ph,nhwc->npwc", rows, x)
    return xp.ascontiguousarray(xp.einsum("qw,npwc->npqc", cols, y))


def upsample_backward(dy, input_hw, size, interpolation="nearest"):
    """Gradient of ``upsample_forward``: (N, H * sh, W * sw, C) -> (N, H, W, C)."""
    (h, w), (sh, sw) = input_hw, size
    n, c = dy.shape[0], dy.shape[-1]
    if interpolation == "nearest":
        return dy.reshape(n, h, sh, w, sw, c).sum(axis=(2, 4))
    rows, cols = _matrices(input_hw, size, dy.dtype)
    dx = xp.einsum("npqc,qw->npwc", dy, cols)
    return xp.ascontiguousarray(xp.einsum("npwc,ph->nhwc", dx, rows))


def _matrices(hw, size, dtype):
    return (linear_resize_matrix(hw[0], size[0], dtype),
            linear_resize_matrix(hw[1], size[1], dtype))
