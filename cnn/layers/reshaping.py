"""Layers that move values around without weights: ZeroPadding2D, Cropping2D, UpSampling2D,
Reshape. Images are (N, C, H, W) or (N, H, W, C), as each layer's ``data_format`` says.
(GlobalAveragePooling2D lives in ``cnn.layers.pooling``; it is importable from here too.)"""

from __future__ import annotations

import numpy as np

from cnn.layers import data_format as formats
from cnn.layers.base import Layer, format_shape
from cnn.layers.pooling import GlobalAveragePooling2D
from cnn.ops import resize as resize_ops
from cnn.ops.im2col import channels_last, crop_spatial, pad_spatial
from cnn.ops.shapes import check_padding, pair


class _SpatialLayer(Layer, register=False):
    """An image layer without weights, in either data format (see ``data_format``)."""

    samplewise = True

    def __init__(self, data_format=None, input_shape=None, name=None):
        super().__init__(input_shape=input_shape, name=name)
        self.data_format = formats.resolve(data_format)

    @property
    def spatial_axes(self):
        return formats.spatial_axes(self.data_format)

    def _split(self, input_shape):
        formats.require_input(self, input_shape)
        return formats.split_shape(input_shape, self.data_format)

    def get_config(self):
        return {"data_format": self.data_format, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**formats.config_with_default(config))


class ZeroPadding2D(_SpatialLayer):
    """Add rows and columns of zeros around each image.

    Args:
        padding: an int (all four sides), ``(rows, cols)`` (symmetric), or
            ``((top, bottom), (left, right))``, as in Keras.
        data_format: "channels_first" or "channels_last"; default ``cnn.image_data_format()``.
    Shapes: (N, C, H, W) -> (N, C, H + top + bottom, W + left + right), or the same with
        the channels last.
    """

    def __init__(self, padding=1, data_format=None, *, input_shape=None, name=None):
        super().__init__(data_format, input_shape, name)
        if isinstance(padding, str):
            raise ValueError(f"ZeroPadding2D takes amounts of padding, not a mode; got {padding!r}")
        self.padding = check_padding(padding)

    def _build(self, input_shape):
        channels, (height, width) = self._split(input_shape)
        (top, bottom), (left, right) = self.padding
        return formats.join_shape(channels, (height + top + bottom, width + left + right),
                                  self.data_format)

    def forward(self, x, training=False):
        return pad_spatial(x, self.padding, axes=self.spatial_axes)

    def backward(self, grad):
        return crop_spatial(grad, self.padding, axes=self.spatial_axes)

    def get_config(self):
        return {"padding": [list(p) for p in self.padding], **super().get_config()}


class Cropping2D(_SpatialLayer):
    """Cut rows and columns off the edges of each image (the inverse of ZeroPadding2D).

    Args:
        cropping: an int (all four sides), ``(rows, cols)`` (symmetric), or
            ``((top, bottom), (left, right))``, as in Keras.
        data_format: as for ZeroPadding2D.
    Shapes: (N, C, H, W) -> (N, C, H - top - bottom, W - left - right), or channels last.
    """

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, *, input_shape=None,
                 name=None):
        super().__init__(data_format, input_shape, name)
        if isinstance(cropping, str):
            raise ValueError(f"Cropping2D takes amounts to crop, got {cropping!r}")
        self.cropping = check_padding(cropping)

    def _build(self, input_shape):
        channels, (height, width) = self._split(input_shape)
        (top, bottom), (left, right) = self.cropping
        out = (height - top - bottom, width - left - right)
        if min(out) < 1:
            raise ValueError(
                f"layer {self.describe()}: cropping {self.cropping} leaves nothing of the input "
                f"{format_shape(input_shape)} read as {formats.layout(self.data_format)} "
                f"(output {out})"
            )
        return formats.join_shape(channels, out, self.data_format)

    def forward(self, x, training=False):
        return crop_spatial(x, self.cropping, axes=self.spatial_axes)

    def backward(self, grad):
        return pad_spatial(grad, self.cropping, axes=self.spatial_axes)

    def get_config(self):
        return {"cropping": [list(p) for p in self.cropping], **super().get_config()}


class UpSampling2D(_SpatialLayer):
    """Enlarge each image by integer factors.

    Args:
        size: int or ``(sh, sw)``.
        interpolation: "nearest" (repeat each pixel) or "bilinear" (half-pixel centres, as
            Keras and PyTorch's ``align_corners=False``).
        data_format: as for ZeroPadding2D.
    Shapes: (N, C, H, W) -> (N, C, H * sh, W * sw), or channels last.
    """

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", *,
                 input_shape=None, name=None):
        super().__init__(data_format, input_shape, name)
        self.size = pair(size, "size")
        if interpolation not in resize_ops.INTERPOLATIONS:
            raise ValueError(f"UpSampling2D interpolation must be one of "
                             f"{', '.join(resize_ops.INTERPOLATIONS)}, got {interpolation!r}")
        self.interpolation = interpolation

    def _build(self, input_shape):
        channels, (height, width) = self._split(input_shape)
        return formats.join_shape(channels, (height * self.size[0], width * self.size[1]),
                                  self.data_format)

    def forward(self, x, training=False):
        nhwc = channels_last(formats.to_nchw(x, self.data_format))
        y = resize_ops.upsample_forward(nhwc, self.size, self.interpolation)
        return formats.from_nchw(y.transpose(0, 3, 1, 2), self.data_format)

    def backward(self, grad):
        nhwc = channels_last(formats.to_nchw(grad, self.data_format))
        _, (height, width) = formats.split_shape(self.input_shape, self.data_format)
        dx = resize_ops.upsample_backward(nhwc, (height, width), self.size, self.interpolation)
        return formats.from_nchw(dx.transpose(0, 3, 1, 2), self.data_format)

    def get_config(self):
        return {"size": list(self.size), "interpolation": self.interpolation,
                **super().get_config()}


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


__all__ = ["GlobalAveragePooling2D", "ZeroPadding2D", "Cropping2D", "UpSampling2D", "Reshape"]
