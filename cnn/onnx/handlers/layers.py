"""The ops that become layers: Conv, pooling, Gemm / MatMul (+ Add), BatchNormalization,
activations, Flatten, Reshape, Pad, Dropout, Identity.

An activation op right after a layer with a linear activation (Conv, Gemm, MatMul) that
nothing else reads becomes that layer's activation; an ``Add`` of a constant after a
bias-free MatMul becomes its bias. Everything else is one layer per op.
"""

from __future__ import annotations

import math

import numpy as np

from cnn import layers
from cnn.onnx.assembly import LayerSpec
from cnn.onnx.context import handles
from cnn.onnx.handlers.merge import MERGE_LAYERS, merge_layer
from cnn.onnx.handlers.plumbing import entries_of, fold_into_pooling
from cnn.onnx.values import BATCH, Const, Data
from cnn.ops.shapes import effective_kernel, window_output_shape

_ACTIVATED = ("Conv2D", "Conv1D", "DepthwiseConv2D", "Conv2DTranspose", "Dense")


def spec(cls, node, weights=None, **kwargs) -> LayerSpec:
    return LayerSpec(cls, kwargs, weights or {}, node.name or node.op_type)


def float_weight(ctx, node, value, what) -> np.ndarray:
    array = ctx.const(node, value, what)
    if not np.all(np.isfinite(array)):
        raise ctx.error(node, f"{what} holds NaN or infinite values")
    return array.astype(np.float32)


# -- convolution and pooling ------------------------------------------------------------------

def window_padding(ctx, node, info, window, strides, attributes):
    """cnn's padding for an ONNX window op: "valid", "same" when the pads are Keras's,
    else explicit ((top, bottom), (left, right))."""
    auto_pad = attributes.get("auto_pad", "NOTSET")
    hw = info.shape[1:]
    if auto_pad == "VALID":
        return "valid"
    if auto_pad == "SAME_UPPER":
        return "same"
    if auto_pad == "SAME_LOWER":
        _, ((top, bottom), (left, right)) = window_output_shape(hw, window, strides, "same")
        return ((bottom, top), (right, left))
    if auto_pad != "NOTSET":
        raise ctx.error(node, f"auto_pad {auto_pad!r} is not supported")
    top, left, bottom, right = attributes.get("pads", [0, 0, 0, 0])
    explicit = ((top, bottom), (left, right))
    for mode in ("valid", "same"):
        if window_output_shape(hw, window, strides, mode)[1] == explicit:
            return mode
    return explicit


def window_attributes(ctx, node, info, window=None, dilated=False):
    """The attributes, 2-D window and strides of a window op on (N, C, H, W) maps (and the
    dilations, with ``dilated``; otherwise dilated windows are refused)."""
    attributes = ctx.attributes(node)
    if len(info.shape) != 3:
        raise ctx.error(node, f"needs (N, C, H, W) input, got (N, {info.shape})")
    window = tuple(attributes.get("kernel_shape", window))
    if len(window) != 2:
        raise ctx.error(node, f"only 2-D windows are supported, got kernel_shape {window}")
    strides = tuple(attributes.get("strides", (1, 1)))
    dilations = tuple(attributes.get("dilations", (1, 1)))
    if any(d != 1 for d in dilations) and not dilated:
        raise ctx.error(node, "dilated windows are not supported")
    if attributes.get("ceil_mode", 0):
        raise ctx.error(node, "ceil_mode=1 is not supported (cnn's windows round down)")
    if dilated:
        return attributes, window, strides, dilations
    return attributes, window, strides


