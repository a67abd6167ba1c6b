"""Transposed 2-D convolution (Keras's Conv2DTranspose, PyTorch's ConvTranspose2d).

A transposed convolution is the adjoint of a convolution: where ``conv2d_forward(u, w)``
maps an F-channel image ``u`` to a C-channel one with the kernel w (C, F, kh, kw), the
transposed convolution maps a C-channel ``x`` back to F channels. Every input pixel adds
``x[n, c, p, q] * w[c, :, :, :]`` onto the output window at ``(p * sh, q * sw)``::

    full[n, f, p * sh + i * dh, q * sw + j * dw] += x[n, c, p, q] * w[c, f, i, j]

and the result keeps ``out_hw`` cells of ``full`` from ``crop = (top, left)`` on (zeros
past its end; sizes from ``cnn.ops.shapes.transposed_axis``). So:

* forward: one GEMM per tap and a col2im (the input-gradient half of ``cnn.ops.conv``);
* backward: the input gradient *is* the convolution ``conv2d_forward(dy, w)`` with the
  matching padding, and the kernel gradient that convolution's kernel gradient for the
  output gradient ``x`` (the adjoint's adjoint).
"""

from __future__ import annotations

from typing import NamedTuple

from cnn.backend import xp
from cnn.ops import conv as conv_ops
from cnn.ops.im2col import channels_last, col2im_channels_last, crop_spatial
from cnn.ops.shapes import effective_kernel, pair

_SPATIAL = (1, 2)


class ConvTransposeCache(NamedTuple):
    x: object  # (N, C, H, W), the input
    w: object  # (C, F, kh, kw)
    stride: tuple
    dilation: tuple
    padding: tuple  # the adjoint convolution's ((top, bottom), (left, right)) on the output
    has_bias: bool


def conv2d_transpose_forward(x, w, b, stride, crop, out_hw, dilation=(1, 1)):
    """Transposed convolution.

    Args:
        x: (N, C, H, W) in any memory order; w: (C, F, kh, kw); b: (F,) or None.
        stride, dilation: pairs; crop: ``(top, left)``; out_hw: ``(out_h, out_w)``, each at
            most one stride short of ``full`` or past it (see ``cnn.ops.shapes``).
    Returns:
        ``(y, cache)``: y (N, F, out_h, out_w), a view of a channels-last array.
    """
    if x.ndim != 4 or w.ndim != 4 or x.shape[1] != w.shape[0]:
        raise ValueError(f"conv2d_transpose: input {tuple(x.shape)} and kernel {tuple(w.shape)} "
                         "do not fit: expected (N, C, H, W) and (C, F, kh, kw)")
    stride, dilation = pair(stride, "stride"), pair(dilation, "dilation")
    n, c, h, width = x.shape
    f, kernel = w.shape[1], tuple(w.shape[2:])
    padding = _adjoint_padding((h, width), kernel, stride, dilation, crop, out_hw)
    padded_shape = (n, *(o + before + after for o, (before, after) in zip(out_hw, padding)), f)
    rows = channels_last(x).reshape(-1, c)  # (N * H * W, C)
    taps = xp.matmul(rows, conv_ops.kernel_taps(w))  # (kh * kw, N * H * W, F)
    full = col2im_channels_last(taps, padded_shape, kernel, stride, (h, width),
                                dilation=dilation)
    y = crop_spatial(full, padding, axes=_SPATIAL)
    if b is not None:
        y += b
    cache = ConvTransposeCache(x, w, stride, dilation, padding, b is not None)
    return y.transpose(0, 3, 1, 2), cache


def conv2d_transpose_backward(dy, cache, need_dx=True):
    """Gradients summed over the batch: ``(dx, dw, db)``.

    dy (N, F, out_h, out_w) -> dx (N, C, H, W) (None unless ``need_dx``), dw (C, F, kh, kw),
    db (F,) or None.
    """
    dx, conv_cache = conv_ops.conv2d_forward(dy, cache.w, None, cache.stride, cache.padding,
                                             dilation=cache.dilation)
    _, dw, _ = conv_ops.conv2d_backward(cache.x, conv_cache, need_dx=False)
    db = None
    if cache.has_bias:
        db = channels_last(dy).reshape(-1, dy.shape[1]).sum(axis=0)
    return (dx if need_dx else None), dw, db


def _adjoint_padding(in_hw, kernel, stride, dilation, crop, out_hw):
    """Padding of the output under which a convolution with ``kernel`` gives ``in_hw``."""
    span = effective_kernel(kernel, dilation)
    padding = []
    for n, k, s, before, out in zip(in_hw, span, stride, crop, out_hw):
        padded = max((n - 1) * s + k, before + out)
        if (padded - k) // s + 1 != n:
            raise ValueError(f"conv2d_transpose: output size {out} with crop {before} does not "
                             f"fit input size {n} (kernel span {k}, stride {s})")
        padding.append((before, padded - before - out))
    return tuple(padding)
