"""TimeDistributed: merge the batch and time axes, run the inner layer, split them again."""

from __future__ import annotations

from cnn.layers import TimeDistributed
from cnn.onnx.registry import convert_layer, converter


@converter(TimeDistributed)
def convert_time_distributed(builder, layer, inputs, output):
    """(N, T, *inner) -> Reshape (N*T, *inner) -> the inner layer -> Reshape (N, T, *out)."""
    inner = layer.layer
    steps = layer.input_shape[0]
    merged = builder.node("Reshape", [inputs[0], builder.ints([-1, *inner.input_shape], "merged")])
    inner_output = builder.unique(inner.name or inner.default_name())
    convert_layer(builder, inner, [merged], inner_output)
    split = builder.ints([-1, steps, *inner.output_shape[1:]], "split")
    builder.node("Reshape", [inner_output, split], output)