@handles("Conv")
def conv(ctx, node, inputs):
    """2-D: ``Conv2D`` (dilations included), or ``DepthwiseConv2D`` for one group per input
    channel; 1-D: ``Conv1D`` (channels first)."""
    info = ctx.take(node, inputs[0])
    kernel = float_weight(ctx, node, inputs[1], "the weight")
    weights = {"kernel": kernel}
    if len(inputs) > 2 and inputs[2] is not None:
        weights["bias"] = float_weight(ctx, node, inputs[2], "the bias")
    if kernel.ndim == 3:
        return [conv1d(ctx, node, info, weights)]
    if kernel.ndim != 4:
        raise ctx.error(node, f"only 1-D and 2-D convolutions are supported (weight "
                              f"{kernel.shape})")
    attributes, window, strides, dilations = window_attributes(ctx, node, info,
                                                               kernel.shape[2:], dilated=True)
    channels, group = info.shape[0], attributes.get("group", 1)
    depthwise = group != 1
    if depthwise and not (group == channels and kernel.shape[1] == 1
                          and kernel.shape[0] % channels == 0):
        raise ctx.error(node, f"grouped convolutions are supported only with one group per "
                              f"input channel (depthwise), got group {group} for {channels} "
                              f"channels and weight {kernel.shape}")
    if not depthwise and kernel.shape[1] != channels:
        raise ctx.error(node, f"weight {kernel.shape} does not fit {channels} channels")
    span = effective_kernel(window, dilations)
    padding = window_padding(ctx, node, info, span, strides, attributes)
    (out_h, out_w), _ = window_output_shape(info.shape[1:], span, strides, padding)
    options = dict(kernel_size=window, strides=strides, padding=padding, dilation_rate=dilations,
                   data_format="channels_first", use_bias="bias" in weights)
    if depthwise:
        weights["depthwise_kernel"] = weights.pop("kernel")
        layer = spec(layers.DepthwiseConv2D, node, weights,
                     depth_multiplier=kernel.shape[0] // channels, **options)
    else:
        layer = spec(layers.Conv2D, node, weights, filters=kernel.shape[0], **options)
    return [ctx.assembly.add(layer, (kernel.shape[0], out_h, out_w))]


def conv1d(ctx, node, info, weights):
    """A 1-D ``Conv`` on (N, C, L): ``Conv1D(data_format="channels_first")``, its pads
    "valid", Keras's "same" or "causal" (all at the start)."""
    attributes = ctx.attributes(node)
    kernel = weights["kernel"]
    if len(info.shape) != 2 or kernel.shape[1] != info.shape[0]:
        raise ctx.error(node, f"weight {kernel.shape} does not fit the input (N, {info.shape})")
    if attributes.get("group", 1) != 1 or attributes.get("auto_pad", "NOTSET") != "NOTSET":
        raise ctx.error(node, "grouped 1-D convolutions and auto_pad are not supported")
    (size,), (stride,) = kernel.shape[2:], attributes.get("strides", (1,))
    (dilation,) = attributes.get("dilations", (1,))
    span = (size - 1) * dilation + 1
    pads = tuple(attributes.get("pads", (0, 0)))
    causal = ((0, 0), (span - 1, 0))
    candidates = [("valid", "valid"), ("same", "same"), ("causal", causal)]
    for mode, lifted in candidates:
        out, amounts = window_output_shape((1, info.shape[1]), (1, span), (1, stride), lifted)
        if tuple(amounts[1]) == pads:
            layer = spec(layers.Conv1D, node, weights, filters=kernel.shape[0],
                         kernel_size=size, strides=stride, padding=mode,
                         dilation_rate=dilation, data_format="channels_first",
                         use_bias="bias" in weights)
            return ctx.assembly.add(layer, (kernel.shape[0], out[1]))
    raise ctx.error(node, f"pads {list(pads)} are neither 'valid', Keras's 'same' nor "
                          "'causal' for this input; cnn's Conv1D takes only those")


def pool1d(ctx, node, info):
    """``MaxPool`` / ``AveragePool`` over the steps of (N, C, L): the 1-D pooling layers
    (channels first), "valid" or Keras's "same" pads (padded cells never counted)."""
    attributes = ctx.attributes(node)
    (size,) = attributes["kernel_shape"]
    (stride,) = attributes.get("strides", (1,))
    if any(d != 1 for d in attributes.get("dilations", (1,))) or attributes.get(
            "ceil_mode", 0) or attributes.get("auto_pad", "NOTSET") != "NOTSET":
        raise ctx.error(node, "dilated windows, ceil_mode and auto_pad are not supported")
    if (node.op_type == "AveragePool" and attributes.get("count_include_pad", 0)
            and any(attributes.get("pads", (0, 0)))):
        raise ctx.error(node, "1-D average pooling that counts its padding is not supported")
    pads = tuple(attributes.get("pads", (0, 0)))
    for mode in ("valid", "same"):
        out, amounts = window_output_shape((1, info.shape[1]), (1, size), (1, stride), mode)
        if tuple(amounts[1]) == pads:
            cls = layers.MaxPooling1D if node.op_type == "MaxPool" else layers.AveragePooling1D
            layer = spec(cls, node, pool_size=size, strides=stride, padding=mode,
                         data_format="channels_first")
            return ctx.assembly.add(layer, (info.shape[0], out[1]))
    raise ctx.error(node, f"pads {list(pads)} are neither 'valid' nor Keras's 'same' for "
                          "this input; cnn's pooling takes only those")


@handles("MaxPool", "AveragePool")
def pool(ctx, node, inputs):
    info = ctx.take(node, inputs[0])
    if len(info.shape) == 2 and len(ctx.attributes(node).get("kernel_shape", ())) == 1:
        if len(node.output) > 1 and node.output[1]:
            raise ctx.error(node, "the indices output of MaxPool is not supported")
        return [pool1d(ctx, node, info)]
    attributes, window, strides = window_attributes(ctx, node, info)
    if len(node.output) > 1 and node.output[1]:
        raise ctx.error(node, "the indices output of MaxPool is not supported")
    if attributes.get("storage_order", 0):
        raise ctx.error(node, "storage_order=1 is not supported")
    padding = window_padding(ctx, node, info, window, strides, attributes)
    data = inputs[0]
    shape = info.shape
    counts_padding = attributes.get("count_include_pad", 0)
    if node.op_type == "AveragePool" and counts_padding and padding != "valid":
        # Zeros that count in the average: pad with zeros first, then average without padding.
        _, amounts = window_output_shape(shape[1:], window, strides, padding)
        (top, bottom), (left, right) = amounts
        shape = (shape[0], shape[1] + top + bottom, shape[2] + left + right)
        padding_spec = spec(layers.ZeroPadding2D, node, padding=amounts)
        padding_spec.auto_name = True
        data = ctx.assembly.add(padding_spec, shape)
        ctx.assembly.take(data, node)
        padding = "valid"
    if not isinstance(padding, str):
        raise ctx.error(node, f"pads {attributes.get('pads')} are neither 'valid' nor Keras's "
                              "'same' for this input; cnn's pooling takes only those")
    cls = layers.MaxPooling2D if node.op_type == "MaxPool" else layers.AveragePooling2D
    (out_h, out_w), _ = window_output_shape(shape[1:], window, strides, padding)
    layer = spec(cls, node, pool_size=window, strides=strides, padding=padding)
    return [ctx.assembly.add(layer, (shape[0], out_h, out_w))]


@handles("GlobalAveragePool", "GlobalMaxPool")
def global_pool(ctx, node, inputs):
    info = ctx.take(node, inputs[0])
    if len(info.shape) != 3:
        raise ctx.error(node, f"needs (N, C, H, W) input, got (N, {info.shape})")
    if node.op_type == "GlobalAveragePool":
        layer = spec(layers.GlobalAveragePooling2D, node, keepdims=True)
    else:
        layer = spec(layers.GlobalMaxPooling2D, node, keepdims=True,
                     data_format="channels_first")
    return [ctx.assembly.add(layer, (info.shape[0], 1, 1))]


# (sample rank, reduced axes) -> (1-D or 2-D, data format)
GLOBAL_POOLING_AXES = {(2, (2,)): (1, "channels_first"), (2, (1,)): (1, "channels_last"),
                       (3, (2, 3)): (2, "channels_first"), (3, (1, 2)): (2, "channels_last")}
GLOBAL_POOLING = {("ReduceMean", 1): layers.GlobalAveragePooling1D,
                  ("ReduceMean", 2): layers.GlobalAveragePooling2D,
                  ("ReduceMax", 1): layers.GlobalMaxPooling1D,
                  ("ReduceMax", 2): layers.GlobalMaxPooling2D}


@handles("ReduceMean", "ReduceMax")
def reduce_spatial(ctx, node, inputs):
    """The mean or maximum over the spatial axes of (N, C, H, W) / (N, H, W, C) maps or
    (N, C, L) / (N, L, C) sequences: global pooling in that data format."""
    attributes = ctx.attributes(node)
    axes = attributes.get("axes")
    if axes is None and len(inputs) > 1 and inputs[1] is not None:
        axes = ctx.ints(node, inputs[1], "the axes")
    info = ctx.take(node, inputs[0])
    rank = len(info.shape) + 1
    key = (len(info.shape), tuple(sorted(a % rank for a in axes or ())))
    if key not in GLOBAL_POOLING_AXES:
        raise ctx.error(node, f"only the {node.op_type} over the spatial axes of images or "
                              f"sequences (global pooling) is supported, got axes {axes} of "
                              f"(N, {info.shape})")
    spatial_rank, data_format = GLOBAL_POOLING_AXES[key]
    keepdims = bool(attributes.get("keepdims", 1))
    options = {"keepdims": keepdims}
    if (node.op_type, spatial_rank, data_format) != ("ReduceMean", 2, "channels_first"):
        options["data_format"] = data_format
    layer = spec(GLOBAL_POOLING[(node.op_type, spatial_rank)], node, **options)
    channels = info.shape[0] if data_format == "channels_first" else info.shape[-1]
    kept = [1 if k + 1 in key[1] else size for k, size in enumerate(info.shape)]
    return [ctx.assembly.add(layer, tuple(kept) if keepdims else (channels,))]


# -- dense --------------------------------------------------------------------------------

@handles("Gemm")
def gemm(ctx, node, inputs):
    attributes = ctx.attributes(node)
    info = ctx.take(node, inputs[0])
    if attributes.get("transA", 0) or len(info.shape) != 1:
        raise ctx.error(node, "only Gemm(x, W, b) of (N, F) activations is supported")
    matrix = float_weight(ctx, node, inputs[1], "B")
    kernel = (matrix if attributes.get("transB", 0) else matrix.T) * attributes.get("alpha", 1.0)
    if kernel.ndim != 2 or kernel.shape[1] != info.shape[0]:
        raise ctx.error(node, f"B {matrix.shape} does not fit {info.shape[0]} features")
    weights = {"kernel": kernel.astype(np.float32)}
    if len(inputs) > 2 and inputs[2] is not None:
        bias = float_weight(ctx, node, inputs[2], "C") * attributes.get("beta", 1.0)
        weights["bias"] = units_vector(ctx, node, bias, kernel.shape[0])
    layer = spec(layers.Dense, node, weights, units=kernel.shape[0], use_bias="bias" in weights)
    return [ctx.assembly.add(layer, (kernel.shape[0],))]


def units_vector(ctx, node, bias, units):
    """A bias of shape (), (U,) or (1, U) as (U,)."""
    if bias.size not in (1, units) or (bias.ndim == 2 and bias.shape[0] != 1) or bias.ndim > 2:
        raise ctx.error(node, f"bias of shape {bias.shape} does not fit {units} units")
    return np.broadcast_to(bias.reshape(-1), (units,)).astype(np.float32)


@handles("MatMul")
def matmul(ctx, node, inputs):
    if not isinstance(inputs[0], Data):
        raise ctx.error(node, "only MatMul(activation, constant matrix) is supported")
    info = ctx.take(node, inputs[0])
    matrix = float_weight(ctx, node, inputs[1], "the matrix")
    if matrix.ndim != 2 or matrix.shape[0] != info.shape[-1]:
        raise ctx.error(node, f"matrix {matrix.shape} does not fit the last axis of (N, "
                              f"{info.shape})")
    layer = spec(layers.Dense, node, {"kernel": matrix.T.copy()}, units=matrix.shape[1],
                 use_bias=False)
    return [ctx.assembly.add(layer, (*info.shape[:-1], matrix.shape[1]))]


@handles("Add", "Sub", "Mul", "Div")
def arithmetic(ctx, node, inputs):
    """Constants: folded. ``Add(activation, constant)`` after a bias-free Dense: its bias.
    Two activations: a merge layer."""
    a, b = inputs
    if not isinstance(a, Data) and not isinstance(b, Data):
        x, y = ctx.const(node, a, "A"), ctx.const(node, b, "B")
        ctx.check_size(node, np.broadcast_shapes(x.shape, y.shape))
        operation = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply}.get(node.op_type)
        if operation is None:
            both_ints = x.dtype.kind == "i" and y.dtype.kind == "i"
            operation = np.floor_divide if both_ints else np.divide
        return [Const(operation(x, y))]
    if isinstance(a, Data) and isinstance(b, Data):
        if node.op_type == "Div":
            raise ctx.error(node, "Div of two activations has no cnn layer")
        return merge_layer(ctx, node, inputs, MERGE_LAYERS[node.op_type])
    data, constant, name = (a, b, node.input[0]) if isinstance(a, Data) else (b, a, node.input[1])
    target = ctx.assembly.last_spec(data, ctx.consumers.get(name, 0))
    if (node.op_type == "Add" and target is not None and target.cls is layers.Dense
            and not target.kwargs["use_bias"] and is_linear(target)):
        units = target.kwargs["units"]
        target.weights["bias"] = units_vector(
            ctx, node, float_weight(ctx, node, constant, "the bias"), units)
        target.kwargs["use_bias"] = True
        return [data]
    raise ctx.error(node, f"{node.op_type} of an activation and a constant is supported only "
                          "as the bias of a MatMul (a Dense layer)")


