"""TimeDistributed (merge the batch and time axes, run the inner layer, split them again)
and Bidirectional (two recurrent ops and a merge)."""

from __future__ import annotations

from cnn.layers import Bidirectional, TimeDistributed
from cnn.onnx.errors import OnnxExportError
from cnn.onnx.registry import convert_layer, converter


@converter(TimeDistributed)
def convert_time_distributed(builder, layer, inputs, output):
    """(N, T, *inner) -> Reshape (N*T, *inner) -> the inner layer -> Reshape (N, T, *out)."""
    inner = layer.layer
    steps = layer.input_shape[0]
    merged = builder.node("Reshape", [inputs[0], builder.ints([-1, *inner.input_shape], "merged")])
    inner_output = builder.unique(inner.name or inner.default_name())
    convert_layer(builder, inner, [merged], inner_output)
    if steps is None:  # a variable time axis: (N, T) read from the input
        prefix = builder.node("Slice", [builder.node("Shape", inputs), builder.ints([0], "start"),
                                        builder.ints([2], "end")])
        split = builder.node("Concat", [prefix, builder.ints(inner.output_shape[1:], "inner")],
                             axis=0)
    else:
        split = builder.ints([-1, steps, *inner.output_shape[1:]], "split")
    builder.node("Reshape", [inner_output, split], output)


@converter(Bidirectional)
def convert_bidirectional(builder, layer, inputs, output):
    """Both directions as their own recurrent ops (the backward one reads the time axis
    reversed, ``go_backwards``), its returned sequence put back in time order with a
    ``Slice`` (step -1), then the merge: ``Concat`` (last axis), ``Add``, ``Add`` and ``Mul``
    0.5 (``ave``), ``Mul``. ``merge_mode=None`` (two outputs) is refused."""
    if layer.merge_mode is None:
        raise OnnxExportError(
            f"layer {layer.describe()} cannot be exported: merge_mode=None returns two "
            "tensors, and one layer writes one tensor of the graph; use another merge mode")
    forward, backward = builder.unique("forward"), builder.unique("backward")
    convert_layer(builder, layer.forward_layer, inputs, forward)
    convert_layer(builder, layer.backward_layer, inputs, backward)
    if layer.return_sequences:
        backward = builder.reverse(backward, 1)
    both = [forward, backward]
    if layer.merge_mode == "concat":
        builder.node("Concat", both, output, axis=-1)
    elif layer.merge_mode == "sum":
        builder.node("Add", both, output)
    elif layer.merge_mode == "mul":
        builder.node("Mul", both, output)
    else:
        builder.node("Mul", [builder.node("Add", both), builder.scalar(0.5, "half")], output)
