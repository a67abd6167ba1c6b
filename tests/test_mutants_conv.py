"""Tests written for mutation runs 5 and 6 (docs/TESTING.md): each kills mutants of
``cnn/ops/conv.py``, ``cnn/ops/pooling.py`` or ``cnn/ops/im2col.py`` that the older tests
let through, against the slow references of ``cnn.ops.reference``."""

import numpy as np
import pytest

from cnn.ops import conv as conv_ops
from cnn.ops import pooling as pooling_ops
from cnn.ops.conv import band_width, conv2d_backward, conv2d_forward
from cnn.ops.im2col import col2im, col2im_channels_last, crop_spatial, im2col, pad_spatial
from cnn.ops.pooling import pool2d_backward, pool2d_forward
from cnn.ops.reference import im2col_reference, pool2d_backward_reference, pool2d_reference
from cnn.ops.reference_conv import (grouped_conv2d_backward_reference,
                                    grouped_conv2d_reference)


def _conv_agrees_with_reference(x, w, b, stride, padding, dilation=(1, 1), workspace=None):
    y, cache = conv2d_forward(x, w, b, stride, padding, workspace=workspace,
                              dilation=dilation)
    want = grouped_conv2d_reference(x, w, b, stride, padding, dilation)
    np.testing.assert_allclose(y, want, atol=1e-10)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    got = conv2d_backward(dy, cache)
    expected = grouped_conv2d_backward_reference(dy, x, w, stride, padding, dilation)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, atol=1e-10)
    return cache


def test_band_columns_only_for_one_channel_undilated_and_at_least_seven_wide():
    assert band_width(1, (7, 7), 10) == 5
    assert band_width(1, (9, 9), 4) == 4
    assert band_width(1, (9, 9), 6) == 3  # the largest divisor up to BAND_OUTPUTS
    assert band_width(1, (9, 9), 7) == 1  # a prime width: bands of one, im2col
    assert band_width(1, (6, 6), 10) == 0
    assert band_width(2, (9, 9), 10) == 0
    assert band_width(1, (9, 9), 10, dilation=(2, 2)) == 0
    assert band_width(1, (9, 9), 10, dilation=(1, 2)) == 0


@pytest.mark.parametrize("channels, dilation", [(1, (2, 2)), (1, (1, 2)), (2, (1, 1))])
def test_wide_kernels_that_band_columns_cannot_serve_match_the_reference(channels, dilation):
    """A dilated one-channel kernel, or two channels: im2col columns, never band ones."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, channels, 20, 21))
    w, b = rng.standard_normal((3, channels, 7, 7)), rng.standard_normal(3)
    _conv_agrees_with_reference(x, w, b, (1, 1), ((0, 0), (0, 0)), dilation=dilation)


@pytest.mark.parametrize("argument", ["stride", "dilation"])
def test_conv_argument_errors_name_the_argument(argument):
    x, w = np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 3, 3))
    with pytest.raises(ValueError, match=f"^{argument} must be"):
        conv2d_forward(x, w, None, **{"stride": 1, "padding": 0, argument: (1, 2, 3)})


def _one_channel_wide(width, n=3, dtype=np.float64, seed=5):
    """One input channel, a 9x9 kernel, output width ``width - 8`` (band columns when that
    width has a divisor from 2 to 5)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 1, 11, width)).astype(dtype)
    return x, rng.standard_normal((2, 1, 9, 9)).astype(dtype), rng.standard_normal(2)


@pytest.mark.parametrize("width, band", [(10, 2), (13, 5), (15, 1)])
def test_band_columns_exactly_when_a_band_holds_two_outputs_or_more(width, band):
    """Bands of 2 to 5 outputs use band columns, built in the workspace and never kept; a
    band of one (a prime output width) keeps im2col columns, as for several channels."""
    x, w, b = _one_channel_wide(width)
    assert band_width(1, (9, 9), width - 8) == band
    workspace = {}
    y, cache = conv2d_forward(x, w, b, workspace=workspace)
    assert (cache.columns is None) == (band > 1)
    assert ("bands" in workspace) == (band > 1)
    if band > 1:
        workspace["bands"][:] = np.nan  # backward must rebuild them there
    conv2d_backward(np.ones_like(y), cache)
    assert ("bands" in workspace) == (band > 1)
    assert band == 1 or not np.isnan(workspace["bands"]).any()
    _conv_agrees_with_reference(x, w, b, (1, 1), ((0, 0), (0, 0)), workspace=workspace)


