"""Ops that combine activations: ``Add``/``Sub``/``Mul`` of two, ``Sum``/``Mean``/``Max`` of
any number, ``Concat``: the functional API's merge layers. The inputs must have one shape
(no broadcasting between activations: cnn's merge layers do not broadcast), except along the
axis of a ``Concat``."""

from __future__ import annotations

from cnn import layers
from cnn.onnx.assembly import LayerSpec
from cnn.onnx.context import handles

MERGE_LAYERS = {"Add": layers.Add, "Sum": layers.Add, "Sub": layers.Subtract,
                "Mul": layers.Multiply, "Mean": layers.Average, "Max": layers.Maximum}


def merge_layer(ctx, node, inputs, cls, **kwargs):
    """A merge layer reading every input (all activations of one shape)."""
    infos = [ctx.take(node, value, f"input {k}") for k, value in enumerate(inputs)]
    shapes = {info.shape for info in infos}
    axis = kwargs.get("axis")
    if axis is None and len(shapes) != 1:
        raise ctx.error(node, f"merges activations of shapes {sorted(shapes)}; cnn's merge "
                              "layers take one shape (no broadcasting)")
    shape = infos[0].shape
    if axis is not None:
        sample_axis = axis - 1
        rests = {s[:sample_axis] + s[sample_axis + 1:] for s in shapes}
        if not 1 <= axis <= len(shape) or len({len(s) for s in shapes}) != 1 or len(rests) != 1:
            raise ctx.error(node, f"cannot concatenate shapes {[i.shape for i in infos]} on "
                                  f"axis {axis}")
        shape = list(shape)
        shape[sample_axis] = sum(info.shape[sample_axis] for info in infos)
    spec = LayerSpec(cls, kwargs, {}, node.name or node.op_type, multi_input=True)
    return [ctx.assembly.add(spec, tuple(shape))]


@handles("Sum", "Mean", "Max")
def variadic(ctx, node, inputs):
    if len(inputs) == 1:
        return [inputs[0]]  # the sum, mean or maximum of one tensor is that tensor
    return merge_layer(ctx, node, inputs, MERGE_LAYERS[node.op_type])
