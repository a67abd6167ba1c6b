"""Shape plumbing: the small integer computations (``Shape`` -> ``Gather`` -> ``Unsqueeze`` ->
``Concat`` -> ``ConstantOfShape`` ...) that exporters write to make zero states, reshape
targets and views, and the views of activations (``Transpose``, ``Squeeze``, ``Slice`` of a
time step, ``Gather`` of the last step of a sequence).

Constants are folded with NumPy within ``MAX_CONSTANT_ELEMENTS``; the batch size stays the
symbol ``BATCH``. An activation only changes its view here: no layer is made.
"""

from __future__ import annotations

import numpy as np
from onnx import helper

from cnn import layers
from cnn.onnx.assembly import LayerSpec
from cnn.onnx.context import handles
from cnn.onnx.handlers.merge import merge_layer
from cnn.onnx.reader import to_array
from cnn.onnx.values import BATCH, Broadcast, Const, Data, ShapeValue, plain_axes


def entries_of(ctx, node, value, what) -> tuple:
    """A shape-like value as a tuple of ints and BATCH."""
    if isinstance(value, ShapeValue):
        return value.entries
    return tuple(ctx.ints(node, value, what))


@handles("Constant")
def constant(ctx, node, inputs):
    attributes = ctx.attributes(node)
    if "value" in attributes:
        return [Const(to_array(attributes["value"]))]
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32),
                       ("value_int", np.int64), ("value_ints", np.int64)):
        if key in attributes:
            return [Const(np.array(attributes[key], dtype=dtype))]
    raise ctx.error(node, "only tensor, float and int Constant values are supported")


@handles("Shape")
def shape(ctx, node, inputs):
    (value,) = inputs
    attributes = ctx.attributes(node)
    if isinstance(value, Data):
        if ctx.assembly.tensors[value.tensor].steps is not None:
            raise ctx.error(node, "takes the shape of an activation whose batch and time "
                                  "axes are merged")
        full = ctx.onnx_shape(value)
    elif isinstance(value, Const):
        full = tuple(value.array.shape)
    elif isinstance(value, Broadcast):
        full = value.shape
    else:
        raise ctx.error(node, "takes the shape of a shape vector, which is not supported")
    start, end = attributes.get("start", 0), attributes.get("end", len(full))
    return [ShapeValue(tuple(full[start:end]))]


@handles("Cast")
def cast(ctx, node, inputs):
    (value,) = inputs
    if isinstance(value, ShapeValue):
        return [value]
    dtype = helper.tensor_dtype_to_np_dtype(ctx.attributes(node)["to"])
    if isinstance(value, Const):
        return [Const(value.array.astype(dtype))]
    if isinstance(value, Data) and np.issubdtype(dtype, np.integer) and \
            ctx.assembly.tensors[value.tensor].spec < 0:
        return [value]  # ids from a graph input, for an embedding (they hold whole numbers)
    raise ctx.error(node, "casts an activation; cnn computes in its own float type (only a "
                          "graph input's ids may be cast to integers)")


def gather(ctx, node, inputs):
    """``Gather`` in shape plumbing and of a recurrent op's last step (the ``Gather`` handler
    in ``cnn.onnx.handlers.features`` hands every other case here)."""
    value, indices = inputs
    axis = ctx.attributes(node).get("axis", 0)
    index = ctx.const(node, indices, "the indices", np.int64)
    if isinstance(value, Data):
        return [last_step(ctx, node, value, axis, index)]
    if isinstance(value, ShapeValue):
        picked = tuple(value.entries[int(i)] for i in np.ravel(index))
        return [ShapeValue(picked, scalar=index.ndim == 0)]
    array = ctx.const(node, value, "the data")
    return [Const(np.take(array, index, axis=axis))]


def last_step(ctx, node, value, axis, index):
    """``Gather`` of the last time step of a recurrent op's sequence: its final state."""
    info = ctx.assembly.tensors[value.tensor]
    shape = ctx.onnx_shape(value)
    axis = axis % len(shape)
    if (info.role != "sequence" or value.reversed_axis is not None or index.ndim != 0 or
            value.axes[axis] != 1 or int(index) not in (-1, shape[axis] - 1)):
        raise ctx.error(node, "gathers from an activation; only the last time step of a "
                              "recurrent op's output sequence is supported")
    final = info.siblings["final"]
    axes = [a if a in (None, 0) else 1 for a in value.axes[:axis] + value.axes[axis + 1:]]
    return Data(final, tuple(axes))