def test_band_columns_reuse_their_workspace_buffer_in_forward_and_backward():
    x, w, b = _one_channel_wide(13, dtype=np.float32)
    workspace = {}
    y, cache = conv2d_forward(x, w, b.astype(np.float32), workspace=workspace)
    buffer = workspace["bands"]
    assert buffer.dtype == np.float32
    buffer[:] = np.nan  # backward must rebuild the band columns in the same buffer
    conv2d_backward(np.ones_like(y), cache)
    assert not np.isnan(buffer).any()
    conv2d_forward(x, w, None, workspace=workspace)
    assert workspace["bands"] is buffer


def test_band_columns_hold_one_sample_at_a_time_when_one_exceeds_the_chunk(monkeypatch):
    monkeypatch.setattr(conv_ops, "CHUNK_BYTES", 8)
    x, w, b = _one_channel_wide(13)
    workspace = {}
    _conv_agrees_with_reference(x, w, b, (1, 1), ((0, 0), (0, 0)), workspace=workspace)
    oh, bands, span = 3, 1, 4 * 1 + 9
    assert workspace["bands"].size == oh * bands * 9 * span


def test_band_columns_with_a_shorter_last_chunk(monkeypatch):
    """Five samples in chunks of two: the last chunk holds one."""
    x, w, b = _one_channel_wide(13, n=5)
    per_sample_bytes = 3 * 1 * 9 * 13 * 8
    monkeypatch.setattr(conv_ops, "CHUNK_BYTES", 2 * per_sample_bytes)
    _conv_agrees_with_reference(x, w, b, (1, 1), ((0, 0), (0, 0)), workspace={})


def test_band_matrix_keeps_the_kernel_dtype():
    w = np.ones((2, 1, 9, 9), dtype=np.float32)
    assert conv_ops.band_matrix(w, 5, 1).dtype == np.float32


@pytest.mark.parametrize("width", [13, 15])  # band columns, im2col columns
@pytest.mark.parametrize("x_dtype, dy_dtype", [(np.float32, np.float32),
                                               (np.float32, np.float64),
                                               (np.float64, np.float32)])
def test_result_dtypes_are_those_of_numpy_promotion_on_either_path(width, x_dtype, dy_dtype):
    x, w, _ = _one_channel_wide(width, dtype=x_dtype)
    w = w.astype(np.float32)
    y, cache = conv2d_forward(x, w, None, workspace={})
    assert y.dtype == np.result_type(x_dtype, np.float32)
    dx, dw, _ = conv2d_backward(np.ones(y.shape, dtype=dy_dtype), cache)
    assert dw.dtype == np.result_type(dy_dtype, x_dtype)
    assert dx.dtype == np.result_type(dy_dtype, np.float32)


def test_columns_are_kept_up_to_exactly_their_limit(monkeypatch):
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((2, 3, 6, 8)), rng.standard_normal((4, 3, 3, 2))
    columns_bytes = 2 * 4 * 7 * 18 * 8  # N * oh * ow * kh * kw * C * 8: nothing square
    monkeypatch.setattr(conv_ops, "KEEP_COLUMNS_BYTES", columns_bytes)
    assert conv2d_forward(x, w)[1].columns is not None
    monkeypatch.setattr(conv_ops, "KEEP_COLUMNS_BYTES", columns_bytes - 1)
    assert conv2d_forward(x, w)[1].columns is None


def test_mixed_operands_give_the_wider_dtype():
    """A float32 input and dy with a float64 kernel: float64 results, both paths."""
    w = _one_channel_wide(13)[1]
    for width in (13, 15):
        x, _, _ = _one_channel_wide(width, dtype=np.float32)
        y, cache = conv2d_forward(x, w)
        assert y.dtype == np.float64
        dx, dw, _ = conv2d_backward(np.ones(y.shape, dtype=np.float32), cache)
        assert dx.dtype == np.float64 and dw.dtype == np.float32  # dw: of dy and x


@pytest.mark.parametrize("width", [13, 15])  # band columns, im2col columns
def test_the_epilogue_runs_on_either_path(width):
    x, w, b = _one_channel_wide(width)

    def relu(chunk):
        return np.maximum(chunk, 0, out=chunk)

    y, _ = conv2d_forward(x, w, b, workspace={}, epilogue=relu)
    want = np.maximum(grouped_conv2d_reference(x, w, b, (1, 1), ((0, 0), (0, 0))), 0)
    np.testing.assert_allclose(y, want, atol=1e-10)
    assert (y == 0).any()


