"""DepthwiseConv2D, SeparableConv2D, Conv2DTranspose, UpSampling2D and Cropping2D: the loop
references, float64 gradients over their options, PyTorch, Keras's sizes, errors, saving."""

import numpy as np
import pytest

from cnn import regularizers
from cnn.layers import (Conv2DTranspose, Cropping2D, DepthwiseConv2D, SeparableConv2D,
                        UpSampling2D)
from cnn.ops.conv_transpose import conv2d_transpose_backward, conv2d_transpose_forward
from cnn.ops.depthwise import depthwise_conv2d_backward, depthwise_conv2d_forward
from cnn.ops.reference_conv import (conv2d_transpose_reference,
                                    grouped_conv2d_backward_reference,
                                    grouped_conv2d_reference, upsample_reference)
from cnn.ops.resize import upsample_backward, upsample_forward
from cnn.ops.shapes import transposed_axis
from cnn.utils.gradient_check import numerical_gradient
from helpers import check_layer_gradients
from window_helpers import assert_matches_torch, assert_round_trips, built, random

# (C, M, (H, W), kernel, strides, padding, dilation)
DEPTHWISE_CASES = [
    (3, 1, (7, 8), 3, 1, "valid", 1),
    (2, 2, (7, 8), (3, 2), 2, "same", 1),
    (3, 3, (8, 8), 2, 1, "same", 2),
    (1, 2, (9, 7), 3, (2, 1), ((1, 0), (2, 1)), (1, 2)),
]


def _torch_pads(layer):
    (top, bottom), (left, right) = layer.pads
    return (left, right, top, bottom)


@pytest.mark.parametrize("case", DEPTHWISE_CASES, ids=str)
def test_depthwise_kernel_matches_the_grouped_loop_reference(case):
    c, m, hw, kernel, strides, padding, dilation = case
    layer = built(DepthwiseConv2D(kernel, strides, padding, m, dilation_rate=dilation), (c, *hw))
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, c, *hw)), layer.params["depthwise_kernel"], \
        rng.standard_normal(c * m)
    y, cache = depthwise_conv2d_forward(x, w, b, layer.strides, layer.pads, layer.dilation_rate)
    want = grouped_conv2d_reference(x, w, b, layer.strides, layer.pads, layer.dilation_rate, c)
    np.testing.assert_allclose(y, want, atol=1e-10)
    dy = rng.standard_normal(y.shape)
    got = depthwise_conv2d_backward(dy, cache)
    want = grouped_conv2d_backward_reference(dy, x, w, layer.strides, layer.pads,
                                             layer.dilation_rate, c)
    for a, b_ in zip(got, want):
        np.testing.assert_allclose(a, b_, atol=1e-10)


@pytest.mark.parametrize("case", DEPTHWISE_CASES, ids=str)
@pytest.mark.parametrize("data_format", ["channels_first", "channels_last"])
def test_depthwise_gradients(case, data_format):
    c, m, hw, kernel, strides, padding, dilation = case
    shape = (c, *hw) if data_format == "channels_first" else (*hw, c)
    layer = built(DepthwiseConv2D(kernel, strides, padding, m, data_format, dilation,
                                  activation="tanh"), shape)
    check_layer_gradients(layer, random((2, *shape), seed=1))


@pytest.mark.parametrize("case", DEPTHWISE_CASES, ids=str)
def test_depthwise_matches_torch_groups(case):
    c, m, hw, kernel, strides, padding, dilation = case
    layer = built(DepthwiseConv2D(kernel, strides, padding, m, dilation_rate=dilation), (c, *hw))
    assert layer.output_shape[1] == c * m

    def torch_depthwise(x, p):
        import torch.nn.functional as F
        return F.conv2d(F.pad(x, _torch_pads(layer)), p["depthwise_kernel"], p["bias"],
                        stride=layer.strides, dilation=layer.dilation_rate, groups=c)

    assert_matches_torch(layer, random((2, c, *hw), seed=2), torch_depthwise)


