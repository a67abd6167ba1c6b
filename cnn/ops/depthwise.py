"""Depthwise 2-D convolution: each input channel convolved with its own ``M`` kernels.

Forward, with ``C`` input channels and depth multiplier ``M``::

    y[n, c * M + m, p, q] = b[c * M + m]
        + sum_{i, j} w[c * M + m, 0, i, j] * x_padded[n, c, p * sh + i * dh, q * sw + j * dw]

which is PyTorch's ``conv2d(..., groups=C)`` with the kernel (C * M, 1, kh, kw), and Keras's
DepthwiseConv2D (same output channel order). There is no sum over channels, so no GEMM:
the work is ``kh * kw`` element-wise products of strided (N, oh, ow, C) views, one per kernel
tap, as pooling does, on channels-last memory. Outputs are (N, C * M, oh, ow) views of
channels-last arrays.
"""

from __future__ import annotations

from typing import NamedTuple

from cnn.backend import xp
from cnn.ops.im2col import channels_last, crop_spatial, pad_spatial, window_slices
from cnn.ops.shapes import check_padding, effective_kernel, pair, window_output_shape

_SPATIAL = (1, 2)


class DepthwiseCache(NamedTuple):
    x_padded: object  # (N, Hp, Wp, C)
    w: object  # (C * M, 1, kh, kw)
    stride: tuple
    padding: tuple  # ((top, bottom), (left, right))
    dilation: tuple
    out_hw: tuple
    has_bias: bool


def depthwise_conv2d_forward(x, w, b=None, stride=(1, 1), padding=((0, 0), (0, 0)),
                             dilation=(1, 1)):
    """Depthwise convolution.

    Args:
        x: (N, C, H, W) in any memory order.
        w: (C * M, 1, kh, kw) kernels; b: (C * M,) or None.
        stride, dilation: pairs or ints; padding: explicit amounts or a mode name.
    Returns:
        ``(y, cache)``: y (N, C * M, oh, ow), a view of a channels-last array.
    """
    n, c = x.shape[:2]
    f, one, kh, kw = w.shape
    if one != 1 or f % c:
        raise ValueError(f"depthwise_conv2d: kernel {tuple(w.shape)} does not fit {c} input "
                         "channels: expected (C * depth_multiplier, 1, kh, kw)")
    stride, dilation = pair(stride, "stride"), pair(dilation, "dilation")
    span = effective_kernel((kh, kw), dilation)
    out_hw, padding = window_output_shape(x.shape[2:], span, stride, check_padding(padding))
    if min(out_hw) < 1:
        raise ValueError(f"depthwise_conv2d: output would be empty ({out_hw}) for input "
                         f"{tuple(x.shape)} and kernel {(kh, kw)}")
    x_padded = pad_spatial(channels_last(x), padding, axes=_SPATIAL)
    taps = w.reshape(c, f // c, kh, kw)
    y = xp.zeros((n, *out_hw, c, f // c), dtype=xp.result_type(x, w))
    for i, j, rows, cols in window_slices((kh, kw), stride, out_hw, dilation):
        y += x_padded[:, rows, cols, :, None] * taps[:, :, i, j]
    y = y.reshape(n, *out_hw, f)
    if b is not None:
        y += b
    cache = DepthwiseCache(x_padded, w, stride, padding, dilation, out_hw, b is not None)
    return y.transpose(0, 3, 1, 2), cache


def depthwise_conv2d_backward(dy, cache, need_dx=True):
    """Gradients summed over the batch: ``(dx, dw, db)``.

    dy (N, C * M, oh, ow) in any memory order -> dx (N, C, H, W) (a view of a channels-last
    array, None unless ``need_dx``), dw (C * M, 1, kh, kw), db (C * M,) or None.
    """
    x_padded, w = cache.x_padded, cache.w
    n, c = x_padded.shape[0], x_padded.shape[3]
    f, _, kh, kw = w.shape
    if tuple(dy.shape) != (n, f, *cache.out_hw):
        raise ValueError(f"depthwise_conv2d_backward: dy has shape {tuple(dy.shape)}, "
                         f"expected {(n, f, *cache.out_hw)}")
    dy_taps = channels_last(dy).reshape(n, *cache.out_hw, c, f // c)
    taps = w.reshape(c, f // c, kh, kw)
    dw = xp.empty((c, f // c, kh, kw), dtype=xp.result_type(dy, x_padded))
    dx_padded = xp.zeros(x_padded.shape, dtype=xp.result_type(dy, w)) if need_dx else None
    for i, j, rows, cols in window_slices((kh, kw), cache.stride, cache.out_hw, cache.dilation):
        dw[:, :, i, j] = xp.einsum("npqc,npqcm->cm", x_padded[:, rows, cols], dy_taps)
        if need_dx:
            dx_padded[:, rows, cols] += xp.einsum("npqcm,cm->npqc", dy_taps, taps[:, :, i, j])
    db = dy_taps.reshape(-1, f).sum(axis=0) if cache.has_bias else None
    dx = None
    if need_dx:
        dx = crop_spatial(dx_padded, cache.padding, axes=_SPATIAL).transpose(0, 3, 1, 2)
    return dx, dw.reshape(f, 1, kh, kw), db
