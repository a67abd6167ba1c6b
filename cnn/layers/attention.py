"""MultiHeadAttention (Vaswani et al., 2017) with Keras's arguments and weights.

Call (Keras's order): ``mha(query, value, key=None, attention_mask=None,
return_attention_scores=False, use_causal_mask=False)`` with query (N, Tq, Dq), value
(N, Tv, Dv), key (N, Tv, Dk) (default: value). Self-attention is ``mha(x, x)``. The layer packs
its tensors into one list input ``[query, value, (key), (attention_mask)]``; which ones it was
called with is ``inputs_layout`` (saved in the config, so a loaded model is called the same
way). Per head h::

    q_h = query W_q[:, h] + b_q[h],  k_h = key W_k[:, h] + b_k[h],  v_h = value W_v[:, h] + b_v[h]
    scores_h = softmax(q_h k_h^T / sqrt(key_dim))    (masked pairs get -1e9 first)
    output = sum_h dropout(scores_h) v_h W_o[h] + b_o

Weights (Keras's per-head kernels, in Keras's order): ``query_kernel`` (Dq, H, key_dim),
``query_bias`` (H, key_dim), ``key_kernel`` (Dk, H, key_dim), ``key_bias``, ``value_kernel``
(Dv, H, value_dim), ``value_bias``, ``output_kernel`` (H, value_dim, O), ``output_bias`` (O,);
O = ``output_shape`` or Dq. (PyTorch's ``nn.MultiheadAttention`` packs W_q, W_k, W_v as the
rows of ``in_proj_weight`` (3E, E): ``query_kernel = W_q.T.reshape(E, H, E // H)``, and
``output_kernel = out_proj.weight.T.reshape(H, E // H, E)``.)

Masks, all combined with AND (True = may attend):

* ``attention_mask`` (N, Tq, Tv): an array (calls on arrays) or a model input tensor (in a
  model; non-zero = may attend). A constant array inside a model is not supported: feed it
  as an input, or use ``use_causal_mask``.
* ``use_causal_mask=True``: query step i attends to key steps <= i. Stored on the layer (and
  in its config) because a model replays calls without their keyword arguments.
* masks carried by the graph (``Embedding(mask_zero=True)`` before the query / value): padded
  query rows and padded keys are masked, as in Keras. The output mask is the query's mask.

``dropout`` drops attention scores in training (inverted dropout, seeded generator).
``return_attention_scores=True`` on arrays returns ``(output, scores)`` with scores
(N, H, Tq, Tv); the scores of the last forward are always ``layer.attention_scores``.
"""

from __future__ import annotations

import numpy as np

from cnn import backend, initializers
from cnn.backend import xp
from cnn.layers.base import Layer, normalize_shape
from cnn.layers.core import initializer_name
from cnn.layers.node import is_symbolic, shape_matches, shapes_compatible
from cnn.ops import attention as attention_ops
from cnn.utils import checks

LAYOUTS = (("query", "value"), ("query", "value", "key"), ("query", "value", "attention_mask"),
           ("query", "value", "key", "attention_mask"))
PROJECTIONS = ("query", "key", "value")


