"""Metrics: per-sample scores averaged over everything seen since the last ``reset``.

Every metric here is a mean of a per-sample value, so one accumulator serves them all and
the epoch value equals the value over the whole epoch's outputs, as the seed computed it.

Names (case-insensitive unless noted): ``accuracy`` (``acc``, ``categorical_accuracy``,
``sparse_categorical_accuracy``: argmax of the output equals argmax of the target; for a
single-unit output, the output thresholded at 0.5), ``binary_accuracy``,
``mean_absolute_error`` (``mae``, Keras: mean over outputs), ``mean_squared_error``
(``mse``), and ``"MAE"`` (exact spelling): the seed's MAE, the *sum* over outputs of each
output's mean absolute error (canonical name ``seed_mae``).

Outputs with more than two axes, e.g. sequences (N, T, K), are scored per time step and
averaged over the steps: accuracy compares the argmax of the last axis at every step, the
seed's ``"MAE"`` sums over the last axis only; the means over outputs are unchanged.
"""

from __future__ import annotations

from cnn.backend import xp
from cnn.utils.naming import lookup


class Metric:
    """Running weighted mean of ``per_sample(output, target)``."""

    name = "metric"

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self._total = 0.0
        self._count = 0.0

    def per_sample(self, output, target):
        raise NotImplementedError

    def update(self, output, target, sample_weight=None) -> None:
        values = self.per_sample(output, target)
        if sample_weight is None:
            self._total += float(values.sum())
            self._count += values.shape[0]
        else:
            self._total += float((values * sample_weight).sum())
            self._count += float(sample_weight.sum())

    def result(self) -> float:
        return self._total / self._count if self._count else float("nan")

    def get_config(self) -> dict:
        return {"name": self.name}

    def __repr__(self):
        return f"{type(self).__name__}()"


def _flat(a):
    return a.reshape(a.shape[0], -1)


def _positions(a) -> int:
    """The number of last-axis vectors in one sample: T for (N, T, K), 1 for (N, K)."""
    return a[0].size // a.shape[-1]


class Accuracy(Metric):
    """Fraction of samples whose predicted class equals the true class."""

    name = "accuracy"

    def per_sample(self, output, target):
        n, classes = output.shape[0], output.shape[-1]
        output, target = output.reshape(n, -1, classes), target.reshape(n, -1, classes)
        if classes == 1:
            hits = (output[..., 0] > 0.5) == (target[..., 0] > 0.5)
        else:
            hits = output.argmax(axis=-1) == target.argmax(axis=-1)
        return hits.mean(axis=1).astype(output.dtype)


class BinaryAccuracy(Metric):
    """Mean over outputs of ``(output > 0.5) == (target > 0.5)``."""

    name = "binary_accuracy"

    def per_sample(self, output, target):
        return ((_flat(output) > 0.5) == (_flat(target) > 0.5)).mean(axis=1)


class MeanAbsoluteError(Metric):
    name = "mae"

    def per_sample(self, output, target):
        return xp.abs(_flat(output) - _flat(target)).mean(axis=1)


class MeanSquaredError(Metric):
    name = "mse"

    def per_sample(self, output, target):
        d = _flat(output) - _flat(target)
        return (d * d).mean(axis=1)


class SeedMeanAbsoluteError(Metric):
    """The seed's MAE: sum over outputs of each output's mean absolute error."""

    name = "MAE"

    def per_sample(self, output, target):
        return xp.abs(_flat(output) - _flat(target)).sum(axis=1) / _positions(output)

    def get_config(self):
        return {"name": "seed_mae"}


_METRICS = {
    "accuracy": Accuracy,
    "acc": Accuracy,
    "categorical_accuracy": Accuracy,
    "sparse_categorical_accuracy": Accuracy,
    "binary_accuracy": BinaryAccuracy,
    "mean_absolute_error": MeanAbsoluteError,
    "mae": MeanAbsoluteError,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
    "seed_mae": SeedMeanAbsoluteError,
}
_SEED_SPELLINGS = {"MAE": SeedMeanAbsoluteError}


def get(identifier) -> Metric:
    """Resolve a metric given by name, config dict or instance (a fresh instance by name)."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, dict):
        identifier = identifier.get("name")
    return lookup("metric", identifier, _METRICS, _SEED_SPELLINGS)()


def names() -> list[str]:
    return sorted(set(_METRICS) | set(_SEED_SPELLINGS), key=str.lower)