def is_linear(target: LayerSpec) -> bool:
    return target.kwargs.get("activation") in (None, "linear")


# -- normalization --------------------------------------------------------------------------

@handles("BatchNormalization")
def batch_normalization(ctx, node, inputs):
    """Also on a transposed view of an activation: the channels are then the cnn axis that
    the view puts at position 1, and the output is seen through the same view."""
    data = inputs[0]
    if not isinstance(data, Data) or None in data.axes or data.reversed_axis is not None:
        ctx.take(node, data)  # raises the error for what cannot be normalized
    info = ctx.assembly.claim(data, node)
    axis = data.axes[1]
    if axis == 0:
        raise ctx.error(node, "normalizes over the batch axis")
    attributes = ctx.attributes(node)
    if attributes.get("training_mode", 0) or any(node.output[1:]):
        raise ctx.error(node, "BatchNormalization in training mode is not supported")
    names = ("gamma", "beta", "moving_mean", "moving_variance")
    weights = {key: float_weight(ctx, node, value, key) for key, value in zip(names, inputs[1:5])}
    channels = info.shape[axis - 1]
    if any(w.shape != (channels,) for w in weights.values()):
        raise ctx.error(node, f"statistics must have shape ({channels},)")
    layer = spec(layers.BatchNormalization, node, weights, axis=axis,
                 epsilon=float(attributes.get("epsilon", 1e-5)),
                 momentum=float(attributes.get("momentum", 0.9)))
    return [ctx.assembly.add(layer, info.shape).with_axes(data.axes)]


