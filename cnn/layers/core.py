"""Input, Dense, Output, Flatten, Dropout and Activation."""

from __future__ import annotations

import numpy as np

from cnn import activations, backend, initializers, regularizers
from cnn.layers import batch_draws
from cnn.layers.base import ActivatedLayer, Layer, OwnGenerator
from cnn.layers.node import Node
from cnn.utils import checks


def choose(seed_value, keras_value, seed_name: str, keras_name: str, default=None):
    """Accept an argument under the seed's name or Keras's name, not two different values."""
    if seed_value is not None and keras_value is not None and seed_value != keras_value:
        raise ValueError(
            f"{seed_name}={seed_value!r} and {keras_name}={keras_value!r} are the same argument; "
            "give only one"
        )
    if seed_value is not None:
        return seed_value
    return keras_value if keras_value is not None else default


class Input(Layer):
    """The model's input: its shape without the batch axis, e.g. ``Input((1, 28, 28))``.

    ``Input(shape=(784,))`` (Keras) is accepted too. It holds no parameters and is not one of
    ``model.layers``; the model checks every batch against it. In the functional API it
    stands for its symbolic tensor: ``Dense(10)(Input((784,)))``, ``Model(inputs=x, ...)``.
    A None entry is a variable axis, as in Keras: ``Input((None, 8))`` takes sequences of
    8 features of any length (each batch has one length), ``Input((None,))`` ids of any
    length for an ``Embedding``.
    """

    variable_length = True

    def __init__(self, input_shape=None, *, shape=None, name: str | None = None):
        shape = choose(input_shape, shape, "input_shape", "shape")
        if shape is None:
            raise ValueError("Input needs a shape, e.g. Input((1, 28, 28))")
        super().__init__(input_shape=shape, name=name)  # the model names it "input", ".._1"
        self.build(self.input_shape)
        Node(self, [], False, self.input_shape)

    def symbolic_output(self):
        return self.inbound_nodes[0].output

    @property
    def shape(self) -> tuple:
        """Keras's ``Input(...).shape``: the batch axis as None."""
        return (None, *self.input_shape)

    def forward(self, x, training=False):
        self.check_input(x)
        return x

    def backward(self, grad):
        return grad

    def get_config(self):
        return {"input_shape": list(self.input_shape), "name": self.name}


class Dense(ActivatedLayer):
    """Fully connected layer on the last axis: ``a = activation(x @ kernel.T + bias)``.

    Args:
        units: output size.
        input_shape: the seed's explicit input size (int or tuple), checked when built.
        activate_fcn / activation: activation name (default linear).
        theta: initial kernel, shape (units, inputs) as the seed stores it.
        use_bias: add a bias vector (the seed's layers had none: ``use_bias=False``).
        kernel_regularizer / bias_regularizer: a penalty on the weights, added to the loss
            (``"l1"``, ``"l2"``, ``"l1_l2"`` or a ``cnn.regularizers`` object).
    Weights: ``kernel`` (units, inputs), ``bias`` (units,).
    Shapes: (N, ..., inputs) -> (N, ..., units); the usual input is (N, inputs).
    """

    samplewise = True
    variable_length = True  # on any axis but the last
    supports_masking = True  # a sequence mask passes on unchanged, as in Keras

    default_activation = None

    def __init__(self, units, input_shape=None, activate_fcn=None, theta=None, *,
                 activation=None, use_bias=True, kernel_initializer="he_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 name=None, trainable=True):
        activation = choose(activate_fcn, activation, "activate_fcn", "activation",
                            self.default_activation)
        super().__init__(activation=activation, input_shape=input_shape, name=name,
                         trainable=trainable)
        self.units = checks.count("units", units, minimum=1)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        initializers.get(kernel_initializer)
        initializers.get(bias_initializer)
        self._initial_kernel = theta
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)

    def _build(self, input_shape):
        fan_in = input_shape[-1]
        if fan_in is None:
            self.refuse_variable(input_shape, "its last axis (the features)")
        shape = (self.units, fan_in)
        self.add_param("kernel", self.given_or_initialized(
            self._initial_kernel, shape, self.kernel_initializer, fan_in, self.units, "theta",
            "(units, inputs)"))
        self._initial_kernel = None
        if self.use_bias:
            self.add_param("bias", initializers.initialize(self.bias_initializer, (self.units,),
                                                           fan_in, self.units))
        return (*input_shape[:-1], self.units)

    def forward_linear(self, x, training=False):
        self.x = x
        x2 = x.reshape(-1, x.shape[-1])
        z = x2 @ self.params["kernel"].T
        if self.use_bias:
            z += self.params["bias"]
        return z.reshape(*x.shape[:-1], self.units)

    def backward_linear(self, grad_z):
        x2 = self.x.reshape(-1, self.x.shape[-1])
        g2 = grad_z.reshape(-1, self.units)
        self.grads["kernel"] = g2.T @ x2
        if self.use_bias:
            self.grads["bias"] = g2.sum(axis=0)
        dx = g2 @ self.params["kernel"] if self.needs_input_grad else None
        self.x = None
        return None if dx is None else dx.reshape(self.input_grad_shape(grad_z))

    def input_grad_shape(self, grad_z):
        return (*grad_z.shape[:-1], self.input_shape[-1])

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "use_bias": self.use_bias,
            "kernel_initializer": initializer_name(self.kernel_initializer),
            "bias_initializer": initializer_name(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
        }


