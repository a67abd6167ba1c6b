"""2-D convolution (cross-correlation, as in Keras and PyTorch) by im2col and GEMMs.

Forward::

    y[n, f, p, q] = b[f] + sum_{c, i, j} w[f, c, i, j]
                                  * x_padded[n, c, p * sh + i * dh, q * sw + j * dw]

with the dilation ``(dh, dw)`` (1 unless asked). The kernel is not flipped. Backward returns
gradients summed over the batch. The caller's loss divides by N.

How it runs (each choice measured on the 2-core machine, see ``benchmarks/RESULTS.md``):

* Channels last inside. Each sample's output is an (oh * ow, F) matrix, ``cols @ K`` with
  its columns (oh * ow, kh * kw * C) and the kernel as a (kh * kw * C, F) matrix ``K`` (one
  batched ``matmul`` per chunk, which runs the small GEMMs faster here than one GEMM over
  the chunk), i.e. an (N, oh, ow, F) array; the caller gets its (N, F, oh, ow) *view*.
  Pooling, activations and the next convolution work on that memory order directly;
  ``Flatten`` copies it into (C, H, W) order. Backward wants ``dy`` in the same order, which
  is what pooling's backward produces.
* Chunks of samples. The columns of a few samples (about ``CHUNK_BYTES``) are built and
  multiplied while they are still in the CPU cache. Backward needs them again for the kernel
  gradient: the forward pass keeps them when the whole batch's columns take at most
  ``KEEP_COLUMNS_BYTES``; for larger batches backward rebuilds them chunk by chunk, which was
  faster here than reading tens of MB back from main memory.
* Column layout by channel count (``cnn.ops.im2col``): taps-as-rows when C = 1 (copies runs
  of whole output rows), channels-last otherwise (copies runs of ``kw * C``). For C = 1 the
  two kernel orders coincide, so one kernel matrix serves both. The input gradient comes
  from one batched GEMM per chunk as one (S * oh * ow, C) block per tap, added back by
  ``col2im_channels_last``.
* One input channel and a wide kernel: band columns (``band_width``), one row per band of
  adjacent outputs, 3.5x less to copy for the seed network's 9x9 kernel, in training too;
  backward rebuilds the band columns chunk by chunk in the workspace for the kernel
  gradient (the band matrix's gradient, then the B copies of the kernel added up). For the
  seed network at batch 32 band columns with im2col columns rebuilt in backward took
  forward and backward together 0.94x the CPU time of im2col columns kept from the
  forward pass (data in the cache); band columns rebuilt in backward then took the
  backward 0.91x that (one thread, alternating in one process, on the shared 2-core
  machine, so indicative). Each chunk's output gets its bias, and an optional
  ``epilogue`` (an in-place activation), while it is in the cache.
"""

from __future__ import annotations

from typing import NamedTuple

from cnn.backend import xp
from cnn.ops.im2col import (
    channels_last,
    channels_last_windows,
    col2im_channels_last,
    crop_spatial,
    pad_spatial,
    rows_from_windows,
    taps_from_windows,
)
from cnn.ops.pooling import POOL_MODES, cell_share, combine_cells
from cnn.ops.shapes import check_padding, effective_kernel, pair, window_output_shape

CHUNK_BYTES = 1 << 20  # columns built at once (a few samples); 128 KB-1 MB timed alike here
KEEP_COLUMNS_BYTES = 8 << 20  # keep the forward pass's columns up to this size

_SPATIAL = (1, 2)  # the H and W axes of a channels-last array


class ConvCache(NamedTuple):
    """What ``conv2d_backward`` needs from the forward pass."""

    x_padded: object  # the padded input, channels last: (N, Hp, Wp, C)
    columns: list | None  # each chunk's columns, or None when backward rebuilds them
    w: object  # the kernel, (F, C, kh, kw) (a reference, not a copy)
    x_shape: tuple  # (N, C, H, W)
    stride: tuple  # (sh, sw)
    padding: tuple  # ((top, bottom), (left, right))
    out_hw: tuple  # (oh, ow)
    has_bias: bool
    workspace: dict | None  # where the columns are built (see conv2d_forward)
    dilation: tuple = (1, 1)  # (dh, dw)


