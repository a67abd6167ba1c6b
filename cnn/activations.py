"""Activation functions by name.

``get(name)`` returns an :class:`ActivationFunction`: a forward and a backward pair plus what
the backward needs (``needs_input``: whether it reads the pre-activation ``z``; otherwise the
output ``a`` suffices, which lets a layer drop ``z`` early).

Names are case-insensitive, the seed's spellings included (``"ReLU"``, ``"Linear"``)::

    relu, sigmoid, tanh, softmax, linear (also None), leaky_relu, elu, gelu, softplus,
    silu (swish)

An unknown name raises ``ValueError`` listing these; the seed silently used a default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from cnn.ops import activations as ops
from cnn.utils.naming import lookup


@dataclass(frozen=True)
class ActivationFunction:
    """An element-wise (or last-axis, for softmax) activation with its backward pass."""

    name: str
    forward: Callable = field(repr=False)
    backward: Callable = field(repr=False)  # backward(grad_a, z, a) -> grad_z
    needs_input: bool = field(default=False, repr=False)
    forward_inplace: Callable | None = field(default=None, repr=False)  # overwrites z
    backward_inplace: Callable | None = field(default=None, repr=False)  # overwrites grad_a

    def __call__(self, z):
        return self.forward(z)

    def get_config(self) -> str:
        return self.name


def _alpha(fn, alpha):
    return lambda *args: fn(*args, alpha=alpha)


def leaky_relu(alpha: float = 0.01) -> ActivationFunction:
    """Leaky ReLU with slope ``alpha`` for negative inputs (``"leaky_relu"`` uses 0.01)."""
    return ActivationFunction(
        "leaky_relu" if alpha == 0.01 else f"leaky_relu({alpha})",
        _alpha(ops.leaky_relu, alpha),
        _alpha(ops.leaky_relu_backward, alpha),
        needs_input=True,
    )


def elu(alpha: float = 1.0) -> ActivationFunction:
    """ELU: ``z`` for ``z > 0``, ``alpha * (exp(z) - 1)`` otherwise."""
    return ActivationFunction(
        "elu" if alpha == 1.0 else f"elu({alpha})",
        _alpha(ops.elu, alpha),
        _alpha(ops.elu_backward, alpha),
        needs_input=True,
    )


def relu(negative_slope: float = 0.0, max_value: float | None = None,
         threshold: float = 0.0) -> ActivationFunction:
    """Keras's general ReLU: ``min(z, max_value)`` above ``threshold``,
    ``negative_slope * (z - threshold)`` below (the defaults give plain ``"relu"``)."""
    if negative_slope == 0.0 and max_value is None and threshold == 0.0:
        return RELU
    options = {"negative_slope": negative_slope, "max_value": max_value, "threshold": threshold}
    shown = ", ".join(f"{k}={v}" for k, v in options.items() if v not in (None, 0.0))
    return ActivationFunction(
        f"relu({shown})",
        lambda z: ops.thresholded_relu(z, **options),
        lambda grad, z, a: ops.thresholded_relu_backward(grad, z, a, **options),
        needs_input=True,
    )


def softmax(axis: int = -1) -> ActivationFunction:
    """Softmax over ``axis`` of the array it is given (``"softmax"``: the last axis)."""
    if axis == -1:
        return SOFTMAX
    return ActivationFunction(
        f"softmax(axis={axis})",
        lambda z: ops.softmax(z, axis=axis),
        lambda grad, z, a: ops.softmax_backward(grad, z, a, axis=axis),
    )


LINEAR = ActivationFunction("linear", ops.linear, ops.linear_backward, forward_inplace=ops.linear)
RELU = ActivationFunction("relu", ops.relu, ops.relu_backward, forward_inplace=ops.relu_inplace,
                          backward_inplace=ops.relu_backward_inplace)
SIGMOID = ActivationFunction("sigmoid", ops.sigmoid, ops.sigmoid_backward)
TANH = ActivationFunction("tanh", ops.tanh, ops.tanh_backward)
SOFTMAX = ActivationFunction("softmax", ops.softmax, ops.softmax_backward)
GELU = ActivationFunction("gelu", ops.gelu, ops.gelu_backward, needs_input=True)
SOFTPLUS = ActivationFunction("softplus", ops.softplus, ops.softplus_backward, needs_input=True)
SILU = ActivationFunction("silu", ops.silu, ops.silu_backward, needs_input=True)

_ACTIVATIONS = {
    "linear": LINEAR,
    "relu": RELU,
    "sigmoid": SIGMOID,
    "tanh": TANH,
    "softmax": SOFTMAX,
    "leaky_relu": leaky_relu(),
    "elu": elu(),
    "gelu": GELU,
    "softplus": SOFTPLUS,
    "silu": SILU,
    "swish": SILU,
}


def _parametrised(name: str):
    """Parse ``"leaky_relu(0.2)"`` / ``"elu(0.5)"`` as written by ``get_config``."""
    for prefix, factory in (("leaky_relu(", leaky_relu), ("elu(", elu)):
        if name.lower().startswith(prefix) and name.endswith(")"):
            try:
                return factory(float(name[len(prefix):-1]))
            except ValueError:
                return None
    return None


def get(identifier) -> ActivationFunction:
    """Resolve an activation given by name, ``None`` (linear) or an ActivationFunction."""
    if identifier is None:
        return LINEAR
    if isinstance(identifier, ActivationFunction):
        return identifier
    if isinstance(identifier, str):
        found = _parametrised(identifier)
        if found is not None:
            return found
    return lookup("activation", identifier, _ACTIVATIONS)


def names() -> list[str]:
    """The valid activation names."""
    return sorted(_ACTIVATIONS)
