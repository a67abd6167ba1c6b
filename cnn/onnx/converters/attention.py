"""MultiHeadAttention, decomposed into MatMul / Softmax nodes (heads on axis 1):

    q = Transpose(Reshape(query W_q + b_q, [0, 0, H, K]), [0, 2, 1, 3])     (N, H, Tq, K)
    k = Transpose(Reshape(key W_k + b_k, [0, 0, H, K]), [0, 2, 3, 1])       (N, H, K, Tv)
    v = Transpose(Reshape(value W_v + b_v, [0, 0, H, V]), [0, 2, 1, 3])     (N, H, Tv, V)
    scores = Softmax(Where(allowed, (q / sqrt K) k, -1e9))                  (N, H, Tq, Tv)
    output = Reshape(Transpose(scores v, [0, 2, 1, 3]), [0, 0, H * V]) W_o + b_o

``allowed`` ANDs the ``attention_mask`` input (non-zero: may attend; (N, Tq, Tv) unsqueezed
to (N, 1, Tq, Tv)), the causal (Tq, Tv) lower triangle and the masks the graph carries to
the query and key (``cnn.onnx.masks``), as cnn does; dropout is off at inference. The
reshapes keep the batch and time sizes (0), so no step count is built in except the causal
triangle's.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, numpy_helper

from cnn.layers import MultiHeadAttention
from cnn.layers.attention import LAYOUTS
from cnn.ops.attention import MASKED_LOGIT
from cnn.onnx.converters.core import layer_weights
from cnn.onnx.errors import OnnxExportError
from cnn.onnx.registry import converter

TRILU_OPSET = 14  # the first opset with Trilu


def project(builder, weights, name, x, perm) -> str:
    """(N, T, D) -> the heads (N, H, T, size) (or (N, H, size, T) with ``perm`` [0, 2, 3, 1])."""
    kernel = weights[f"{name}_kernel"]  # (D, H, size)
    features, heads, size = kernel.shape
    y = builder.node("MatMul", [x, builder.initializer(kernel.reshape(features, heads * size),
                                                       f"{name}_kernel")])
    if f"{name}_bias" in weights:
        y = builder.node("Add", [y, builder.initializer(weights[f"{name}_bias"].reshape(-1),
                                                        f"{name}_bias")])
    y = builder.node("Reshape", [y, builder.ints([0, 0, heads, size], f"{name}_heads")])
    return builder.node("Transpose", [y], perm=perm)


def allowed_pairs(builder, layer, named, masks=None) -> str | None:
    """The bool (N or 1, 1, Tq, Tv) tensor of pairs that may attend, or None for all.

    ``masks``: the float (N, T) masks the graph carries to the inputs, by input name
    ("query", "value", "key"; see ``cnn.onnx.masks``): padded query rows and padded keys
    are masked, as in cnn (and Keras).
    """
    allowed = None
    masks = masks or {}
    key_mask = masks.get("key") or masks.get("value")
    for mask, axes in ((masks.get("query"), [1, 3]), (key_mask, [1, 2])):
        if mask is not None:
            mask = builder.node("Cast", [mask], to=TensorProto.BOOL)
            mask = builder.node("Unsqueeze", [mask, builder.ints(axes, "mask_axes")])
            allowed = mask if allowed is None else builder.node("And", [allowed, mask])
    if named["attention_mask"] is not None:
        zero = builder.scalar(0.0, "zero")
        nonzero = builder.node("Not", [builder.node("Equal", [named["attention_mask"], zero])])
        pairs = builder.node("Unsqueeze", [nonzero, builder.ints([1], "head_axis")])
        allowed = pairs if allowed is None else builder.node("And", [allowed, pairs])
    if layer.use_causal_mask:
        shapes = layer.unpack(layer.input_shape)
        steps = (shapes["query"][0], shapes["value"][0])
        if None in steps:
            causal = variable_causal_mask(builder, layer, named)
        else:
            triangle = np.tril(np.ones(steps, dtype=bool))[None, None]
            causal = builder.initializer(triangle, "causal_mask", dtype=np.bool_)
        allowed = causal if allowed is None else builder.node("And", [allowed, causal])
    return allowed


def variable_causal_mask(builder, layer, named) -> str:
    """The (Tq, Tv) lower triangle for steps known only at run time: ``Trilu`` (opset 14) of
    ones of the shape [Shape(query)[1], Shape(value)[1]]."""
    if builder.opset < TRILU_OPSET:
        raise OnnxExportError(
            f"layer {layer.describe()} cannot be exported at opset {builder.opset}: its causal "
            f"mask over a variable number of steps needs Trilu (opset {TRILU_OPSET})")
    steps = [builder.node("Gather", [builder.node("Shape", [named[name]]),
                                     builder.ints([1], "time_axis")], axis=0)
             for name in ("query", "value")]
    ones = builder.node("ConstantOfShape", [builder.node("Concat", steps, axis=0)],
                        value=numpy_helper.from_array(np.ones(1, np.float32)))
    return builder.node("Cast", [builder.node("Trilu", [ones], upper=0)], to=TensorProto.BOOL)


@converter(MultiHeadAttention)
def convert_multi_head_attention(builder, layer, inputs, output, masks=None):
    """See the module docstring; ``masks`` as for ``allowed_pairs``."""
    weights = layer_weights(layer)
    named = dict.fromkeys(LAYOUTS[-1])
    named.update(zip(layer.inputs_layout or LAYOUTS[0], inputs))
    key_input = named["key"] or named["value"]
    q = project(builder, weights, "query", named["query"], [0, 2, 1, 3])
    k = project(builder, weights, "key", key_input, [0, 2, 3, 1])
    v = project(builder, weights, "value", named["value"], [0, 2, 1, 3])
    scaled = builder.node("Mul", [q, builder.scalar(1.0 / np.sqrt(layer.key_dim), "scale")])
    logits = builder.node("MatMul", [scaled, k])
    allowed = allowed_pairs(builder, layer, named, masks)
    if allowed is not None:
        logits = builder.node("Where", [allowed, logits,
                                        builder.scalar(MASKED_LOGIT, "masked_logit")])
    scores = builder.node("Softmax", [logits], axis=-1)
    context = builder.node("Transpose", [builder.node("MatMul", [scores, v])],
                           perm=[0, 2, 1, 3])
    heads, size, out = weights["output_kernel"].shape
    merged = builder.node("Reshape", [context, builder.ints([0, 0, heads * size], "merged")])
    kernel = builder.initializer(weights["output_kernel"].reshape(heads * size, out),
                                 "output_kernel")
    if "output_bias" not in weights:
        builder.node("MatMul", [merged, kernel], output)
        return
    builder.node("Add", [builder.node("MatMul", [merged, kernel]),
                         builder.initializer(weights["output_bias"], "output_bias")], output)
