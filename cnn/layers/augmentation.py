"""Image augmentation layers, active only in training: RandomFlip, RandomTranslation,
RandomRotation, RandomZoom (Keras's names and arguments), and their shared base
``Augmentation`` (also of RandomContrast, RandomBrightness and RandomCrop).

At inference (``training=False``: predict, evaluate, validation) each is the identity and
returns its input unchanged. In training each image of the batch gets its own random
transformation, drawn from the layer's own generator when it was given a ``seed`` and from
``cnn.backend.rng()`` otherwise (seeded by ``cnn.set_seed`` and by ``fit(seed=...)``), so
seeded runs repeat exactly. The transformations are linear in the image, and ``backward``
applies their exact adjoint, for a layer that is not first in the model.
"""

from __future__ import annotations

import math

import numpy as np

from cnn import backend
from cnn.backend import xp
from cnn.layers import batch_draws, data_format as formats
from cnn.layers.base import Layer, OwnGenerator
from cnn.ops import affine as affine_ops
from cnn.ops.im2col import channels_last

FLIP_MODES = ("horizontal", "vertical", "horizontal_and_vertical")


def factor_range(factor, name):
    """``f`` -> ``(-f, f)``; ``(lower, upper)`` checked; each in [-1, 1], lower <= upper."""
    if isinstance(factor, (list, tuple)):
        if len(factor) != 2:
            raise ValueError(f"{name} must be a number or a (lower, upper) pair, got {factor!r}")
        lower, upper = (float(v) for v in factor)
    else:
        try:
            upper = abs(float(factor))
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number or a (lower, upper) pair, "
                             f"got {factor!r}") from None
        lower = -upper
    if not -1.0 <= lower <= upper <= 1.0:
        raise ValueError(f"{name} must lie in [-1, 1] with lower <= upper, got {factor!r}")
    return lower, upper


class Augmentation(OwnGenerator, Layer, register=False):
    """Shared: the data format, the generator, identity at inference, the image checks."""

    samplewise = True

    def __init__(self, seed=None, data_format=None, input_shape=None, name=None):
        super().__init__(input_shape=input_shape, name=name)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"seed must be an int or None, got {seed!r}")
        self.seed = seed
        self._rng = None if seed is None else np.random.default_rng(seed)
        self.data_format = formats.resolve(data_format)
        self._cache = None

    def _build(self, input_shape):
        formats.require_input(self, input_shape)
        return input_shape

    def generator(self) -> np.random.Generator:
        return self._rng or backend.rng()

    def per_sample(self, draw, n):
        """This piece's ``n`` rows of ``draw(global batch size)`` (``batch_draws``): each
        image is transformed as one process computing the whole batch would."""
        return batch_draws.rows_of(self, draw, n)

    def uniform_per_sample(self, bounds, n):
        """(n,) draws uniform in ``bounds`` (lower, upper), one per image (``per_sample``)."""
        rng = self.generator()
        return self.per_sample(lambda size: rng.uniform(*bounds, size=size), n)

    def forward(self, x, training=False):
        self._cache = None
        if not training:
            return x
        return self.augment(x)

    def backward(self, grad):
        return grad if self._cache is None else self.augment_backward(grad)

    def get_config(self):
        return {"seed": self.seed, "data_format": self.data_format, "name": self.name}


