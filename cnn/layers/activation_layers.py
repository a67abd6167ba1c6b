"""Activations as layers, with Keras's names and arguments: ReLU, LeakyReLU, Softmax, ELU,
PReLU.

Each works element by element (Softmax: along one axis) on inputs of any shape, so the
output shape is the input shape. The functions themselves live in ``cnn.activations`` and
``cnn.ops.activations``; these layers only hold their arguments, keep what the backward pass
reads, and (PReLU) a trainable slope.
"""

from __future__ import annotations

from cnn import activations, initializers, regularizers
from cnn.layers.base import ActivatedLayer, Layer
from cnn.ops import activations as ops
from cnn.utils import checks


class ActivationLayer(ActivatedLayer, register=False):
    """A weightless layer applying ``self.activation`` (an ``activations.ActivationFunction``).

    It is an ``ActivatedLayer`` whose linear part is the identity, so that a ``Softmax()``
    after a ``Dense`` output fuses with the categorical cross-entropy exactly as
    ``Dense(..., activation="softmax")`` does (gradient ``p - y`` from the logits).
    Subclasses pass the function to the constructor and list their arguments in
    ``get_config``. Shapes: (N, ...) -> (N, ...).
    """

    samplewise = True
    supports_masking = True  # element-wise: a sequence mask passes through unchanged
    variable_length = True

    def __init__(self, function, input_shape=None, name=None, trainable=True):
        super().__init__(activation=function, input_shape=input_shape, name=name,
                         trainable=trainable)

    def forward(self, x, training=False):
        # Never the in-place form: x is the layer before's output, which it may keep.
        self.a = self.activation.forward(x)
        keep_x = self.activation.needs_input or self.keep_preactivation
        self.z = x if keep_x else None
        return self.a

    def forward_linear(self, x, training=False):
        return x

    def backward_linear(self, grad_z):
        return grad_z

    def get_config(self):
        return Layer.get_config(self)  # the activation follows from the arguments


def _non_negative(layer: str, name: str, value) -> float:
    try:
        return checks.positive(name, value, allow_zero=True)
    except ValueError as exc:
        raise ValueError(f"{layer}: {exc}") from None


class ReLU(ActivationLayer):
    """Keras's ``ReLU``: ``min(x, max_value)`` for ``x > threshold``, otherwise
    ``negative_slope * (x - threshold)``.

    Args:
        max_value: upper bound of the output (None: unbounded; 6 gives PyTorch's ReLU6).
        negative_slope: slope below the threshold (>= 0).
        threshold: where the function bends (>= 0).
    Shapes: (N, ...) -> (N, ...).
    """

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, *, input_shape=None,
                 name=None, trainable=True):
        self.max_value = None if max_value is None else _non_negative("ReLU", "max_value",
                                                                      max_value)
        self.negative_slope = _non_negative("ReLU", "negative_slope", negative_slope)
        self.threshold = _non_negative("ReLU", "threshold", threshold)
        function = activations.relu(self.negative_slope, self.max_value, self.threshold)
        super().__init__(function, input_shape, name, trainable)

    def get_config(self):
        return {**super().get_config(), "max_value": self.max_value,
                "negative_slope": self.negative_slope, "threshold": self.threshold}


class LeakyReLU(ActivationLayer):
    """``x`` for ``x > 0``, ``negative_slope * x`` otherwise (Keras 3's default slope 0.3;
    ``alpha=`` is Keras 2's name for the same argument).

    Shapes: (N, ...) -> (N, ...).
    """

    def __init__(self, negative_slope=None, *, alpha=None, input_shape=None, name=None,
                 trainable=True):
        if negative_slope is not None and alpha is not None and negative_slope != alpha:
            raise ValueError(f"LeakyReLU: negative_slope={negative_slope!r} and alpha={alpha!r} "
                             "are the same argument; give only one")
        slope = next((v for v in (negative_slope, alpha) if v is not None), 0.3)
        self.negative_slope = _non_negative("LeakyReLU", "negative_slope", slope)
        super().__init__(activations.leaky_relu(self.negative_slope), input_shape, name,
                         trainable)

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


class ELU(ActivationLayer):
    """``x`` for ``x > 0``, ``alpha * (exp(x) - 1)`` otherwise. Shapes: (N, ...) -> (N, ...)."""

    def __init__(self, alpha=1.0, *, input_shape=None, name=None, trainable=True):
        self.alpha = _non_negative("ELU", "alpha", alpha)
        super().__init__(activations.elu(self.alpha), input_shape, name, trainable)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