def initializer_name(init):
    """The initializer's name for a layer's config; a custom (callable) one cannot be saved."""
    if isinstance(init, str):
        return init
    raise ValueError(f"a custom initializer {init!r} cannot be saved in a config; use a name")


class Output(Dense):
    """The seed's output layer: a Dense layer whose activation defaults to softmax.

    With a cross-entropy loss the model fuses softmax and loss (gradient ``p - y``), as the
    seed's ``Output`` did with its ``outflag``.
    """

    default_activation = "softmax"

    def __init__(self, units, input_shape=None, activate_fcn=None, theta=None, **kwargs):
        super().__init__(units, input_shape, activate_fcn, theta, **kwargs)


class Flatten(Layer):
    """(N, d1, d2, ...) -> (N, d1 * d2 * ...), in C order (channels first for conv maps)."""

    samplewise = True
    variable_length_hint = ("Reduce the time axis first (GlobalAveragePooling1D, "
                            "GlobalMaxPooling1D, a recurrent layer without return_sequences) "
                            "or give the Input a fixed length.")

    def __init__(self, input_shape=None, *, name=None):
        super().__init__(input_shape=input_shape, name=name)

    def _build(self, input_shape):
        return (int(np.prod(input_shape)),)

    def forward(self, x, training=False):
        return x.reshape(x.shape[0], -1)

    def backward(self, grad):
        return grad.reshape(grad.shape[0], *self.input_shape)

    def get_config(self):
        return {"name": self.name}


class Dropout(OwnGenerator, Layer):
    """Inverted dropout: in training, zero each element with probability ``rate`` and scale the
    rest by ``1 / (1 - rate)``; identity at inference. Masks come from the seeded generator."""

    samplewise = True
    variable_length = True
    supports_masking = True

    def __init__(self, rate, input_shape=None, *, name=None, seed=None):
        try:
            rate = float(rate)
        except (TypeError, ValueError):
            raise ValueError(f"Dropout rate must be a number in [0, 1), got {rate!r}") from None
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout rate must be in [0, 1), got {rate!r}")
        super().__init__(input_shape=input_shape, name=name)
        self.rate = rate
        self.seed = seed
        self._rng = None if seed is None else np.random.default_rng(seed)
        self.mask = None

    def forward(self, x, training=False):
        if not training or self.rate == 0.0:
            self.mask = None
            return x
        rng = self._rng or backend.rng()
        # Masks are drawn for the whole global batch, this slice or part keeping its rows,
        # so that processes sharing a batch (cnn.replica) use the masks one process would.
        keep = batch_draws.rows_of(
            self, lambda size: rng.random((size, *x.shape[1:]), dtype=np.float32) >= self.rate,
            x.shape[0])
        self.mask = backend.asarray(keep, dtype=x.dtype) * x.dtype.type(1.0 / (1.0 - self.rate))
        return x * self.mask

    def backward(self, grad):
        return grad if self.mask is None else grad * self.mask

    def get_config(self):
        return {"rate": self.rate, "name": self.name, "seed": self.seed}


class Activation(Layer):
    """Applies an activation by name: ``Activation("relu")``."""

    samplewise = True
    variable_length = True
    supports_masking = True

    def __init__(self, activation, input_shape=None, *, name=None):
        super().__init__(input_shape=input_shape, name=name)
        self.activation = activations.get(activation)
        self.z = None
        self.a = None

    def forward(self, x, training=False):
        self.a = self.activation.forward(x)
        self.z = x if self.activation.needs_input else None
        return self.a

    def backward(self, grad):
        return self.activation.backward(grad, self.z, self.a)

    def get_config(self):
        return {"activation": self.activation.get_config(), "name": self.name}


__all__ = ["Input", "Dense", "Output", "Flatten", "Dropout", "Activation"]