@pytest.mark.parametrize("case", DEPTHWISE_CASES, ids=str)
def test_separable_gradients_and_torch(case):
    c, m, hw, kernel, strides, padding, dilation = case
    layer = built(SeparableConv2D(3, kernel, strides, padding, dilation_rate=dilation,
                                  depth_multiplier=m, activation="tanh"), (c, *hw))
    x = random((2, c, *hw), seed=3)
    check_layer_gradients(layer, x)
    assert layer.params["pointwise_kernel"].shape == (3, c * m, 1, 1)

    def torch_separable(x, p):
        import torch
        import torch.nn.functional as F
        middle = F.conv2d(F.pad(x, _torch_pads(layer)), p["depthwise_kernel"],
                          stride=layer.strides, dilation=layer.dilation_rate, groups=c)
        return torch.tanh(F.conv2d(middle, p["pointwise_kernel"], p["bias"]))

    assert_matches_torch(layer, x, torch_separable)


# Keras's Conv2DTranspose output sizes (compute_conv_transpose_output_shape):
# (in, kernel, stride, padding, output_padding, dilation) -> out
KERAS_TRANSPOSE_SIZES = [
    (4, 3, 2, "valid", None, 1, 9), (4, 3, 2, "same", None, 1, 8), (4, 3, 2, "same", 1, 1, 8),
    (4, 3, 2, "valid", 1, 1, 10), (4, 2, 3, "valid", None, 1, 12), (4, 2, 3, "same", None, 1, 12),
    (5, 4, 1, "same", None, 1, 5), (5, 3, 1, "valid", None, 2, 9), (3, 4, 2, "same", 1, 1, 5),
]


@pytest.mark.parametrize("n, k, s, padding, output_padding, d, out", KERAS_TRANSPOSE_SIZES)
def test_transposed_sizes_are_keras(n, k, s, padding, output_padding, d, out):
    assert transposed_axis(n, k, s, padding, output_padding, d)[0] == out


def test_same_transposed_conv_inverts_a_same_conv_of_the_same_geometry():
    # A "same" stride-1 convolution pads (1, 2) for a 4-tap kernel; its adjoint crops 1.
    assert transposed_axis(5, 4, 1, "same") == (5, 1)
    assert transposed_axis(4, 3, 2, "same") == (8, 0)  # TensorFlow: no cut before


# (C, F, (H, W), kernel, strides, padding, output_padding, dilation)
TRANSPOSE_CASES = [
    (2, 3, (4, 5), 3, 1, "valid", None, 1),
    (2, 2, (4, 5), 3, 2, "valid", None, 1),
    (2, 2, (4, 5), 3, 2, "same", None, 1),
    (1, 2, (3, 4), (3, 2), 2, "same", (1, 1), 1),
    (2, 1, (4, 3), 2, 3, "valid", None, 1),  # kernel shorter than the stride: zero gaps
    (2, 2, (3, 3), 4, (2, 1), "same", None, 1),
    (2, 2, (4, 4), 3, 1, "same", None, 2),
    (1, 2, (3, 4), 3, 2, "valid", 1, (1, 2)),
]


def _transpose_layer(case, data_format="channels_first"):
    c, f, hw, kernel, strides, padding, output_padding, dilation = case
    shape = (c, *hw) if data_format == "channels_first" else (*hw, c)
    layer = Conv2DTranspose(f, kernel, strides, padding, output_padding, data_format, dilation,
                            activation="tanh")
    return built(layer, shape), shape


