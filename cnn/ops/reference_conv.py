"""Slow, obvious twins of the newer window kernels (dilated, grouped and transposed
convolution, depthwise convolution, upsampling, resampling under an affine map).

Every function loops in Python over output positions (or input positions, for the transposed
convolution) and does one window at a time for the whole batch; only the zero padding
around the images is shared with the fast code. All arrays are channels first,
(N, C, H, W). Use small inputs only.
"""

from __future__ import annotations

import math

from cnn.backend import xp
from cnn.ops.im2col import crop_spatial, pad_spatial
from cnn.ops.shapes import check_padding, effective_kernel, pair, window_output_shape


def grouped_conv2d_reference(x, w, b, stride, padding, dilation=(1, 1), groups=1):
    """Cross-correlation with dilation and groups.

    x (N, C, H, W); w (F, C // groups, kh, kw), filters ``g * F // groups ...`` reading
    channels ``g * C // groups ...``; b (F,) or None -> (N, F, oh, ow). ``groups = C`` with
    ``F = C * M`` is a depthwise convolution of depth multiplier M (PyTorch's layout).
    """
    (oh, ow), stride, dilation, padding = _geometry(x.shape, w.shape[2:], stride, padding,
                                                    dilation)
    x_padded = pad_spatial(x, padding)
    f, per_group = w.shape[0], w.shape[1]
    filters_per_group = f // groups
    y = xp.zeros((x.shape[0], f, oh, ow), dtype=xp.result_type(x, w))
    for p in range(oh):
        for q in range(ow):
            window = _window(x_padded, p, q, w.shape[2:], stride, dilation)
            for g in range(groups):
                channels = slice(g * per_group, (g + 1) * per_group)
                filters = slice(g * filters_per_group, (g + 1) * filters_per_group)
                y[:, filters, p, q] = xp.tensordot(window[:, channels], w[filters],
                                                   axes=([1, 2, 3], [1, 2, 3]))
    if b is not None:
        y += b[None, :, None, None]
    return y


def grouped_conv2d_backward_reference(dy, x, w, stride, padding, dilation=(1, 1), groups=1,
                                      has_bias=True):
    """Gradients of ``grouped_conv2d_reference`` summed over the batch: (dx, dw, db)."""
    (oh, ow), stride, dilation, padding = _geometry(x.shape, w.shape[2:], stride, padding,
                                                    dilation)
    x_padded = pad_spatial(x, padding)
    dx_padded = xp.zeros(x_padded.shape, dtype=xp.result_type(dy, w))
    dw = xp.zeros(w.shape, dtype=xp.result_type(dy, x))
    per_group, filters_per_group = w.shape[1], w.shape[0] // groups
    kh, kw = w.shape[2:]
    for p in range(oh):
        for q in range(ow):
            rows = _taps(p, stride[0], kh, dilation[0])
            cols = _taps(q, stride[1], kw, dilation[1])
            for g in range(groups):
                channels = slice(g * per_group, (g + 1) * per_group)
                filters = slice(g * filters_per_group, (g + 1) * filters_per_group)
                grad = dy[:, filters, p, q]  # (N, F / groups)
                dx_padded[:, channels, rows, cols] += xp.tensordot(grad, w[filters],
                                                                   axes=([1], [0]))
                dw[filters] += xp.tensordot(grad, x_padded[:, channels, rows, cols],
                                            axes=([0], [0]))
    db = dy.sum(axis=(0, 2, 3)) if has_bias else None
    return crop_spatial(dx_padded, padding), dw, db


def conv2d_transpose_reference(x, w, b, stride, crop, out_hw, dilation=(1, 1)):
    """Transposed convolution by scattering: every input pixel adds ``x * kernel`` onto the
    output window it would have been computed from.

    x (N, C, H, W); w (C, F, kh, kw) (PyTorch's ConvTranspose2d layout); the full result,
    ``(H - 1) * sh + (kh - 1) * dh + 1`` rows (likewise columns), is cut to ``out_hw``
    starting at row and column ``crop = (top, left)``; positions past its end are 0 (+ b).
    Returns (N, F, *out_hw).
    """
    stride, dilation = pair(stride, "stride"), pair(dilation, "dilation")
    n, _, h, width = x.shape
    kh, kw = w.shape[2:]
    span = effective_kernel((kh, kw), dilation)
    full_h = max((h - 1) * stride[0] + span[0], crop[0] + out_hw[0])
    full_w = max((width - 1) * stride[1] + span[1], crop[1] + out_hw[1])
    full = xp.zeros((n, w.shape[1], full_h, full_w), dtype=xp.result_type(x, w))
    for p in range(h):
        for q in range(width):
            rows = _taps(p, stride[0], kh, dilation[0])
            cols = _taps(q, stride[1], kw, dilation[1])
            full[:, :, rows, cols] += xp.tensordot(x[:, :, p, q], w, axes=([1], [0]))
    y = full[:, :, crop[0]:crop[0] + out_hw[0], crop[1]:crop[1] + out_hw[1]]
    if b is not None:
        y = y + b[None, :, None, None]
    return y


