"""Augmentation of pixel values, active only in training: RandomContrast and RandomBrightness
(Keras 3's names, arguments and formulas).

Each image gets its own random factor (the draws as in ``cnn.layers.augmentation``); the
result is clipped to ``value_range`` as Keras 3 does. ``backward`` is the exact gradient of
that: zero where the output was clipped, otherwise the derivative of the affine map (for
RandomContrast including its path through the image's mean). At inference both layers are
the identity.
"""

from __future__ import annotations

import math

from cnn.backend import xp
from cnn.layers import data_format as formats
from cnn.layers.augmentation import Augmentation, factor_range


def value_range_pair(value_range):
    """``(low, high)`` as two finite floats, sorted as Keras does; low < high."""
    try:
        low, high = sorted(float(v) for v in value_range)
        valid = len(value_range) == 2 and math.isfinite(low) and math.isfinite(high)
    except (TypeError, ValueError):
        valid = False
    if not valid or not low < high:
        raise ValueError(f"value_range must be a pair of two different finite numbers "
                         f"(low, high), got {value_range!r}")
    return low, high


def contrast_range(factor):
    """``f`` -> ``(f, f)``; ``(lower, upper)`` sorted as Keras does; each in [0, 1]. The
    contrast factor is then drawn in ``[1 - lower, 1 + upper]``."""
    pair = factor if isinstance(factor, (list, tuple)) else (factor, factor)
    try:
        lower, upper = sorted(float(v) for v in pair)
        valid = len(pair) == 2
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(f"factor must be a number or a (lower, upper) pair, got {factor!r}")
    if not 0.0 <= lower <= upper <= 1.0:
        raise ValueError(f"factor must lie in [0, 1], got {factor!r}")
    return lower, upper


class ClippedAugmentation(Augmentation, register=False):
    """A per-image map of the pixel values, then the clip to ``value_range``."""

    def __init__(self, value_range, seed, data_format, input_shape, name):
        super().__init__(seed, data_format, input_shape, name)
        self.value_range = value_range_pair(value_range)

    def clip(self, z, factors):
        """``z`` clipped to ``value_range``; keeps ``factors`` and where ``z`` was inside."""
        low, high = self.value_range
        self._cache = (factors, (z >= low) & (z <= high))
        return xp.clip(z, low, high)

    def per_image(self, values, dtype):
        """(N,) values -> (N, 1, 1, 1) in ``dtype``, broadcasting against a batch."""
        return xp.asarray(values).astype(dtype).reshape(-1, 1, 1, 1)

    def get_config(self):
        return {"value_range": list(self.value_range), **super().get_config()}


class RandomContrast(ClippedAugmentation):
    """Scale each image's deviations from its mean by a random factor.

    Each channel ``x`` of image ``n`` becomes ``(x - mean(x)) * f_n + mean(x)``, the mean over
    the image's height and width, ``f_n`` (one per image, for all its channels) uniform in
    ``[1 - lower, 1 + upper]``; then the result is clipped to ``value_range``.

    Args:
        factor: ``f`` (the factor in ``[1 - f, 1 + f]``, as Keras documents; Keras 3's code
            draws a single ``f`` in ``[1, 1 + f]``, its ``_set_factor`` making lower 0) or
            ``(lower, upper)``, each in [0, 1], sorted as Keras does.
        value_range: ``(low, high)``, the range of the pixel values; default (0, 255).
        seed, data_format: as for RandomFlip.
    Shapes: (N, C, H, W) or (N, H, W, C), unchanged.
    """

    def __init__(self, factor, value_range=(0, 255), seed=None, data_format=None, *,
                 input_shape=None, name=None):
        super().__init__(value_range, seed, data_format, input_shape, name)
        self.factor = contrast_range(factor)

    def augment(self, x):
        lower, upper = self.factor
        factors = self.per_image(self.uniform_per_sample((1 - lower, 1 + upper), x.shape[0]),
                                 x.dtype)
        mean = x.mean(axis=formats.spatial_axes(self.data_format), keepdims=True)
        return self.clip((x - mean) * factors + mean, factors)

    def augment_backward(self, grad):
        factors, inside = self._cache
        grad = grad * inside
        mean = grad.mean(axis=formats.spatial_axes(self.data_format), keepdims=True)
        return grad * factors + mean * (1 - factors)

    def get_config(self):
        return {"factor": list(self.factor), **super().get_config()}


class RandomBrightness(ClippedAugmentation):
    """Add a random amount to all pixels of each image.

    Image ``n`` becomes ``x + u_n * (high - low)``, ``u_n`` uniform in ``[lower, upper]``
    (a fraction of the value range, as in Keras 3), clipped to ``value_range = (low, high)``.

    Args:
        factor: ``f`` (``u`` in ``[-f, f]``) or ``(lower, upper)``, each in [-1, 1]; -1 makes
            any image all ``low``, 1 all ``high``.
        value_range: ``(low, high)``; default (0, 255).
        seed, data_format: as for RandomFlip.
    Shapes: unchanged.
    """

    def __init__(self, factor, value_range=(0, 255), seed=None, data_format=None, *,
                 input_shape=None, name=None):
        super().__init__(value_range, seed, data_format, input_shape, name)
        self.factor = factor_range(factor, "factor")

    def augment(self, x):
        low, high = self.value_range
        deltas = self.uniform_per_sample(self.factor, x.shape[0]) * (high - low)
        return self.clip(x + self.per_image(deltas, x.dtype), None)

    def augment_backward(self, grad):
        return grad * self._cache[1]

    def get_config(self):
        return {"factor": list(self.factor), **super().get_config()}