# -- activations ------------------------------------------------------------------------------

def onnx_float(value: float) -> float:
    """An ONNX float attribute (stored as float32) as the shortest decimal of that float32:
    0.2, not 0.20000000298023224."""
    return float(str(np.float32(value)))


def alpha_name(name: str, alpha: float, default: float) -> str:
    """``"leaky_relu"`` for the default alpha, else ``"leaky_relu(0.2)"``."""
    alpha = onnx_float(alpha)
    return name if math.isclose(alpha, default, rel_tol=1e-6) else f"{name}({alpha!r})"


def activation_name(ctx, node) -> str:
    attributes = ctx.attributes(node)
    op = node.op_type
    if op == "LeakyRelu":
        return alpha_name("leaky_relu", attributes.get("alpha", 0.01), 0.01)
    if op == "Elu":
        return alpha_name("elu", attributes.get("alpha", 1.0), 1.0)
    if op == "Gelu" and attributes.get("approximate", "none") != "none":
        raise ctx.error(node, "the tanh approximation of GELU is not supported (exact only)")
    return {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Softmax": "softmax",
            "Softplus": "softplus", "Gelu": "gelu", "Silu": "silu"}[op]


@handles("Relu", "Sigmoid", "Tanh", "Softmax", "LeakyRelu", "Elu", "Softplus", "Gelu", "Silu")
def activation(ctx, node, inputs):
    name = activation_name(ctx, node)
    data = inputs[0]
    if node.op_type == "Softmax" and isinstance(data, Data):
        rank = len(ctx.onnx_shape(data))
        axis = ctx.attributes(node).get("axis", -1) % rank
        if axis != rank - 1:  # a Softmax layer over that axis
            info = ctx.take(node, data)
            return [ctx.assembly.add(spec(layers.Softmax, node, axis=axis), info.shape)]
    target = ctx.assembly.last_spec(data, ctx.consumers.get(node.input[0], 0))
    if target is not None and target.cls.__name__ in _ACTIVATED and is_linear(target):
        target.kwargs["activation"] = name
        return [data]
    info = ctx.take(node, data)
    return [ctx.assembly.add(spec(layers.Activation, node, activation=name), info.shape)]