@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=str)
def test_transposed_kernel_matches_the_scatter_reference_and_is_the_adjoint(case):
    layer, shape = _transpose_layer(case)
    rng = np.random.default_rng(4)
    x, w, b = rng.standard_normal((2, *shape)), layer.params["kernel"], rng.standard_normal(
        layer.filters)
    y, cache = conv2d_transpose_forward(x, w, b, layer.strides, layer.crop, layer.out_hw,
                                        layer.dilation_rate)
    np.testing.assert_allclose(y, conv2d_transpose_reference(
        x, w, b, layer.strides, layer.crop, layer.out_hw, layer.dilation_rate), atol=1e-10)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = conv2d_transpose_backward(dy, cache)

    def objective():
        return float((conv2d_transpose_reference(x, w, b, layer.strides, layer.crop,
                                                 layer.out_hw, layer.dilation_rate) * dy).sum())

    np.testing.assert_allclose(dx, numerical_gradient(objective, x), atol=1e-7)
    np.testing.assert_allclose(dw, numerical_gradient(objective, w), atol=1e-7)
    np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3)), atol=1e-10)


@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=str)
@pytest.mark.parametrize("data_format", ["channels_first", "channels_last"])
def test_transposed_gradients(case, data_format):
    layer, shape = _transpose_layer(case, data_format)
    check_layer_gradients(layer, random((2, *shape), seed=5))


@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=str)
def test_transposed_matches_torch_conv_transpose(case):
    layer, shape = _transpose_layer(case)
    full_hw = [(n - 1) * s + (k - 1) * d + 1 for n, k, s, d in zip(
        shape[1:], layer.kernel_size, layer.strides, layer.dilation_rate)]
    extra = [max(0, c + o - full) for c, o, full in zip(layer.crop, layer.out_hw, full_hw)]

    def torch_transpose(x, p):
        import torch
        import torch.nn.functional as F
        full = F.conv_transpose2d(x, p["kernel"], stride=layer.strides,
                                  dilation=layer.dilation_rate)
        full = F.pad(full, (0, extra[1], 0, extra[0]))
        (top, left), (h, w) = layer.crop, layer.out_hw
        return torch.tanh(full[:, :, top:top + h, left:left + w] + p["bias"][:, None, None])

    assert_matches_torch(layer, random((2, *shape), seed=6), torch_transpose)


def test_transposed_conv_with_torch_padding_where_keras_and_torch_agree():
    # Stride 1, "same", odd kernel: Keras's crop is PyTorch's padding=k // 2.
    layer = built(Conv2DTranspose(2, 3, 1, "same"), (2, 5, 6))
    assert layer.crop == (1, 1) and layer.output_shape == (None, 2, 5, 6)

    def torch_transpose(x, p):
        import torch.nn.functional as F
        return F.conv_transpose2d(x, p["kernel"], p["bias"], padding=1)

    assert_matches_torch(layer, random((2, 2, 5, 6)), torch_transpose)


def test_transposed_conv_refuses_bad_arguments():
    with pytest.raises(ValueError, match="padding must be 'valid' or 'same'"):
        Conv2DTranspose(2, 3, padding="full")
    with pytest.raises(ValueError, match=r"output_padding \(2, 2\) must be smaller than the "
                                         r"strides \(2, 2\)"):
        Conv2DTranspose(2, 3, 2, output_padding=2)
    with pytest.raises(ValueError, match=r"expects input of shape|needs input of shape"):
        Conv2DTranspose(2, 3).build((4, 4))


UPSAMPLING = [((2, 2), "nearest", (3, 4)), ((3, 2), "nearest", (2, 3)),
              ((2, 2), "bilinear", (3, 4)), ((3, 2), "bilinear", (4, 3)), (4, "bilinear", (2, 2))]


@pytest.mark.parametrize("size, interpolation, hw", UPSAMPLING)
def test_upsampling_kernel_matches_the_loop_reference(size, interpolation, hw):
    x = random((2, 3, *hw))
    layer = built(UpSampling2D(size, interpolation=interpolation), (3, *hw))
    y = upsample_forward(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), layer.size, interpolation)
    want = upsample_reference(x, layer.size, interpolation)
    np.testing.assert_allclose(y.transpose(0, 3, 1, 2), want, atol=1e-12)
    dy = random(y.shape, seed=1)
    dx = upsample_backward(dy, hw, layer.size, interpolation)

    def objective():
        return float((upsample_reference(x, layer.size, interpolation).transpose(0, 2, 3, 1)
                      * dy).sum())

    np.testing.assert_allclose(dx.transpose(0, 3, 1, 2), numerical_gradient(objective, x),
                               atol=1e-7)