class Softmax(ActivationLayer):
    """Softmax over ``axis``, counted as Keras does with the batch axis first: ``-1`` (the
    default) is the last axis, ``1`` the first axis of a sample (channels of an image).

    Shapes: (N, ...) -> (N, ...).
    """

    def __init__(self, axis=-1, *, input_shape=None, name=None, trainable=True):
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise ValueError(f"Softmax axis must be an int, got {axis!r}")
        self.axis = axis
        super().__init__(activations.softmax(self.axis), input_shape, name, trainable)

    def _build(self, input_shape):
        rank = len(input_shape) + 1  # with the batch axis
        if not (-rank <= self.axis < rank) or self.axis % rank == 0:
            raise ValueError(
                f"layer {self.describe()}: axis {self.axis} is not an axis of a sample of shape "
                f"{input_shape} (valid: 1..{rank - 1} or -{rank - 1}..-1; axis 0 is the batch)")
        return input_shape

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class PReLU(Layer):
    """``x`` for ``x >= 0``, ``alpha * x`` otherwise, with a trainable ``alpha`` (Keras).

    Args:
        alpha_initializer: initial slopes (Keras's default "zeros"; PyTorch starts at 0.25:
            pass ``alpha_initializer=0.25`` for a constant).
        alpha_regularizer: a penalty on ``alpha`` (``cnn.regularizers``).
        shared_axes: axes (counted with the batch axis as 0, as in Keras) along which one
            slope is shared; e.g. ``[2, 3]`` on (N, C, H, W) gives one slope per channel,
            PyTorch's ``PReLU(num_parameters=C)``.
    Weights: ``alpha``, the input shape with the shared axes of size 1.
    Shapes: (N, ...) -> (N, ...).
    """

    samplewise = True
    supports_masking = True  # element-wise: a sequence mask passes through unchanged

    def __init__(self, alpha_initializer="zeros", alpha_regularizer=None, shared_axes=None, *,
                 input_shape=None, name=None, trainable=True):
        super().__init__(input_shape=input_shape, name=name, trainable=trainable)
        if isinstance(alpha_initializer, str):
            initializers.get(alpha_initializer)
        else:
            alpha_initializer = checks.number("PReLU alpha_initializer", alpha_initializer)
        self.alpha_initializer = alpha_initializer
        self.alpha_regularizer = regularizers.get(alpha_regularizer)
        if shared_axes is None:
            shared_axes = []
        elif isinstance(shared_axes, int):
            shared_axes = [shared_axes]
        self.shared_axes = sorted({checks.count("PReLU shared_axes", a, minimum=1)
                                   for a in shared_axes})
        self.x = None

    def _build(self, input_shape):
        if self.shared_axes and self.shared_axes[-1] > len(input_shape):
            raise ValueError(
                f"layer {self.describe()}: shared_axes {self.shared_axes} name an axis beyond "
                f"those of its input (N, {', '.join(map(str, input_shape))})")
        shape = tuple(1 if i + 1 in self.shared_axes else size
                      for i, size in enumerate(input_shape))
        if isinstance(self.alpha_initializer, str):
            alpha = initializers.initialize(self.alpha_initializer, shape, 1, 1)
        else:
            alpha = initializers.initialize("ones", shape, 1, 1) * self.alpha_initializer
        self.add_param("alpha", alpha)
        return input_shape

    def forward(self, x, training=False):
        self.x = x
        return ops.prelu(x, self.params["alpha"])

    def backward(self, grad):
        grad_x, grad_alpha = ops.prelu_backward(grad, self.x, self.params["alpha"])
        reduced = (0, *(axis for axis in self.shared_axes))
        self.grads["alpha"] = grad_alpha.sum(axis=reduced, keepdims=True)[0]
        self.x = None
        return grad_x if self.needs_input_grad else None

    def get_config(self):
        return {**super().get_config(), "alpha_initializer": self.alpha_initializer,
                "alpha_regularizer": regularizers.serialize(self.alpha_regularizer),
                "shared_axes": list(self.shared_axes) or None}


__all__ = ["ReLU", "LeakyReLU", "ELU", "Softmax", "PReLU"]
