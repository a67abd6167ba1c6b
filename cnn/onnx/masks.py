"""Masks at export. ``Embedding(mask_zero=True)`` and ``Masking`` hand a (N, T) mask to the
layers after them (through the layers that set ``supports_masking``, as cnn's graph does).
The exporter walks the graph with ``ExportMasks``: a mask becomes nodes only where a layer
reads it, and the one reader that ONNX expresses here is ``GlobalAveragePooling1D`` (the mean
over the unmasked steps) and ``MultiHeadAttention`` (padded queries and keys masked; its
output carries the query's mask). Any other layer that reads a mask (``accepts_mask``: the
recurrent layers, Bidirectional) is refused, so that the graph
never computes something other than ``model.predict``; a mask that reaches no reader changes
nothing.

The merge layers carry masks as cnn's graph does (``cnn.layers.merge``): the OR of the inputs'
masks (``Max`` of the 0/1 masks) when every input has one, ``Concatenate`` along the steps
joins them (``Concat``, an unmasked input all ones). ``Maximum`` given a masked input is
refused: its ONNX ``Max`` would let the padded steps compete.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from onnx import TensorProto, numpy_helper

from cnn.layers import (Concatenate, Embedding, GlobalAveragePooling1D, Masking, Maximum,
                        MultiHeadAttention)
from cnn.layers.merge import MERGE_LAYERS
from cnn.layers.attention import LAYOUTS
from cnn.layers.data_format import CHANNELS_LAST
from cnn.onnx.converters.attention import convert_multi_head_attention
from cnn.onnx.errors import OnnxExportError
from cnn.onnx.registry import convert_layer


def makes_mask(layer) -> bool:
    return isinstance(layer, Masking) or (isinstance(layer, Embedding) and layer.mask_zero)


def emit_mask(builder, layer, x: str) -> str:
    """The float (N, T) mask (1: a real step) that ``layer`` (Embedding or Masking) computes
    from its input ``x``: ``x != 0`` for ids, ``any(x != mask_value, axis=-1)`` for Masking."""
    value = 0.0 if isinstance(layer, Embedding) else layer.mask_value
    equal = builder.node("Equal", [x, builder.scalar(value, "mask_value")])
    differs = builder.node("Not", [equal])
    mask = builder.node("Cast", [differs], to=TensorProto.FLOAT)
    if isinstance(layer, Embedding):
        return mask
    return builder.reduce("ReduceMax", mask, [-1], keepdims=False)


def emit_masked_average(builder, layer, x: str, mask: str, output: str) -> None:
    """cnn's masked mean: ``sum(x * mask / max(count, 1))`` over the steps (0 for a sample
    whose steps are all masked)."""
    count = builder.node("ReduceSum", [mask, builder.ints([1], "time_axis")], keepdims=1)
    weights = builder.node("Div", [mask, builder.node("Max", [count, builder.scalar(1.0, "one")])])
    channel_axis = 2 if layer.data_format == CHANNELS_LAST else 1
    weights = builder.node("Unsqueeze", [weights, builder.ints([channel_axis], "channel_axis")])
    time_axis = 1 if layer.data_format == CHANNELS_LAST else 2
    builder.node("ReduceSum", [builder.node("Mul", [x, weights]),
                               builder.ints([time_axis], "steps_axis")], output,
                 keepdims=int(layer.keepdims))


def emit_ones(builder, x: str) -> str:
    """A float (N, T) tensor of ones for the (N, T, ...) tensor ``x``: all its steps real."""
    steps = builder.node("Slice", [builder.node("Shape", [x]), builder.ints([0], "start"),
                                   builder.ints([2], "end")])
    one = numpy_helper.from_array(np.ones(1, dtype=np.float32), "one")
    return builder.node("ConstantOfShape", [steps], value=one)


@dataclass(frozen=True)
class CarriedMask:
    """A mask that a tensor carries: ``origin`` (the Embedding or Masking layer it starts
    from, named in errors), ``key`` (what it is computed from: equal keys are one tensor) and
    ``emit`` (adds its nodes, returns the float (N, T) tensor; called once, where read)."""

    origin: object
    key: tuple
    emit: Callable[[], str]


class ExportMasks:
    """Converts the graph's nodes one by one, keeping which tensors carry which mask."""

    def __init__(self, builder):
        self.builder = builder
        self.carried: dict[str, CarriedMask] = {}  # tensor -> its mask
        self.emitted: dict[tuple, str] = {}  # CarriedMask.key -> the mask tensor

    def mask_tensor(self, mask: CarriedMask) -> str:
        if mask.key not in self.emitted:
            self.emitted[mask.key] = mask.emit()
        return self.emitted[mask.key]

    def made_mask(self, layer, x: str) -> CarriedMask:
        def emit():
            with self.builder.scope(f"{layer.name or layer.default_name()}/mask"):
                return emit_mask(self.builder, layer, x)
        return CarriedMask(layer, ("made", id(layer), x), emit)

    def merged_mask(self, node) -> CarriedMask | None:
        """The mask a merge layer's output carries (see the module's docstring)."""
        layer = node.layer
        masks = [self.carried.get(name) for name in node.inputs]
        origin = next(m for m in masks if m is not None).origin
        if isinstance(layer, Maximum):
            raise OnnxExportError(
                f"layer {layer.describe()} cannot be exported: it takes the mask of layer "
                f"{origin.describe()}, and its ONNX Max would let the padded steps compete; "
                "export the model without the mask (mask_zero=False, no Masking layer)")
        scope = f"{layer.name or layer.default_name()}/mask"
        if isinstance(layer, Concatenate) and layer.sample_axis == 0:
            def join():
                parts = [self.mask_tensor(m) if m is not None else emit_ones(self.builder, x)
                         for m, x in zip(masks, node.inputs)]
                with self.builder.scope(scope):
                    return self.builder.node("Concat", parts, axis=1)
            return CarriedMask(origin, ("joined", node.output), join)
        if any(m is None for m in masks):
            return None  # the OR is all True: nothing is masked
        keys = tuple(dict.fromkeys(m.key for m in masks))
        if len(keys) == 1:
            return masks[0]

        def either():
            parts = [self.mask_tensor(m) for m in masks]
            with self.builder.scope(scope):
                return self.builder.node("Max", parts)
        return CarriedMask(origin, ("either", keys), either)

    def convert(self, node) -> None:
        """Convert ``node`` (a ``cnn.onnx.graph.GraphNode``), or raise naming the layer that
        would read a mask that ONNX cannot apply."""
        layer = node.layer
        carried = [self.carried[name] for name in node.inputs if name in self.carried]
        if carried and isinstance(layer, MultiHeadAttention):
            self.convert_attention(node)
            return
        if carried and isinstance(layer, MERGE_LAYERS):
            merged = self.merged_mask(node)
            convert_layer(self.builder, layer, node.inputs, node.output)
            if merged is not None:
                self.carried[node.output] = merged
            return
        if carried and layer.accepts_mask:
            if not isinstance(layer, GlobalAveragePooling1D):
                raise OnnxExportError(
                    f"layer {layer.describe()} cannot be exported: it reads the mask of layer "
                    f"{carried[0].origin.describe()}, which its ONNX form cannot apply (the masked "
                    "steps would count); export the model without the mask (mask_zero=False, "
                    "no Masking layer) if the padded steps may count")
            mask = self.mask_tensor(carried[0])
            with self.builder.scope(layer.name or layer.default_name()):
                emit_masked_average(self.builder, layer, node.inputs[0], mask, node.output)
            return
        convert_layer(self.builder, layer, node.inputs, node.output)
        if makes_mask(layer):
            self.carried[node.output] = self.made_mask(layer, node.inputs[0])
        elif carried and layer.supports_masking:
            self.carried[node.output] = carried[0]

    def convert_attention(self, node) -> None:
        layer = node.layer
        names = layer.inputs_layout or LAYOUTS[0]
        sources = {name: self.carried.get(tensor) for name, tensor in zip(names, node.inputs)}
        masks = {name: self.mask_tensor(source) for name, source in sources.items()
                 if source is not None and name != "attention_mask"}
        with self.builder.scope(layer.name or layer.default_name()):
            convert_multi_head_attention(self.builder, layer, list(node.inputs), node.output,
                                         masks)
        if sources.get("query") is not None:
            self.carried[node.output] = sources["query"]