def conv2d_forward(x, w, b=None, stride=(1, 1), padding=((0, 0), (0, 0)), workspace=None,
                   keep_columns=True, dilation=(1, 1), epilogue=None):
    """Convolve a batch of images with a bank of kernels.

    Args:
        x: (N, C, H, W) input, in any memory order.
        w: (F, C, kh, kw) kernels.
        b: (F,) bias, or None.
        stride: ``(sh, sw)`` or an int.
        padding: explicit zero padding ``((top, bottom), (left, right))`` or an int. A mode
            name (``"valid"``, ``"same"``, ``"full"``) is resolved with ``cnn.ops.shapes``.
        workspace: optional dict owned by the caller, where the columns are built and kept
            from one call to the next, so that their memory is not mapped afresh every
            step. The next call with the same workspace overwrites them: a cache is then
            only valid until that call.
        keep_columns: False never keeps the columns for backward (inference; a backward
            pass, if one comes, rebuilds them). Band columns (``band_width``) are never
            kept: backward rebuilds them.
        dilation: ``(dh, dw)`` or an int: the kernel's taps ``dh`` rows and ``dw`` columns
            apart (a window spanning ``effective_kernel`` cells).
        epilogue: optional element-wise function applied in place to each chunk's output
            (S, oh, ow, F) after its bias, while it is in the CPU cache (e.g. ReLU's in-place
            form, for a layer that keeps no pre-activation). It must return its argument.
    Returns:
        ``(y, cache)``: y (N, F, oh, ow) in the dtype of ``x`` and ``w``, a view of a
        channels-last (N, oh, ow, F) array; cache a ``ConvCache``.
    Raises:
        ValueError: the input and kernel channels differ, or the output would be empty.
    """
    stride, dilation, out_hw, padding = _geometry(x, w, b, stride, padding, dilation)
    n, (f, _, kh, kw) = x.shape[0], w.shape
    x_padded = pad_spatial(channels_last(x), padding, axes=_SPATIAL)
    band = band_width(x_padded.shape[3], (kh, kw), out_hw[1], dilation)
    keep = (keep_columns and band <= 1
            and _columns_bytes(x_padded, w, out_hw, n) <= KEEP_COLUMNS_BYTES)
    cache = ConvCache(x_padded, [] if keep else None, w, tuple(x.shape), stride, padding,
                      out_hw, b is not None, workspace, dilation)
    y = xp.empty((n, *out_hw, f), dtype=xp.result_type(x, w))
    # Added to (S, oh * ow * F) rows: a broadcast over the short F axis is 4x slower.
    bias_row = None if b is None else xp.tile(b, out_hw[0] * out_hw[1])
    if band > 1:
        _band_forward(x_padded, w, stride, band, y, workspace,
                      lambda chunk: _finish_chunk(chunk, bias_row, epilogue))
        return y.transpose(0, 3, 1, 2), cache
    kernel_matrix = _kernel_matrix(w)
    windows = channels_last_windows(x_padded, (kh, kw), stride, dilation)
    y_samples = y.reshape(n, -1, f)  # (N, oh * ow, F)
    for samples, rows in _chunks(cache):
        columns = _columns(windows[samples], cache, rows.start if keep else 0)
        xp.matmul(columns, kernel_matrix, out=y_samples[samples])
        _finish_chunk(y[samples], bias_row, epilogue)
        if keep:
            cache.columns.append(columns)
    return y.transpose(0, 3, 1, 2), cache


def _geometry(x, w, b, stride, padding, dilation):
    """``(stride, dilation, out_hw, padding)`` of a convolution, its operands checked.

    Raises:
        ValueError: bad operands (``_check_operands``), or the output would be empty.
    """
    _check_operands(x, w, b)
    kernel = tuple(w.shape[2:])
    stride, dilation = pair(stride, "stride"), pair(dilation, "dilation")
    span = effective_kernel(kernel, dilation)
    out_hw, padding = window_output_shape(tuple(x.shape[2:]), span, stride,
                                          check_padding(padding))
    if min(out_hw) < 1:
        raise ValueError(
            f"conv2d: output would be empty ({out_hw}): input {tuple(x.shape)} padded by "
            f"{padding} is smaller than the kernel {kernel} (stride {stride}, dilation "
            f"{dilation})"
        )
    return stride, dilation, out_hw, padding


