"""Max and average pooling over windows (1-D and 2-D) and over whole maps (global pooling).

All of them run the 2-D kernels of ``cnn.ops.pooling`` (a sequence is an image of height 1)
on channels-last memory, which is how the convolutions store their outputs.
"""

from __future__ import annotations

from cnn.backend import xp
from cnn.layers import data_format as formats
from cnn.layers.base import Layer
from cnn.layers.conv import spatial_tuple
from cnn.layers.core import choose
from cnn.layers.node import has_variable_axis
from cnn.ops import pooling as pool_ops
from cnn.ops.im2col import channels_last
from cnn.ops.shapes import check_padding, window_output_shape


class _Pooling(Layer, register=False):
    """Shared by the window pooling layers; ``mode`` is "max" or "avg", ``rank`` 1 or 2.

    Args (seed order first):
        pool_size: int or (ph, pw) (an int for 1-D).
        stride / strides: int or pair; default ``pool_size`` (non-overlapping windows).
        input_shape: the seed's explicit (C, H, W), checked when built.
        padding: "valid" (drop what the window cannot reach) or "same" (pad so that
            ``out = ceil(size / stride)``; padded cells never win a max and are not counted
            in an average).
        data_format: "channels_first" or "channels_last"; default ``cnn.image_data_format()``
            for 2-D, "channels_last" (N, steps, C) for 1-D.
    Shapes: (N, C, H, W) -> (N, C, out_h, out_w), (N, H, W, C) -> (N, out_h, out_w, C);
        1-D: (N, L, C) -> (N, out_L, C).
    """

    samplewise = True
    mode = "max"
    rank = 2

    def __init__(self, pool_size=2, stride=None, input_shape=None, padding="valid", *,
                 strides=None, data_format=None, name=None):
        super().__init__(input_shape=input_shape, name=name)
        self.pool_size = spatial_tuple(pool_size, self.rank, "pool_size")
        strides = choose(stride, strides, "stride", "strides", self.pool_size)
        self.strides = spatial_tuple(strides, self.rank, "strides")
        padding = check_padding(padding)
        if padding not in ("valid", "same"):
            raise ValueError(f"pooling padding must be 'valid' or 'same', got {padding!r}")
        self.padding = padding
        self.data_format = formats.resolve(data_format, self.rank)
        self._pads = None
        self._cache = None

    def _lift(self, values):
        return tuple(values) if self.rank == 2 else (1, *values)

    def _build(self, input_shape):
        formats.require_input(self, input_shape, self.rank)
        channels, spatial = formats.split_shape(input_shape, self.data_format)
        if channels is None:
            self.refuse_variable(input_shape, "its channels")
        if any(size is None for size in spatial):  # the pads are set for each batch
            self._pads = None
            return formats.join_shape(channels, (None,) * self.rank, self.data_format)
        out = self._window(input_shape)
        return formats.join_shape(channels, out, self.data_format)

    def _window(self, sample_shape):
        """The output's spatial sizes for ``sample_shape``; sets ``self._pads``."""
        _, spatial = formats.split_shape(sample_shape, self.data_format)
        out, self._pads = window_output_shape(
            self._lift(spatial), self._lift(self.pool_size), self._lift(self.strides),
            self.padding
        )
        if min(out) < 1:
            window = f"pool {self.pool_size} with strides {self.strides}"
            raise formats.does_not_fit(self, window, sample_shape)
        return out if self.rank == 2 else out[1:]

    def tiled_window(self, input_shape):
        """``(pool_size, mode)`` in 2-D when this layer's windows tile an input of sample
        shape ``input_shape`` exactly (stride = pool size, no padding, sizes divisible), which
        ``Conv2D.forward_pooled`` can pool on the fly; else None."""
        if self.rank != 2 or has_variable_axis(input_shape) or self.strides != self.pool_size:
            return None
        _, spatial = formats.split_shape(tuple(input_shape), self.data_format)
        if any(size % pool for size, pool in zip(spatial, self.pool_size)):
            return None  # "valid" would drop cells, "same" would pad
        return tuple(self.pool_size), self.mode

    def forward(self, x, training=False):
        if has_variable_axis(self.input_shape):
            self._window(tuple(x.shape[1:]))
        y, self._cache = pool_ops.pool2d_forward(
            formats.to_nchw(x, self.data_format, self.rank), self._lift(self.pool_size),
            self._lift(self.strides), self._pads, self.mode)
        return formats.from_nchw(y, self.data_format, self.rank)

    def backward(self, grad):
        dx = pool_ops.pool2d_backward(formats.to_nchw(grad, self.data_format, self.rank),
                                      self._cache)
        self._cache = None
        return formats.from_nchw(dx, self.data_format, self.rank)

    def get_config(self):
        return {
            "pool_size": list(self.pool_size),
            "strides": list(self.strides),
            "padding": self.padding,
            "data_format": self.data_format,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**formats.config_with_default(config))


class MaxPooling2D(_Pooling):
    """Maximum over each window; the gradient goes to the (first) maximal element."""

    mode = "max"


class AveragePooling2D(_Pooling):
    """Mean over each window; the gradient is spread evenly over it."""

    mode = "avg"


class _Pooling1D(_Pooling, register=False):
    """Keras's argument order: ``(pool_size=2, strides=None, padding="valid", data_format)``."""

    rank = 1
    variable_length = True  # sequences of any length

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, *,
                 input_shape=None, name=None):
        super().__init__(pool_size, strides=strides, input_shape=input_shape, padding=padding,
                         data_format=data_format, name=name)


