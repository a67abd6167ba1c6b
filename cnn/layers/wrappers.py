"""TimeDistributed: apply one layer to every time step of a sequence; Bidirectional: run a
recurrent layer both ways over a sequence (see its class docstring).

``TimeDistributed(layer)`` on input (N, T, *inner) runs ``layer`` on (N * T, *inner) and
returns (N, T, *inner_out): the same weights at every step, gradients summed over the steps.
``Dense`` already works on the last axis of any input, so ``Dense`` on (N, T, F) and
``TimeDistributed(Dense(...))`` compute the same thing; the wrapper is for layers that expect
one sample per row, e.g. ``TimeDistributed(Conv2D(...))`` on (N, T, C, H, W) or
``TimeDistributed(Flatten())``.
"""

from __future__ import annotations

from collections.abc import MutableMapping

from cnn.backend import xp
from cnn.layers.base import Layer, deserialize, format_shape, serialize
from cnn.layers.rnn import RNN_LAYERS


class TimeDistributed(Layer):
    """Wraps ``layer``; its parameters, gradients and buffers are the wrapper's. The time
    axis may be variable (None); the wrapped layer sees the axes after it. A sequence mask
    (N, T) passes on unchanged, as in Keras 3 (each step is computed on its own)."""

    variable_length = True
    supports_masking = True

    @property
    def samplewise(self) -> bool:
        return self.layer.samplewise

    def __init__(self, layer, input_shape=None, *, name=None, trainable=True):
        if isinstance(layer, dict):
            layer = deserialize(layer)
        if not isinstance(layer, Layer):
            raise ValueError(f"TimeDistributed wraps a cnn layer, got {layer!r}")
        if layer.built:
            raise ValueError(f"layer {layer.describe()} is already built; wrap a new layer")
        super().__init__(input_shape=input_shape, name=name, trainable=trainable)
        self.layer = layer

    def _build(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(
                f"layer {self.describe()} needs input (batch, time steps, ...), got "
                f"{format_shape(input_shape)}"
            )
        inner_output = self.layer.build(input_shape[1:])
        self.params, self.grads, self.buffers = self.layer.params, self.layer.grads, self.layer.buffers
        return (input_shape[0], *inner_output)

    def forward(self, x, training=False):
        self.check_input(x)
        batch, steps = x.shape[:2]
        self.layer.needs_input_grad = self.needs_input_grad
        out = self.layer.forward(x.reshape(batch * steps, *x.shape[2:]), training=training)
        return out.reshape(batch, steps, *out.shape[1:])

    def backward(self, grad):
        batch, steps = grad.shape[:2]
        dx = self.layer.backward(grad.reshape(batch * steps, *grad.shape[2:]))
        return None if dx is None else dx.reshape(batch, steps, *dx.shape[1:])

    def get_config(self):
        return {**super().get_config(), "layer": serialize(self.layer)}



class PrefixedWeights(MutableMapping):
    """The weight dicts of inner layers seen as one dict, keys prefixed per layer
    (``"forward_kernel"``); reading and writing go through to the inner dicts, so the
    optimizer's in-place updates, ``set_weights`` and carried states all reach the layers."""

    def __init__(self, parts):
        self.parts = list(parts)  # (prefix, dict)

    def _locate(self, key):
        for prefix, store in self.parts:
            if key.startswith(prefix) and key[len(prefix):] in store:
                return store, key[len(prefix):]
        raise KeyError(key)

    def __getitem__(self, key):
        store, inner = self._locate(key)
        return store[inner]

    def __setitem__(self, key, value):
        for prefix, store in self.parts:
            if key.startswith(prefix):
                store[key[len(prefix):]] = value
                return
        raise KeyError(f"{key!r} belongs to none of the layers ({[p for p, _ in self.parts]})")

    def __delitem__(self, key):
        store, inner = self._locate(key)
        del store[inner]

    def __iter__(self):
        for prefix, store in self.parts:
            for key in list(store):
                yield prefix + key

    def __len__(self):
        return sum(len(store) for _, store in self.parts)


MERGE_MODES = ("concat", "sum", "mul", "ave", None)


class Bidirectional(Layer):
    """Runs a recurrent layer forwards and a second one backwards over the sequence and
    merges their outputs (Keras's ``Bidirectional``).

    Args:
        layer: a SimpleRNN, LSTM or GRU (not built); it becomes ``forward_layer``.
        merge_mode: ``"concat"`` (default; features of both, forward first), ``"sum"``,
            ``"mul"``, ``"ave"``, or None: the two outputs as a list ``[forward, backward]``
            (for calls on arrays; a model carries one tensor per layer, so use a merge mode
            there).
        backward_layer: the layer for the backward direction; by default a copy of ``layer``'s
            config with ``go_backwards`` flipped. A given one must have the other
            ``go_backwards`` and the same ``return_sequences``, ``return_state`` and
            ``stateful``.
    Shapes: (N, T, F) -> (N, T, 2U) with concat and ``return_sequences``, (N, 2U) without;
    U instead of 2U for the other modes. With ``return_sequences`` the backward layer's
    outputs are put back in time order, so step t merges both directions' outputs at t.
    Masks go to both layers; with ``return_sequences`` masked steps output zeros (Keras sets
    ``zero_output_for_mask`` on both layers) and the output mask is the input mask.
    Weights: the forward layer's then the backward layer's, keys prefixed ``forward_`` /
    ``backward_`` (``forward_kernel``, ..., ``backward_recurrent_kernel``).
    ``return_state=True``: the layer outputs its merged output only; the final states are
    ``layer.states``, ``[*forward_states, *backward_states]`` (Keras's order).
    """

    accepts_mask = True
    supports_masking = True
    variable_length = True  # as the recurrent layers: any number of steps

    def __init__(self, layer, merge_mode="concat", backward_layer=None, input_shape=None, *,
                 name=None, trainable=True):
        layer = deserialize(layer) if isinstance(layer, dict) else layer
        backward_layer = (deserialize(backward_layer) if isinstance(backward_layer, dict)
                          else backward_layer)
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"Bidirectional merge_mode must be one of {MERGE_MODES}, got "
                             f"{merge_mode!r}")
        for what, given in (("layer", layer), ("backward_layer", backward_layer)):
            if given is None and what == "backward_layer":
                continue
            if not isinstance(given, RNN_LAYERS):
                raise ValueError(f"Bidirectional {what} must be a SimpleRNN, LSTM or GRU, got "
                                 f"{given!r}")
            if given.built:
                raise ValueError(f"layer {given.describe()} is already built; wrap a new layer")
        super().__init__(input_shape=input_shape, name=name, trainable=trainable)
        self.merge_mode = merge_mode
        self.custom_backward = backward_layer is not None
        if backward_layer is None:
            config = layer.get_config()
            config["go_backwards"] = not layer.go_backwards
            base = None if layer.name is None else layer.name.removeprefix("forward_")
            config["name"] = None if base is None else f"backward_{base}"
            backward_layer = type(layer).from_config(config)
        for attribute in ("return_sequences", "return_state", "stateful"):
            if getattr(layer, attribute) != getattr(backward_layer, attribute):
                raise ValueError(
                    f"Bidirectional: forward and backward layers need the same {attribute}, got "
                    f"{getattr(layer, attribute)} and {getattr(backward_layer, attribute)}")
        if layer.go_backwards == backward_layer.go_backwards:
            raise ValueError("Bidirectional: backward_layer needs the other go_backwards than "
                             f"layer (both have go_backwards={layer.go_backwards})")
        self.forward_layer, self.backward_layer = layer, backward_layer
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        for inner in (layer, backward_layer):
            inner.zero_output_for_mask = self.return_sequences
        pairs = (("forward_", layer), ("backward_", backward_layer))
        self.params = PrefixedWeights([(prefix, inner.params) for prefix, inner in pairs])
        self.grads = PrefixedWeights([(prefix, inner.grads) for prefix, inner in pairs])
        self.buffers = PrefixedWeights([(prefix, inner.buffers) for prefix, inner in pairs])
        self._outputs = None

    @property
    def samplewise(self) -> bool:
        return self.forward_layer.samplewise and self.backward_layer.samplewise

    @property
    def needs_ordered_batches(self) -> bool:
        return self.forward_layer.stateful

    @property
    def states(self):
        return [*self.forward_layer.states, *self.backward_layer.states]

    def reset_states(self, states=None) -> None:
        split = None if states is None else len(self.forward_layer.state_names)
        self.forward_layer.reset_states(None if states is None else states[:split])
        self.backward_layer.reset_states(None if states is None else states[split:])

    def _build(self, input_shape):
        for prefix, inner in (("forward_", self.forward_layer), ("backward_", self.backward_layer)):
            if inner.name is None:  # Keras's names, so that errors say which direction
                inner.name = prefix + inner.default_name()
        forward_shape = self.forward_layer.build(input_shape)
        backward_shape = self.backward_layer.build(input_shape)
        if self.merge_mode != "concat" and forward_shape != backward_shape:
            raise ValueError(
                f"Bidirectional merge_mode={self.merge_mode!r} adds up outputs of equal shapes, "
                f"but the forward layer gives {forward_shape} and the backward layer "
                f"{backward_shape}; give both the same units or use merge_mode='concat'")
        self.batch_sized_buffers = tuple(
            f"{prefix}{key}" for prefix, inner in (("forward_", self.forward_layer),
                                                   ("backward_", self.backward_layer))
            for key in inner.batch_sized_buffers)
        if self.merge_mode == "concat":
            return (*forward_shape[:-1], forward_shape[-1] + backward_shape[-1])
        return forward_shape

    def compute_mask(self, x, mask):
        return mask if self.return_sequences else None

    def forward(self, x, training=False, mask=None):
        for inner in (self.forward_layer, self.backward_layer):
            inner.needs_input_grad = self.needs_input_grad
        y_forward = self.forward_layer.forward(x, training=training, mask=mask)
        y_backward = self.backward_layer.forward(x, training=training, mask=mask)
        if self.return_sequences:
            y_backward = y_backward[:, ::-1]
        self._outputs = (y_forward, y_backward)
        return merge_forward(self.merge_mode, y_forward, y_backward)

    def backward(self, grad):
        if self._outputs is None:
            raise ValueError(f"layer {self.describe()}: backward called without a forward pass")
        g_forward, g_backward = merge_backward(self.merge_mode, grad, *self._outputs)
        self._outputs = None
        if self.return_sequences:
            g_backward = g_backward[:, ::-1]
        dx_forward = self.forward_layer.backward(xp.ascontiguousarray(g_forward))
        dx_backward = self.backward_layer.backward(xp.ascontiguousarray(g_backward))
        return None if dx_forward is None else dx_forward + dx_backward

    def get_config(self):
        config = {**super().get_config(), "layer": serialize(self.forward_layer),
                  "merge_mode": self.merge_mode}
        if self.custom_backward:
            config["backward_layer"] = serialize(self.backward_layer)
        return config


def merge_forward(mode, a, b):
    """The merged output of the two directions (a list for ``mode=None``)."""
    if mode == "concat":
        return xp.concatenate([a, b], axis=-1)
    if mode == "sum":
        return a + b
    if mode == "ave":
        return (a + b) * a.dtype.type(0.5)
    if mode == "mul":
        return a * b
    return [a, b]


def merge_backward(mode, grad, a, b):
    """The gradients of the two directions' outputs from the merged output's gradient."""
    if mode == "concat":
        units = a.shape[-1]
        return grad[..., :units], grad[..., units:]
    if mode == "sum":
        return grad, grad
    if mode == "ave":
        half = grad * grad.dtype.type(0.5)
        return half, half
    if mode == "mul":
        return grad * b, grad * a
    return grad[0], grad[1]


__all__ = ["TimeDistributed", "Bidirectional"]
