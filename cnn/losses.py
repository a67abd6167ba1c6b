"""Loss functions.

A loss turns a batch of outputs ``(N, ...)`` and targets of the same shape into one number,
the mean over the batch of a per-sample loss (optionally weighted, Keras's
"sum over batch size" reduction: ``sum(w_i * l_i) / N``), and gives the gradient of that
number with respect to the outputs.

Fused losses: categorical cross-entropy after a softmax output and binary cross-entropy after
a sigmoid output are computed from the pre-activation ``z`` (log-softmax / softplus), which
is stable for any ``z`` and has the exact gradient ``softmax(z) - y`` (resp.
``sigmoid(z) - y``). The model fuses them automatically.

Names (case-insensitive unless noted):

=====================================  =====================================================
``categorical_crossentropy``           ``-sum_k y_k log p_k``, per sample. Seed name
(``crossentropy``, ``cce``,            ``"cross_tropy"``. The seed's ``cross_tropy`` summed a
``sparse_categorical_crossentropy``,   *binary* cross-entropy over the classes
``cross_tropy``)                       (``-y log p - (1-y) log(1-p)``), which is not the
                                       loss whose gradient is ``p - y``; we use the real one.
``binary_crossentropy`` (``bce``)      mean over outputs of ``-y log p - (1-y) log(1-p)``
``mean_squared_error`` (``mse``)       mean over outputs of ``(p - y)^2`` (Keras)
``mean_absolute_error`` (``mae``)      mean over outputs of ``|p - y|`` (Keras)
``huber``                              mean over outputs of ``0.5 d^2`` where ``|d| <= delta``,
                                       ``delta (|d| - 0.5 delta)`` elsewhere (``d = p - y``)
``"MSE"`` (exact spelling)             the seed's MSE: ``sum((p - y)^2) / 2`` per sample,
                                       i.e. the sum of squared errors over ``2m``
                                       (canonical name ``seed_mse``)
=====================================  =====================================================

Keras's loss classes are offered with Keras's arguments and accepted by
``compile(loss=...)`` next to the names; ``loss(y_true, y_pred, sample_weight=None)`` is
called in Keras's order and returns the weighted mean over the batch::

    CategoricalCrossentropy(from_logits=False, label_smoothing=0.0)
    SparseCategoricalCrossentropy(from_logits=False)    # targets: class ids (N,) or (N, 1)
    BinaryCrossentropy(from_logits=False, label_smoothing=0.0)
    MeanSquaredError(), MeanAbsoluteError(), Huber(delta=1.0)

``from_logits=True``: the outputs are logits (a linear output layer); the loss applies
log-softmax / softplus itself, with the exact gradient ``softmax(z) - y`` (``sigmoid(z) - y``).
Label smoothing is Keras's: one-hot targets become ``y (1 - s) + s / K`` over ``K`` classes
(categorical), binary targets ``y (1 - s) + s / 2``. The smoothed targets still sum to 1, so
the fused gradient stays exactly ``p - y_smoothed``. (PyTorch's ``cross_entropy(...,
label_smoothing=s)`` smooths the same way; its ``binary_cross_entropy`` has no smoothing.)

Outputs with more than two axes, e.g. sequences (N, T, K): the per-sample loss is the *mean
over the time steps* (every axis between the first and the last) of the per-step loss above,
as in Keras. The losses defined as a mean over outputs are unchanged by this rule; the
categorical cross-entropy and the seed's ``"MSE"`` sum over the last axis only, so a sequence
of T steps is not weighted T times a single step.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from cnn import backend
from cnn.backend import xp
from cnn.ops import activations as act_ops
from cnn.utils import checks
from cnn.utils.categorical import to_categorical
from cnn.utils.naming import lookup

_EPSILON = 1e-7


def _sum_features(a):
    """Sum over the last axis, mean over the axes between (time steps): (N, ..., K) -> (N,)."""
    return a.reshape(a.shape[0], -1).sum(axis=1) / _positions(a)


def _positions(a) -> int:
    """The number of last-axis vectors in one sample: T for (N, T, K), 1 for (N, K)."""
    return _feature_count(a) // a.shape[-1]


def _per_position(grad, a):
    """Scale a per-element gradient of a summed loss by ``1 / _positions(a)``."""
    positions = _positions(a)
    return grad if positions == 1 else grad / positions


def _mean_features(a):
    return a.reshape(a.shape[0], -1).mean(axis=1)


def _feature_count(a) -> int:
    return a[0].size if a.shape[0] else 1


def _flag(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


class Loss:
    """Base class: subclasses define ``per_sample`` and ``gradient``.

    ``per_sample(output, target)`` -> (N,) losses; ``gradient(output, target)`` -> the
    gradient of each sample's loss with respect to ``output`` (same shape, not divided by N).
    Fusable losses also define ``fused_activation`` and the ``*_from_logits`` pair.
    """

    name = "loss"
    fused_activation: str | None = None
    from_logits = False

    def __call__(self, y_true, y_pred, sample_weight=None) -> float:
        """The weighted mean loss of a batch, called in Keras's order (targets first)."""
        y_pred = xp.asarray(y_pred)
        if y_pred.ndim == 0 or y_pred.shape[0] == 0:
            raise ValueError(f"{self.name}: y_pred has shape {tuple(y_pred.shape)}; a loss "
                             f"needs a batch of at least one sample, shape (N, ...) with N >= 1")
        target = self.dense_targets(xp.asarray(y_true), y_pred)
        if tuple(target.shape) != tuple(y_pred.shape):
            raise ValueError(f"{self.name}: y_true has shape {tuple(target.shape)} but y_pred "
                             f"has shape {tuple(y_pred.shape)}; they must match")
        return float(reduce_mean(self.per_sample(y_pred, target.astype(y_pred.dtype)),
                                 sample_weight))

    def dense_targets(self, y_true, y_pred):
        """Targets in the outputs' layout (the sparse loss one-hot encodes class ids)."""
        return y_true

    def fuses_with(self, activation_name: str) -> bool:
        """Whether the model may compute this loss from the logits of an output layer whose
        activation is ``activation_name`` (exact ``p - y`` gradient): true for the
        cross-entropies after softmax/sigmoid, false with ``from_logits=True`` (the outputs
        are the logits already)."""
        return (self.fused_activation is not None and not self.from_logits
                and activation_name == self.fused_activation)

    def per_sample(self, output, target):
        raise NotImplementedError

    def gradient(self, output, target):
        raise NotImplementedError

    def per_sample_from_logits(self, z, target):
        raise NotImplementedError

    def gradient_from_logits(self, z, a, target):
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"name": self.name}

    def __repr__(self):
        return f"{type(self).__name__}()"


