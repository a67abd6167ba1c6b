"""im2col and col2im: sliding windows unrolled into a matrix, so convolution becomes one GEMM.

Two layouts, both exact adjoint pairs (for any ``x`` and ``c``,
``sum(im2col(x) * c) == sum(x * col2im(c))``; where windows overlap, contributions add up).

Taps as rows (``im2col`` / ``col2im``, the layout of the seed's ``im2col_indices``), from an
(N, C, Hp, Wp) input::

    cols.shape == (C * kh * kw, N * oh * ow)
    cols[c*kh*kw + i*kw + j, n*oh*ow + p*ow + q] == x_padded[n, c, p*sh + i, q*sw + j]

One row per kernel tap (channel, kernel row, kernel column), one column per output position
(sample, output row, output column); ``w.reshape(F, -1) @ cols`` is the convolution. Building
it copies runs of whole output rows (``ow`` elements), so it is the fast layout when C = 1.

Channels last (``im2col_channels_last`` / ``col2im_channels_last``), from an (N, Hp, Wp, C)
input::

    cols.shape == (N * oh * ow, kh * kw * C)
    cols[n*oh*ow + p*ow + q, i*kw*C + j*C + c] == x_padded[n, p*sh + i, q*sw + j, c]

One row per output position, taps ordered (kernel row, kernel column, channel). Building it
copies runs of ``kw * C`` elements at stride 1 (``C`` otherwise), so it is the fast layout
when C > 1; with C = 1 the runs shrink to ``kw`` elements and the first layout wins (2x for
the seed's 9x9 kernel on 28x28 images). ``cnn.ops.conv`` picks between them.

``col2im_channels_last`` takes its columns tap-major, ``(kh * kw, N * oh * ow, C)`` (the
row layout with the tap axis moved first), the order in which the convolution's input
gradient comes out of its GEMM.
"""

from __future__ import annotations

from cnn.backend import xp
from cnn.ops.shapes import effective_kernel


def window_slices(kernel, stride, out_hw, dilation=(1, 1)):
    """The strided slices that pick one kernel tap from every window.

    Yields ``(i, j, rows, cols)`` for each tap ``(i, j)`` of a ``kernel = (kh, kw)`` window, in
    row-major order; ``x[..., rows, cols]`` has shape ``(..., oh, ow)`` and holds
    ``x[..., p * sh + i * dh, q * sw + j * dw]`` at ``[..., p, q]`` (``dilation = (dh, dw)``).
    """
    (kh, kw), (sh, sw), (oh, ow), (dh, dw) = kernel, stride, out_hw, dilation
    for i in range(kh):
        for j in range(kw):
            top, left = i * dh, j * dw
            yield i, j, slice(top, top + sh * oh, sh), slice(left, left + sw * ow, sw)


def pad_spatial(x, padding, value=0, axes=(2, 3)):
    """Pad the two spatial ``axes`` of ``x`` by ``((top, bottom), (left, right))``.

    ``axes`` is (2, 3) for (N, C, H, W) arrays and (1, 2) for channels-last (N, H, W, C) ones.
    Returns ``x`` itself when there is no padding; otherwise a new array, ``value`` around
    ``x``.
    """
    (top, bottom), (left, right) = padding
    if top == bottom == left == right == 0:
        return x
    widths = [(0, 0)] * x.ndim
    widths[axes[0]], widths[axes[1]] = (top, bottom), (left, right)
    return xp.pad(x, widths, constant_values=value)


def crop_spatial(x_padded, padding, axes=(2, 3)):
    """Inverse of ``pad_spatial``: the unpadded part of ``x_padded``, a contiguous array."""
    (top, bottom), (left, right) = padding
    index = [slice(None)] * x_padded.ndim
    index[axes[0]] = slice(top, x_padded.shape[axes[0]] - bottom)
    index[axes[1]] = slice(left, x_padded.shape[axes[1]] - right)
    return xp.ascontiguousarray(x_padded[tuple(index)])


