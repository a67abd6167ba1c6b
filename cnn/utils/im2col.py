"""The seed's im2col helpers (``cnn/utils/im2col.py``), same names and signatures, fixed.

Differences from the seed:

* ``padding`` is an int amount of zero padding added on every side, which is how the seed's
  code uses it. Its docstrings called it a mode ("0: valid, 1: same, 2: full"). That is wrong;
  the two only coincide for 3x3 kernels at stride 1.
* ``col2im_indices`` is the exact adjoint of ``im2col_indices``. The seed reshaped the columns
  as ``(C*fh*fw, oh*ow, N)``, while ``im2col_indices`` orders them ``(N, oh*ow)``, so with
  N > 1 it sent gradients to the wrong samples and positions.
* Pooling with a non-square kernel uses the stride ``(kH, kW)``. The seed used ``kH`` along
  both axes.
* ``stride`` may also be a pair ``(sh, sw)``.

Layout: ``im2col_indices`` returns ``cols`` of shape ``(C*fh*fw, N*oh*ow)``. Row
``c*fh*fw + r*fw + s`` is kernel tap ``(c, r, s)``; column ``n*oh*ow + p*ow + q`` is output
position ``(p, q)`` of sample ``n``. This is the layout of ``cnn.ops.im2col.im2col``, which
the framework's layers use. These helpers gather with index arrays, the seed's way.
"""

from __future__ import annotations

from cnn.backend import xp
from cnn.ops.im2col import col2im
from cnn.ops.shapes import pair


def get_im2col_indices(x_shape, field_height, field_width, padding=0, stride=1):
    """Index arrays that gather every window of the padded input into a column.

    Args:
        x_shape: ``(N, C, H, W)`` of the unpadded input.
        field_height, field_width: window size.
        padding: int, zeros added on every side (not a mode; see the module docstring).
        stride: int or ``(sh, sw)``.
    Returns:
        ``(k, i, j)``: k (C*fh*fw, 1) channel, i (C*fh*fw, oh*ow) row and j (C*fh*fw, oh*ow)
        column indices into the padded input, so that ``x_padded[:, k, i, j]`` has shape
        (N, C*fh*fw, oh*ow).
    """
    _, c, h, w = x_shape
    sh, sw = pair(stride, "stride")
    out_h, out_w = _output_hw(x_shape, field_height, field_width, padding, (sh, sw))
    # Offsets of each tap within its window, rows ordered (c, r, s).
    i0 = xp.tile(xp.repeat(xp.arange(field_height), field_width), c)
    j0 = xp.tile(xp.arange(field_width), field_height * c)
    # Top-left corner of each window, ordered (p, q).
    i1 = sh * xp.repeat(xp.arange(out_h), out_w)
    j1 = sw * xp.tile(xp.arange(out_w), out_h)
    i = i0.reshape(-1, 1) + i1.reshape(1, -1)
    j = j0.reshape(-1, 1) + j1.reshape(1, -1)
    k = xp.repeat(xp.arange(c), field_height * field_width).reshape(-1, 1)
    return k, i, j


def im2col_indices(x, field_height, field_width, padding=0, stride=1):
    """im2col by fancy indexing: x (N, C, H, W) -> cols (C*fh*fw, N*oh*ow).

    ``kernel.reshape(F, -1) @ cols`` is the convolution, as an (F, N*oh*ow) matrix.
    """
    k, i, j = get_im2col_indices(x.shape, field_height, field_width, padding, stride)
    p = padding
    x_padded = xp.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    cols = x_padded[:, k, i, j]  # (N, C*fh*fw, oh*ow)
    return cols.transpose(1, 0, 2).reshape(field_height * field_width * x.shape[1], -1)


