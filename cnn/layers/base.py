"""The Layer base class: shape inference, parameters, gradients, weights and configs.

Shapes given to and returned by ``build`` exclude the batch axis; ``output_shape`` includes
it as ``None``, as in the seed's ``summary`` (``(None, 20, 20, 20)``).

A layer:

* creates its parameters in ``build(input_shape)`` (called by the model, which infers
  ``input_shape`` from the layer before); a shape given to the constructor (the seed's
  ``input_shape=`` argument) is checked against the inferred one;
* computes ``forward(x, training)`` keeping only what ``backward`` needs;
* in ``backward(grad)`` fills ``self.grads`` (same keys as ``self.params``, summed over the
  batch: the loss already divides by the batch size) and returns the gradient with respect to
  its input (``None`` when ``needs_input_grad`` is False, which the model sets for the first
  layer); it may overwrite ``grad``, which the model hands to one layer only;
* never updates its own parameters: the optimizer does.

``params`` hold trainable arrays, ``buffers`` non-trainable state (moving statistics,
carried recurrent state). ``get_weights()`` returns both, params first, in insertion order.

Calling a layer on a symbolic tensor (``Dense(10)(x)`` with ``x = Input((784,))``) builds it
from the tensor's shape and records a node (``cnn.layers.node``); calling it on arrays builds
it if needed and runs ``forward``. A layer called on a list (``Add()([a, b])``) is a
multi-input layer: ``build`` gets a list of shapes, ``forward`` a list of arrays and
``backward`` returns a list of gradients in the same order (``None`` for an input that needs
none).

Variable axes: a shape entry None (``Input((None, 8))``) is a length fixed only by each batch.
A class that sets ``variable_length = True`` builds on such shapes (returning None where its
output length follows the input's) and works out per batch what depends on the length; the
others refuse them when built (``refuse_variable``), naming the layer.

Masks (an optional boolean array (N, T) per tensor): after a layer's forward the graph sets
its output's mask to ``layer.compute_mask(x, mask)``; by default that is ``None``, or the
incoming mask unchanged when the class sets ``supports_masking = True``. A class that sets
``accepts_mask = True`` has its forward called as ``forward(x, training=..., mask=mask)``.
"""

from __future__ import annotations

import numpy as np

from cnn import activations, backend, initializers
from cnn.layers.node import Node, SymbolicTensor, has_variable_axis, is_symbolic, shape_matches
from cnn.utils.naming import snake_case

_LAYER_CLASSES: dict[str, type] = {}


def normalize_shape(shape, what="input_shape") -> tuple[int | None, ...] | None:
    """``None`` -> None; ``2000`` -> ``(2000,)``; sequences -> tuple of positive ints, where
    an entry None is a variable axis (``(None, 8)``: any number of steps of 8 features)."""
    if shape is None:
        return None
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (int(shape),)
    try:
        result = tuple(None if s is None else int(s) for s in shape)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be an int or a tuple of ints (None for a variable "
                         f"axis), got {shape!r}") from None
    if any(s is not None and s < 1 for s in result):
        raise ValueError(f"{what} must contain positive sizes, got {shape!r}")
    return result


def format_shape(shape) -> str:
    """``(20, 20)`` -> ``"(None, 20, 20)"``, the batch axis shown as None."""
    return str((None, *shape))


