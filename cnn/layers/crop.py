"""RandomCrop: a random (height, width) window of each training image; at inference the
largest centred window of the target's aspect ratio, resized to the target (Keras's names,
arguments and documented behaviour)."""

from __future__ import annotations

import numpy as np

from cnn.backend import xp
from cnn.layers import data_format as formats
from cnn.layers.augmentation import Augmentation
from cnn.ops.resize import window_resize_matrix


def centred_window(size, other_size, target, other_target):
    """``(start, length)`` along one axis of the largest centred window with the target's
    aspect ratio, as Keras computes it (``int`` truncations included)."""
    length = max(min(size, int(float(other_size * target) / other_target)), 1)
    return int(float(size - length) / 2), length


class RandomCrop(Augmentation):
    """Crop each image to ``(height, width)``.

    Training, on inputs at least ``height`` x ``width``: each image gets its own window,
    its top row uniform in ``0 .. H - height`` and its left column in ``0 .. W - width``.
    (Keras 3 crops the whole batch at one position and only when both sides are strictly
    larger than the target; here the draws are per image, as the other augmentation layers',
    and a side equal to the target is simply not moved.)

    Inference, and training on an input smaller than the target on a side: the centred
    window of rows ``h0 : h0 + ch`` and columns ``w0 : w0 + cw`` with
    ``ch = clip(int(W * height / width), 1, H)``, ``cw = clip(int(H * width / height), 1, W)``,
    ``h0 = int((H - ch) / 2)``, ``w0 = int((W - cw) / 2)`` (Keras's formula: the largest window
    of the target's aspect ratio), resized to ``(height, width)`` bilinearly with half-pixel
    centres and no antialiasing (``tf.image.resize``, PyTorch's ``interpolate(...,
    mode="bilinear", align_corners=False)``): output row ``o`` reads the window at
    ``(o + 0.5) * ch / height - 0.5``, clamped to its edge rows; the same for columns. A
    window already of the target's size is returned as it is. (Keras 3's code skips this
    at inference and returns the input uncropped, against its own documentation and output
    shape: keras-team/keras#21868.)

    Args:
        height, width: the output size (positive ints).
        seed, data_format: as for RandomFlip.
    Shapes: (N, C, H, W) -> (N, C, height, width), or channels last (N, H, W, C) ->
    (N, height, width, C). ``backward`` is the exact adjoint of the crop (and resize) done.
    """

    def __init__(self, height, width, seed=None, data_format=None, *, input_shape=None,
                 name=None):
        super().__init__(seed, data_format, input_shape, name)
        for argument, value in (("height", height), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"RandomCrop {argument} must be a positive int, got {value!r}")
        self.height, self.width = int(height), int(width)
        self._resize = None

    def _build(self, input_shape):
        formats.require_input(self, input_shape)
        channels, (h, w) = formats.split_shape(input_shape, self.data_format)
        (top, rows), (left, cols) = self.central_window((h, w))
        dtype = np.float64
        self._resize = (window_resize_matrix(h, top, rows, self.height, dtype),
                        window_resize_matrix(w, left, cols, self.width, dtype))
        return formats.join_shape(channels, (self.height, self.width), self.data_format)

    def central_window(self, size=None):
        """``((top, rows), (left, cols))``: the window that inference resizes, of an image of
        ``size`` (h, w), by default the built input's."""
        h, w = size or formats.split_shape(self.input_shape, self.data_format)[1]
        return (centred_window(h, w, self.height, self.width),
                centred_window(w, h, self.width, self.height))

    def forward(self, x, training=False):
        _, (h, w) = formats.split_shape(self.input_shape, self.data_format)
        if training and h >= self.height and w >= self.width:
            return self._random_windows(x, h, w)
        self._cache = "resize"
        rows, cols = (m.astype(x.dtype) for m in self._resize)
        y = rows @ formats.to_nchw(x, self.data_format) @ cols.T  # (N, C, height, width)
        return formats.from_nchw(y, self.data_format)

    def _random_windows(self, x, h, w):
        rng = self.generator()
        room = np.array([h - self.height + 1, w - self.width + 1])
        starts = self.per_sample(lambda size: rng.integers(0, room, size=(size, 2)),
                                 x.shape[0])
        images = xp.arange(x.shape[0])[:, None, None]
        rows = (xp.asarray(starts[:, 0])[:, None] + xp.arange(self.height))[:, :, None]
        cols = (xp.asarray(starts[:, 1])[:, None] + xp.arange(self.width))[:, None, :]
        self._cache = (images, rows, cols)
        nhwc = formats.to_nchw(x, self.data_format).transpose(0, 2, 3, 1)
        y = nhwc[images, rows, cols]  # (N, height, width, C)
        return formats.from_nchw(y.transpose(0, 3, 1, 2), self.data_format)

    def backward(self, grad):
        g = formats.to_nchw(grad, self.data_format)
        if isinstance(self._cache, str):
            rows, cols = (m.astype(grad.dtype) for m in self._resize)
            return formats.from_nchw(rows.T @ g @ cols, self.data_format)
        images, rows, cols = self._cache
        n, c = g.shape[:2]
        _, (h, w) = formats.split_shape(self.input_shape, self.data_format)
        dx = xp.zeros((n, h, w, c), dtype=grad.dtype)
        dx[images, rows, cols] = g.transpose(0, 2, 3, 1)  # a window repeats no pixel
        return formats.from_nchw(dx.transpose(0, 3, 1, 2), self.data_format)

    def get_config(self):
        return {"height": self.height, "width": self.width, **super().get_config()}