def channels_last(x):
    """(N, C, H, W) -> (N, H, W, C), C-contiguous.

    No copy when ``x`` is already stored channels last, as the outputs of ``cnn.ops.conv``
    and ``cnn.ops.pooling`` are (they are (N, C, H, W) views of (N, H, W, C) arrays).
    """
    return xp.ascontiguousarray(x.transpose(0, 2, 3, 1))


def im2col(x_padded, kernel, stride, out_hw, out=None):
    """Unroll every ``kernel`` window of an already padded input into a column.

    Args:
        x_padded: (N, C, Hp, Wp).
        kernel: ``(kh, kw)``; stride: ``(sh, sw)``; out_hw: ``(oh, ow)``, the number of
            windows along each axis (``(Hp - kh) // sh + 1``, ``(Wp - kw) // sw + 1``).
        out: optional C-contiguous (C * kh * kw, N * oh * ow) array to fill and return.
    Returns:
        cols (C * kh * kw, N * oh * ow), in the first layout of the module docstring; same
        dtype as ``x_padded``.
    """
    n, c = x_padded.shape[:2]
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, out_hw
    _check_out_hw(x_padded.shape, kernel, stride, out_hw)
    windows = xp.lib.stride_tricks.sliding_window_view(x_padded, (kh, kw), axis=(2, 3))
    windows = windows[:, :, ::sh, ::sw]  # (N, C, oh, ow, kh, kw), a view
    taps_first = windows.transpose(1, 4, 5, 0, 2, 3)  # (C, kh, kw, N, oh, ow)
    return _copy_into(taps_first, out, (c * kh * kw, n * oh * ow))


def col2im(cols, x_padded_shape, kernel, stride, out_hw, out=None):
    """Adjoint of ``im2col``: add every column back onto the window it came from.

    Args:
        cols: (C * kh * kw, N * oh * ow), the layout ``im2col`` produces.
        x_padded_shape: ``(N, C, Hp, Wp)``; kernel, stride, out_hw: as for ``im2col``.
        out: optional zero-filled (N, C, Hp, Wp) array (or view) to add into and return.
    Returns:
        (N, C, Hp, Wp) array of ``cols.dtype``; cells that no window covers are 0.
    """
    n, c = x_padded_shape[:2]
    (kh, kw), (oh, ow) = kernel, out_hw
    _check_out_hw(x_padded_shape, kernel, stride, out_hw)
    _check_cols("col2im", cols, (c * kh * kw, n * oh * ow))
    taps = cols.reshape(c, kh, kw, n, oh, ow)
    x_padded = _zeros_or(out, x_padded_shape, cols.dtype)
    for i, j, rows, columns in window_slices(kernel, stride, out_hw):
        x_padded[:, :, rows, columns] += taps[:, i, j].transpose(1, 0, 2, 3)
    return x_padded


def im2col_channels_last(x_padded, kernel, stride, out_hw, out=None):
    """Unroll every ``kernel`` window of an already padded channels-last input into a row.

    Args:
        x_padded: (N, Hp, Wp, C).
        kernel, stride, out_hw: as for ``im2col``.
        out: optional C-contiguous (N * oh * ow, kh * kw * C) array to fill and return.
    Returns:
        cols (N * oh * ow, kh * kw * C), in the channels-last layout of the module docstring.
    """
    _check_out_hw(x_padded.shape[1:3], kernel, stride, out_hw)
    return rows_from_windows(channels_last_windows(x_padded, kernel, stride), out)


def channels_last_windows(x_padded, kernel, stride, dilation=(1, 1)):
    """Every ``kernel`` window of a padded (N, Hp, Wp, C) input: an (N, oh, ow, C, kh, kw) view.

    A dilated window takes every ``dilation``-th cell of a span of ``effective_kernel`` cells.
    Taking the view costs tens of microseconds; a caller that builds columns chunk by chunk
    takes it once and slices it (``rows_from_windows(windows[a:b])``).
    """
    span = effective_kernel(kernel, dilation)
    windows = xp.lib.stride_tricks.sliding_window_view(x_padded, span, axis=(1, 2))
    windows = windows[:, :: stride[0], :: stride[1]]
    if tuple(dilation) != (1, 1):
        windows = windows[..., :: dilation[0], :: dilation[1]]
    return windows