class MaxPooling1D(_Pooling1D):
    """Maximum over windows of steps: (N, L, C) -> (N, out_L, C)."""

    mode = "max"


class AveragePooling1D(_Pooling1D):
    """Mean over windows of steps: (N, L, C) -> (N, out_L, C)."""

    mode = "avg"


class _GlobalPooling(Layer, register=False):
    """Max or mean of each channel over all spatial positions.

    Works on the channels-last (N, positions, C) memory of the input (no copy for the output
    of a convolution or for channels-last data).

    Args:
        keepdims: keep the spatial axes as size 1.
        data_format: as for the window pooling layers.
    Shapes: (N, C, H, W) or (N, H, W, C) -> (N, C); with ``keepdims`` (N, C, 1, 1) or
        (N, 1, 1, C). 1-D: (N, L, C) -> (N, C) or (N, 1, C).
    """

    samplewise = True
    variable_length = True  # any number of positions; the channels must be known
    rank = 2

    def __init__(self, data_format=None, keepdims=False, *, input_shape=None, name=None):
        super().__init__(input_shape=input_shape, name=name)
        self.keepdims = bool(keepdims)
        self.data_format = formats.resolve(data_format, self.rank)
        self._cache = None
        self._spatial = None

    def _build(self, input_shape):
        formats.require_input(self, input_shape, self.rank)
        channels, _ = formats.split_shape(input_shape, self.data_format)
        if channels is None:
            self.refuse_variable(input_shape, "its channels")
        if not self.keepdims:
            return (channels,)
        return formats.join_shape(channels, (1,) * self.rank, self.data_format)

    def _positions(self, x):
        """(N, positions, C), channels-last memory; remembers the batch's spatial sizes."""
        self._spatial = formats.split_shape(tuple(x.shape[1:]), self.data_format)[1]
        nhwc = channels_last(formats.to_nchw(x, self.data_format, self.rank))
        return nhwc.reshape(nhwc.shape[0], -1, nhwc.shape[-1])

    def _from_positions(self, values, n):
        """(N, positions, C) -> a batch in the layout (and spatial sizes) of the input of
        the last forward."""
        channels, _ = formats.split_shape(self.input_shape, self.data_format)
        spatial = self._spatial
        nhwc = values.reshape(n, *((1,) if self.rank == 1 else ()), *spatial, channels)
        return formats.from_nchw(nhwc.transpose(0, 3, 1, 2), self.data_format, self.rank)

    def _output(self, pooled):
        """(N, C) -> the output shape (with the kept axes)."""
        return pooled.reshape(pooled.shape[0], *self._output_shape)

    def get_config(self):
        return {"keepdims": self.keepdims, "data_format": self.data_format, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**formats.config_with_default(config))


class _GlobalMax(_GlobalPooling, register=False):
    """The gradient goes to the first maximal position of each channel."""

    def forward(self, x, training=False):
        positions = self._positions(x)
        winners = positions.argmax(axis=1)[:, None, :]  # (N, 1, C)
        self._cache = (winners, positions.shape)
        return self._output(xp.take_along_axis(positions, winners, axis=1)[:, 0])

    def backward(self, grad):
        winners, shape = self._cache
        self._cache = None
        dx = xp.zeros(shape, dtype=grad.dtype)
        xp.put_along_axis(dx, winners, grad.reshape(shape[0], 1, shape[2]), axis=1)
        return self._from_positions(dx, shape[0])


class _GlobalAverage(_GlobalPooling, register=False):
    """The gradient is spread evenly over the positions."""

    def forward(self, x, training=False):
        positions = self._positions(x)
        self._cache = positions.shape
        return self._output(positions.mean(axis=1))

    def backward(self, grad):
        n, count, channels = self._cache
        self._cache = None
        share = grad.reshape(n, 1, channels) * grad.dtype.type(1.0 / count)
        return self._from_positions(xp.broadcast_to(share, (n, count, channels)).copy(), n)


class GlobalMaxPooling2D(_GlobalMax):
    """Maximum of each channel over height and width."""


class GlobalAveragePooling2D(_GlobalAverage):
    """Mean of each channel over height and width."""


class GlobalMaxPooling1D(_GlobalMax):
    """Maximum of each channel over the steps: (N, L, C) -> (N, C)."""

    rank = 1


class GlobalAveragePooling1D(_GlobalAverage):
    """Mean of each channel over the steps: (N, L, C) -> (N, C).

    With a mask (N, L) (True: a real step), as Keras: the mean over the unmasked steps only
    (0 for a sample whose steps are all masked, where Keras would give NaN).
    """

    rank = 1
    accepts_mask = True

    def forward(self, x, training=False, mask=None):
        self._step_weights = None
        if mask is None:
            return super().forward(x, training)
        positions = self._positions(x)
        n, steps = positions.shape[:2]
        if tuple(mask.shape) != (n, steps):
            raise ValueError(f"layer {self.describe()}: mask of shape {tuple(mask.shape)} does "
                             f"not fit the input of shape {tuple(x.shape)}: expected {(n, steps)}")
        weights = xp.asarray(mask, dtype=positions.dtype)
        weights /= xp.maximum(weights.sum(axis=1, keepdims=True), 1)
        self._step_weights = weights[:, :, None]  # (N, L, 1): 1 / count on unmasked steps
        self._cache = positions.shape
        return self._output((positions * self._step_weights).sum(axis=1))

    def backward(self, grad):
        weights = getattr(self, "_step_weights", None)
        if weights is None:
            return super().backward(grad)
        n, _, channels = self._cache
        self._cache = self._step_weights = None
        return self._from_positions(grad.reshape(n, 1, channels) * weights, n)
