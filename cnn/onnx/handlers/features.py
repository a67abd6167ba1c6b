"""``PRelu`` (PReLU), ``LayerNormalization`` (LayerNormalization) and ``Gather`` of table rows
by the ids a graph input holds (Embedding); see ``cnn.onnx.handlers.plumbing`` for the
``Gather``s of shape plumbing."""

from __future__ import annotations

import numpy as np

from cnn import layers
from cnn.onnx.context import handles
from cnn.onnx.handlers.layers import float_weight, spec
from cnn.onnx.handlers.plumbing import gather as plumbing_gather
from cnn.onnx.values import Data


@handles("PRelu")
def prelu(ctx, node, inputs):
    """The slope broadcast against one sample; the axes where it has size 1 share it."""
    info = ctx.take(node, inputs[0])
    slope = float_weight(ctx, node, inputs[1], "the slope")
    shape = info.shape
    if slope.ndim > len(shape) + 1 or (slope.ndim == len(shape) + 1 and slope.shape[0] != 1):
        raise ctx.error(node, f"slope {slope.shape} varies over the batch")
    slope = slope.reshape(slope.shape[-len(shape):] if slope.ndim > len(shape) else
                          (1,) * (len(shape) - slope.ndim) + slope.shape)
    try:
        np.broadcast_shapes(slope.shape, shape)
    except ValueError:
        raise ctx.error(node, f"slope {slope.shape} does not broadcast against (N, {shape})") \
            from None
    if any(s not in (1, n) for s, n in zip(slope.shape, shape)):
        raise ctx.error(node, f"slope {slope.shape} does not fit (N, {shape})")
    shared = [k + 1 for k, (s, n) in enumerate(zip(slope.shape, shape)) if s == 1 and n != 1]
    layer = spec(layers.PReLU, node, {"alpha": slope}, shared_axes=shared or None)
    return [ctx.assembly.add(layer, shape)]


@handles("LayerNormalization")
def layer_normalization(ctx, node, inputs):
    """Over the axes from ``axis`` to the last; the scale (and bias) of their sizes."""
    info = ctx.take(node, inputs[0])
    attributes = ctx.attributes(node)
    rank = len(info.shape) + 1
    axis = attributes.get("axis", -1) % rank
    if axis == 0 or attributes.get("stash_type", 1) != 1 or any(node.output[1:]):
        raise ctx.error(node, "only the normalisation of a sample's trailing axes (no mean or "
                              "inverse deviation outputs) is supported")
    sizes = info.shape[axis - 1:]
    weights = {"gamma": np.broadcast_to(float_weight(ctx, node, inputs[1], "the scale"),
                                        sizes).copy()}
    if len(inputs) > 2 and inputs[2] is not None:
        weights["beta"] = np.broadcast_to(float_weight(ctx, node, inputs[2], "the bias"),
                                          sizes).copy()
    axes = list(range(axis, rank))
    layer = spec(layers.LayerNormalization, node, weights,
                 axis=axes[0] - rank if len(axes) == 1 else axes,
                 epsilon=float(attributes.get("epsilon", 1e-5)), center="beta" in weights)
    return [ctx.assembly.add(layer, info.shape)]


@handles("Gather")
def gather(ctx, node, inputs):
    """Rows of a constant table by an activation's ids: an embedding; else plumbing."""
    value, indices = inputs
    if isinstance(indices, Data) and not isinstance(value, Data):
        return [embedding(ctx, node, value, indices)]
    return plumbing_gather(ctx, node, inputs)


def embedding(ctx, node, table, ids):
    """``Gather(table, ids, axis=0)`` with ids read from a graph input: ``Embedding``."""
    if ctx.attributes(node).get("axis", 0) != 0:
        raise ctx.error(node, "gathers ids along an axis other than 0 of the table")
    table = float_weight(ctx, node, table, "the table")
    info = ctx.take(node, ids, "the ids")
    if table.ndim != 2 or info.spec >= 0:
        raise ctx.error(node, "gathers from an activation; only rows of a 2-D table by the ids "
                              "of a graph input (an embedding) are supported")
    layer = spec(layers.Embedding, node, {"embeddings": table}, input_dim=table.shape[0],
                 output_dim=table.shape[1])
    return ctx.assembly.add(layer, (*info.shape, table.shape[1]))
