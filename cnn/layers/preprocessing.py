"""Preprocessing layers with Keras's semantics: Rescaling and Normalization (with adapt).

Both are affine maps of their input with fixed (non-trainable) coefficients, so their
backward pass only scales the gradient. Axes are counted as in Keras, with the batch axis as
0: on images (N, C, H, W), ``Normalization(axis=1)`` keeps one mean and variance per channel.
"""

from __future__ import annotations

import numpy as np

from cnn import backend
from cnn.layers.base import Layer
from cnn.utils import checks

EPSILON = 1e-7  # Keras's backend.epsilon(): the smallest standard deviation divided by


def _finite_values(layer: str, name: str, value) -> np.ndarray:
    """A float or an array of floats given as an argument, checked."""
    array = np.asarray(value)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number)
                                     or array.dtype == bool):
        raise ValueError(f"{layer}: {name} must be a number or an array of numbers, "
                         f"got {value!r}")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{layer}: {name} must be finite, got {value!r}")
    return array


def _config_value(array: np.ndarray):
    return float(array) if array.ndim == 0 else array.tolist()


class Rescaling(Layer):
    """``x * scale + offset`` (Keras), e.g. ``Rescaling(1 / 255)`` for 8-bit pixels or
    ``Rescaling(1 / 127.5, offset=-1)`` for [-1, 1].

    ``scale`` and ``offset`` are numbers or arrays that broadcast against one sample
    (e.g. per-channel values of shape (C, 1, 1) for images (N, C, H, W)).
    Shapes: (N, ...) -> (N, ...).
    """

    samplewise = True
    supports_masking = True  # element-wise: a sequence mask passes through unchanged

    def __init__(self, scale, offset=0.0, *, input_shape=None, name=None, trainable=True):
        super().__init__(input_shape=input_shape, name=name, trainable=trainable)
        self.scale = _finite_values("Rescaling", "scale", scale)
        self.offset = _finite_values("Rescaling", "offset", offset)

    def _build(self, input_shape):
        for what, value in (("scale", self.scale), ("offset", self.offset)):
            try:
                shape = np.broadcast_shapes(value.shape, input_shape)
            except ValueError:
                shape = None
            if shape != tuple(input_shape):
                raise ValueError(f"layer {self.describe()}: {what} of shape {value.shape} does "
                                 f"not broadcast against a sample of shape {input_shape}")
        return input_shape

    def forward(self, x, training=False):
        scale = backend.asarray(self.scale, dtype=x.dtype)
        return x * scale + backend.asarray(self.offset, dtype=x.dtype)

    def backward(self, grad):
        return grad * backend.asarray(self.scale, dtype=grad.dtype)

    def get_config(self):
        return {**super().get_config(), "scale": _config_value(self.scale),
                "offset": _config_value(self.offset)}