@pytest.mark.parametrize("samples_per_chunk", [1, 2])
def test_columns_not_kept_take_one_chunk_of_the_workspace(samples_per_chunk, monkeypatch):
    """Columns rebuilt chunk by chunk reuse one chunk's rows of the workspace buffer."""
    rng = np.random.default_rng(6)
    x, w = rng.standard_normal((4, 3, 6, 6)), rng.standard_normal((2, 3, 3, 3))
    one_sample = 4 * 4 * 27
    monkeypatch.setattr(conv_ops, "CHUNK_BYTES", samples_per_chunk * one_sample * 8)
    workspace = {}
    y, cache = conv2d_forward(x, w, None, workspace=workspace, keep_columns=False)
    np.testing.assert_allclose(y, grouped_conv2d_reference(x, w, None, (1, 1),
                                                           ((0, 0), (0, 0))), atol=1e-10)
    assert workspace["columns"].size == samples_per_chunk * one_sample


@pytest.mark.parametrize("size, stride", [(9, 3), (11, 4)])  # tiled; gaps between windows
def test_float32_average_pooling_gradient_is_the_float32_product(size, stride):
    """Each cell of a 3x3 window gets dy * float32(1/9), rounded once in float32 (a float64
    share would round differently and make a float64 temporary)."""
    dy_shape = (2, 3, 3, 3)
    dy = np.random.default_rng(4).standard_normal(dy_shape).astype(np.float32)
    x = np.zeros((2, 3, size, size), dtype=np.float32)
    _, cache = pool2d_forward(x, (3, 3), (stride, stride), mode="avg")
    dx = pool2d_backward(dy, cache)
    want = np.zeros_like(x)
    share = dy * np.float32(1 / 9)
    for i in range(3):
        for j in range(3):
            want[:, :, i * stride:i * stride + 3, j * stride:j * stride + 3] = \
                share[:, :, i:i + 1, j:j + 1]
    assert dx.dtype == np.float32
    np.testing.assert_array_equal(dx, want)


@pytest.mark.parametrize("padding", [((1, 0), (0, 0)), ((0, 0), (1, 0)), ((0, 1), (0, 0))])
def test_average_pooling_with_one_padded_side_counts_only_unpadded_cells(padding):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 2, 5, 6))
    y, cache = pool2d_forward(x, (2, 2), (2, 2), padding, mode="avg")
    np.testing.assert_allclose(y, pool2d_reference(x, (2, 2), (2, 2), padding, "avg"),
                               atol=1e-12)
    dy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(pool2d_backward(dy, cache),
                               pool2d_backward_reference(dy, x, (2, 2), (2, 2), padding, "avg"),
                               atol=1e-12)


@pytest.mark.parametrize("channels", [1, 3])  # tap-major columns, row-major columns
def test_im2col_columns_are_built_in_the_workspace_forward_and_backward(channels):
    rng = np.random.default_rng(9)
    x, w = rng.standard_normal((2, channels, 6, 6)), rng.standard_normal((2, channels, 3, 3))
    workspace = {}
    _, cache = conv2d_forward(x, w, workspace=workspace)
    assert all(np.shares_memory(c, workspace["columns"]) for c in cache.columns)
    workspace = {}
    y, cache = conv2d_forward(x, w, workspace=workspace, keep_columns=False)
    size = workspace["columns"].size
    workspace["columns"][:] = np.nan
    conv2d_backward(np.ones_like(y), cache)
    assert workspace["columns"].size == size and not np.isnan(workspace["columns"]).any()


@pytest.mark.parametrize("width", [13, 15])  # band columns, im2col columns
def test_float32_results_are_the_same_bits_with_or_without_a_workspace(width):
    x, w, b = _one_channel_wide(width, dtype=np.float32)
    b = b.astype(np.float32)
    y_fresh, cache_fresh = conv2d_forward(x, w, b)
    y_kept, cache_kept = conv2d_forward(x, w, b, workspace={})
    np.testing.assert_array_equal(y_fresh, y_kept)
    dy = np.random.default_rng(0).standard_normal(y_kept.shape).astype(np.float32)
    for fresh, kept in zip(conv2d_backward(dy, cache_fresh), conv2d_backward(dy, cache_kept)):
        assert fresh.dtype == np.float32
        np.testing.assert_array_equal(fresh, kept)


