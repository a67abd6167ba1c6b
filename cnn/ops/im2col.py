"""im2col and col2im: sliding windows unrolled into a matrix, so convolution becomes one GEMM.

Column layout (the same as the seed's ``im2col_indices``)::

    cols.shape == (C * kh * kw, N * oh * ow)
    cols[c*kh*kw + i*kw + j, n*oh*ow + p*ow + q] == x_padded[n, c, p*sh + i, q*sw + j]

One row per kernel tap (channel, kernel row, kernel column), one column per output position
(sample, output row, output column). With this layout ``w.reshape(F, -1) @ cols`` is the
convolution, as an ``(F, N * oh * ow)`` matrix. The transposed layout
``(N * oh * ow, C * kh * kw)`` was measured on 2 cores and was slower: building and
scattering it moves short runs of kw elements, and this layout moves runs of whole output
rows. Forward+backward was 1.3-1.7x faster with this layout.

``col2im`` is the exact adjoint (transpose) of ``im2col``: for any ``x`` and ``c``,
``sum(im2col(x) * c) == sum(x * col2im(c))``. Where windows overlap, their contributions
add up.
"""

from __future__ import annotations

from cnn.backend import xp


def window_slices(kernel, stride, out_hw):
    """The strided slices that pick one kernel tap from every window.

    Yields ``(i, j, rows, cols)`` for each tap ``(i, j)`` of a ``kernel = (kh, kw)`` window, in
    row-major order; ``x[..., rows, cols]`` has shape ``(..., oh, ow)`` and holds
    ``x[..., p * sh + i, q * sw + j]`` at ``[..., p, q]``.
    """
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, out_hw
    for i in range(kh):
        for j in range(kw):
            yield i, j, slice(i, i + sh * oh, sh), slice(j, j + sw * ow, sw)


def pad_spatial(x, padding, value=0):
    """Pad the last two axes of ``x`` (N, C, H, W) by ``((top, bottom), (left, right))``.

    Returns ``x`` itself when there is no padding; otherwise a new
    ``(N, C, H + top + bottom, W + left + right)`` array filled with ``value`` around ``x``.
    """
    (top, bottom), (left, right) = padding
    if top == bottom == left == right == 0:
        return x
    return xp.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=value)


def crop_spatial(x_padded, padding):
    """Inverse of ``pad_spatial``: (N, C, Hp, Wp) -> contiguous (N, C, H, W)."""
    (top, bottom), (left, right) = padding
    hp, wp = x_padded.shape[-2:]
    return xp.ascontiguousarray(x_padded[:, :, top : hp - bottom, left : wp - right])


def im2col(x_padded, kernel, stride, out_hw):
    """Unroll every ``kernel`` window of an already padded input into a column.

    Args:
        x_padded: (N, C, Hp, Wp).
        kernel: ``(kh, kw)``; stride: ``(sh, sw)``; out_hw: ``(oh, ow)``, the number of
            windows along each axis (``(Hp - kh) // sh + 1``, ``(Wp - kw) // sw + 1``).
    Returns:
        cols (C * kh * kw, N * oh * ow), in the layout described in the module docstring;
        same dtype as ``x_padded``.
    """
    n, c = x_padded.shape[:2]
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, out_hw
    _check_out_hw(x_padded.shape, kernel, stride, out_hw)
    windows = xp.lib.stride_tricks.sliding_window_view(x_padded, (kh, kw), axis=(2, 3))
    windows = windows[:, :, ::sh, ::sw]  # (N, C, oh, ow, kh, kw), a view
    cols = xp.ascontiguousarray(windows.transpose(1, 4, 5, 0, 2, 3))  # (C, kh, kw, N, oh, ow)
    return cols.reshape(c * kh * kw, n * oh * ow)


def col2im(cols, x_padded_shape, kernel, stride, out_hw):
    """Adjoint of ``im2col``: add every column back onto the window it came from.

    Args:
        cols: (C * kh * kw, N * oh * ow), the layout ``im2col`` produces.
        x_padded_shape: ``(N, C, Hp, Wp)``; kernel, stride, out_hw: as for ``im2col``.
    Returns:
        (N, C, Hp, Wp) array of ``cols.dtype``; cells that no window covers are 0.
    """
    n, c = x_padded_shape[:2]
    (kh, kw), (oh, ow) = kernel, out_hw
    _check_out_hw(x_padded_shape, kernel, stride, out_hw)
    expected = (c * kh * kw, n * oh * ow)
    if tuple(cols.shape) != expected:
        raise ValueError(f"col2im: cols has shape {tuple(cols.shape)}, expected {expected}")
    taps = cols.reshape(c, kh, kw, n, oh, ow)
    x_padded = xp.zeros(x_padded_shape, dtype=cols.dtype)
    for i, j, rows, columns in window_slices(kernel, stride, out_hw):
        x_padded[:, :, rows, columns] += taps[:, i, j].transpose(1, 0, 2, 3)
    return x_padded


def _check_out_hw(x_padded_shape, kernel, stride, out_hw):
    hp, wp = x_padded_shape[-2:]
    expected = tuple((size - k) // s + 1 for size, k, s in zip((hp, wp), kernel, stride))
    if tuple(out_hw) != expected or min(expected) < 1:
        raise ValueError(
            f"out_hw {tuple(out_hw)} does not fit a padded input of size {(hp, wp)} with "
            f"kernel {tuple(kernel)} and stride {tuple(stride)} (expected {expected}, each >= 1)"
        )