class MultiHeadAttention(Layer):
    """Multi-head attention; see the module docstring for the call, weights and masks.

    Args:
        num_heads: number of heads H.
        key_dim: size of each head's query and key.
        value_dim: size of each head's value (default key_dim).
        dropout: dropout rate on the attention scores (training only).
        use_bias: biases on the four projections.
        output_shape: the output's last size (default: the query's).
        use_causal_mask: see the module docstring.
        kernel_initializer / bias_initializer: initialiser names.
    """

    accepts_mask = True
    variable_length = True  # query and value lengths may be None (and differ)

    def __init__(self, num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True,
                 output_shape=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", *, use_causal_mask=False, inputs_layout=None,
                 name=None, trainable=True):
        super().__init__(name=name, trainable=trainable)
        self.num_heads = checks.count("num_heads", num_heads, minimum=1)
        self.key_dim = checks.count("key_dim", key_dim, minimum=1)
        self.value_dim = self.key_dim if value_dim is None else checks.count(
            "value_dim", value_dim, minimum=1)
        self.dropout = checks.fraction("dropout", dropout)
        self.use_bias = bool(use_bias)
        if isinstance(output_shape, (list, tuple)) and len(output_shape) == 1:
            output_shape = output_shape[0]
        self.output_size = None if output_shape is None else checks.count(
            "output_shape", output_shape, minimum=1)
        for init in (kernel_initializer, bias_initializer):
            initializers.get(init)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self.use_causal_mask = bool(use_causal_mask)
        if inputs_layout is not None and tuple(inputs_layout) not in LAYOUTS:
            raise ValueError(f"inputs_layout must be one of {LAYOUTS}, got {inputs_layout!r}")
        self.inputs_layout = None if inputs_layout is None else tuple(inputs_layout)
        self.attention_scores = None
        self._cache = None

    # -- calling ----------------------------------------------------------------------------
    def __call__(self, query, value=None, key=None, attention_mask=None,
                 return_attention_scores=False, training=False, use_causal_mask=None, mask=None):
        """Keras's call; a list ``[query, value, ...]`` alone is taken as already packed in
        ``inputs_layout`` (as a model replays the call)."""
        if value is None and isinstance(query, (list, tuple)):
            packed = list(query)
            layout = self.inputs_layout or LAYOUTS[0]
        else:
            if value is None:
                raise ValueError(f"layer {self.describe()} needs query and value: "
                                 "mha(query, value), or mha(x, x) for self-attention")
            given = {"query": query, "value": value, "key": key, "attention_mask": attention_mask}
            layout = tuple(name for name in LAYOUTS[-1] if given[name] is not None)
            packed = [given[name] for name in layout]
        if self.inputs_layout is not None and layout != self.inputs_layout:
            raise ValueError(f"layer {self.describe()} was called with {self.inputs_layout}; "
                             f"it cannot be called with {layout} too")
        if len(packed) != len(layout):
            raise ValueError(f"layer {self.describe()} takes {len(layout)} inputs {layout}, got "
                             f"{len(packed)}")
        self.inputs_layout = layout
        if use_causal_mask is not None:
            self.use_causal_mask = bool(use_causal_mask)
        on_arrays = not any(is_symbolic(a) or isinstance(a, Layer) for a in packed)
        if not on_arrays and return_attention_scores:
            raise ValueError(f"layer {self.describe()}: return_attention_scores works on arrays; "
                             "in a model read layer.attention_scores after a forward pass")
        if on_arrays and not self.built:
            self.build([tuple(a.shape[1:]) for a in packed])
        if on_arrays:
            output = self.forward(packed, training=training, mask=mask)
            return (output, self.attention_scores) if return_attention_scores else output
        return super().__call__(packed, training=training)

    def unpack(self, inputs) -> dict:
        """The list input as ``{"query": ..., "value": ..., "key": ..., "attention_mask": ...}``
        (absent ones None)."""
        layout = self.inputs_layout or LAYOUTS[0]
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(f"layer {self.describe()} takes a list of {len(layout)} inputs "
                             f"{layout}, got one {type(inputs).__name__}")
        if len(inputs) != len(layout):
            raise ValueError(f"layer {self.describe()} takes a list of {len(layout)} inputs "
                             f"{layout}, got {len(inputs)}")
        named = dict.fromkeys(LAYOUTS[-1])
        named.update(zip(layout, inputs))
        return named

    # -- building ---------------------------------------------------------------------------
    def build(self, input_shape):
        """``input_shape``: the list of the inputs' shapes (without the batch axis)."""
        if not isinstance(input_shape, (list, tuple)) or not all(
                isinstance(s, (list, tuple)) for s in input_shape):
            raise ValueError(f"layer {self.describe()} takes a list of inputs [query, value, ...]"
                             f", got one input of shape {input_shape}")
        shapes = [normalize_shape(s) for s in input_shape]
        self.dtype = backend.floatx()
        output_shape = normalize_shape(self._build(shapes), "output shape")
        self.input_shape, self._output_shape, self.built = shapes, output_shape, True
        return output_shape

    def _build(self, input_shapes):
        shapes = self.unpack([tuple(s) for s in input_shapes])
        for name in ("query", "value", "key"):
            if shapes[name] is not None and len(shapes[name]) != 2:
                raise ValueError(f"layer {self.describe()}: {name} must be (batch, steps, "
                                 f"features), got (None, {', '.join(map(str, shapes[name]))})")
        query, value = shapes["query"], shapes["value"]
        key = shapes["key"] or value
        for name in ("query", "value", "key"):
            if shapes[name] is not None and shapes[name][1] is None:
                self.refuse_variable(input_shapes, f"the features of {name} (axis -1)")
        if None not in (key[0], value[0]) and key[0] != value[0]:
            raise ValueError(f"layer {self.describe()}: key and value need the same number of "
                             f"steps, got key (None, {key[0]}, {key[1]}) and value "
                             f"(None, {value[0]}, {value[1]})")
        mask_shape = shapes["attention_mask"]
        if mask_shape is not None and not shapes_compatible(mask_shape, (query[0], value[0])):
            raise ValueError(f"layer {self.describe()}: attention_mask must be (batch, "
                             f"{query[0]}, {value[0]}) for query (None, {query[0]}, {query[1]}) "
                             f"and value (None, {value[0]}, {value[1]}), got "
                             f"(None, {', '.join(map(str, mask_shape))})")
        heads, out = self.num_heads, self.output_size or query[1]
        kernels = {"query": (query[1], heads, self.key_dim), "key": (key[1], heads, self.key_dim),
                   "value": (value[1], heads, self.value_dim),
                   "output": (heads, self.value_dim, out)}
        for name, shape in kernels.items():
            fan_in = shape[0] if name != "output" else heads * self.value_dim
            fan_out = shape[1] * shape[2] if name != "output" else out
            self.add_param(f"{name}_kernel", initializers.initialize(
                self.kernel_initializer, shape, fan_in, fan_out))
            if self.use_bias:
                bias_shape = shape[1:] if name != "output" else (out,)
                self.add_param(f"{name}_bias", initializers.initialize(
                    self.bias_initializer, bias_shape, fan_in, fan_out))
        return (query[0], out)

    def check_inputs(self, named) -> None:
        shapes = self.unpack(self.input_shape)
        for name, array in named.items():
            if array is not None and not shape_matches(array.shape[1:], shapes[name]):
                raise ValueError(f"layer {self.describe()} expects {name} of shape "
                                 f"(None, {', '.join(map(str, shapes[name]))}), got an array of "
                                 f"shape {tuple(array.shape)}")
        sizes = {a.shape[0] for a in named.values() if a is not None}
        if len(sizes) != 1:
            raise ValueError(f"layer {self.describe()}: the inputs have different batch sizes "
                             f"{sorted(sizes)}")
        query, value, key, mask = (named[n] for n in LAYOUTS[-1])
        if key is not None and key.shape[1] != value.shape[1]:
            raise ValueError(f"layer {self.describe()}: key and value need the same number of "
                             f"steps, got key {tuple(key.shape)} and value {tuple(value.shape)}")
        if mask is not None and tuple(mask.shape[1:]) != (query.shape[1], value.shape[1]):
            raise ValueError(f"layer {self.describe()}: attention_mask must be (batch, "
                             f"{query.shape[1]}, {value.shape[1]}) for query {tuple(query.shape)}"
                             f" and value {tuple(value.shape)}, got {tuple(mask.shape)}")

    # -- computation ------------------------------------------------------------------------
    def allowed_pairs(self, named, mask, query_steps, value_steps):
        """The combined (N or 1, 1, Tq, Tv) bool mask of allowed pairs, or None."""
        allowed = None

        def combine(current, extra):
            return extra if current is None else current & extra

        if named["attention_mask"] is not None:
            allowed = combine(allowed, xp.asarray(named["attention_mask"] != 0)[:, None])
        if self.use_causal_mask:
            allowed = combine(allowed, attention_ops.causal_mask(query_steps, value_steps)[None, None])
        masks = mask if isinstance(mask, (list, tuple)) else [mask]
        masks = dict(zip(self.inputs_layout or LAYOUTS[0], masks))
        if masks.get("query") is not None:
            allowed = combine(allowed, xp.asarray(masks["query"], dtype=bool)[:, None, :, None])
        keys_mask = masks.get("key") if masks.get("key") is not None else masks.get("value")
        if keys_mask is not None:
            allowed = combine(allowed, xp.asarray(keys_mask, dtype=bool)[:, None, None, :])
        return allowed

    def compute_mask(self, x, mask):
        """The query's mask (Keras)."""
        masks = mask if isinstance(mask, (list, tuple)) else [mask]
        return masks[0] if masks else None

    def forward(self, x, training=False, mask=None):
        named = self.unpack(x)
        self.check_inputs(named)
        query, value = named["query"], named["value"]
        key = value if named["key"] is None else named["key"]
        p = self.params
        projected = {name: attention_ops.project_heads(array, p[f"{name}_kernel"],
                                                        p.get(f"{name}_bias"))
                     for name, array in (("query", query), ("key", key), ("value", value))}
        allowed = self.allowed_pairs(named, mask, query.shape[1], value.shape[1])
        dropout_mask = None
        if training and self.dropout > 0:
            shape = (query.shape[0], self.num_heads, query.shape[1], value.shape[1])
            keep = backend.rng().random(shape, dtype=np.float32) >= self.dropout
            dropout_mask = backend.asarray(keep, dtype=query.dtype) * query.dtype.type(
                1.0 / (1.0 - self.dropout))
        context, scores, cache = attention_ops.attention_forward(
            projected["query"], projected["key"], projected["value"], allowed, dropout_mask)
        self.attention_scores = scores
        self._cache = (query, key, value, context, cache, named["key"] is None)
        return attention_ops.merge_heads(context, p["output_kernel"], p.get("output_bias"))

    def backward(self, grad):
        if self._cache is None:
            raise ValueError(f"layer {self.describe()}: backward called without a forward pass")
        query, key, value, context, cache, key_is_value = self._cache
        self._cache = None
        p = self.params
        d_context, self.grads["output_kernel"], d_bias = attention_ops.merge_heads_backward(
            context, p["output_kernel"], grad)
        if self.use_bias:
            self.grads["output_bias"] = d_bias
        dq, dk, dv = attention_ops.attention_backward(cache, d_context)
        inputs = {}
        for name, array, d in (("query", query, dq), ("key", key, dk), ("value", value, dv)):
            inputs[name], self.grads[f"{name}_kernel"], d_bias = \
                attention_ops.project_heads_backward(array, p[f"{name}_kernel"], d)
            if self.use_bias:
                self.grads[f"{name}_bias"] = d_bias
        if key_is_value:
            inputs["value"] = inputs["value"] + inputs.pop("key")
        if not self.needs_input_grad:
            return [None] * len(self.inputs_layout)
        return [inputs.get(name) for name in self.inputs_layout]

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "value_dim": self.value_dim,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "output_shape": self.output_size,
            "kernel_initializer": initializer_name(self.kernel_initializer),
            "bias_initializer": initializer_name(self.bias_initializer),
            "use_causal_mask": self.use_causal_mask,
            "inputs_layout": None if self.inputs_layout is None else list(self.inputs_layout),
        }


__all__ = ["MultiHeadAttention"]