def test_conv_operand_errors_say_what_is_wrong_with_the_numbers():
    x, w = np.zeros((2, 3, 8, 9)), np.zeros((4, 5, 3, 2))
    with pytest.raises(ValueError, match=r"input of shape \(N, C, H, W\), got \(3, 8, 9\)"):
        conv2d_forward(x[0], w[:, :3])
    with pytest.raises(ValueError, match=r"kernel of shape \(F, C, kh, kw\), got \(4, 5, 3\)"):
        conv2d_forward(x, w[..., 0])
    with pytest.raises(ValueError, match=r"input has 3 channels .* kernel expects 5 "):
        conv2d_forward(x, w)
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\)"):
        conv2d_forward(x, w[:, :3], np.zeros(5))


def test_im2col_and_col2im_fill_the_out_they_are_given_and_check_it():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, 3, 5, 5))
    cols = im2col_reference(x, (3, 3), (1, 1), (3, 3))
    out = np.empty(cols.shape)
    assert im2col(x, (3, 3), (1, 1), (3, 3), out=out) is out
    np.testing.assert_array_equal(out, cols)
    with pytest.raises(ValueError, match="C-contiguous"):  # a filled view would be lost
        im2col(x, (3, 3), (1, 1), (3, 3), out=np.empty(cols.shape[::-1]).T)
    image = np.zeros(x.shape)
    assert col2im(cols, x.shape, (3, 3), (1, 1), (3, 3), out=image) is image
    np.testing.assert_allclose(image, col2im(cols, x.shape, (3, 3), (1, 1), (3, 3)))
    assert image.any()
    with pytest.raises(ValueError, match=r"out has shape \(2, 3, 5, 4\), expected \(2, 3, 5, 5\)"):
        col2im(cols, x.shape, (3, 3), (1, 1), (3, 3), out=np.zeros((2, 3, 5, 4)))
    with pytest.raises(ValueError, match=r"^col2im: cols has shape"):
        col2im(cols[:-1], x.shape, (3, 3), (1, 1), (3, 3))
    taps = np.zeros((9, 18, 2))
    with pytest.raises(ValueError, match=r"^col2im_channels_last: cols has shape"):
        col2im_channels_last(taps, (2, 5, 5, 3), (3, 3), (1, 1), (3, 3))


# Mutation run 6: pool2d_forward and the window helpers of im2col.py


def test_pooling_defaults_to_max():
    x = np.random.default_rng(11).standard_normal((2, 3, 4, 6))
    y, cache = pool2d_forward(x, 2)
    np.testing.assert_array_equal(y, pool2d_reference(x, (2, 2), (2, 2), ((0, 0), (0, 0)),
                                                      "max"))
    assert cache.mode == "max"


def test_pooling_argument_errors_name_the_argument_and_the_value():
    x = np.zeros((2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"unknown mode 'sum'; valid modes: max, avg$"):
        pool2d_forward(x, 2, mode="sum")
    with pytest.raises(ValueError, match=r"input of shape \(N, C, H, W\), got \(3, 4, 4\)$"):
        pool2d_forward(x[0], 2)
    with pytest.raises(ValueError, match=r"^pool_size must be an int or a pair of ints, got '2'"):
        pool2d_forward(x, "2")
    with pytest.raises(ValueError, match=r"^stride must be positive, got \(0, 1\)"):
        pool2d_forward(x, 2, (0, 1))


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_the_pool_cache_records_the_mode_and_the_path_that_ran(mode):
    x = np.zeros((2, 3, 6, 6))
    _, tiled = pool2d_forward(x, 2, mode=mode)
    _, general = pool2d_forward(x, 2, 1, mode=mode)
    assert (tiled.mode, tiled.tiled, general.mode, general.tiled) == (mode, True, mode, False)


@pytest.mark.parametrize("pool, index_dtype", [((2, 2), np.uint8), ((16, 16), np.uint8),
                                               ((1, 257), np.int64)])
def test_max_pooling_indices_take_one_byte_up_to_256_cells(pool, index_dtype):
    """The winner's index is stored in one byte while every cell's index fits (0-255); a
    window of 257 cells needs more. The last cell wins one window, so its index is used."""
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 2, 2 * pool[0], pool[1]))
    x[0, 1, pool[0] - 1, pool[1] - 1] = 10.0
    y, cache = pool2d_forward(x, pool)
    assert cache.argmax.dtype == index_dtype
    np.testing.assert_array_equal(y, pool2d_reference(x, pool, pool, ((0, 0), (0, 0)), "max"))
    dy = rng.standard_normal(y.shape)
    np.testing.assert_array_equal(
        pool2d_backward(dy, cache),
        pool2d_backward_reference(dy, x, pool, pool, ((0, 0), (0, 0)), "max"))