@handles("Unsqueeze")
def unsqueeze(ctx, node, inputs):
    value, axes_value = inputs
    axes = ctx.ints(node, axes_value, "the axes")
    if isinstance(value, ShapeValue):
        if not value.scalar or axes not in ([0], [-1]):
            raise ctx.error(node, "unsqueezes a shape vector other than to one entry")
        return [ShapeValue(value.entries)]
    if isinstance(value, Const):
        array = value.array
        rank = array.ndim + len(axes)
        for axis in sorted(a % rank for a in axes):
            array = np.expand_dims(array, axis)
        return [Const(array)]
    if isinstance(value, Data):
        view = list(value.axes)
        rank = len(view) + len(axes)
        for axis in sorted(a % rank for a in axes):
            view.insert(axis, None)
        return [value.with_axes(view)]
    raise ctx.error(node, "unsqueezes a broadcast value, which is not supported")


@handles("Squeeze")
def squeeze(ctx, node, inputs):
    value = inputs[0]
    axes = ctx.ints(node, inputs[1], "the axes") if len(inputs) > 1 and inputs[1] else None
    if isinstance(value, Const):
        return [Const(np.squeeze(value.array, axis=None if axes is None else tuple(axes)))]
    if isinstance(value, Data):
        return [squeeze_data(ctx, node, value, axes)]
    raise ctx.error(node, "squeezes a shape vector, which is not supported")


def squeeze_data(ctx, node, value, axes):
    """Drop size-1 axes of an activation's view: inserted axes only change the view; real
    axes of size 1 after global pooling become part of the pooling layer (no keepdims)."""
    shape = ctx.onnx_shape(value)
    if axes is None:
        axes = [k for k, size in enumerate(shape) if size == 1]
    axes = sorted({a % len(shape) for a in axes})
    if any(shape[a] != 1 for a in axes):
        raise ctx.error(node, f"squeezes axes {axes} of an activation of shape {shape}")
    if all(value.axes[a] is None for a in axes):
        return value.with_axes([x for k, x in enumerate(value.axes) if k not in axes])
    from_pooling = fold_into_pooling(ctx, node, value)
    if from_pooling is not None and axes == [2, 3]:
        return from_pooling
    raise ctx.error(node, f"squeezes axes {axes} of an activation; only the axes of a "
                          "recurrent op's direction and of global pooling are supported")


def fold_into_pooling(ctx, node, value):
    """When ``value`` is the (N, C, 1, 1) output of a channels-first global pooling layer
    with ``keepdims`` that only ``node`` reads, drop its keepdims; return the (N, C) view,
    else None."""
    spec = ctx.assembly.last_spec(value, ctx.consumers.get(node.input[0], 0))
    pooling = ("GlobalAveragePooling2D", "GlobalMaxPooling2D")
    if spec is None or spec.cls.__name__ not in pooling or not spec.kwargs.get("keepdims") \
            or spec.kwargs.get("data_format", "channels_first") != "channels_first":
        return None
    spec.kwargs["keepdims"] = False
    channels = ctx.assembly.tensors[value.tensor].shape[0]
    return ctx.assembly.replace_output_shape(value, (channels,))


@handles("Concat")
def concat(ctx, node, inputs):
    axis = ctx.attributes(node)["axis"]
    if any(isinstance(v, Data) for v in inputs):
        rank = len(ctx.onnx_shape(next(v for v in inputs if isinstance(v, Data))))
        if axis % rank == 0:
            raise ctx.error(node, "concatenates activations along the batch axis")
        return merge_layer(ctx, node, inputs, layers.Concatenate, axis=axis % rank)
    if any(isinstance(v, ShapeValue) for v in inputs):
        if axis != 0:
            raise ctx.error(node, "concatenates shape vectors on an axis other than 0")
        return [ShapeValue(sum((entries_of(ctx, node, v, "an input") for v in inputs), ()))]
    arrays = [ctx.const(node, v, "an input") for v in inputs]
    return [Const(np.concatenate(arrays, axis=axis))]


@handles("ConstantOfShape")
def constant_of_shape(ctx, node, inputs):
    entries = entries_of(ctx, node, inputs[0], "the shape")
    value_attribute = [a for a in node.attribute if a.name == "value"]
    fill = (to_array(value_attribute[0].t).reshape(-1)[:1] if value_attribute
            else np.zeros(1, np.float32))
    if BATCH in entries:
        ctx.check_size(node, [1 if e == BATCH else e for e in entries])
        return [Broadcast(fill.reshape(()), entries)]
    ctx.check_size(node, entries)
    return [Const(np.full(entries, fill[0], dtype=fill.dtype))]


@handles("Expand")
def expand(ctx, node, inputs):
    value, shape_value = inputs
    entries = entries_of(ctx, node, shape_value, "the shape")
    array = ctx.const(node, value, "the input")
    if BATCH in entries:
        return [Broadcast(array, entries)]
    ctx.check_size(node, entries)
    return [Const(array * np.ones(entries, dtype=array.dtype))]


