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
``"MSE"`` (exact spelling)             the seed's MSE: ``sum((p - y)^2) / 2`` per sample,
                                       i.e. the sum of squared errors over ``2m``
                                       (canonical name ``seed_mse``)
=====================================  =====================================================

Outputs with more than two axes, e.g. sequences (N, T, K): the per-sample loss is the *mean
over the time steps* (every axis between the first and the last) of the per-step loss above,
as in Keras. The losses defined as a mean over outputs are unchanged by this rule; the
categorical cross-entropy and the seed's ``"MSE"`` sum over the last axis only, so a sequence
of T steps is not weighted T times a single step.
"""

from __future__ import annotations

from cnn.backend import xp
from cnn.ops import activations as act_ops
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


class Loss:
    """Base class: subclasses define ``per_sample`` and ``gradient``.

    ``per_sample(output, target)`` -> (N,) losses; ``gradient(output, target)`` -> the
    gradient of each sample's loss with respect to ``output`` (same shape, not divided by N).
    Fusable losses also define ``fused_activation`` and the ``*_from_logits`` pair.
    """

    name = "loss"
    fused_activation: str | None = None

    def __call__(self, output, target, sample_weight=None) -> float:
        return float(reduce_mean(self.per_sample(output, target), sample_weight))

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


class CategoricalCrossentropy(Loss):
    """``-sum_k y_k log p_k``; with ``from_logits=True`` the outputs are logits."""

    name = "categorical_crossentropy"
    fused_activation = "softmax"

    def __init__(self, from_logits: bool = False):
        self.from_logits = from_logits

    def per_sample(self, output, target):
        if self.from_logits:
            return self.per_sample_from_logits(output, target)
        p = xp.clip(output, _EPSILON, 1.0)
        return -_sum_features(target * xp.log(p))

    def gradient(self, output, target):
        if self.from_logits:
            return self.gradient_from_logits(output, act_ops.softmax(output), target)
        return _per_position(-target / xp.clip(output, _EPSILON, 1.0), output)

    def per_sample_from_logits(self, z, target):
        return -_sum_features(target * act_ops.log_softmax(z))

    def gradient_from_logits(self, z, a, target):
        # d/dz of -sum y log softmax(z) = softmax(z) * sum(y) - y; sum(y) = 1 for one-hot.
        return _per_position(a * target.sum(axis=-1, keepdims=True) - target, z)

    def get_config(self):
        return {"name": self.name, "from_logits": self.from_logits}

    def __repr__(self):
        return f"CategoricalCrossentropy(from_logits={self.from_logits})"


class BinaryCrossentropy(Loss):
    """Mean over outputs of ``-y log p - (1 - y) log(1 - p)``."""

    name = "binary_crossentropy"
    fused_activation = "sigmoid"

    def __init__(self, from_logits: bool = False):
        self.from_logits = from_logits

    def per_sample(self, output, target):
        if self.from_logits:
            return self.per_sample_from_logits(output, target)
        p = xp.clip(output, _EPSILON, 1.0 - _EPSILON)
        return -_mean_features(target * xp.log(p) + (1 - target) * xp.log(1 - p))

    def gradient(self, output, target):
        if self.from_logits:
            return self.gradient_from_logits(output, act_ops.sigmoid(output), target)
        p = xp.clip(output, _EPSILON, 1.0 - _EPSILON)
        return (p - target) / (p * (1 - p)) / _feature_count(output)

    def per_sample_from_logits(self, z, target):
        # log(1 + e^z) - y z, written with softplus so it never overflows.
        return _mean_features(xp.logaddexp(0, z) - target * z)

    def gradient_from_logits(self, z, a, target):
        return (a - target) / _feature_count(z)

    def get_config(self):
        return {"name": self.name, "from_logits": self.from_logits}

    def __repr__(self):
        return f"BinaryCrossentropy(from_logits={self.from_logits})"


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
    "sparse_categorical_crossentropy": CategoricalCrossentropy,
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
    "seed_mse": SeedMeanSquaredError,
}
_SEED_SPELLINGS = {"MSE": SeedMeanSquaredError}


def get(identifier) -> Loss:
    """Resolve a loss given by name, config dict or instance."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, dict):
        config = dict(identifier)
        cls = lookup("loss", config.pop("name", None), _LOSSES, _SEED_SPELLINGS)
        return cls(**config)
    return lookup("loss", identifier, _LOSSES, _SEED_SPELLINGS)()


def names() -> list[str]:
    return sorted(set(_LOSSES) | set(_SEED_SPELLINGS), key=str.lower)