def upsample_reference(x, size, interpolation):
    """x (N, C, H, W) -> (N, C, H * sh, W * sw), one output pixel at a time.

    "bilinear" samples at ``(o + 0.5) / s - 0.5`` (clamped to the image) from the two
    nearest rows and the two nearest columns.
    """
    sh, sw = pair(size, "size")
    n, c, h, w = x.shape
    y = xp.zeros((n, c, h * sh, w * sw), dtype=x.dtype)
    for p in range(h * sh):
        for q in range(w * sw):
            if interpolation == "nearest":
                y[:, :, p, q] = x[:, :, p // sh, q // sw]
                continue
            top, row_weight = _linear_source(p, sh, h)
            left, col_weight = _linear_source(q, sw, w)
            bottom, right = min(top + 1, h - 1), min(left + 1, w - 1)
            y[:, :, p, q] = (
                (1 - row_weight) * (1 - col_weight) * x[:, :, top, left]
                + (1 - row_weight) * col_weight * x[:, :, top, right]
                + row_weight * (1 - col_weight) * x[:, :, bottom, left]
                + row_weight * col_weight * x[:, :, bottom, right]
            )
    return y


def affine_sample_reference(x, matrices, interpolation, fill_mode, fill_value=0.0):
    """Resample each image of x (N, C, H, W) under its own affine map, pixel by pixel.

    ``matrices[n]`` (2, 3) maps an output pixel ``(row, col, 1)`` to the input position it
    reads. Bilinear: the four pixels around that position; nearest: the closest (halves
    round to even, as NumPy rounds). A position outside the image reads ``fill_value``
    ("constant") or is folded back: "reflect" (d c b a | a b c d | d c b a), "wrap"
    (a b c d | a b c d), "nearest" (a a a a | a b c d | d d d d).
    """
    n, c, h, w = x.shape
    y = xp.zeros(x.shape, dtype=x.dtype)
    for sample in range(n):
        for p in range(h):
            for q in range(w):
                row = matrices[sample][0][0] * p + matrices[sample][0][1] * q + matrices[sample][0][2]
                col = matrices[sample][1][0] * p + matrices[sample][1][1] * q + matrices[sample][1][2]
                if interpolation == "nearest":
                    taps = [(round(row), round(col), 1.0)]
                else:
                    top, left = math.floor(row), math.floor(col)
                    dr, dc = row - top, col - left
                    taps = [(top, left, (1 - dr) * (1 - dc)), (top, left + 1, (1 - dr) * dc),
                            (top + 1, left, dr * (1 - dc)), (top + 1, left + 1, dr * dc)]
                value = xp.zeros(c, dtype=xp.float64)
                for r, s, weight in taps:
                    r, s = _fold(r, h, fill_mode), _fold(s, w, fill_mode)
                    pixel = fill_value if r is None or s is None else x[sample, :, r, s]
                    value = value + weight * pixel
                y[sample, :, p, q] = value
    return y


def _fold(index, size, fill_mode):
    """An integer pixel index mapped into [0, size) by ``fill_mode``; None: the fill value."""
    if 0 <= index < size:
        return index
    if fill_mode == "constant":
        return None
    if fill_mode == "nearest":
        return min(max(index, 0), size - 1)
    if fill_mode == "wrap":
        return index % size
    period = index % (2 * size)  # reflect
    return period if period < size else 2 * size - 1 - period


def _linear_source(position, factor, size):
    source = min(max((position + 0.5) / factor - 0.5, 0.0), size - 1)
    below = math.floor(source)
    return below, source - below


def _geometry(x_shape, kernel, stride, padding, dilation):
    stride, dilation = pair(stride, "stride"), pair(dilation, "dilation")
    span = effective_kernel(kernel, dilation)
    out_hw, padding = window_output_shape(x_shape[2:], span, stride, check_padding(padding))
    if min(out_hw) < 1:
        raise ValueError(f"empty output {out_hw} for input {tuple(x_shape)} and window {kernel}")
    return out_hw, stride, dilation, padding


def _taps(position, stride, size, dilation):
    start = position * stride
    return slice(start, start + (size - 1) * dilation + 1, dilation)


def _window(x_padded, p, q, kernel, stride, dilation):
    return x_padded[:, :, _taps(p, stride[0], kernel[0], dilation[0]),
                    _taps(q, stride[1], kernel[1], dilation[1])]