def rows_from_windows(windows, out=None):
    """(N, oh, ow, C, kh, kw) windows -> the (N * oh * ow, kh * kw * C) channels-last columns."""
    n, oh, ow, c, kh, kw = windows.shape
    return _copy_into(windows.transpose(0, 1, 2, 4, 5, 3), out, (n * oh * ow, kh * kw * c))


def taps_from_windows(windows, out=None):
    """(N, oh, ow, C, kh, kw) windows -> the (C * kh * kw, N * oh * ow) columns of ``im2col``."""
    n, oh, ow, c, kh, kw = windows.shape
    return _copy_into(windows.transpose(3, 4, 5, 0, 1, 2), out, (c * kh * kw, n * oh * ow))


def col2im_channels_last(taps, x_padded_shape, kernel, stride, out_hw, out=None,
                         dilation=(1, 1)):
    """Adjoint of ``im2col_channels_last``, from tap-major columns.

    ``taps[i*kw + j]`` is the (N * oh * ow, C) block of the columns that belongs to tap
    ``(i, j)``: ``taps == cols.reshape(N * oh * ow, kh * kw, C).transpose(1, 0, 2)``. A
    convolution's input gradient comes out of one batched GEMM in this order, and adding
    contiguous blocks back is 2x faster here than reading taps out of the row layout.

    Args:
        taps: (kh * kw, N * oh * ow, C).
        x_padded_shape: ``(N, Hp, Wp, C)``; kernel, stride, out_hw: as for ``im2col``.
        out: optional zero-filled (N, Hp, Wp, C) array (or view) to add into and return.
        dilation: ``(dh, dw)``, as for ``channels_last_windows``.
    Returns:
        (N, Hp, Wp, C) array of ``taps.dtype``; cells that no window covers are 0.
    """
    n, c = x_padded_shape[0], x_padded_shape[3]
    (kh, kw), (oh, ow) = kernel, out_hw
    _check_out_hw(x_padded_shape[1:3], effective_kernel(kernel, dilation), stride, out_hw)
    _check_cols("col2im_channels_last", taps, (kh * kw, n * oh * ow, c))
    x_padded = _zeros_or(out, x_padded_shape, taps.dtype)
    for i, j, rows, columns in window_slices(kernel, stride, out_hw, dilation):
        x_padded[:, rows, columns] += taps[i * kw + j].reshape(n, oh, ow, c)
    return x_padded


def _copy_into(view, out, shape):
    """Copy a strided ``view`` into ``out`` (or a new array) and return it as ``shape``."""
    if out is None:
        return xp.ascontiguousarray(view).reshape(shape)
    if tuple(out.shape) != tuple(shape) or out.dtype != view.dtype or not out.flags.c_contiguous:
        raise ValueError(
            f"out must be a C-contiguous {view.dtype} array of shape {tuple(shape)}, got "
            f"{out.dtype} {tuple(out.shape)}"
        )
    xp.copyto(out.reshape(view.shape), view)
    return out


def _zeros_or(out, shape, dtype):
    if out is None:
        return xp.zeros(shape, dtype=dtype)
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"out has shape {tuple(out.shape)}, expected {tuple(shape)}")
    return out


def _check_cols(name, cols, expected):
    if tuple(cols.shape) != expected:
        raise ValueError(f"{name}: cols has shape {tuple(cols.shape)}, expected {expected}")


def _check_out_hw(padded_hw, kernel, stride, out_hw):
    hp, wp = padded_hw[-2:]
    expected = tuple((size - k) // s + 1 for size, k, s in zip((hp, wp), kernel, stride))
    if tuple(out_hw) != expected or min(expected) < 1:
        raise ValueError(
            f"out_hw {tuple(out_hw)} does not fit a padded input of size {(hp, wp)} with "
            f"kernel {tuple(kernel)} and stride {tuple(stride)} (expected {expected}, each >= 1)"
        )