class Normalization(Layer):
    """``(x - mean) / sqrt(variance)`` per feature, with statistics given or learnt by
    ``adapt(data)`` (Keras's layer; the standard deviation is floored at 1e-7).

    Args:
        axis: the axis or axes (batch axis = 0; default -1, the last) that keep separate
            statistics; the others are averaged over. ``None``: one mean and variance.
        mean, variance: the statistics, numbers or arrays over the kept axes; give both or
            neither (then call ``adapt`` before using the layer).
        invert: apply the inverse, ``mean + x * sqrt(variance)`` (e.g. to map normalized
            predictions back).
    Buffers: ``mean``, ``variance`` (non-trainable, saved with the model), of the sample
    shape with the averaged axes of size 1.
    Shapes: (N, ...) -> (N, ...).
    """

    samplewise = True
    supports_masking = True  # element-wise: a sequence mask passes through unchanged

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, *, input_shape=None,
                 name=None, trainable=True, adapted=False):
        super().__init__(input_shape=input_shape, name=name, trainable=trainable)
        if axis is None:
            axis = ()
        elif isinstance(axis, int) and not isinstance(axis, bool):
            axis = (axis,)
        if (not isinstance(axis, (tuple, list))
                or any(isinstance(a, bool) or not isinstance(a, int) for a in axis)):
            raise ValueError(f"Normalization axis must be an int, a tuple of ints or None, "
                             f"got {axis!r}")
        self.axis = tuple(axis)
        if (mean is None) != (variance is None):
            raise ValueError("Normalization: give both mean and variance, or neither (and "
                             f"call adapt(data)); got mean={mean!r}, variance={variance!r}")
        self.input_mean = None if mean is None else _finite_values("Normalization", "mean", mean)
        self.input_variance = (None if variance is None
                               else _finite_values("Normalization", "variance", variance))
        if self.input_variance is not None and np.any(self.input_variance < 0):
            raise ValueError(f"Normalization: variance must be >= 0, got {variance!r}")
        self.invert = bool(invert)
        self.adapted = bool(adapted) or mean is not None
        self._pending = None  # statistics from adapt() before the layer is built

    # -- shapes ---------------------------------------------------------------------------
    def kept_axes(self, sample_shape) -> tuple:
        """The kept axes as indices into one sample's shape (batch axis excluded)."""
        rank = len(sample_shape) + 1
        kept = []
        for a in self.axis:
            if not -rank <= a < rank or a % rank == 0:
                raise ValueError(
                    f"layer {self.describe()}: axis {a} is not a feature axis of input "
                    f"(N, {', '.join(map(str, sample_shape))}) (axis 0 is the batch)")
            kept.append(a % rank - 1)
        return tuple(sorted(set(kept)))

    def statistics_shape(self, sample_shape) -> tuple:
        kept = self.kept_axes(sample_shape)
        return tuple(s if i in kept else 1 for i, s in enumerate(sample_shape))

    def _build(self, input_shape):
        shape = self.statistics_shape(input_shape)
        if self._pending is not None:
            mean, variance = self._pending
            if mean.shape != shape:
                raise ValueError(
                    f"layer {self.describe()} was adapted to samples whose statistics have "
                    f"shape {mean.shape}, but receives input (N, "
                    f"{', '.join(map(str, input_shape))}) needing {shape}")
            self._pending = None
        elif self.input_mean is not None:
            mean = self._broadcast("mean", self.input_mean, input_shape)
            variance = self._broadcast("variance", self.input_variance, input_shape)
        else:
            mean, variance = np.zeros(shape), np.ones(shape)
        self.add_param("mean", mean, trainable=False)
        self.add_param("variance", variance, trainable=False)
        return input_shape

    def _broadcast(self, what, value, input_shape):
        kept = self.kept_axes(input_shape)
        shape = self.statistics_shape(input_shape)
        kept_shape = tuple(input_shape[i] for i in kept)
        if value.shape == kept_shape:
            return value.reshape(shape)
        try:
            return np.broadcast_to(value, shape).copy()
        except ValueError:
            raise ValueError(
                f"layer {self.describe()}: {what} has shape {value.shape}, expected a number, "
                f"{kept_shape} (the kept axes {self.axis}) or {shape}") from None

    # -- statistics -----------------------------------------------------------------------
    def adapt(self, data) -> None:
        """Set ``mean`` and ``variance`` from ``data`` (N, ...): the mean and the population
        variance over every axis that is not kept, computed in float64."""
        if not hasattr(data, "shape"):
            data = np.asarray(data)
        data = np.asarray(backend.to_numpy(data))
        if data.dtype != bool and not np.issubdtype(data.dtype, np.number):
            raise ValueError(f"layer {self.describe()}: adapt needs numbers, got dtype "
                             f"{data.dtype}")
        if data.ndim < 2 or data.shape[0] == 0:
            raise ValueError(f"layer {self.describe()}: adapt needs a batch (N, ...) of at "
                             f"least one sample, got shape {data.shape}")
        sample_shape = data.shape[1:]
        if self.built and tuple(sample_shape) != tuple(self.input_shape):
            raise ValueError(f"layer {self.describe()} takes samples of shape "
                             f"{self.input_shape}, but adapt got data of shape {data.shape}")
        data = data.astype(np.float64)
        if not np.all(np.isfinite(data)):
            raise ValueError(f"layer {self.describe()}: adapt data holds NaN or infinity")
        kept = self.kept_axes(sample_shape)
        reduced = (0, *(i + 1 for i in range(len(sample_shape)) if i not in kept))
        mean = data.mean(axis=reduced, keepdims=True)[0]
        variance = data.var(axis=reduced, keepdims=True)[0]
        if self.built:
            self.set_weights([mean, variance])
        else:
            self._pending = (mean, variance)
        self.adapted = True

    def _denominator(self, dtype):
        std = backend.xp.sqrt(self.buffers["variance"])
        return backend.xp.maximum(std, std.dtype.type(EPSILON)).astype(dtype, copy=False)

    # -- computation ----------------------------------------------------------------------
    def forward(self, x, training=False):
        if not self.adapted:
            raise ValueError(f"layer {self.describe()} has no statistics: call "
                             "adapt(data) first, or pass mean= and variance=")
        mean = self.buffers["mean"].astype(x.dtype, copy=False)
        if self.invert:
            return mean + x * self._denominator(x.dtype)
        return (x - mean) / self._denominator(x.dtype)

    def backward(self, grad):
        if self.invert:
            return grad * self._denominator(grad.dtype)
        return grad / self._denominator(grad.dtype)

    def get_config(self):
        config = {**super().get_config(), "axis": list(self.axis) if self.axis else None,
                  "mean": None, "variance": None, "invert": self.invert,
                  "adapted": self.adapted}
        if self.input_mean is not None:
            config["mean"] = _config_value(self.input_mean)
            config["variance"] = _config_value(self.input_variance)
        return config


__all__ = ["Rescaling", "Normalization"]
