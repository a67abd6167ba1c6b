"""The seed's Recurrent layer: one sequence, the batch axis is time, the state is carried.

Input (T, features): the rows of a batch are consecutive time steps of *one* sequence, as
in the seed's time-series example. For each step ``t``::

    h_t = activation(U x_t + W h_{t-1} + b)

and the output row ``t`` is ``h_t`` (T, units). The last state ``h_{T-1}`` is kept (buffer
``state``) and starts the next batch; ``reset_states()`` sets it to zero, which the model
does at the start of every training epoch. Back-propagation through time runs over the steps
of a batch and stops at its first step (the carried state is a constant: truncated BPTT).
Inference (``predict``/``evaluate``) carries the state too, without resetting it. Because
batches continue each other, ``Model.fit`` refuses ``shuffle=True`` for a model with this
layer.

Weights: ``kernel`` U (units, features), ``recurrent_kernel`` W (units, units), ``bias``
(units,), and the non-trainable ``state`` (units,). The seed stored ``[U | W | state]`` as one
(units, features + units + 1) matrix ``theta`` and had no bias; pass its matrix as ``theta=``
with ``use_bias=False`` to get its layer exactly.

Gradients are the gradients of the *mean* loss over the batch's time steps, like every other
layer's. The seed *summed* them over the batch (its ``MSE`` loss back-propagated ``h - y``
for every row), so its learning rates are smaller by a factor of the batch size: the seed's
``lr = 0.01`` with batch 50 is ``lr = 0.5`` here with the seed's ``"MSE"`` loss.

This is ``SimpleRNN`` applied to one sequence (the same kernel, ``cnn.ops.rnn``); for batches
of sequences (N, T, F) use ``SimpleRNN``, ``LSTM`` or ``GRU``.
"""

from __future__ import annotations

import numpy as np

from cnn import backend, initializers
from cnn.backend import xp
from cnn.layers.base import Layer, format_shape
from cnn.layers.core import choose
from cnn.layers.rnn import recurrent_config, set_recurrent_arguments
from cnn.ops import rnn as rnn_ops


class Recurrent(Layer):
    """Elman recurrent layer with the seed's semantics (see the module docstring).

    Args:
        units: size of the state and the output.
        input_shape: the seed's explicit input size (``3`` or ``(3,)``), checked when built.
        activate_fcn / activation: element-wise activation name (default tanh).
        theta: the seed's (units, features + units + 1) matrix ``[U | W | state]``.
    Shapes: (T, features) -> (T, units).
    """

    needs_ordered_batches = True

    def __init__(self, units, input_shape=None, activate_fcn=None, theta=None, *,
                 activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", name=None,
                 trainable=True):
        activation = choose(activate_fcn, activation, "activate_fcn", "activation", "tanh")
        super().__init__(input_shape=input_shape, name=name, trainable=trainable)
        set_recurrent_arguments(self, units, activation, use_bias, kernel_initializer,
                                recurrent_initializer, bias_initializer)
        self._theta = theta
        self._cache = None

    def _build(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError(
                f"layer {self.describe()} takes one sequence as (time steps, features) "
                f"batches, i.e. input_shape (features,); got {format_shape(input_shape)}. "
                "For batches of sequences use SimpleRNN/LSTM/GRU."
            )
        features, units = input_shape[0], self.units
        if self._theta is not None:
            theta = np.asarray(backend.to_numpy(self._theta))
            expected = (units, features + units + 1)
            if theta.shape != expected:
                raise ValueError(
                    f"layer {self.describe()}: theta has shape {theta.shape}, expected {expected} "
                    "([U | W | state])"
                )
            kernel, recurrent, state = theta[:, :features], theta[:, features:-1], theta[:, -1]
            self._theta = None
        else:
            kernel = initializers.initialize(self.kernel_initializer, (units, features), features, units)
            recurrent = initializers.initialize(self.recurrent_initializer, (units, units), units, units)
            state = np.zeros(units)
        self.add_param("kernel", kernel)
        self.add_param("recurrent_kernel", recurrent)
        if self.use_bias:
            self.add_param("bias", initializers.initialize(self.bias_initializer, (units,),
                                                           features, units))
        self.add_param("state", state, trainable=False)
        return (units,)

    def reset_states(self) -> None:
        """Zero the carried state (the model calls this at the start of each epoch)."""
        self.buffers["state"] = xp.zeros_like(self.buffers["state"])

    def forward(self, x, training=False):
        if x.ndim != 2 or x.shape[1] != self.input_shape[0]:
            raise ValueError(
                f"layer {self.describe()} expects one sequence as an array (time steps, "
                f"{self.input_shape[0]}), got shape {tuple(x.shape)}"
            )
        xw = x @ self.params["kernel"].T
        if self.use_bias:
            xw += self.params["bias"]
        start = self.buffers["state"].astype(xw.dtype)[None, :]
        h, (last,), cache = rnn_ops.simple_rnn_forward(
            xw[:, None, :], start, self.params["recurrent_kernel"], self.activation)
        self.buffers["state"] = last[0].copy()
        self._cache = (x, cache)
        return h[:, 0, :].copy()

    def backward(self, grad):
        x, cache = self._cache
        dxw, _, (d_recurrent,) = rnn_ops.simple_rnn_backward(cache, grad[:, None, :], [None])
        grad_z = dxw[:, 0, :]
        self.grads["kernel"] = grad_z.T @ x
        self.grads["recurrent_kernel"] = d_recurrent
        if self.use_bias:
            self.grads["bias"] = grad_z.sum(axis=0)
        self._cache = None
        return grad_z @ self.params["kernel"] if self.needs_input_grad else None

    def get_config(self):
        return {**super().get_config(), **recurrent_config(self)}