class RandomFlip(Augmentation):
    """Flip each image left-right and/or upside down, each with probability 1/2.

    Args:
        mode: "horizontal" (left-right), "vertical" (upside down) or
            "horizontal_and_vertical" (each independently), as in Keras.
        seed: an int for a generator of the layer's own, or None.
        data_format: as for Conv2D.
    Shapes: (N, C, H, W) or (N, H, W, C), unchanged.
    """

    def __init__(self, mode="horizontal_and_vertical", seed=None, data_format=None, *,
                 input_shape=None, name=None):
        super().__init__(seed, data_format, input_shape, name)
        if mode not in FLIP_MODES:
            raise ValueError(f"RandomFlip mode must be one of {', '.join(FLIP_MODES)}, "
                             f"got {mode!r}")
        self.mode = mode

    def augment(self, x):
        n = x.shape[0]
        rng = self.generator()
        rows_axis, cols_axis = formats.spatial_axes(self.data_format)
        horizontal = (self.per_sample(rng.random, n) < 0.5 if self.mode != "vertical"
                      else np.zeros(n, bool))
        vertical = (self.per_sample(rng.random, n) < 0.5 if self.mode != "horizontal"
                    else np.zeros(n, bool))
        self._cache = (horizontal, vertical, rows_axis, cols_axis)
        return self._flip(x)

    def _flip(self, a):
        horizontal, vertical, rows_axis, cols_axis = self._cache
        out = a.copy()
        for flip, axis in ((horizontal, cols_axis), (vertical, rows_axis)):
            if flip.any():
                chosen = backend.asarray(np.flatnonzero(flip), dtype="int64")
                out[chosen] = xp.flip(out[chosen], axis=axis)
        return out

    def augment_backward(self, grad):
        return self._flip(grad)  # a flip is its own adjoint

    def get_config(self):
        return {"mode": self.mode, **super().get_config()}


class AffineAugmentation(Augmentation, register=False):
    """Resampling under a random affine map per image (``cnn.ops.affine``)."""

    def __init__(self, fill_mode, interpolation, seed, fill_value, data_format, input_shape,
                 name):
        super().__init__(seed, data_format, input_shape, name)
        if fill_mode not in affine_ops.FILL_MODES:
            raise ValueError(f"fill_mode must be one of {', '.join(affine_ops.FILL_MODES)}, "
                             f"got {fill_mode!r}")
        if interpolation not in affine_ops.INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of "
                             f"{', '.join(affine_ops.INTERPOLATIONS)}, got {interpolation!r}")
        self.fill_mode = fill_mode
        self.interpolation = interpolation
        self.fill_value = float(fill_value)

    def augment(self, x):
        _, (h, w) = formats.split_shape(self.input_shape, self.data_format)
        matrices = self.draw_matrices(x.shape[0], h, w)
        taps = affine_ops.sampling_taps(matrices, (h, w), self.interpolation, self.fill_mode,
                                        self.fill_value)
        self._cache = taps
        nhwc = channels_last(formats.to_nchw(x, self.data_format))
        y = affine_ops.affine_forward(nhwc, taps)
        return formats.from_nchw(y.transpose(0, 3, 1, 2), self.data_format)

    def augment_backward(self, grad):
        nhwc = channels_last(formats.to_nchw(grad, self.data_format))
        dx = affine_ops.affine_backward(nhwc, self._cache)
        return formats.from_nchw(dx.transpose(0, 3, 1, 2), self.data_format)

    def get_config(self):
        return {"fill_mode": self.fill_mode, "interpolation": self.interpolation,
                "fill_value": self.fill_value, **super().get_config()}


class RandomTranslation(AffineAugmentation):
    """Shift each image by a random fraction of its height and width.

    Args:
        height_factor: ``f`` (shift by up to ``f * height`` rows up or down) or
            ``(lower, upper)``; positive values move the image down, as in Keras.
        width_factor: the same for columns; positive values move the image right.
        fill_mode: "reflect" (default), "wrap", "nearest" or "constant", for the pixels
            shifted in; interpolation: "bilinear" (default) or "nearest"; fill_value: for
            "constant".
        seed, data_format: as for RandomFlip.
    Shapes: unchanged.
    """

    def __init__(self, height_factor, width_factor, fill_mode="reflect",
                 interpolation="bilinear", seed=None, fill_value=0.0, data_format=None, *,
                 input_shape=None, name=None):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, input_shape,
                         name)
        self.height_factor = factor_range(height_factor, "height_factor")
        self.width_factor = factor_range(width_factor, "width_factor")

    def draw_matrices(self, n, h, w):
        down = self.uniform_per_sample(self.height_factor, n) * h
        right = self.uniform_per_sample(self.width_factor, n) * w
        matrices = np.zeros((n, 2, 3))
        matrices[:, 0, 0] = matrices[:, 1, 1] = 1.0
        matrices[:, 0, 2], matrices[:, 1, 2] = -down, -right  # output (r, c) reads (r - down, ...)
        return matrices

    def get_config(self):
        return {"height_factor": list(self.height_factor),
                "width_factor": list(self.width_factor), **super().get_config()}


