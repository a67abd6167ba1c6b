"""The seed's Recurrent layer: one sequence, the batch axis is time, the state is carried.

Input (T, features): the rows of a batch are consecutive time steps of *one* sequence, as
in the seed's time-series example. For each step ``t``::

    h_t = activation(U x_t + W h_{t-1} + b)

and the output row ``t`` is ``h_t`` (T, units). The last state ``h_{T-1}`` is kept (buffer
``state``) and starts the next batch; ``reset_states()`` sets it to zero, which the model
does at the start of every training epoch. Back-propagation through time runs over the steps
of a batch and stops at its first step (the carried state is a constant: truncated BPTT).
Inference (``predict``/``evaluate``) carries the state too, without resetting it.

Weights: ``kernel`` U (units, features), ``recurrent_kernel`` W (units, units), ``bias``
(units,), and the non-trainable ``state`` (units,). The seed stored ``[U | W | state]`` as one
(units, features + units + 1) matrix ``theta``; pass it as ``theta=`` (biases are then zero).

Gradients are averaged over the batch like every other layer's (the seed summed them, so its
learning rates are smaller by a factor of the batch size).
"""

from __future__ import annotations

import numpy as np

from cnn import backend, initializers
from cnn.backend import xp
from cnn.layers.base import ActivatedLayer
from cnn.layers.core import _init_name, choose


class Recurrent(ActivatedLayer):
    """Elman recurrent layer with the seed's semantics (see the module docstring)."""

    def __init__(self, units, input_shape=None, activate_fcn=None, theta=None, *,
                 activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", name=None,
                 trainable=True):
        activation = choose(activate_fcn, activation, "activate_fcn", "activation", "tanh")
        super().__init__(activation=activation, input_shape=input_shape, name=name,
                         trainable=trainable)
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units < 1:
            raise ValueError(f"units must be a positive int, got {units!r}")
        self.units = int(units)
        self.use_bias = bool(use_bias)
        for init in (kernel_initializer, recurrent_initializer, bias_initializer):
            initializers.get(init)
        self.kernel_initializer = kernel_initializer
        self.recurrent_initializer = recurrent_initializer
        self.bias_initializer = bias_initializer
        self._theta = theta
        self._cache = None

    def _build(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError(
                f"layer {self.describe()} takes one sequence as (time steps, features) "
                f"batches, i.e. input_shape (features,); got {input_shape}. "
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
        u, w = self.params["kernel"], self.params["recurrent_kernel"]
        inputs = x @ u.T
        if self.use_bias:
            inputs += self.params["bias"]
        steps = x.shape[0]
        z = xp.empty_like(inputs)
        h = xp.empty_like(inputs)
        previous = self.buffers["state"].astype(inputs.dtype)
        initial = previous
        for t in range(steps):
            z[t] = inputs[t] + w @ previous
            h[t] = self.activation.forward(z[t])
            previous = h[t]
        self.buffers["state"] = previous.copy()
        self._cache = (x, initial, z, h)
        self.z, self.a = z, h
        return h

    def backward(self, grad):
        x, initial, z, h = self._cache
        w = self.params["recurrent_kernel"]
        grad_z = xp.empty_like(grad)
        carry = xp.zeros_like(grad[0])
        for t in range(grad.shape[0] - 1, -1, -1):
            grad_z[t] = self.activation.backward(grad[t] + carry, z[t], h[t])
            carry = grad_z[t] @ w
        previous = xp.concatenate([initial[None, :], h[:-1]], axis=0)
        self.grads["kernel"] = grad_z.T @ x
        self.grads["recurrent_kernel"] = grad_z.T @ previous
        if self.use_bias:
            self.grads["bias"] = grad_z.sum(axis=0)
        self._cache = None
        return grad_z @ self.params["kernel"] if self.needs_input_grad else None

    def backward_linear(self, grad_z):
        raise ValueError("a Recurrent layer cannot be the fused output layer of a model")

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "use_bias": self.use_bias,
            "kernel_initializer": _init_name(self.kernel_initializer),
            "recurrent_initializer": _init_name(self.recurrent_initializer),
            "bias_initializer": _init_name(self.bias_initializer),
        }
