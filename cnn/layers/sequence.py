"""Masking and RepeatVector: small layers of sequence models.

* ``Masking(mask_value=0.0)``: on (N, T, F), a step whose features all equal ``mask_value`` is
  masked (the output mask is ``any(x != mask_value, axis=-1)``, (N, T)) and its features are
  set to zero, as Keras does; the layers after that accept masks (the recurrent layers) skip
  it.
* ``RepeatVector(n)``: (N, F) -> (N, n, F), the input repeated at every step (the bridge from
  an encoder's last state to a decoder in sequence-to-sequence models).
"""

from __future__ import annotations

from cnn.backend import xp
from cnn.layers.base import Layer
from cnn.utils import checks


class Masking(Layer):
    """Masks the time steps whose features all equal ``mask_value``; shapes (N, T, F)."""

    samplewise = True
    supports_masking = True
    variable_length = True

    def __init__(self, mask_value=0.0, input_shape=None, *, name=None, trainable=True):
        super().__init__(input_shape=input_shape, name=name, trainable=trainable)
        self.mask_value = checks.number("mask_value", mask_value)
        self._keep = None

    def _build(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(f"layer {self.describe()} needs input of shape (batch, time steps, "
                             f"features), got {input_shape}")
        return input_shape

    def compute_mask(self, x, mask=None):
        return xp.any(x != self.mask_value, axis=-1)

    def forward(self, x, training=False):
        self.check_input(x)
        self._keep = xp.any(x != self.mask_value, axis=-1, keepdims=True).astype(x.dtype)
        return x * self._keep

    def backward(self, grad):
        return grad * self._keep

    def get_config(self):
        return {**super().get_config(), "mask_value": self.mask_value}


class RepeatVector(Layer):
    """Repeats a (N, F) input ``n`` times: output (N, n, F)."""

    samplewise = True

    def __init__(self, n, input_shape=None, *, name=None, trainable=True):
        super().__init__(input_shape=input_shape, name=name, trainable=trainable)
        self.n = checks.count("n", n, minimum=1)

    def _build(self, input_shape):
        self.require_rank(input_shape, 1, "(batch, features)")
        return (self.n, input_shape[0])

    def forward(self, x, training=False):
        self.check_input(x)
        return xp.repeat(x[:, None, :], self.n, axis=1)

    def backward(self, grad):
        return grad.sum(axis=1)

    def get_config(self):
        return {**super().get_config(), "n": self.n}


__all__ = ["Masking", "RepeatVector"]
