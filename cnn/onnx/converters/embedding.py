"""Embedding, PositionEmbedding and Masking.

The graph's inputs are float, as ``model.predict`` takes them (whole numbers for ids):
``Embedding`` casts its ids to int64 and ``Gather``s the rows of its table. The masks that
``Embedding(mask_zero=True)`` and ``Masking`` hand to later layers are not tensors of the
graph unless a layer reads them: ``cnn.onnx.masks``.
"""

from __future__ import annotations

from onnx import TensorProto

from cnn.layers import Embedding, Masking, PositionEmbedding
from cnn.onnx.converters.core import layer_weights
from cnn.onnx.registry import converter


@converter(Embedding)
def convert_embedding(builder, layer, inputs, output):
    """``Cast`` to int64, ``Gather(embeddings, ids, axis=0)``: (N, *S) -> (N, *S, D)."""
    ids = builder.node("Cast", inputs, to=TensorProto.INT64)
    table = builder.initializer(layer_weights(layer)["embeddings"], "embeddings")
    builder.node("Gather", [table, ids], output, axis=0)


@converter(PositionEmbedding)
def convert_position_embedding(builder, layer, inputs, output):
    """The first T rows of the table (``Slice`` to ``Shape(x)[1]``, so T may vary),
    ``Expand``ed to the input's shape (N, T, D)."""
    shape = builder.node("Shape", inputs)
    steps = builder.node("Gather", [shape, builder.ints([1], "time_axis")], axis=0)
    table = builder.initializer(layer_weights(layer)["embeddings"], "embeddings")
    rows = builder.node("Slice", [table, builder.ints([0], "start"), steps,
                                  builder.ints([0], "row_axis")])
    builder.node("Expand", [rows, shape], output)


@converter(Masking)
def convert_masking(builder, layer, inputs, output):
    """Steps whose features all equal ``mask_value`` become zeros: ``x * any(x !=
    mask_value, axis=-1)`` (``Equal``, ``Not``, ``Cast``, ``ReduceMax``, ``Mul``)."""
    x = inputs[0]
    differs = builder.node("Not", [builder.node("Equal", [
        x, builder.scalar(layer.mask_value, "mask_value")])])
    keep = builder.reduce("ReduceMax", builder.node("Cast", [differs], to=TensorProto.FLOAT),
                          [-1])
    builder.node("Mul", [x, keep], output)
