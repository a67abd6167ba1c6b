"""Slow, obvious twins of the fast kernels, which the tests hold those kernels against.

Each function loops in Python over output positions ``(p, q)`` and handles one window at a
time, for the whole batch at once. No stride tricks, no im2col, no shared helpers beyond the
output-size rules of ``cnn.ops.shapes``. Use small inputs only.
"""

from __future__ import annotations

from cnn.backend import xp
from cnn.ops.shapes import check_padding, pair, window_output_shape


def conv2d_reference(x, w, b, stride, padding):
    """Cross-correlation: x (N, C, H, W), w (F, C, kh, kw), b (F,) or None -> (N, F, oh, ow)."""
    kernel = w.shape[2:]
    (oh, ow), stride, padding = _geometry(x.shape, kernel, stride, padding)
    x_padded = _zero_pad(x, padding)
    y = xp.zeros((x.shape[0], w.shape[0], oh, ow), dtype=xp.result_type(x, w))
    for p in range(oh):
        for q in range(ow):
            window = x_padded[:, :, _span(p, stride[0], kernel[0]), _span(q, stride[1], kernel[1])]
            y[:, :, p, q] = xp.tensordot(window, w, axes=([1, 2, 3], [1, 2, 3]))
    if b is not None:
        y += b[None, :, None, None]
    return y


def conv2d_backward_reference(dy, x, w, stride, padding, has_bias=True):
    """Gradients of ``conv2d_reference`` summed over the batch.

    Args:
        dy (N, F, oh, ow); x (N, C, H, W); w (F, C, kh, kw); stride, padding as for the forward.
    Returns:
        ``(dx, dw, db)``: (N, C, H, W), (F, C, kh, kw), (F,) or None when ``has_bias`` is False.
    """
    kernel = w.shape[2:]
    (oh, ow), stride, padding = _geometry(x.shape, kernel, stride, padding)
    x_padded = _zero_pad(x, padding)
    dx_padded = xp.zeros(x_padded.shape, dtype=xp.result_type(dy, w))
    dw = xp.zeros(w.shape, dtype=xp.result_type(dy, x))
    for p in range(oh):
        for q in range(ow):
            rows, cols = _span(p, stride[0], kernel[0]), _span(q, stride[1], kernel[1])
            g = dy[:, :, p, q]  # (N, F)
            dx_padded[:, :, rows, cols] += xp.tensordot(g, w, axes=([1], [0]))
            dw += xp.tensordot(g, x_padded[:, :, rows, cols], axes=([0], [0]))
    db = dy.sum(axis=(0, 2, 3)) if has_bias else None
    return _crop(dx_padded, padding), dw, db


def pool2d_reference(x, pool_size, stride, padding, mode):
    """Max or average pooling of x (N, C, H, W) -> (N, C, oh, ow); padding never counts."""
    pool_size = pair(pool_size, "pool_size")
    (oh, ow), stride, padding = _geometry(x.shape, pool_size, stride, padding)
    x_padded = _zero_pad(x, padding)
    inside = _zero_pad(xp.ones((1, 1) + tuple(x.shape[2:]), dtype=bool), padding)
    y = xp.zeros(x.shape[:2] + (oh, ow), dtype=x.dtype)
    for p in range(oh):
        for q in range(ow):
            rows, cols = _span(p, stride[0], pool_size[0]), _span(q, stride[1], pool_size[1])
            window, valid = x_padded[:, :, rows, cols], inside[:, :, rows, cols]
            if mode == "max":
                y[:, :, p, q] = xp.where(valid, window, -xp.inf).max(axis=(2, 3))
            else:
                y[:, :, p, q] = (window * valid).sum(axis=(2, 3)) / valid.sum()
    return y


def pool2d_backward_reference(dy, x, pool_size, stride, padding, mode):
    """Gradient of ``pool2d_reference`` with respect to x: dy (N, C, oh, ow) -> (N, C, H, W).

    Max: the first maximal cell of each window in row-major order gets the window's gradient.
    Avg: the gradient is split evenly over the window's unpadded cells.
    """
    pool_size = pair(pool_size, "pool_size")
    (oh, ow), stride, padding = _geometry(x.shape, pool_size, stride, padding)
    n, c = x.shape[:2]
    ph, pw = pool_size
    x_padded = _zero_pad(x, padding)
    inside = _zero_pad(xp.ones((1, 1) + tuple(x.shape[2:]), dtype=bool), padding)
    dx_padded = xp.zeros(x_padded.shape, dtype=dy.dtype)
    for p in range(oh):
        for q in range(ow):
            rows, cols = _span(p, stride[0], ph), _span(q, stride[1], pw)
            window, valid = x_padded[:, :, rows, cols], inside[:, :, rows, cols]
            g = dy[:, :, p, q][:, :, None, None]
            if mode == "max":
                flat = xp.where(valid, window, -xp.inf).reshape(n, c, ph * pw)
                winner = xp.arange(ph * pw) == flat.argmax(axis=2)[:, :, None]
                dx_padded[:, :, rows, cols] += g * winner.reshape(n, c, ph, pw)
            else:
                dx_padded[:, :, rows, cols] += g * valid / valid.sum()
    return _crop(dx_padded, padding)


def im2col_reference(x_padded, kernel, stride, out_hw):
    """Columns in the layout of ``cnn.ops.im2col.im2col``: (C * kh * kw, N * oh * ow).

    Column ``n * oh * ow + p * ow + q`` is the window at output position ``(p, q)`` of sample
    ``n``, flattened in (C, kh, kw) order.
    """
    n, c = x_padded.shape[:2]
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, out_hw
    cols = xp.empty((c * kh * kw, n * oh * ow), dtype=x_padded.dtype)
    for sample in range(n):
        for p in range(oh):
            for q in range(ow):
                window = x_padded[sample, :, p * sh : p * sh + kh, q * sw : q * sw + kw]
                cols[:, (sample * oh + p) * ow + q] = window.reshape(-1)
    return cols


def _geometry(x_shape, kernel, stride, padding):
    stride = pair(stride, "stride")
    out_hw, padding = window_output_shape(x_shape[2:], kernel, stride, check_padding(padding))
    if min(out_hw) < 1:
        raise ValueError(f"empty output {out_hw} for input {tuple(x_shape)} and window {kernel}")
    return out_hw, stride, padding


def _span(position, stride, size):
    return slice(position * stride, position * stride + size)


def _zero_pad(x, padding):
    return xp.pad(x, ((0, 0), (0, 0)) + tuple(padding))


def _crop(x_padded, padding):
    (top, bottom), (left, right) = padding
    h, w = x_padded.shape[2:]
    return x_padded[:, :, top : h - bottom, left : w - right]