@pytest.mark.parametrize("stride, padding", [(3, ((0, 0), (0, 0))), (2, ((1, 1), (0, 1)))])
def test_float32_average_pooling_is_the_float32_sum_times_the_float32_share(stride, padding):
    """The cells are added in row-major order in float32 and the sum multiplied by the
    float32 reciprocal of the window's unpadded cells (a float64 share would round
    differently and make a float64 temporary)."""
    x = np.random.default_rng(13).standard_normal((2, 3, 9, 9)).astype(np.float32)
    y, cache = pool2d_forward(x, 3, stride, padding, mode="avg")
    (top, bottom), (left, right) = padding
    padded = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    inside = np.pad(np.ones((9, 9)), ((top, bottom), (left, right)))
    oh, ow = y.shape[2:]
    total, count = np.zeros(y.shape, np.float32), np.zeros((oh, ow))
    for i in range(3):
        for j in range(3):
            rows, cols = slice(i, i + stride * oh, stride), slice(j, j + stride * ow, stride)
            total += padded[:, :, rows, cols]
            count += inside[rows, cols]
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, total * (1 / count).astype(np.float32))


class _CountedCopies:
    """NumPy, recording the size of every ``copyto`` destination (pooling starts each chunk's
    running max or sum with one)."""

    def __init__(self):
        self.sizes = []

    def __getattr__(self, name):
        return getattr(np, name)

    def copyto(self, destination, source, **options):
        self.sizes.append(destination.size)
        return np.copyto(destination, source, **options)


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("chunk_samples, passes", [(2, [2, 2, 1]), (0.5, [1] * 5)])
def test_pooling_visits_each_sample_once_in_chunks_of_chunk_bytes(mode, chunk_samples,
                                                                  passes, monkeypatch):
    """5 samples, chunks of 2 samples' bytes: passes over 2, 2 and 1 samples; chunks smaller
    than a sample: one sample a pass. No sample is pooled twice or left out."""
    x = np.random.default_rng(14).standard_normal((5, 3, 6, 4))
    one_sample = x[0].nbytes
    numpy_counted = _CountedCopies()
    monkeypatch.setattr(pooling_ops, "CHUNK_BYTES", int(chunk_samples * one_sample))
    monkeypatch.setattr(pooling_ops, "xp", numpy_counted)
    y, _ = pool2d_forward(x, 2, mode=mode)
    np.testing.assert_allclose(y, pool2d_reference(x, (2, 2), (2, 2), ((0, 0), (0, 0)), mode),
                               atol=1e-12)
    assert numpy_counted.sizes == [p * y[0].size for p in passes]


@pytest.mark.parametrize("axes", [(2, 3), (1, 2)])  # (N, C, H, W), channels last
def test_pad_spatial_pads_each_side_by_its_own_amount_and_crop_spatial_undoes_it(axes):
    """Every padding of 0-2 cells a side, against ``np.pad``; zeros by default; no padding
    returns ``x`` itself."""
    x = np.random.default_rng(15).standard_normal((2, 3, 4, 5))
    assert pad_spatial(x, ((0, 0), (0, 0)), axes=axes) is x
    around = [(0, 0), (0, 0), (0, 0), (0, 0)]
    around[axes[0]] = around[axes[1]] = (1, 1)
    np.testing.assert_array_equal(pad_spatial(x, ((1, 1), (1, 1)), axes=axes), np.pad(x, around))
    for top, bottom, left, right in np.ndindex(3, 3, 3, 3):
        widths = [(0, 0)] * 4
        widths[axes[0]], widths[axes[1]] = (top, bottom), (left, right)
        padded = pad_spatial(x, ((top, bottom), (left, right)), 7.0, axes)
        np.testing.assert_array_equal(padded, np.pad(x, widths, constant_values=7.0))
        cropped = crop_spatial(padded, ((top, bottom), (left, right)), axes)
        assert cropped.flags.c_contiguous
        np.testing.assert_array_equal(cropped, x)