class Layer:
    """Base class of all layers; subclasses implement ``_build``, ``forward``, ``backward``.

    ``samplewise``: True when the layer treats every sample of a batch on its own (no batch
    statistics, no state carried from sample to sample), so that the model may run a batch
    in parts and add up their gradients. False, the safe default, keeps batches whole.
    """

    samplewise = False
    supports_masking = False  # passes the incoming mask on unchanged (see compute_mask)
    accepts_mask = False  # forward takes mask=...
    # Works on inputs with a variable (None) axis, e.g. sequences of any length; the others
    # refuse such inputs when built (``variable_length_hint`` says what to do instead).
    variable_length = False
    variable_length_hint = ""

    def __init_subclass__(cls, register: bool = True, **kwargs):
        """Concrete layers register under their class name (for loading saved configs);
        base classes opt out with ``class Base(Layer, register=False)``."""
        super().__init_subclass__(**kwargs)
        if register and not cls.__name__.startswith("_"):
            _LAYER_CLASSES[cls.__name__] = cls

    def __init__(self, input_shape=None, name: str | None = None, trainable: bool = True):
        if name is not None and (not isinstance(name, str) or not name or "/" in name):
            raise ValueError(f"layer name must be a non-empty string without '/', got {name!r}")
        self.name = name
        self.trainable = bool(trainable)
        self.input_shape = normalize_shape(input_shape)
        self._declared_input_shape = self.input_shape
        self._output_shape: tuple | None = None
        self.params: dict = {}
        self.grads: dict = {}
        self.buffers: dict = {}
        self.built = False
        self.needs_input_grad = True
        self.dtype = backend.floatx()
        self.batch_sized_buffers: tuple = ()  # buffers whose first axis is the batch size
        self.inbound_nodes: list = []  # one per call on symbolic tensors

    # -- shapes -----------------------------------------------------------------------------
    @property
    def output_shape(self):
        """The output shape with the batch axis, ``(None, ...)``; needs the layer built."""
        if self._output_shape is None:
            raise ValueError(f"layer {self.describe()} is not built yet: add it to a model first")
        return (None, *self._output_shape)

    def build(self, input_shape) -> tuple:
        """Check ``input_shape`` against the declared one, create parameters, return the
        output shape (both without the batch axis). A multi-input layer gets a list of
        shapes."""
        if isinstance(input_shape, list):
            input_shape = [normalize_shape(shape) for shape in input_shape]
        else:
            input_shape = normalize_shape(input_shape)
        declared = self._declared_input_shape
        if declared is not None and declared != input_shape:
            raise ValueError(
                f"layer {self.describe()} was declared with input_shape {format_shape(declared)} "
                f"but receives input of shape {format_shape(input_shape)} from the layer before"
            )
        if has_variable_axis(input_shape) and not self.variable_length:
            self.refuse_variable(input_shape)
        self.dtype = backend.floatx()
        output_shape = normalize_shape(self._build(input_shape), "output shape")
        self.input_shape = input_shape
        self._output_shape = output_shape
        self.built = True
        return output_shape

    def _build(self, input_shape: tuple) -> tuple:
        return input_shape

    def refuse_variable(self, input_shape, what: str = "every axis") -> None:
        """Raise the ValueError of a layer that needs a known size on ``what`` but got a
        variable (None) one in ``input_shape``."""
        hint = f" {self.variable_length_hint}" if self.variable_length_hint else ""
        raise ValueError(
            f"layer {self.describe()} needs a known size on {what}, but its input "
            f"{_shapes_text(input_shape)} has a variable axis (None): the time axis is "
            f"variable, fixed only by each batch.{hint}")

    def require_rank(self, input_shape, rank: int, layout: str) -> None:
        """Raise a ValueError naming the layer unless ``input_shape`` has ``rank`` axes."""
        if len(input_shape) != rank:
            raise ValueError(f"layer {self.describe()} needs input of shape {layout}, "
                             f"got {input_shape}")

    def given_or_initialized(self, given, shape, initializer, fan_in, fan_out, what, layout):
        """The user's initial array ``given`` checked against ``shape``, or one drawn from
        ``initializer`` (``what`` and ``layout`` name the argument and its axes in errors)."""
        if given is None:
            return initializers.initialize(initializer, shape, fan_in, fan_out)
        array = np.asarray(backend.to_numpy(given))
        if array.shape != tuple(shape):
            raise ValueError(f"layer {self.describe()}: {what} has shape {array.shape}, expected "
                             f"{tuple(shape)} {layout}")
        return array

    def describe(self) -> str:
        """``"dense_1" (Dense)`` for messages."""
        return f'"{self.name}" ({type(self).__name__})' if self.name else type(self).__name__

    def default_name(self) -> str:
        return snake_case(type(self).__name__)

    # -- computation ------------------------------------------------------------------------
    def forward(self, x, training: bool = False):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    def __call__(self, inputs, training: bool = False, mask=None):
        """On symbolic tensors (or Input layers): build, record a node, return its output
        tensor. On arrays: build from their shapes if needed and return ``forward``."""
        inputs = _as_tensors(inputs)
        if is_symbolic(inputs):
            return self._call_symbolic(inputs)
        if isinstance(inputs, tuple):
            inputs = list(inputs)
        if not self.built:
            self.build([tuple(a.shape[1:]) for a in inputs] if isinstance(inputs, list)
                       else tuple(inputs.shape[1:]))
        return self.call_forward(inputs, training, mask)

    def call_forward(self, x, training: bool, mask=None):
        """``forward``, passing ``mask`` only to a layer that ``accepts_mask``."""
        if self.accepts_mask:
            return self.forward(x, training=training, mask=mask)
        return self.forward(x, training=training)

    def compute_mask(self, x, mask):
        """The output's mask: None, or ``mask`` unchanged when ``supports_masking``."""
        return mask if self.supports_masking else None

    def _call_symbolic(self, inputs) -> SymbolicTensor:
        multi = isinstance(inputs, (list, tuple))
        tensors = list(inputs) if multi else [inputs]
        shapes = [t.sample_shape for t in tensors]
        shape = shapes if multi else shapes[0]
        if not self.built:
            try:
                self.build(shape)
            except ValueError as exc:
                raise ValueError(f"{_incompatible(self, tensors)}: {exc}") from None
        elif not _fits_built(shape, self.input_shape):
            raise ValueError(f"{_incompatible(self, tensors)}: the layer was built for input "
                             f"shape {_shapes_text(self.input_shape)}")
        return Node(self, tensors, multi, self._output_shape).output

    def symbolic_output(self) -> SymbolicTensor:
        """The tensor this layer stands for when passed where a tensor is expected (an
        ``Input`` layer's output); other layers raise a TypeError."""
        raise TypeError(f"layer {self.describe()} was passed where a tensor is expected; "
                        "call it on a tensor first, e.g. y = layer(x)")

    @property
    def output(self) -> SymbolicTensor:
        """The output tensor of the layer's only call on symbolic tensors."""
        if len(self.inbound_nodes) != 1:
            raise ValueError(f"layer {self.describe()} has been called "
                             f"{len(self.inbound_nodes)} times on tensors; its output is "
                             "ambiguous")
        return self.inbound_nodes[0].output

    def check_input(self, x) -> None:
        """Raise a clear ValueError when ``x`` (with batch axis) does not fit ``input_shape``."""
        if not shape_matches(x.shape[1:], self.input_shape):
            raise ValueError(
                f"layer {self.describe()} expects input of shape {format_shape(self.input_shape)}, "
                f"got an array of shape {tuple(x.shape)}"
            )

    # -- parameters -------------------------------------------------------------------------
    def add_param(self, key: str, value, trainable: bool = True):
        """Register an array (converted to the layer's dtype) as a parameter or buffer."""
        array = backend.asarray(value, dtype=self.dtype)
        (self.params if trainable else self.buffers)[key] = array
        return array

    def trainable_params(self) -> list[tuple[str, object]]:
        return list(self.params.items()) if self.trainable else []

    def weight_names(self) -> list[str]:
        return list(self.params) + list(self.buffers)

    def get_weights(self) -> list[np.ndarray]:
        """Copies of the parameters then the buffers, as NumPy arrays."""
        return [backend.to_numpy(v).copy() for v in (*self.params.values(), *self.buffers.values())]

    def set_weights(self, weights) -> None:
        """Replace parameters and buffers (same order and shapes as ``get_weights``)."""
        targets = [*self.params.items(), *self.buffers.items()]
        weights = list(weights)
        if len(weights) != len(targets):
            raise ValueError(
                f"layer {self.describe()} has {len(targets)} weight arrays "
                f"({', '.join(k for k, _ in targets) or 'none'}), got {len(weights)}"
            )
        for (key, current), value in zip(targets, weights):
            value = np.asarray(backend.to_numpy(value))
            compare = slice(1, None) if key in self.batch_sized_buffers else slice(None)
            if value.ndim != current.ndim or tuple(value.shape[compare]) != tuple(current.shape[compare]):
                raise ValueError(
                    f"layer {self.describe()} weight {key!r} has shape {tuple(current.shape)}, "
                    f"got {tuple(value.shape)}"
                )
            if not np.issubdtype(value.dtype, np.number) or not np.all(np.isfinite(value)):
                raise ValueError(f"layer {self.describe()} weight {key!r} must be finite numbers")
            store = self.params if key in self.params else self.buffers
            store[key] = backend.asarray(value, dtype=current.dtype)

    def get_state(self) -> dict | None:
        """JSON-able state other than weights that an exact resume needs (a private random
        generator's position); None when there is none. Saved with the model."""
        return None

    def set_state(self, state: dict) -> None:
        """Restore what ``get_state`` returned."""
        raise ValueError(f"layer {self.describe()} keeps no state, got {state!r}")

    def count_params(self) -> int:
        return int(sum(int(np.prod(v.shape)) for v in (*self.params.values(), *self.buffers.values())))

    def summary(self):
        """``(type name, output shape, parameter count)`` as the seed's layers return it."""
        return type(self).__name__, self.output_shape, self.count_params()

    # -- configuration ----------------------------------------------------------------------
    def get_config(self) -> dict:
        """Constructor arguments as JSON-able values (the input shape is inferred, not stored)."""
        return {"name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} {self.name or ''} output={self._output_shape}>"


class OwnGenerator:
    """For a layer with a generator of its own (``self._rng``, made from its ``seed``; None
    without one): its position is the layer's state, saved for exact resumes and sent to
    the worker processes that share a batch."""

    def get_state(self):
        """The position of the layer's own generator (with ``seed``), for exact resumes."""
        return None if self._rng is None else {"rng": self._rng.bit_generator.state}

    def set_state(self, state):
        if self._rng is None:
            raise ValueError(f"layer {self.describe()} has no seed, so no generator state")
        try:
            self._rng.bit_generator.state = dict(state["rng"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"layer {self.describe()}: bad generator state ({exc})") from None


class ActivatedLayer(Layer, register=False):
    """A layer computing ``a = activation(z)`` after a linear part ``z = f(x)``.

    Subclasses implement ``forward_linear(x) -> z`` and ``backward_linear(grad_z) -> grad_x``.
    The model may fuse the output activation with the loss: it then reads ``self.z`` and
    calls ``backward_linear`` directly (``keep_preactivation`` keeps ``z`` for that).

    ``forward_linear`` must return a new array: when ``z`` is not kept, an activation with an
    in-place form (ReLU) overwrites it instead of allocating ``a``.
    """

    def __init__(self, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)
        self.keep_preactivation = False
        self.z = None
        self.a = None

    def forward(self, x, training: bool = False):
        z = self.forward_linear(x, training)
        keep_z = self.activation.needs_input or self.keep_preactivation
        in_place = self.activation.forward_inplace
        a = in_place(z) if in_place is not None and not keep_z else self.activation.forward(z)
        self.z = z if keep_z else None
        self.a = a
        return a

    def backward(self, grad):
        in_place = self.activation.backward_inplace
        writeable = getattr(grad.flags, "writeable", True)  # CuPy arrays have no such flag
        if in_place is not None and grad.dtype == self.a.dtype and writeable:
            return self.backward_linear(in_place(grad, self.z, self.a))
        return self.backward_linear(self.activation.backward(grad, self.z, self.a))

    def forward_linear(self, x, training: bool = False):
        raise NotImplementedError

    def backward_linear(self, grad_z):
        raise NotImplementedError

    def get_config(self):
        return {**super().get_config(), "activation": self.activation.get_config()}


def _as_tensors(inputs):
    """Input layers given in place of tensors become their output tensors."""
    if isinstance(inputs, Layer):
        return inputs.symbolic_output()
    if isinstance(inputs, (list, tuple)):
        return type(inputs)(v.symbolic_output() if isinstance(v, Layer) else v for v in inputs)
    return inputs


def _fits_built(shape, built) -> bool:
    """Whether a layer built for ``built`` takes input of ``shape`` (a list of shapes for a
    multi-input layer): the same sizes, any size where ``built`` has a variable axis."""
    if isinstance(built, list) or isinstance(shape, list):
        return (isinstance(built, list) and isinstance(shape, list) and len(built) == len(shape)
                and all(shape_matches(s, b) for s, b in zip(shape, built)))
    return shape_matches(shape, built)


def _shapes_text(shape) -> str:
    if isinstance(shape, list):
        return "[" + ", ".join(format_shape(s) for s in shape) + "]"
    return format_shape(shape)


def _incompatible(layer, tensors) -> str:
    sources = ", ".join(f"{t.layer.describe()} with output shape {format_shape(t.sample_shape)}"
                        for t in tensors)
    return f"layer {layer.describe()} cannot be called on the output of {sources}"


def layer_class(name: str) -> type:
    """The layer class registered under ``name`` (its class name)."""
    try:
        return _LAYER_CLASSES[name]
    except KeyError:
        raise ValueError(
            f"unknown layer type {name!r}; known layers: {', '.join(sorted(_LAYER_CLASSES))}"
        ) from None


def serialize(layer: Layer) -> dict:
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def deserialize(spec: dict) -> Layer:
    """Build a layer from ``{"class_name": ..., "config": {...}}`` (no code is executed)."""
    if not isinstance(spec, dict) or "class_name" not in spec:
        raise ValueError(f"a layer spec needs 'class_name' and 'config', got {spec!r}")
    cls = layer_class(spec["class_name"])
    try:
        return cls.from_config(dict(spec.get("config", {})))
    except TypeError as exc:
        raise ValueError(f"bad config for layer {spec['class_name']}: {exc}") from None
