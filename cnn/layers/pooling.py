"""MaxPooling2D and AveragePooling2D on NCHW batches."""

from __future__ import annotations

from cnn.layers.base import Layer
from cnn.layers.core import choose
from cnn.ops import pooling as pool_ops
from cnn.ops.shapes import check_padding, pair, window_output_shape


class _Pooling2D(Layer):
    """Shared by the two pooling layers; ``mode`` is "max" or "avg".

    Args (seed order first):
        pool_size: int or (ph, pw).
        stride / strides: int or pair; default ``pool_size`` (non-overlapping windows).
        input_shape: the seed's explicit (C, H, W), checked when built.
        padding: "valid" (drop what the window cannot reach) or "same" (pad so that
            ``out = ceil(size / stride)``; padded cells never win a max and are not counted
            in an average).
    Shapes: (N, C, H, W) -> (N, C, out_h, out_w).
    """

    samplewise = True

    mode = "max"

    def __init__(self, pool_size=2, stride=None, input_shape=None, padding="valid", *,
                 strides=None, name=None):
        super().__init__(input_shape=input_shape, name=name)
        self.pool_size = pair(pool_size, "pool_size")
        self.strides = pair(choose(stride, strides, "stride", "strides", self.pool_size), "strides")
        padding = check_padding(padding)
        if padding not in ("valid", "same"):
            raise ValueError(f"pooling padding must be 'valid' or 'same', got {padding!r}")
        self.padding = padding
        self._pads = None
        self._cache = None

    def _build(self, input_shape):
        self.require_rank(input_shape, 3, "(channels, height, width)")
        (out_h, out_w), self._pads = window_output_shape(
            input_shape[1:], self.pool_size, self.strides, self.padding
        )
        if out_h < 1 or out_w < 1:
            raise ValueError(
                f"layer {self.describe()}: pool {self.pool_size} with strides {self.strides} "
                f"does not fit the input {input_shape}"
            )
        return (input_shape[0], out_h, out_w)

    def forward(self, x, training=False):
        y, self._cache = pool_ops.pool2d_forward(x, self.pool_size, self.strides, self._pads,
                                                 self.mode)
        return y

    def backward(self, grad):
        dx = pool_ops.pool2d_backward(grad, self._cache)
        self._cache = None
        return dx

    def get_config(self):
        return {
            "pool_size": list(self.pool_size),
            "strides": list(self.strides),
            "padding": self.padding,
            "name": self.name,
        }


class MaxPooling2D(_Pooling2D):
    """Maximum over each window; the gradient goes to the (first) maximal element."""

    mode = "max"


class AveragePooling2D(_Pooling2D):
    """Mean over each window; the gradient is spread evenly over it."""

    mode = "avg"
