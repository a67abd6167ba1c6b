"""Dilated Conv2D, Conv1D, 1-D pooling and global pooling: gradients, the loop reference,
PyTorch, shapes, errors, saving."""

import numpy as np
import pytest

from cnn.layers import (AveragePooling1D, Conv1D, Conv2D, GlobalAveragePooling1D,
                        GlobalAveragePooling2D, GlobalMaxPooling1D, GlobalMaxPooling2D,
                        MaxPooling1D)
from cnn.ops.conv import conv2d_backward, conv2d_forward
from cnn.ops.reference_conv import (grouped_conv2d_backward_reference,
                                    grouped_conv2d_reference)
from cnn.ops.shapes import effective_kernel, window_output_shape
from cnn.utils.gradient_check import numerical_gradient
from helpers import check_layer_gradients
from window_helpers import assert_matches_torch, assert_round_trips, built, random

# (N, C, F, (H, W), kernel, stride, padding, dilation)
DILATED_CASES = [
    (2, 2, 3, (9, 8), (3, 3), (1, 1), "valid", (2, 2)),
    (1, 3, 2, (8, 9), (3, 2), (1, 1), "same", (2, 3)),
    (2, 1, 2, (10, 7), (2, 3), (2, 1), "same", (3, 2)),
    (2, 2, 2, (9, 9), (3, 3), (2, 2), ((1, 2), (0, 1)), (2, 2)),
    (1, 1, 3, (7, 8), (2, 2), (3, 2), "full", (2, 1)),
    (3, 2, 1, (6, 6), (3, 3), (1, 1), "valid", (1, 2)),
]


def _explicit(case):
    _, _, _, hw, kernel, stride, padding, dilation = case
    return window_output_shape(hw, effective_kernel(kernel, dilation), stride, padding)[1]


@pytest.mark.parametrize("case", DILATED_CASES, ids=str)
def test_dilated_conv_kernel_matches_the_loop_reference(case):
    n, c, f, hw, kernel, stride, _, dilation = case
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((n, c, *hw)), rng.standard_normal((f, c, *kernel)), \
        rng.standard_normal(f)
    padding = _explicit(case)
    y, cache = conv2d_forward(x, w, b, stride, padding, dilation=dilation)
    np.testing.assert_allclose(y, grouped_conv2d_reference(x, w, b, stride, padding, dilation),
                               atol=1e-10)
    dy = rng.standard_normal(y.shape)
    for got, want in zip(conv2d_backward(dy, cache),
                         grouped_conv2d_backward_reference(dy, x, w, stride, padding, dilation)):
        np.testing.assert_allclose(got, want, atol=1e-10)


def test_dilated_conv_backward_rebuilding_its_columns_matches_too():
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((3, 2, 9, 9)), rng.standard_normal((2, 2, 3, 3))
    y, cache = conv2d_forward(x, w, None, 1, 2, keep_columns=False, dilation=2)
    dy = rng.standard_normal(y.shape)
    dx, dw, _ = conv2d_backward(dy, cache)
    dx_ref, dw_ref, _ = grouped_conv2d_backward_reference(dy, x, w, 1, 2, 2, has_bias=False)
    np.testing.assert_allclose(dx, dx_ref, atol=1e-10)
    np.testing.assert_allclose(dw, dw_ref, atol=1e-10)


@pytest.mark.parametrize("case", DILATED_CASES, ids=str)
def test_dilated_conv2d_layer_gradients(case):
    _, c, f, hw, kernel, stride, padding, dilation = case
    layer = built(Conv2D(f, kernel, stride, padding=padding, dilation_rate=dilation,
                         activation="tanh"), (c, *hw))
    check_layer_gradients(layer, random((2, c, *hw), seed=3))


@pytest.mark.parametrize("case", DILATED_CASES, ids=str)
def test_dilated_conv2d_matches_torch(case):
    _, c, f, hw, kernel, stride, padding, dilation = case
    layer = built(Conv2D(f, kernel, stride, padding=padding, dilation_rate=dilation), (c, *hw))
    (top, bottom), (left, right) = layer.pads

    def torch_conv(x, p):
        import torch.nn.functional as F
        return F.conv2d(F.pad(x, (left, right, top, bottom)), p["kernel"], p["bias"],
                        stride=stride, dilation=dilation)

    assert_matches_torch(layer, random((2, c, *hw), seed=4), torch_conv)