def reduce_mean(per_sample, sample_weight=None):
    """``sum(w * l) / N`` (``mean(l)`` without weights) as a 0-d array."""
    if sample_weight is None:
        return per_sample.mean()
    return (per_sample * sample_weight).sum() / per_sample.shape[0]


class Crossentropy(Loss, ABC):
    """What the cross-entropies share: ``from_logits`` and Keras's label smoothing,
    ``y (1 - s) + s / classes`` (``classes``: K for categorical targets, 2 for binary)."""

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0):
        self.from_logits = _flag("from_logits", from_logits)
        self.label_smoothing = checks.fraction("label_smoothing", label_smoothing,
                                               upper_inclusive=True)

    @abstractmethod
    def smoothing_classes(self, target) -> int:
        """The number of classes the smoothing spreads ``s`` over."""

    def smooth(self, target):
        s = self.label_smoothing
        if not s:
            return target
        dtype = target.dtype.type
        return target * dtype(1 - s) + dtype(s / self.smoothing_classes(target))

    def get_config(self):
        return {"name": self.name, "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing}

    def __repr__(self):
        return (f"{type(self).__name__}(from_logits={self.from_logits}, "
                f"label_smoothing={self.label_smoothing})")


class CategoricalCrossentropy(Crossentropy):
    """``-sum_k y_k log p_k`` on one-hot (or soft) targets (N, ..., K).

    Args:
        from_logits: the outputs are logits, not probabilities.
        label_smoothing: in [0, 1]; targets become ``y (1 - s) + s / K`` (Keras).
    """

    name = "categorical_crossentropy"
    fused_activation = "softmax"

    def smoothing_classes(self, target):
        return target.shape[-1]

    def per_sample(self, output, target):
        if self.from_logits:
            return self.per_sample_from_logits(output, target)
        p = xp.clip(output, _EPSILON, 1.0)
        return -_sum_features(self.smooth(target) * xp.log(p))

    def gradient(self, output, target):
        if self.from_logits:
            return self.gradient_from_logits(output, act_ops.softmax(output), target)
        return _per_position(-self.smooth(target) / xp.clip(output, _EPSILON, 1.0), output)

    def per_sample_from_logits(self, z, target):
        return -_sum_features(self.smooth(target) * act_ops.log_softmax(z))

    def gradient_from_logits(self, z, a, target):
        # d/dz of -sum y log softmax(z) = softmax(z) * sum(y) - y; sum(y) = 1 for one-hot,
        # smoothed or not.
        target = self.smooth(target)
        return _per_position(a * target.sum(axis=-1, keepdims=True) - target, z)


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """The categorical cross-entropy on integer class ids (N,) or (N, 1) (Keras).

    ``fit`` and ``evaluate`` one-hot encode the ids before the loss sees them; called
    directly, ``loss(ids, probabilities)`` does the same and checks the ids.
    """

    name = "sparse_categorical_crossentropy"

    def __init__(self, from_logits: bool = False):
        super().__init__(from_logits=from_logits)

    def dense_targets(self, y_true, y_pred):
        id_shape = tuple(y_pred.shape[:-1])
        if tuple(y_true.shape) not in (id_shape, (*id_shape, 1)):
            raise ValueError(
                f"{self.name} takes class ids of shape {id_shape} (or with a "
                f"last axis of 1) for outputs {tuple(y_pred.shape)}, got y_true of shape "
                f"{tuple(y_true.shape)}; for one-hot targets use CategoricalCrossentropy")
        try:
            one_hot = to_categorical(backend.to_numpy(y_true).reshape(id_shape), y_pred.shape[-1],
                                     np.float64)
        except ValueError as exc:
            raise ValueError(f"{self.name}: {exc}") from None
        return xp.asarray(one_hot)

    def get_config(self):
        return {"name": self.name, "from_logits": self.from_logits}

    def __repr__(self):
        return f"SparseCategoricalCrossentropy(from_logits={self.from_logits})"


class BinaryCrossentropy(Crossentropy):
    """Mean over outputs of ``-y log p - (1 - y) log(1 - p)``.

    Args:
        from_logits: the outputs are logits, not probabilities.
        label_smoothing: in [0, 1]; targets become ``y (1 - s) + s / 2`` (Keras).
    """

    name = "binary_crossentropy"
    fused_activation = "sigmoid"

    def smoothing_classes(self, target):
        return 2

    def per_sample(self, output, target):
        if self.from_logits:
            return self.per_sample_from_logits(output, target)
        target = self.smooth(target)
        p = xp.clip(output, _EPSILON, 1.0 - _EPSILON)
        return -_mean_features(target * xp.log(p) + (1 - target) * xp.log(1 - p))

    def gradient(self, output, target):
        if self.from_logits:
            return self.gradient_from_logits(output, act_ops.sigmoid(output), target)
        p = xp.clip(output, _EPSILON, 1.0 - _EPSILON)
        return (p - self.smooth(target)) / (p * (1 - p)) / _feature_count(output)

    def per_sample_from_logits(self, z, target):
        # log(1 + e^z) - y z, written with softplus so it never overflows.
        return _mean_features(xp.logaddexp(0, z) - self.smooth(target) * z)

    def gradient_from_logits(self, z, a, target):
        return (a - self.smooth(target)) / _feature_count(z)


class MeanSquaredError(Loss):
    """Mean over outputs of ``(p - y)^2`` (Keras's ``mse``)."""

    name = "mean_squared_error"

    def per_sample(self, output, target):
        d = output - target
        return _mean_features(d * d)

    def gradient(self, output, target):
        return 2 * (output - target) / _feature_count(output)


class MeanAbsoluteError(Loss):
    """Mean over outputs of ``|p - y|`` (Keras's ``mae``)."""

    name = "mean_absolute_error"

    def per_sample(self, output, target):
        return _mean_features(xp.abs(output - target))

    def gradient(self, output, target):
        return xp.sign(output - target) / _feature_count(output)


class Huber(Loss):
    """Mean over outputs of ``0.5 d^2`` for ``|d| <= delta``, else ``delta (|d| - delta / 2)``,
    with ``d = p - y`` (Keras's ``Huber``; PyTorch's ``HuberLoss(delta=...)``)."""

    name = "huber"

    def __init__(self, delta: float = 1.0):
        self.delta = checks.positive("delta", delta)

    def per_sample(self, output, target):
        d = xp.abs(output - target)
        delta = d.dtype.type(self.delta)
        quadratic = xp.minimum(d, delta)
        return _mean_features(0.5 * quadratic * quadratic + delta * (d - quadratic))

    def gradient(self, output, target):
        d = output - target
        delta = d.dtype.type(self.delta)
        return xp.clip(d, -delta, delta) / _feature_count(output)

    def get_config(self):
        return {"name": self.name, "delta": self.delta}

    def __repr__(self):
        return f"Huber(delta={self.delta})"


class SeedMeanSquaredError(Loss):
    """The seed's ``"MSE"``: half the sum of squared errors per sample (SSE / 2m overall)."""

    name = "seed_mse"

    def per_sample(self, output, target):
        d = output - target
        return 0.5 * _sum_features(d * d)

    def gradient(self, output, target):
        return _per_position(output - target, output)


_LOSSES = {
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "crossentropy": CategoricalCrossentropy,
    "cross_entropy": CategoricalCrossentropy,
    "cce": CategoricalCrossentropy,
    "cross_tropy": CategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "bce": BinaryCrossentropy,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError,
    "mae": MeanAbsoluteError,
    "huber": Huber,
    "seed_mse": SeedMeanSquaredError,
}
# Keras also resolves its class names: "SparseCategoricalCrossentropy", "Huber", ...
_BY_CLASS_NAME = {**{cls.__name__.lower(): cls for cls in set(_LOSSES.values())
                     if cls is not SeedMeanSquaredError}, **_LOSSES}
_SEED_SPELLINGS = {"MSE": SeedMeanSquaredError}


def get(identifier) -> Loss:
    """Resolve a loss given by name, config dict or instance."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if isinstance(identifier, dict):
        config = dict(identifier)
        cls = lookup("loss", config.pop("name", None), _BY_CLASS_NAME, _SEED_SPELLINGS)
        try:
            return cls(**config)
        except TypeError as exc:
            raise ValueError(f"bad config for loss {cls.name!r}: {exc}") from None
    return lookup("loss", identifier, _BY_CLASS_NAME, _SEED_SPELLINGS)()


def names() -> list[str]:
    """The loss names (the class names, e.g. ``"Huber"``, resolve too)."""
    return sorted(set(_LOSSES) | set(_SEED_SPELLINGS), key=str.lower)
