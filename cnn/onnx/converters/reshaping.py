"""The image layers without weights (ZeroPadding2D, Cropping2D, UpSampling2D), global
pooling, and RepeatVector; images in either data format (the padded, cropped or pooled axes
are the layer's spatial axes)."""

from __future__ import annotations

from cnn.layers import (Cropping2D, GlobalAveragePooling1D, GlobalAveragePooling2D,
                        GlobalMaxPooling1D, GlobalMaxPooling2D, RepeatVector, UpSampling2D,
                        ZeroPadding2D)
from cnn.layers.data_format import CHANNELS_FIRST, spatial_axes
from cnn.onnx.builder import INT64_MAX
from cnn.onnx.converters.layout import in_channels_first
from cnn.onnx.registry import converter


@converter(ZeroPadding2D)
def convert_zero_padding(builder, layer, inputs, output):
    """``Pad`` (constant zeros) of the spatial axes: ``[begins of every axis, ends of every
    axis]``, e.g. ``[0, 0, top, left, 0, 0, bottom, right]`` channels first."""
    begins, ends = [0, 0, 0, 0], [0, 0, 0, 0]
    for axis, (before, after) in zip(spatial_axes(layer.data_format), layer.padding):
        begins[axis], ends[axis] = before, after
    builder.node("Pad", [inputs[0], builder.ints([*begins, *ends], "pads")], output,
                 mode="constant")


@converter(Cropping2D)
def convert_cropping(builder, layer, inputs, output):
    """``Slice`` of the spatial axes from ``top``/``left`` to ``-bottom``/``-right`` (to the
    end where nothing is cut there), which holds for any image size."""
    (top, bottom), (left, right) = layer.cropping
    ends = [-bottom if bottom else INT64_MAX, -right if right else INT64_MAX]
    builder.node("Slice", [inputs[0], builder.ints([top, left], "starts"),
                           builder.ints(ends, "ends"),
                           builder.ints(spatial_axes(layer.data_format), "axes")], output)


@converter(UpSampling2D)
def convert_upsampling(builder, layer, inputs, output):
    """``Resize`` by the integer factors: "nearest" as ``asymmetric`` coordinates with
    ``floor`` rounding (input pixel ``o // s``: each pixel repeated), "bilinear" as
    ``half_pixel`` linear (``(o + 0.5) / s - 0.5``, clamped at the edges), cnn's mapping."""
    scales = builder.initializer([1.0, 1.0, *map(float, layer.size)], "scales")
    if layer.interpolation == "nearest":
        attributes = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric",
                      "nearest_mode": "floor"}
    else:
        attributes = {"mode": "linear", "coordinate_transformation_mode": "half_pixel"}
    in_channels_first(builder, layer, inputs[0], output, lambda x, y: builder.node(
        "Resize", [x, "", scales], y, **attributes))


@converter(GlobalAveragePooling2D, GlobalAveragePooling1D, GlobalMaxPooling2D,
           GlobalMaxPooling1D)
def convert_global_pooling(builder, layer, inputs, output):
    """Channels-first 2-D average pooling: ``GlobalAveragePool`` -> (N, C, 1, 1), then
    ``Flatten`` unless ``keepdims`` (what torch.onnx writes); every other case:
    ``ReduceMean`` / ``ReduceMax`` over the spatial axes."""
    average = isinstance(layer, (GlobalAveragePooling2D, GlobalAveragePooling1D))
    if isinstance(layer, GlobalAveragePooling2D) and layer.data_format == CHANNELS_FIRST:
        if layer.keepdims:
            builder.node("GlobalAveragePool", inputs, output)
            return
        builder.node("Flatten", [builder.node("GlobalAveragePool", inputs)], output, axis=1)
        return
    builder.reduce("ReduceMean" if average else "ReduceMax", inputs[0],
                   spatial_axes(layer.data_format, layer.rank), output, keepdims=layer.keepdims)


@converter(RepeatVector)
def convert_repeat_vector(builder, layer, inputs, output):
    """(N, F) -> ``Unsqueeze`` (N, 1, F) -> ``Tile`` [1, n, 1] -> (N, n, F)."""
    steps = builder.node("Unsqueeze", [inputs[0], builder.ints([1], "time_axis")])
    builder.node("Tile", [steps, builder.ints([1, layer.n, 1], "repeats")], output)