# -- reshaping ------------------------------------------------------------------------------

@handles("Flatten")
def flatten(ctx, node, inputs):
    if ctx.attributes(node).get("axis", 1) != 1:
        raise ctx.error(node, "only Flatten(axis=1) is supported")
    pooled = fold_into_pooling(ctx, node, inputs[0])
    if pooled is not None:
        return [pooled]
    info = ctx.take(node, inputs[0])
    return [ctx.assembly.add(spec(layers.Flatten, node), (int(np.prod(info.shape)),))]


@handles("Reshape")
def reshape(ctx, node, inputs):
    """Reshapes that keep the batch axis: first entry 0, -1 or the batch size."""
    data, target = inputs
    if not isinstance(data, Data):
        array = ctx.const(node, data, "the data")
        return [Const(array.reshape(ctx.ints(node, target, "the shape")))]
    if ctx.attributes(node).get("allowzero", 0):
        raise ctx.error(node, "allowzero=1 is not supported")
    info = ctx.assembly.tensors[data.tensor]
    info_shape = info.shape
    entries = list(entries_of(ctx, node, target, "the shape"))
    if entries[:1] == [-1] and info.steps is None and tuple(entries[1:]) == info_shape[1:]:
        return [ctx.assembly.merge_time(data, node)]
    if entries[:2] == [-1, info.steps] and tuple(entries[2:]) == info_shape:
        return [ctx.assembly.split_time(data, node)]
    rest = [info_shape[k - 1] if e == 0 and k - 1 < len(info_shape) else e
            for k, e in enumerate(entries) if k > 0]
    size = int(np.prod(info_shape))
    if not entries or entries[0] not in (0, -1, BATCH) or BATCH in rest or (
            entries[0] == -1 and -1 in rest):
        raise ctx.error(node, f"reshapes to {entries}: only reshapes that keep the batch axis "
                              "are supported")
    known = int(np.prod([e for e in rest if e != -1]))
    if known == 0 or size % known or (-1 not in rest and known != size):
        raise ctx.error(node, f"cannot reshape (N, {info_shape}) to {entries} without "
                              "changing the batch axis")
    target_shape = tuple(size // known if e == -1 else e for e in rest)
    if len(target_shape) == 1 and len(info_shape) == 3:
        pooled = fold_into_pooling(ctx, node, data)
        if pooled is not None:
            return [pooled]
    ctx.take(node, data)
    layer = spec(layers.Reshape, node, target_shape=[int(s) for s in rest])
    return [ctx.assembly.add(layer, target_shape)]


@handles("Pad")
def pad(ctx, node, inputs):
    info = ctx.take(node, inputs[0])
    attributes = ctx.attributes(node)
    if attributes.get("mode", "constant") != "constant":
        raise ctx.error(node, f"only constant padding is supported, got {attributes['mode']!r}")
    pads = ctx.ints(node, inputs[1], "the pads")
    if len(inputs) > 2 and inputs[2] is not None and np.any(ctx.const(node, inputs[2], "value")):
        raise ctx.error(node, "only zero padding is supported")
    if len(inputs) > 3 and inputs[3] is not None:
        axes = [a % 4 for a in ctx.ints(node, inputs[3], "the axes")]
        full = [0] * 8
        for k, axis in enumerate(axes):
            full[axis], full[axis + 4] = pads[k], pads[k + len(axes)]
        pads = full
    spatial_only = len(pads) == 8 and not any(pads[i] for i in (0, 1, 4, 5))
    if len(info.shape) != 3 or not spatial_only or min(pads) < 0:
        raise ctx.error(node, f"only zero padding of the H and W axes of (N, C, H, W) maps is "
                              f"supported, got pads {pads}")
    top, left, bottom, right = pads[2], pads[3], pads[6], pads[7]
    shape = (info.shape[0], info.shape[1] + top + bottom, info.shape[2] + left + right)
    layer = spec(layers.ZeroPadding2D, node, padding=((top, bottom), (left, right)))
    return [ctx.assembly.add(layer, shape)]


@handles("Dropout")
def dropout(ctx, node, inputs):
    info = ctx.take(node, inputs[0])
    if len(inputs) > 2 and inputs[2] is not None and ctx.const(node, inputs[2], "training_mode"):
        raise ctx.error(node, "Dropout in training mode is not supported")
    if len(node.output) > 1 and node.output[1]:
        raise ctx.error(node, "the mask output of Dropout is not supported")
    rate = float(ctx.const(node, inputs[1], "the ratio")) if len(inputs) > 1 and inputs[1] else 0.5
    return [ctx.assembly.add(spec(layers.Dropout, node, rate=rate), info.shape)]


@handles("Identity")
def identity(ctx, node, inputs):
    (value,) = inputs
    if not isinstance(value, Data):
        return [value]
    info = ctx.take(node, value)
    return [ctx.assembly.add(spec(layers.Activation, node, activation="linear"), info.shape)]
