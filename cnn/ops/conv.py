"""2-D convolution (cross-correlation, as in Keras and PyTorch) by im2col and one GEMM.

Forward::

    y[n, f, p, q] = b[f] + sum_{c, i, j} w[f, c, i, j] * x_padded[n, c, p * sh + i, q * sw + j]

The kernel is not flipped. Backward returns gradients summed over the batch. The caller's
loss divides by N.
"""

from __future__ import annotations

from typing import NamedTuple

from cnn.backend import xp
from cnn.ops.im2col import col2im, crop_spatial, im2col, pad_spatial
from cnn.ops.shapes import check_padding, pair, window_output_shape


class ConvCache(NamedTuple):
    """What ``conv2d_backward`` needs from the forward pass."""

    cols: object  # im2col of the padded input, (C * kh * kw, N * oh * ow)
    w: object  # the kernel, (F, C, kh, kw) (a reference, not a copy)
    x_shape: tuple  # (N, C, H, W)
    stride: tuple  # (sh, sw)
    padding: tuple  # ((top, bottom), (left, right))
    out_hw: tuple  # (oh, ow)
    has_bias: bool


def conv2d_forward(x, w, b=None, stride=(1, 1), padding=((0, 0), (0, 0))):
    """Convolve a batch of images with a bank of kernels.

    Args:
        x: (N, C, H, W) input.
        w: (F, C, kh, kw) kernels.
        b: (F,) bias, or None.
        stride: ``(sh, sw)`` or an int.
        padding: explicit zero padding ``((top, bottom), (left, right))`` or an int. A mode
            name (``"valid"``, ``"same"``, ``"full"``) is resolved with ``cnn.ops.shapes``.
    Returns:
        ``(y, cache)``: y (N, F, oh, ow) in the dtype of ``x`` and ``w``; cache a ``ConvCache``.
    Raises:
        ValueError: the input and kernel channels differ, or the output would be empty.
    """
    _check_operands(x, w, b)
    n, _, h, width = x.shape
    f, _, kh, kw = w.shape
    stride = pair(stride, "stride")
    out_hw, padding = window_output_shape((h, width), (kh, kw), stride, check_padding(padding))
    if min(out_hw) < 1:
        raise ValueError(
            f"conv2d: output would be empty ({out_hw}): input {tuple(x.shape)} padded by "
            f"{padding} is smaller than the kernel {(kh, kw)} (stride {stride})"
        )
    cols = im2col(pad_spatial(x, padding), (kh, kw), stride, out_hw)
    y = w.reshape(f, -1) @ cols  # (F, N * oh * ow)
    if b is not None:
        y += b.reshape(f, 1)
    y = xp.ascontiguousarray(y.reshape(f, n, *out_hw).transpose(1, 0, 2, 3))
    return y, ConvCache(cols, w, tuple(x.shape), stride, padding, out_hw, b is not None)


def conv2d_backward(dy, cache, need_dx=True):
    """Gradients of a convolution, summed over the batch.

    Args:
        dy: (N, F, oh, ow), gradient of the loss with respect to ``y``.
        cache: the ``ConvCache`` from ``conv2d_forward``.
        need_dx: False skips the input gradient (a GEMM and a col2im), e.g. for a first layer.
    Returns:
        ``(dx, dw, db)``: dx (N, C, H, W) or None when ``need_dx`` is False; dw (F, C, kh, kw);
        db (F,) or None when the forward pass had no bias.
    """
    w = cache.w
    f = w.shape[0]
    expected = (cache.x_shape[0], f, *cache.out_hw)
    if tuple(dy.shape) != expected:
        raise ValueError(f"conv2d_backward: dy has shape {tuple(dy.shape)}, expected {expected}")
    dy_mat = dy.transpose(1, 0, 2, 3).reshape(f, -1)  # (F, N * oh * ow)
    dw = (dy_mat @ cache.cols.T).reshape(w.shape)
    db = dy_mat.sum(axis=1) if cache.has_bias else None
    dx = _input_gradient(dy_mat, cache) if need_dx else None
    return dx, dw, db


def _input_gradient(dy_mat, cache):
    w = cache.w
    n, c, h, width = cache.x_shape
    (top, bottom), (left, right) = cache.padding
    padded_shape = (n, c, h + top + bottom, width + left + right)
    dcols = w.reshape(w.shape[0], -1).T @ dy_mat  # (C * kh * kw, N * oh * ow)
    dx_padded = col2im(dcols, padded_shape, w.shape[2:], cache.stride, cache.out_hw)
    return crop_spatial(dx_padded, cache.padding)


def _check_operands(x, w, b):
    if x.ndim != 4:
        raise ValueError(f"conv2d: expected input of shape (N, C, H, W), got {tuple(x.shape)}")
    if w.ndim != 4:
        raise ValueError(f"conv2d: expected kernel of shape (F, C, kh, kw), got {tuple(w.shape)}")
    if x.shape[1] != w.shape[1]:
        raise ValueError(
            f"conv2d: input has {x.shape[1]} channels (x.shape={tuple(x.shape)}) but the kernel "
            f"expects {w.shape[1]} (w.shape={tuple(w.shape)})"
        )
    if b is not None and tuple(b.shape) != (w.shape[0],):
        raise ValueError(
            f"conv2d: bias must have shape ({w.shape[0]},) for kernel {tuple(w.shape)}, "
            f"got {tuple(b.shape)}"
        )
