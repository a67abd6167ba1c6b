"""TimeDistributed: apply one layer to every time step of a sequence.

``TimeDistributed(layer)`` on input (N, T, *inner) runs ``layer`` on (N * T, *inner) and
returns (N, T, *inner_out): the same weights at every step, gradients summed over the steps.
``Dense`` already works on the last axis of any input, so ``Dense`` on (N, T, F) and
``TimeDistributed(Dense(...))`` compute the same thing; the wrapper is for layers that expect
one sample per row, e.g. ``TimeDistributed(Conv2D(...))`` on (N, T, C, H, W) or
``TimeDistributed(Flatten())``.
"""

from __future__ import annotations

from cnn.layers.base import Layer, deserialize, format_shape, serialize


class TimeDistributed(Layer):
    """Wraps ``layer``; its parameters, gradients and buffers are the wrapper's."""

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


__all__ = ["TimeDistributed"]