def test_same_padding_puts_the_odd_row_at_the_end_for_dilated_kernels():
    layer = built(Conv2D(1, 2, padding="same", dilation_rate=3), (1, 6, 6))
    assert layer.pads == ((1, 2), (1, 2))  # span 4: 3 zeros, the extra one after
    assert layer.output_shape == (None, 1, 6, 6)


# Conv1D: (steps, channels, filters, kernel, strides, padding, dilation)
CONV1D_CASES = [
    (9, 2, 3, 3, 1, "valid", 1),
    (9, 2, 3, 3, 1, "same", 1),
    (8, 3, 2, 4, 1, "same", 1),  # even kernel: the extra zero at the end
    (9, 2, 2, 3, 1, "causal", 1),
    (12, 2, 2, 3, 1, "causal", 3),
    (11, 1, 2, 3, 2, "valid", 1),
    (11, 2, 3, 3, 3, "same", 1),
    (12, 2, 2, 2, 2, "causal", 2),
    (10, 3, 2, 3, 1, "same", 2),
]


def _conv1d_padding(steps, kernel, strides, padding, dilation):
    span = (kernel - 1) * dilation + 1
    if padding == "causal":
        return span - 1, 0
    if padding == "valid":
        return 0, 0
    out = -(-steps // strides)
    total = max((out - 1) * strides + span - steps, 0)
    return total // 2, total - total // 2


@pytest.mark.parametrize("case", CONV1D_CASES, ids=str)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_conv1d_gradients(case, data_format):
    steps, c, f, k, s, padding, d = case
    shape = (steps, c) if data_format == "channels_last" else (c, steps)
    layer = built(Conv1D(f, k, s, padding, data_format, d, activation="tanh"), shape)
    check_layer_gradients(layer, random((2, *shape), seed=5))


@pytest.mark.parametrize("case", CONV1D_CASES, ids=str)
def test_conv1d_matches_torch_with_manual_padding(case):
    steps, c, f, k, s, padding, d = case
    layer = built(Conv1D(f, k, strides=s, padding=padding, dilation_rate=d), (steps, c))
    before, after = _conv1d_padding(steps, k, s, padding, d)

    def torch_conv(x, p):
        import torch.nn.functional as F
        x = F.pad(x.transpose(1, 2), (before, after))
        return F.conv1d(x, p["kernel"], p["bias"], stride=s, dilation=d).transpose(1, 2)

    assert_matches_torch(layer, random((3, steps, c), seed=6), torch_conv)
    out = (steps + before + after - (k - 1) * d - 1) // s + 1
    assert layer.output_shape == (None, out, f)


def test_causal_conv1d_never_reads_the_future():
    layer = built(Conv1D(2, 3, padding="causal", dilation_rate=2), (10, 2))
    x = random((1, 10, 2))
    later = x.copy()
    later[:, 6:] += 5.0
    np.testing.assert_array_equal(layer.forward(x)[:, :6], layer.forward(later)[:, :6])
    assert not np.allclose(layer.forward(x)[:, 6:], layer.forward(later)[:, 6:])


def test_conv1d_weights_are_pytorchs_layout_and_refuse_bad_arguments():
    layer = built(Conv1D(4, 3), (10, 2))
    assert layer.params["kernel"].shape == (4, 2, 3)
    with pytest.raises(ValueError, match="padding must be 'valid', 'same' or 'causal'"):
        Conv1D(2, 3, padding="full")
    with pytest.raises(ValueError, match=r"needs input of shape \(steps, channels\) per sample, "
                                         r"got \(None, 1, 28, 28\)"):
        Conv1D(2, 3).build((1, 28, 28))
    with pytest.raises(ValueError, match=r'"c1" \(Conv1D\): a 5 kernel .* does not fit the input'
                                         r" \(None, 3, 2\)"):
        Conv1D(2, 5, name="c1").build((3, 2))


POOL1D_CASES = [(2, None, "valid", 8), (3, 1, "valid", 7), (3, 2, "same", 8), (2, 3, "valid", 9),
                (4, 2, "same", 7)]


@pytest.mark.parametrize("cls", [MaxPooling1D, AveragePooling1D])
@pytest.mark.parametrize("pool, strides, padding, steps", POOL1D_CASES)
def test_pooling1d_gradients_and_torch(cls, pool, strides, padding, steps):
    layer = built(cls(pool, strides, padding), (steps, 3))
    x = random((2, steps, 3), seed=7)
    check_layer_gradients(layer, x)
    stride = strides or pool
    out = -(-steps // stride) if padding == "same" else (steps - pool) // stride + 1
    assert layer.output_shape == (None, out, 3)
    total = max((out - 1) * stride + pool - steps, 0) if padding == "same" else 0

    def torch_pool(x, _):
        import torch
        import torch.nn.functional as F
        x = x.transpose(1, 2)
        if cls is MaxPooling1D:
            x = F.pad(x, (total // 2, total - total // 2), value=-float("inf"))
            return F.max_pool1d(x, pool, stride).transpose(1, 2)
        ones = F.pad(torch.ones_like(x), (total // 2, total - total // 2))
        x = F.pad(x, (total // 2, total - total // 2))
        # Keras does not count padding in an average: divide by the real cells.
        return (F.avg_pool1d(x, pool, stride) / F.avg_pool1d(ones, pool, stride)).transpose(1, 2)

    assert_matches_torch(layer, x, torch_pool)


def test_pooling1d_channels_first():
    layer = built(MaxPooling1D(2, data_format="channels_first"), (3, 8))
    x = random((2, 3, 8))
    np.testing.assert_array_equal(layer.forward(x), x.reshape(2, 3, 4, 2).max(axis=3))


GLOBAL = [(GlobalMaxPooling2D, (3, 5, 4), "amax"), (GlobalAveragePooling2D, (3, 5, 4), "mean"),
          (GlobalMaxPooling1D, (7, 3), "amax"), (GlobalAveragePooling1D, (7, 3), "mean")]


@pytest.mark.parametrize("cls, shape, reduce", GLOBAL)
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pooling_gradients_and_torch(cls, shape, reduce, keepdims):
    layer = built(cls(keepdims=keepdims), shape)
    x = random((2, *shape), seed=8)
    check_layer_gradients(layer, x)
    if len(shape) == 3:  # images channels first: reduce over (H, W)
        axes = (2, 3)
    else:  # sequences (steps, channels): reduce over the steps
        axes = (1,)

    def torch_reduce(x, _):
        import torch
        return getattr(torch, reduce)(x, dim=axes, keepdim=keepdims)

    assert_matches_torch(layer, x, torch_reduce)


def test_global_max_sends_the_gradient_to_the_first_maximum():
    layer = built(GlobalMaxPooling2D(), (1, 2, 2))
    layer.forward(np.array([[[[1.0, 3.0], [3.0, 0.0]]]]))
    np.testing.assert_array_equal(layer.backward(np.array([[2.0]])), [[[[0, 2.0], [0, 0]]]])


@pytest.mark.parametrize("make, shape", [
    (lambda: Conv1D(3, 3, padding="causal", dilation_rate=2, name="conv"), (9, 2)),
    (lambda: MaxPooling1D(3, 2, "same"), (9, 2)),
    (lambda: AveragePooling1D(2), (9, 2)),
    (lambda: GlobalMaxPooling1D(keepdims=True), (9, 2)),
    (lambda: GlobalAveragePooling1D(), (9, 2)),
    (lambda: Conv2D(3, 3, padding="same", dilation_rate=2), (2, 7, 7)),
    (lambda: GlobalMaxPooling2D(), (2, 7, 7)),
])
def test_round_trips(make, shape, tmp_path):
    assert_round_trips([make()], shape, tmp_path)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_global_average_pooling1d_averages_the_unmasked_steps(data_format):
    shape = (6, 3) if data_format == "channels_last" else (3, 6)
    layer = built(GlobalAveragePooling1D(data_format), shape)
    assert layer.accepts_mask
    x = random((3, *shape), seed=9)
    mask = np.array([[1, 1, 1, 0, 0, 0], [1, 0, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0]], dtype=bool)
    steps = x if data_format == "channels_last" else x.transpose(0, 2, 1)
    y = layer.forward(x, mask=mask)
    np.testing.assert_allclose(y[0], steps[0, :3].mean(axis=0))
    np.testing.assert_allclose(y[1], steps[1, mask[1]].mean(axis=0))
    np.testing.assert_array_equal(y[2], 0.0)  # nothing unmasked: 0, not NaN
    r = random(y.shape, seed=10)
    layer.forward(x, mask=mask)
    dx = layer.backward(r.copy())
    numeric = numerical_gradient(lambda: float((layer.forward(x, mask=mask) * r).sum()), x)
    np.testing.assert_allclose(dx, numeric, atol=1e-8)
    with pytest.raises(ValueError, match=r"mask of shape \(3, 5\) does not fit the input"):
        layer.forward(x, mask=mask[:, :5])
    np.testing.assert_allclose(layer.forward(x), steps.mean(axis=1))  # no mask: every step
