"""``ConvTranspose`` (Conv2DTranspose) and ``Resize`` (UpSampling2D) on (N, C, H, W) maps."""

from __future__ import annotations

import itertools

import numpy as np

from cnn import layers
from cnn.onnx.context import handles
from cnn.onnx.handlers.layers import float_weight, spec, window_attributes
from cnn.ops.shapes import transposed_axis


def keras_transpose_padding(ctx, node, sizes, window, strides, dilations, pads, extras):
    """The cnn (padding, output_padding) whose output sizes and crops are ONNX's, or an error.

    ONNX keeps ``(n - 1) * s + span - begin - end + output_padding`` cells of the full
    result from cell ``begin`` on; Keras's "valid" / "same" with an output padding (or
    none) fix both numbers per axis (``cnn.ops.shapes.transposed_axis``).
    """
    wanted = []
    for k, (n, size, s, d) in enumerate(zip(sizes, window, strides, dilations)):
        span = (size - 1) * d + 1
        out = (n - 1) * s + span - pads[k] - pads[k + 2] + extras[k]
        wanted.append((out, pads[k]))
    for mode in ("valid", "same"):
        choices = [None, *itertools.product(*(range(s) for s in strides))]
        for output_padding in choices:
            paddings = output_padding or (None, None)
            got = [transposed_axis(n, size, s, mode, p, d) for n, size, s, p, d in zip(
                sizes, window, strides, paddings, dilations)]
            if got == wanted:
                return mode, output_padding
    raise ctx.error(node, f"pads {list(pads)} with output_padding {list(extras)} give no "
                          "Keras 'valid' or 'same' transposed convolution for this input")


@handles("ConvTranspose")
def conv_transpose(ctx, node, inputs):
    """``Conv2DTranspose``: ONNX's weight (C, F, kh, kw) is cnn's kernel as it is."""
    info = ctx.take(node, inputs[0])
    kernel = float_weight(ctx, node, inputs[1], "the weight")
    if kernel.ndim != 4 or kernel.shape[0] != info.shape[0]:
        raise ctx.error(node, f"only 2-D transposed convolutions whose weight fits the "
                              f"{info.shape[0]} input channels are supported (weight "
                              f"{kernel.shape})")
    attributes, window, strides, dilations = window_attributes(ctx, node, info,
                                                               kernel.shape[2:], dilated=True)
    if attributes.get("group", 1) != 1 or "output_shape" in attributes or attributes.get(
            "auto_pad", "NOTSET") != "NOTSET":
        raise ctx.error(node, "groups, output_shape and auto_pad are not supported")
    weights = {"kernel": kernel}
    if len(inputs) > 2 and inputs[2] is not None:
        weights["bias"] = float_weight(ctx, node, inputs[2], "the bias")
    padding, output_padding = keras_transpose_padding(
        ctx, node, info.shape[1:], window, strides, dilations,
        list(attributes.get("pads", [0, 0, 0, 0])), list(attributes.get("output_padding", [0, 0])))
    sizes = [transposed_axis(n, k, s, padding, p, d)[0] for n, k, s, p, d in zip(
        info.shape[1:], window, strides, output_padding or (None, None), dilations)]
    layer = spec(layers.Conv2DTranspose, node, weights, filters=kernel.shape[1],
                 kernel_size=window, strides=strides, padding=padding,
                 output_padding=output_padding, dilation_rate=dilations,
                 data_format="channels_first", use_bias="bias" in weights)
    return [ctx.assembly.add(layer, (kernel.shape[1], *sizes))]


NEAREST_MODES = {"asymmetric": ("floor",),
                 "half_pixel": ("round_prefer_floor", "round_prefer_ceil"),
                 "pytorch_half_pixel": ("round_prefer_floor", "round_prefer_ceil")}


@handles("Resize")
def resize(ctx, node, inputs):
    """Integer ``scales`` [1, 1, sh, sw]: ``UpSampling2D``. "nearest" with asymmetric
    coordinates and floor rounding (or half-pixel ones, which pick the same pixels at
    integer factors); "linear" with half-pixel coordinates is "bilinear"."""
    info = ctx.take(node, inputs[0])
    attributes = ctx.attributes(node)
    if len(info.shape) != 3 or len(inputs) < 3 or inputs[2] is None or (
            len(inputs) > 3 and inputs[3] is not None):
        raise ctx.error(node, "only Resize of (N, C, H, W) maps by constant scales is supported")
    scales = ctx.const(node, inputs[2], "the scales", np.float64).reshape(-1)
    factors = [int(round(s)) for s in scales]
    if len(scales) != 4 or factors[:2] != [1, 1] or min(factors) < 1 or not np.allclose(
            scales, factors):
        raise ctx.error(node, f"scales {scales.tolist()}: only integer factors of H and W are "
                              "supported")
    mode = attributes.get("mode", "nearest")
    transform = attributes.get("coordinate_transformation_mode", "half_pixel")
    if mode == "nearest" and attributes.get("nearest_mode", "round_prefer_floor") in \
            NEAREST_MODES.get(transform, ()):
        interpolation = "nearest"
    elif mode == "linear" and transform in ("half_pixel", "pytorch_half_pixel"):
        interpolation = "bilinear"
    else:
        raise ctx.error(node, f"mode {mode!r} with coordinate_transformation_mode "
                              f"{transform!r} is not cnn's nearest or bilinear upsampling")
    layer = spec(layers.UpSampling2D, node, size=tuple(factors[2:]), interpolation=interpolation,
                 data_format="channels_first")
    shape = (info.shape[0], info.shape[1] * factors[2], info.shape[2] * factors[3])
    return [ctx.assembly.add(layer, shape)]