def col2im_indices(cols, x_shape, field_height=3, field_width=3, padding=0, stride=1):
    """Adjoint of ``im2col_indices``: cols (C*fh*fw, N*oh*ow) -> (N, C, H, W).

    Overlapping windows add up. The padding is cropped off, so the result has the unpadded
    ``x_shape``. Unlike the seed's version, this is the exact transpose of
    ``im2col_indices``: ``sum(im2col_indices(x) * c) == sum(x * col2im_indices(c))``.
    """
    n, ch, h, w = x_shape
    p = padding
    stride = pair(stride, "stride")
    out_hw = _output_hw(x_shape, field_height, field_width, padding, stride)
    padded_shape = (n, ch, h + 2 * p, w + 2 * p)
    x_padded = col2im(cols, padded_shape, (field_height, field_width), stride, out_hw)
    return x_padded[:, :, p : p + h, p : p + w]


def conv_im2col(x, kernel, padding=0, stride=1):
    """Cross-correlation by im2col: x (N, C, H, W), kernel (F, C, kH, kW) -> (N, F, oh, ow).

    ``padding`` is an int amount of zero padding on every side.
    """
    n = x.shape[0]
    f, _, kh, kw = kernel.shape
    out_h, out_w = _output_hw(x.shape, kh, kw, padding, pair(stride, "stride"))
    x_col = im2col_indices(x, kh, kw, padding, stride)
    z = kernel.reshape(f, -1) @ x_col
    return z.reshape(f, n, out_h, out_w).transpose(1, 0, 2, 3)


def average_pool_im2col(x, kernel_shape):
    """Average pooling, stride = kernel: x (N, C, H, W) -> (N, C, H // kH, W // kW)."""
    x_col, out_shape = _pool_columns(x, kernel_shape)
    return _to_nchw(x_col.mean(axis=1), out_shape)


def max_pool_im2col(x, kernel_shape):
    """Max pooling, stride = kernel: x (N, C, H, W) -> ``(z, max_id)``, both (N, C, oh, ow).

    ``max_id`` is the row-major index ``r * kW + s`` of the first maximum within its window.
    """
    x_col, out_shape = _pool_columns(x, kernel_shape)
    max_id = x_col.argmax(axis=1)
    z = xp.take_along_axis(x_col, max_id[:, None, :], axis=1)[:, 0, :]
    return _to_nchw(z, out_shape), _to_nchw(max_id, out_shape)


def pool_im2col(x, kernel_shape, mode=0):
    """Pooling by im2col: mode 0 average (returns z), mode 1 max (returns ``(z, max_id)``)."""
    if mode == 0:
        return average_pool_im2col(x, kernel_shape)
    return max_pool_im2col(x, kernel_shape)


def _pool_columns(x, kernel_shape):
    """Windows per channel: (C, kH*kW, N*oh*ow), and the output shape (N, C, oh, ow)."""
    n, c = x.shape[:2]
    kh, kw = kernel_shape
    out_h, out_w = _output_hw(x.shape, kh, kw, 0, (kh, kw))
    x_col = im2col_indices(x, kh, kw, 0, (kh, kw)).reshape(c, kh * kw, -1)
    return x_col, (n, c, out_h, out_w)


def _to_nchw(per_channel, out_shape):
    n, c, out_h, out_w = out_shape
    return per_channel.reshape(c, n, out_h, out_w).transpose(1, 0, 2, 3)


def _output_hw(x_shape, field_height, field_width, padding, stride):
    if isinstance(padding, str) or int(padding) != padding or padding < 0:
        raise ValueError(
            f"padding must be an int amount of zeros on every side, got {padding!r} "
            "(it is not a mode: 1 means one row and column of zeros, not 'same')"
        )
    h, w = x_shape[2:]
    out_h = (h + 2 * padding - field_height) // stride[0] + 1
    out_w = (w + 2 * padding - field_width) // stride[1] + 1
    if out_h < 1 or out_w < 1:
        raise ValueError(
            f"window {(field_height, field_width)} with padding {padding} and stride {stride} "
            f"does not fit the input {tuple(x_shape)}"
        )
    return out_h, out_w