@handles("Transpose")
def transpose(ctx, node, inputs):
    (value,) = inputs
    perm = ctx.attributes(node).get("perm")
    if isinstance(value, Const):
        return [Const(np.transpose(value.array, perm))]
    if not isinstance(value, Data):
        raise ctx.error(node, "transposes a shape value")
    perm = perm if perm is not None else list(range(len(value.axes)))[::-1]
    return [value.with_axes([value.axes[p] for p in perm])]


@handles("Slice")
def slice_(ctx, node, inputs):
    value, starts, ends = inputs[:3]
    starts, ends = ctx.ints(node, starts, "starts"), ctx.ints(node, ends, "ends")
    rank = len(ctx.onnx_shape(value)) if isinstance(value, Data) else None
    axes = ctx.ints(node, inputs[3], "axes") if len(inputs) > 3 and inputs[3] else None
    steps = ctx.ints(node, inputs[4], "steps") if len(inputs) > 4 and inputs[4] else None
    axes = axes if axes is not None else list(range(len(starts)))
    steps = steps if steps is not None else [1] * len(starts)
    if isinstance(value, Data):
        return [slice_data(ctx, node, value, starts, ends, axes, steps, rank)]
    if isinstance(value, ShapeValue):
        if axes != [0] or steps != [1]:
            raise ctx.error(node, "slices a shape vector other than along axis 0")
        return [ShapeValue(value.entries[starts[0]:ends[0]])]
    array = ctx.const(node, value, "the data")
    index = [slice(None)] * array.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps):
        index[axis] = slice(start, end, step)
    return [Const(array[tuple(index)])]


def crop_images(ctx, node, value, starts, ends, axes, steps, rank):
    """A step-1 ``Slice`` of the two spatial axes of a plain 4-D activation, (2, 3) or
    (1, 2): ``Cropping2D`` (channels first or last); None for any other slice."""
    if rank != 4 or any(step != 1 for step in steps) or value.reversed_axis is not None or \
            value.axes != plain_axes(4):
        return None
    axes = [a % rank for a in axes]
    spatial = next((pair for pair in ((2, 3), (1, 2)) if set(axes) <= set(pair)), None)
    if spatial is None or len(set(axes)) != len(axes):
        return None
    shape = ctx.onnx_shape(value)
    cropping = {axis: (0, 0) for axis in spatial}
    for axis, start, end in zip(axes, starts, ends):
        size = shape[axis]
        start = min(max(start + size if start < 0 else start, 0), size)
        end = min(max(end + size if end < 0 else end, 0), size)
        if end <= start:
            raise ctx.error(node, f"slices nothing of axis {axis} (size {size})")
        cropping[axis] = (start, size - end)
    data_format = "channels_first" if spatial == (2, 3) else "channels_last"
    info = ctx.take(node, value)
    out = list(info.shape)
    for axis, (before, after) in cropping.items():
        out[axis - 1] -= before + after
    layer = LayerSpec(layers.Cropping2D, {"cropping": tuple(cropping[a] for a in spatial),
                                          "data_format": data_format}, {},
                      node.name or node.op_type)
    return ctx.assembly.add(layer, tuple(out))


def slice_data(ctx, node, value, starts, ends, axes, steps, rank):
    """Two slices of an activation: the whole time axis reversed (step -1), read by a
    recurrent op as ``go_backwards``; and the last step of a sequence, kept as a size-1 axis
    (``[:, -1:]``)."""
    shape = ctx.onnx_shape(value)
    cropped = crop_images(ctx, node, value, starts, ends, axes, steps, rank)
    if cropped is not None:
        return cropped
    if len(axes) != 1:
        raise ctx.error(node, "slices an activation along several axes")
    axis, start, end, step = axes[0] % rank, starts[0], ends[0], steps[0]
    size = shape[axis]
    cnn_axis = value.axes[axis]
    if step == -1 and start in (-1, size - 1) and end <= -size - 1 and cnn_axis not in (None, 0):
        if value.reversed_axis is not None:
            raise ctx.error(node, "reverses an activation twice")
        return Data(value.tensor, value.axes, cnn_axis)
    info = ctx.assembly.tensors[value.tensor]
    if (step == 1 and start in (-1, size - 1) and end >= size and info.role == "sequence"
            and cnn_axis == 1 and value.reversed_axis is None):
        final = info.siblings["final"]
        return Data(final, tuple(None if a == 1 else (a if a in (None, 0) else 1)
                                 for a in value.axes))
    raise ctx.error(node, "slices an activation; only a time reversal and the last step of a "
                          "recurrent op's sequence are supported")