def _finish_chunk(chunk, bias_row, epilogue):
    """Add the bias to a chunk's (S, oh, ow, F) output, then apply ``epilogue``, in place
    (element by element: the same results as over the whole batch at once)."""
    if bias_row is not None:
        rows = chunk.reshape(chunk.shape[0], -1)
        rows += bias_row
    if epilogue is not None:
        epilogue(chunk)


# -- one input channel, a wide kernel: band columns ---------------------------------------------
BAND_OUTPUTS = 5  # the most output columns one band row computes
BAND_MIN_KERNEL = 7  # narrower kernels keep the im2col columns (see band_width)


def band_width(channels, kernel, out_width, dilation=(1, 1), multiple_of=1) -> int:
    """How many adjacent output columns one row of band columns computes (0 or 1: none).

    For one input channel and an undilated kernel ``kw >= BAND_MIN_KERNEL`` wide, the
    forward pass builds one row per band of B outputs: the ``kh`` input rows' runs of
    ``span = (B - 1) * sw + kw`` cells, multiplied by a (kh * span, B * F) band matrix that
    holds the kernel B times, shifted (``band_matrix``). Against im2col's B rows of kh * kw
    taps that copies 3.5x less (B = 5, 9x9 kernel) for 1.4x the multiply-adds, and ran the
    seed network's convolution 1.4x faster here. B is the largest divisor of ``out_width``
    up to ``BAND_OUTPUTS``, so that the bands tile the output row exactly; with
    ``multiple_of`` (a pooling window's width, ``conv2d_pool_forward``) only multiples of it
    count, and 0 comes back when none divides ``out_width``.
    """
    if channels != 1 or tuple(dilation) != (1, 1) or kernel[1] < BAND_MIN_KERNEL:
        return 0
    return max((b for b in range(multiple_of, BAND_OUTPUTS + 1, multiple_of)
                if out_width % b == 0), default=0)


def band_matrix(w, band, stride_w):
    """(F, 1, kh, kw) kernels -> the (kh * span, band * F) matrix of ``band_width``:
    entry ``(i * span + q * stride_w + j, q * F + f)`` is ``w[f, 0, i, j]``, other entries 0."""
    f, _, kh, kw = w.shape
    span = (band - 1) * stride_w + kw
    matrix = xp.zeros((kh, span, band, f), dtype=w.dtype)
    taps = w[:, 0].transpose(1, 2, 0)  # (kh, kw, F)
    for q in range(band):
        matrix[:, q * stride_w:q * stride_w + kw, q, :] = taps
    return matrix.reshape(kh * span, band * f)


