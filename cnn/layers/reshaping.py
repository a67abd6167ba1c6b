"""Layers that move values around without weights: GlobalAveragePooling2D, ZeroPadding2D,
Reshape. Images are (N, C, H, W), channels first, as everywhere in ``cnn``."""

from __future__ import annotations

import numpy as np

from cnn.backend import xp
from cnn.layers.base import Layer, format_shape
from cnn.ops.im2col import crop_spatial, pad_spatial
from cnn.ops.shapes import check_padding


def _require_image_input(layer, input_shape):
    if len(input_shape) != 3:
        raise ValueError(
            f"layer {layer.describe()} needs input of shape (channels, height, width), "
            f"got {format_shape(input_shape)}"
        )


class GlobalAveragePooling2D(Layer):
    """The mean of each channel over height and width.

    Args:
        keepdims: keep the spatial axes as size 1.
    Shapes: (N, C, H, W) -> (N, C), or (N, C, 1, 1) with ``keepdims``.
    """

    samplewise = True

    def __init__(self, keepdims=False, *, input_shape=None, name=None):
        super().__init__(input_shape=input_shape, name=name)
        self.keepdims = bool(keepdims)

    def _build(self, input_shape):
        _require_image_input(self, input_shape)
        return (input_shape[0], 1, 1) if self.keepdims else (input_shape[0],)

    def forward(self, x, training=False):
        return x.mean(axis=(2, 3), keepdims=self.keepdims)

    def backward(self, grad):
        channels, height, width = self.input_shape
        grad = grad.reshape(grad.shape[0], channels, 1, 1) * grad.dtype.type(1.0 / (height * width))
        return xp.broadcast_to(grad, (grad.shape[0], *self.input_shape)).copy()

    def get_config(self):
        return {"keepdims": self.keepdims, "name": self.name}


class ZeroPadding2D(Layer):
    """Add rows and columns of zeros around each image.

    Args:
        padding: an int (all four sides), ``(rows, cols)`` (symmetric), or
            ``((top, bottom), (left, right))``, as in Keras.
    Shapes: (N, C, H, W) -> (N, C, H + top + bottom, W + left + right).
    """

    samplewise = True

    def __init__(self, padding=1, *, input_shape=None, name=None):
        super().__init__(input_shape=input_shape, name=name)
        if isinstance(padding, str):
            raise ValueError(f"ZeroPadding2D takes amounts of padding, not a mode; got {padding!r}")
        self.padding = check_padding(padding)

    def _build(self, input_shape):
        _require_image_input(self, input_shape)
        (top, bottom), (left, right) = self.padding
        channels, height, width = input_shape
        return (channels, height + top + bottom, width + left + right)

    def forward(self, x, training=False):
        return pad_spatial(x, self.padding)

    def backward(self, grad):
        return crop_spatial(grad, self.padding)

    def get_config(self):
        return {"padding": [list(p) for p in self.padding], "name": self.name}


class Reshape(Layer):
    """Give each sample a new shape with the same number of values (C order, like NumPy).

    Args:
        target_shape: the new shape without the batch axis; one entry may be -1 (inferred).
    Shapes: (N, *input_shape) -> (N, *target_shape).
    """

    samplewise = True

    def __init__(self, target_shape, *, input_shape=None, name=None):
        super().__init__(input_shape=input_shape, name=name)
        if isinstance(target_shape, (int, np.integer)):
            target_shape = (target_shape,)
        try:
            target = tuple(int(s) for s in target_shape)
        except (TypeError, ValueError):
            raise ValueError(f"Reshape target_shape must be a tuple of ints, got {target_shape!r}") from None
        if any(s == 0 or s < -1 for s in target) or target.count(-1) > 1:
            raise ValueError(
                f"Reshape target_shape must hold positive sizes and at most one -1, got {target_shape!r}"
            )
        self.target_shape = target

    def _build(self, input_shape):
        size = int(np.prod(input_shape))
        known = int(np.prod([s for s in self.target_shape if s != -1]))
        fits = size % known == 0 if -1 in self.target_shape else size == known
        if not fits:
            raise ValueError(
                f"layer {self.describe()} cannot reshape input {format_shape(input_shape)} "
                f"({size} values per sample) to {format_shape(self.target_shape)}"
            )
        return tuple(size // known if s == -1 else s for s in self.target_shape)

    def forward(self, x, training=False):
        return x.reshape(x.shape[0], *self._output_shape)

    def backward(self, grad):
        return grad.reshape(grad.shape[0], *self.input_shape)

    def get_config(self):
        return {"target_shape": list(self.target_shape), "name": self.name}


__all__ = ["GlobalAveragePooling2D", "ZeroPadding2D", "Reshape"]