class RandomRotation(AffineAugmentation):
    """Rotate each image about its centre by a random angle.

    Args:
        factor: ``f`` (rotate by up to ``f * 360`` degrees either way) or ``(lower, upper)``,
            fractions of a full turn as in Keras; positive angles turn counter-clockwise.
        fill_mode, interpolation, fill_value, seed, data_format: as for RandomTranslation.
    Shapes: unchanged.
    """

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, *, input_shape=None, name=None):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, input_shape,
                         name)
        self.factor = factor_range(factor, "factor")

    def draw_matrices(self, n, h, w):
        turns = self.uniform_per_sample(self.factor, n)
        return rotation_matrices(turns * 2 * math.pi, h, w)

    def get_config(self):
        return {"factor": list(self.factor), **super().get_config()}


def rotation_matrices(angles, h, w):
    """(N, 2, 3) maps turning (h, w) images counter-clockwise by ``angles`` (radians) about
    their centre: output pixel (r, c) reads the input at the centre plus its offset turned
    back (rows grow downwards, so a counter-clockwise turn on screen)."""
    centre_r, centre_c = (h - 1) / 2, (w - 1) / 2
    cos, sin = np.cos(angles), np.sin(angles)
    matrices = np.zeros((len(angles), 2, 3))
    # Input offset = the output offset turned by -angle, in (x = col, y = -row) axes.
    matrices[:, 0, 0], matrices[:, 0, 1] = cos, sin
    matrices[:, 1, 0], matrices[:, 1, 1] = -sin, cos
    matrices[:, 0, 2] = centre_r - cos * centre_r - sin * centre_c
    matrices[:, 1, 2] = centre_c + sin * centre_r - cos * centre_c
    return matrices


class RandomZoom(AffineAugmentation):
    """Zoom each image in or out about its centre by a random factor per axis.

    Args:
        height_factor: ``f`` (zoom by up to ``f`` either way) or ``(lower, upper)``, each in
            [-1, 1]: the image is read over ``1 + u`` times its height, ``u`` uniform in
            ``[lower, upper]``, so positive values zoom out (the content shrinks) and negative
            ones zoom in, as in Keras.
        width_factor: the same for the width; None (default) keeps the aspect ratio: the
            width takes the height's draw.
        fill_mode, interpolation, fill_value, seed, data_format: as for RandomTranslation.
    Shapes: unchanged. Output pixel ``(r, c)`` reads the input at
    ``(centre_r + (r - centre_r) * zoom_h, centre_c + (c - centre_c) * zoom_w)``, the centre
    ``((h - 1) / 2, (w - 1) / 2)`` (Keras's zoom matrix).
    """

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect",
                 interpolation="bilinear", seed=None, fill_value=0.0, data_format=None, *,
                 input_shape=None, name=None):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, input_shape,
                         name)
        self.height_factor = factor_range(height_factor, "height_factor")
        self.width_factor = (None if width_factor is None
                             else factor_range(width_factor, "width_factor"))

    def draw_matrices(self, n, h, w):
        zoom_h = 1.0 + self.uniform_per_sample(self.height_factor, n)
        zoom_w = (zoom_h if self.width_factor is None
                  else 1.0 + self.uniform_per_sample(self.width_factor, n))
        return zoom_matrices(zoom_h, zoom_w, h, w)

    def get_config(self):
        width = None if self.width_factor is None else list(self.width_factor)
        return {"height_factor": list(self.height_factor), "width_factor": width,
                **super().get_config()}


def zoom_matrices(zoom_h, zoom_w, h, w):
    """(N, 2, 3) maps reading (h, w) images over ``zoom_h`` times their height and ``zoom_w``
    times their width about the centre (above 1: zoom out)."""
    matrices = np.zeros((len(zoom_h), 2, 3))
    matrices[:, 0, 0], matrices[:, 1, 1] = zoom_h, zoom_w
    matrices[:, 0, 2] = (h - 1) / 2 * (1 - zoom_h)
    matrices[:, 1, 2] = (w - 1) / 2 * (1 - zoom_w)
    return matrices
