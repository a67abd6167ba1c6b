"""Masks at export. ``Embedding(mask_zero=True)`` and ``Masking`` hand a (N, T) mask to the
layers after them; it is not a tensor of the exported graph. A model is exported only when
no mask reaches a layer that reads one (``accepts_mask``: the recurrent layers,
Bidirectional, TimeDistributed, MultiHeadAttention, GlobalAveragePooling1D), so that the
graph computes what ``model.predict`` does; masks that reach no such layer change nothing.
"""

from __future__ import annotations

from cnn.layers import Embedding, Masking
from cnn.onnx.errors import OnnxExportError


def makes_mask(layer) -> bool:
    return isinstance(layer, Masking) or (isinstance(layer, Embedding) and layer.mask_zero)


def check_masks(graph) -> None:
    """Raise ``OnnxExportError`` naming the layer that would read a mask, and its source.

    ``graph``: a ``cnn.onnx.graph.ModelGraph``. A mask passes through layers that set
    ``supports_masking`` (element-wise layers, LayerNormalization, ...).
    """
    sources: dict[str, object] = {}  # tensor name -> the layer whose mask it carries
    for node in graph.nodes:
        layer = node.layer
        carried = [sources[name] for name in node.inputs if name in sources]
        if carried and layer.accepts_mask:
            raise OnnxExportError(
                f"layer {layer.describe()} cannot be exported: it reads the mask of layer "
                f"{carried[0].describe()}, which an ONNX graph does not carry (the masked "
                "steps would count); export the model without the mask (mask_zero=False, no "
                "Masking layer) if the padded steps may count")
        if makes_mask(layer):
            sources[node.output] = layer
        elif carried and layer.supports_masking:
            sources[node.output] = carried[0]