@pytest.mark.parametrize("size, interpolation, hw", UPSAMPLING)
def test_upsampling_gradients_and_torch(size, interpolation, hw):
    layer = built(UpSampling2D(size, interpolation=interpolation), (2, *hw))
    x = random((2, 2, *hw), seed=2)
    check_layer_gradients(layer, x)

    def torch_upsample(x, _):
        import torch.nn.functional as F
        options = {} if interpolation == "nearest" else {"align_corners": False}
        return F.interpolate(x, scale_factor=layer.size, mode=interpolation, **options)

    assert_matches_torch(layer, x, torch_upsample)


def test_upsampling_refuses_unknown_interpolations():
    with pytest.raises(ValueError, match="interpolation must be one of nearest, bilinear"):
        UpSampling2D(2, interpolation="bicubic")


@pytest.mark.parametrize("cropping, expected", [(1, ((1, 1), (1, 1))), ((2, 0), ((2, 2), (0, 0))),
                                                (((1, 0), (0, 2)), ((1, 0), (0, 2)))])
def test_cropping_cuts_the_edges(cropping, expected):
    layer = built(Cropping2D(cropping), (2, 6, 5))
    x = random((2, 2, 6, 5))
    (top, bottom), (left, right) = expected
    np.testing.assert_array_equal(layer.forward(x), x[:, :, top:6 - bottom, left:5 - right])
    check_layer_gradients(layer, x)

    def torch_crop(x, _):
        return x[:, :, top:6 - bottom, left:5 - right]

    assert_matches_torch(layer, x, torch_crop)


def test_cropping_everything_is_refused_with_both_shapes():
    with pytest.raises(ValueError, match=r'"crop" \(Cropping2D\): cropping \(\(2, 2\), \(0, 0\)\) '
                                         r"leaves nothing of the input \(None, 2, 4, 5\)"):
        Cropping2D((2, 0), name="crop").build((2, 4, 5))


@pytest.mark.parametrize("make, shape", [
    (lambda: DepthwiseConv2D(3, 2, "same", 2, dilation_rate=1, depthwise_regularizer="l2"),
     (2, 7, 7)),
    (lambda: SeparableConv2D(3, 3, padding="same", depth_multiplier=2,
                             pointwise_regularizer="l1"), (2, 6, 6)),
    (lambda: Conv2DTranspose(2, 3, 2, "same", output_padding=1, activation="relu"), (2, 3, 3)),
    (lambda: Conv2DTranspose(2, 3, 2, data_format="channels_last", dilation_rate=1), (3, 3, 2)),
    (lambda: UpSampling2D(2, interpolation="bilinear"), (2, 3, 3)),
    (lambda: Cropping2D(((1, 0), (0, 1))), (2, 4, 4)),
])
def test_round_trips(make, shape, tmp_path):
    assert_round_trips([make()], shape, tmp_path)


def test_the_regularizers_reach_the_kernels_they_name():
    layer = built(SeparableConv2D(2, 3, depthwise_regularizer="l2", pointwise_regularizer="l1",
                                  bias_regularizer="l2", bias_initializer="ones"), (2, 5, 5))
    keys = [key for key, _ in regularizers.regularized_params(layer)]
    assert keys == ["depthwise_kernel", "pointwise_kernel", "bias"]
    depthwise = built(DepthwiseConv2D(3, depthwise_regularizer="l1"), (2, 5, 5))
    assert [key for key, _ in regularizers.regularized_params(depthwise)] == ["depthwise_kernel"]
    assert regularizers.penalty(depthwise) == pytest.approx(
        0.01 * np.abs(depthwise.params["depthwise_kernel"]).sum())