def _band_forward(x_padded, w, stride, band, y, workspace, finish):
    """``y`` (N, oh, ow, F) from a padded one-channel input (N, Hp, Wp, 1), by band columns
    built chunk by chunk (``band_width``); ``finish`` is applied to each chunk's output."""
    n, oh, ow, f = y.shape
    matrix = band_matrix(w, band, stride[1])
    y_bands = y.reshape(n, oh * (ow // band), band * f)
    for samples, columns in _band_columns(x_padded, w.shape[2:], stride, band, (oh, ow),
                                          workspace):
        xp.matmul(columns, matrix, out=y_bands[samples].reshape(-1, band * f))
        finish(y[samples])


# -- inference: a convolution and the pooling after it, chunk by chunk ---------------------------
def pooled_band_width(channels, kernel, dilation, out_hw, pool_size) -> int:
    """The band width ``conv2d_pool_forward`` uses for a convolution of ``channels`` input
    channels, a ``kernel`` ``(kh, kw)`` and an output of ``out_hw``, pooled by tiled windows
    of ``pool_size`` (0: that path does not serve this case): band columns apply
    (``band_width``) with a band a multiple of the pool's width, and the windows tile the
    output exactly."""
    (oh, ow), (ph, pw) = out_hw, pool_size
    if oh % ph or ow % pw:
        return 0
    return band_width(channels, kernel, ow, dilation, multiple_of=pw)


def conv2d_pool_forward(x, w, b=None, stride=(1, 1), padding=((0, 0), (0, 0)),
                        pool_size=(2, 2), mode="avg", epilogue=None, workspace=None):
    """Inference only: ``pool2d(epilogue(conv2d(x, w, b)))`` with tiled pooling windows
    (stride = ``pool_size``, no padding), a chunk of samples at a time, so that the
    convolution's output never leaves the CPU cache.

    Each chunk's band columns (``band_width``, a band a multiple of the pool's width ``pw``)
    go through a band matrix whose columns are ordered (cell column j, window, filter), so
    the GEMM leaves cell ``(i, j)`` of every window of a band as one run of
    ``band // pw * F`` values; the chunk's output then gets its bias and ``epilogue``
    and is pooled straight into the result, cells in row-major window order, as
    ``cnn.ops.pooling.pool2d_forward`` adds them (the values match the layer-by-layer
    pass up to the GEMM's rounding; max pooling keeps no argmax).

    Args:
        x: (N, 1, H, W) input; w: (F, 1, kh, kw) kernels; b: (F,) or None.
        stride, padding: the convolution's (as ``conv2d_forward``).
        pool_size: ``(ph, pw)``, which must tile the convolution's output.
        mode: ``"avg"`` or ``"max"``.
        epilogue: an in-place element-wise function for the convolution's output chunks
            (e.g. ReLU's in-place form); it must return its argument.
        workspace: optional dict where the chunks' buffers are kept between calls.
    Returns:
        (N, F, oh // ph, ow // pw), a view of a channels-last array.
    Raises:
        ValueError: bad operands, an unknown mode, or a case this path does not serve
            (``pooled_band_width`` is 0).
    """
    if mode not in POOL_MODES:
        raise ValueError(f"conv2d_pool_forward: unknown mode {mode!r}; valid modes: "
                         f"{', '.join(POOL_MODES)}")
    stride, dilation, (oh, ow), padding = _geometry(x, w, b, stride, padding, (1, 1))
    (ph, pw), (n, f) = pair(pool_size, "pool_size"), (x.shape[0], w.shape[0])
    band = pooled_band_width(x.shape[1], w.shape[2:], dilation, (oh, ow), (ph, pw))
    if band == 0:
        raise ValueError(
            f"conv2d_pool_forward: no fused path for input {tuple(x.shape)}, kernel "
            f"{tuple(w.shape)} and pool {(ph, pw)} (one input channel, a kernel at least "
            f"{BAND_MIN_KERNEL} wide, and pooling windows tiling the {(oh, ow)} output)")
    workspace = {} if workspace is None else workspace  # one set of buffers for all chunks
    x_padded = pad_spatial(channels_last(x), padding, axes=_SPATIAL)
    kh_span = band_matrix(w, band, stride[1])
    matrix = xp.ascontiguousarray(  # columns (q, f) -> (j, q // pw, f) for q = window*pw + j
        kh_span.reshape(-1, band // pw, pw, f).transpose(0, 2, 1, 3).reshape(-1, band * f))
    dtype = xp.result_type(x, w)
    y = xp.empty((n, oh // ph, ow // pw, f), dtype=dtype)
    bias_row = None if b is None else xp.tile(b, oh * ow)
    share = cell_share(ph * pw, dtype)
    run = band // pw * f  # the values of one cell of a band's windows
    for samples, columns in _band_columns(x_padded, w.shape[2:], stride, band, (oh, ow),
                                          workspace):
        s = samples.stop - samples.start
        z = _buffer(workspace, "pooled_conv", s * oh * ow * f, dtype)[:s * oh * ow * f]
        xp.matmul(columns, matrix, out=z.reshape(-1, band * f))
        _finish_chunk(z.reshape(s, oh, ow, f), bias_row, epilogue)
        cells = z.reshape(s, oh // ph, ph, ow // band, pw, run)
        out = y[samples].reshape(s, oh // ph, ow // band, run)
        combine_cells([cells[:, :, i, :, j] for i in range(ph) for j in range(pw)], out, mode)
        if mode == "avg":
            out *= share
    return y.transpose(0, 3, 1, 2)


def _band_kernel_gradient(dy_rows, cache, band):
    """The kernel gradient, in ``_kernel_matrix``'s (kh * kw, F) layout, of a one-channel
    convolution whose forward pass used band columns: the band matrix's gradient, one GEMM
    per chunk of rebuilt band columns against ``dy_rows`` (N * oh * ow, F) read as
    (N * oh * bands, band * F) rows, then each band position's copy of the kernel added up.
    3.5x less to copy than rebuilding im2col columns, for 1.4x the multiply-adds."""
    (kh, kw), (oh, ow), sw = cache.w.shape[2:], cache.out_hw, cache.stride[1]
    f = dy_rows.shape[1]
    span = (band - 1) * sw + kw
    dy_bands = dy_rows.reshape(cache.x_shape[0], oh * (ow // band), band * f)
    d_matrix = xp.zeros((kh * span, band * f), dtype=xp.result_type(dy_rows, cache.x_padded))
    for samples, columns in _band_columns(cache.x_padded, (kh, kw), cache.stride, band,
                                          (oh, ow), cache.workspace):
        d_matrix += columns.T @ dy_bands[samples].reshape(-1, band * f)
    d_bands = d_matrix.reshape(kh, span, band, f)
    dkernel = xp.zeros((kh, kw, f), dtype=d_matrix.dtype)
    for q in range(band):  # the adjoint of band_matrix's shifted copies
        dkernel += d_bands[:, q * sw:q * sw + kw, q, :]
    return dkernel.reshape(kh * kw, f)


def _band_columns(x_padded, kernel, stride, band, out_hw, workspace):
    """Yield ``(samples, columns)``: a slice of the batch and its band columns, an
    (S * oh * bands, kh * span) matrix built in the workspace (``band_width``)."""
    n, (kh, kw), (oh, ow) = x_padded.shape[0], kernel, out_hw
    span = (band - 1) * stride[1] + kw
    bands = ow // band
    # The (N, oh, bands, kh, span) windows as one strided view (sliding_window_view's
    # checks cost 0.15 ms a call here, 2% of a 64-sample inference part).
    sn, sh, sw = x_padded.strides[:3]
    windows = xp.lib.stride_tricks.as_strided(
        x_padded[..., 0], (n, oh, bands, kh, span),
        (sn, sh * stride[0], sw * band * stride[1], sh, sw), writeable=False)
    per_sample = oh * bands * kh * span
    step = max(1, CHUNK_BYTES // (per_sample * x_padded.dtype.itemsize))
    buffer = _buffer(workspace, "bands", min(step, n) * per_sample, x_padded.dtype)
    for start in range(0, n, step):
        stop = min(start + step, n)
        columns = buffer[:(stop - start) * per_sample].reshape(stop - start, oh, bands, kh,
                                                                span)
        xp.copyto(columns, windows[start:stop])
        yield slice(start, stop), columns.reshape(-1, kh * span)


def _buffer(workspace, key, size, dtype):
    """A flat buffer of at least ``size`` values kept in ``workspace[key]`` (a fresh one
    without a workspace)."""
    if workspace is None:
        return xp.empty(size, dtype=dtype)
    buffer = workspace.get(key)
    if buffer is None or buffer.size < size or buffer.dtype != dtype:
        buffer = workspace[key] = xp.empty(size, dtype=dtype)
    return buffer


def conv2d_backward(dy, cache, need_dx=True):
    """Gradients of a convolution, summed over the batch.

    Args:
        dy: (N, F, oh, ow), gradient of the loss with respect to ``y``; fastest when stored
            channels last, like ``y``.
        cache: the ``ConvCache`` from ``conv2d_forward``.
        need_dx: False skips the input gradient (a GEMM and a col2im), e.g. for a first layer.
    Returns:
        ``(dx, dw, db)``: dx (N, C, H, W) (a view of a channels-last array) or None when
        ``need_dx`` is False; dw (F, C, kh, kw); db (F,) or None when the forward pass had
        no bias.
    """
    w = cache.w
    f, c, kh, kw = w.shape
    expected = (cache.x_shape[0], f, *cache.out_hw)
    if tuple(dy.shape) != expected:
        raise ValueError(f"conv2d_backward: dy has shape {tuple(dy.shape)}, expected {expected}")
    dy_rows = channels_last(dy).reshape(-1, f)  # (N * oh * ow, F)
    dy_samples = dy_rows.reshape(cache.x_shape[0], -1, f)  # (N, oh * ow, F)
    band = band_width(c, (kh, kw), cache.out_hw[1], cache.dilation)
    if band > 1:  # the forward pass's layout, 3.5x less to rebuild than im2col columns
        dkernel = _band_kernel_gradient(dy_rows, cache, band)
    else:
        dkernel = _kernel_gradient(dy_samples, cache)
    dx_padded = None
    if need_dx:
        tap_kernels = kernel_taps(w)
        dx_padded = xp.zeros(cache.x_padded.shape, dtype=xp.result_type(dy, w))
        for samples, rows in _chunks(cache):
            taps = xp.matmul(dy_rows[rows], tap_kernels)  # (kh * kw, S * oh * ow, C)
            col2im_channels_last(taps, dx_padded[samples].shape, (kh, kw), cache.stride,
                                 cache.out_hw, out=dx_padded[samples], dilation=cache.dilation)
    dw = xp.ascontiguousarray(dkernel.reshape(kh, kw, c, f).transpose(3, 2, 0, 1))
    db = None
    if cache.has_bias:
        # A matrix-vector product: 15x faster here than dy_rows.sum(axis=0) over short rows.
        db = xp.ones(dy_rows.shape[0], dtype=dy_rows.dtype) @ dy_rows
    dx = None
    if need_dx:
        dx = crop_spatial(dx_padded, cache.padding, axes=_SPATIAL).transpose(0, 3, 1, 2)
    return dx, dw, db


def _kernel_gradient(dy_samples, cache):
    """The kernel gradient in ``_kernel_matrix``'s (kh * kw * C, F) layout from im2col
    columns (the forward pass's, or rebuilt chunk by chunk) and ``dy_samples``
    (N, oh * ow, F)."""
    w = cache.w
    dkernel = xp.zeros((w[0].size, w.shape[0]), dtype=xp.result_type(dy_samples,
                                                                     cache.x_padded))
    if cache.columns is None:
        windows = channels_last_windows(cache.x_padded, w.shape[2:], cache.stride,
                                        cache.dilation)
    for index, (samples, _) in enumerate(_chunks(cache)):
        if cache.columns is None:
            columns = _columns(windows[samples], cache)
        else:
            columns = cache.columns[index]
        dkernel += xp.matmul(columns.transpose(0, 2, 1), dy_samples[samples]).sum(axis=0)
    return dkernel


def _kernel_matrix(w):
    """(F, C, kh, kw) -> (kh * kw * C, F), rows in the channels-last tap order (i, j, c)."""
    return xp.ascontiguousarray(w.transpose(2, 3, 1, 0).reshape(-1, w.shape[0]))


def kernel_taps(w):
    """(F, C, kh, kw) -> (kh * kw, F, C): one (F, C) matrix per tap, for the input gradient."""
    f, c, kh, kw = w.shape
    return xp.ascontiguousarray(w.transpose(2, 3, 0, 1).reshape(kh * kw, f, c))


def _columns_bytes(x_padded, w, out_hw, samples):
    """Size of the columns of ``samples`` samples."""
    taps = w.shape[2] * w.shape[3] * x_padded.shape[3]
    return samples * out_hw[0] * out_hw[1] * taps * x_padded.dtype.itemsize


def _chunks(cache):
    """Yield ``(samples, rows)``: a slice of samples and the slice of output rows they own."""
    n = cache.x_padded.shape[0]
    positions = cache.out_hw[0] * cache.out_hw[1]
    step = max(1, CHUNK_BYTES // _columns_bytes(cache.x_padded, cache.w, cache.out_hw, 1))
    for start in range(0, n, step):
        stop = min(start + step, n)
        yield slice(start, stop), slice(start * positions, stop * positions)


def _columns(windows, cache, first_row=0):
    """The columns of a chunk of S samples' (S, oh, ow, C, kh, kw) windows, one
    (oh * ow, kh * kw * C) matrix per sample: an (S, oh * ow, kh * kw * C) array or view.

    The GEMMs run per sample (``matmul`` on the stack): 1.2-2x faster here than one GEMM
    over the chunk for a single input channel, the same for more. With a workspace, the
    columns are built in its buffer from row ``first_row`` on.
    """
    s, oh, ow, c, kh, kw = windows.shape
    rows, taps = s * oh * ow, kh * kw * c
    out = _workspace_rows(cache, first_row, rows, taps, windows.dtype)
    if c == 1:
        out = None if out is None else out.reshape(taps, rows)
        return taps_from_windows(windows, out).reshape(taps, s, oh * ow).transpose(1, 2, 0)
    return rows_from_windows(windows, out).reshape(s, oh * ow, taps)


def _workspace_rows(cache, first_row, rows, taps, dtype):
    """``rows`` rows of ``taps`` values in the workspace's column buffer (None without one)."""
    if cache.workspace is None:
        return None
    needed = (first_row + rows) * taps
    buffer = _buffer(cache.workspace, "columns", needed, dtype)
    return buffer[first_row * taps:needed].reshape(rows, taps)


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
