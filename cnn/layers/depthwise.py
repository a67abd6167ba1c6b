"""DepthwiseConv2D and SeparableConv2D (Keras's names, arguments and channel order).

Kernels in PyTorch's layout: ``depthwise_kernel`` (C * M, 1, kh, kw) is
``nn.Conv2d(C, C * M, k, groups=C).weight``; ``pointwise_kernel`` (F, C * M, 1, 1) is a
1 x 1 convolution's.
"""

from __future__ import annotations

from cnn import initializers
from cnn.layers.conv import WindowLayer
from cnn.ops import conv as conv_ops
from cnn.ops import depthwise as depthwise_ops
from cnn.utils import checks


class _Depthwise(WindowLayer, register=False):
    """The depthwise part both layers share: ``depthwise_kernel`` and its arguments."""

    def _init_depthwise(self, depth_multiplier, depthwise_initializer, depthwise_regularizer):
        self.depth_multiplier = checks.count("depth_multiplier", depth_multiplier, minimum=1)
        self.weight_options("depthwise", depthwise_initializer, depthwise_regularizer,
                            "depthwise_kernel")

    def _add_depthwise_kernel(self, channels):
        kh, kw = self.kernel_size
        shape = (channels * self.depth_multiplier, 1, kh, kw)
        # Keras's fans for a (kh, kw, C, M) kernel.
        self.add_param("depthwise_kernel", initializers.initialize(
            self.depthwise_initializer, shape, channels * kh * kw,
            self.depth_multiplier * kh * kw))

    def _depthwise_forward(self, x, bias):
        y, self._depthwise_cache = depthwise_ops.depthwise_conv2d_forward(
            self.to_nchw(x), self.params["depthwise_kernel"], bias, self.strides, self.pads,
            self.dilation_rate)
        return y

    def _depthwise_backward(self, grad_nchw, need_dx):
        """The input gradient and the bias gradient (ignored when the bias is elsewhere)."""
        dx, dw, db = depthwise_ops.depthwise_conv2d_backward(grad_nchw, self._depthwise_cache,
                                                             need_dx=need_dx)
        self._depthwise_cache = None
        self.grads["depthwise_kernel"] = dw
        return dx, db

    def get_config(self):
        return {
            **super().get_config(),
            "depth_multiplier": self.depth_multiplier,
            **self.weight_config("depthwise"),
        }


class DepthwiseConv2D(_Depthwise):
    """Convolve each input channel with its own ``depth_multiplier`` kernels.

    Args (Keras's): kernel_size, strides, padding ("valid", "same", "full" or amounts),
        depth_multiplier M, data_format, dilation_rate, activation, use_bias,
        depthwise_initializer, bias_initializer, depthwise_regularizer, bias_regularizer.
    Weights: ``depthwise_kernel`` (C * M, 1, kh, kw), ``bias`` (C * M,).
    Shapes: (N, C, H, W) -> (N, C * M, oh, ow) (output channel ``c * M + m``), or channels
        last; sizes as for Conv2D.
    """

    def __init__(self, kernel_size, strides=1, padding="valid", depth_multiplier=1,
                 data_format=None, dilation_rate=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", bias_initializer="zeros",
                 depthwise_regularizer=None, bias_regularizer=None, *, input_shape=None,
                 name=None, trainable=True):
        super().__init__(kernel_size, strides, padding, dilation_rate, data_format, activation,
                         use_bias, bias_initializer, bias_regularizer, input_shape, name,
                         trainable)
        self._init_depthwise(depth_multiplier, depthwise_initializer, depthwise_regularizer)

    def output_channels(self, channels):
        return channels * self.depth_multiplier

    def _make_weights(self, channels):
        self._add_depthwise_kernel(channels)
        kh, kw = self.kernel_size
        self.add_bias(channels * self.depth_multiplier, kh * kw, self.depth_multiplier * kh * kw)

    def forward_linear(self, x, training=False):
        return self.from_nchw(self._depthwise_forward(x, self.params.get("bias")))

    def backward_linear(self, grad_z):
        dx, db = self._depthwise_backward(self.to_nchw(grad_z), self.needs_input_grad)
        if self.use_bias:
            self.grads["bias"] = db
        return self.from_nchw(dx)


class SeparableConv2D(_Depthwise):
    """A depthwise convolution followed by a 1 x 1 convolution to ``filters`` channels.

    Args (Keras's): filters, kernel_size, strides, padding, data_format, dilation_rate,
        depth_multiplier, activation, use_bias, depthwise_initializer,
        pointwise_initializer, bias_initializer, and the three regularizers.
    Weights: ``depthwise_kernel`` (C * M, 1, kh, kw), ``pointwise_kernel`` (F, C * M, 1, 1),
        ``bias`` (F,) (after the pointwise step; the depthwise step has none, as in Keras).
    Shapes: (N, C, H, W) -> (N, F, oh, ow), or channels last.
    """

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, depth_multiplier=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", pointwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None,
                 pointwise_regularizer=None, bias_regularizer=None, *, input_shape=None,
                 name=None, trainable=True):
        super().__init__(kernel_size, strides, padding, dilation_rate, data_format, activation,
                         use_bias, bias_initializer, bias_regularizer, input_shape, name,
                         trainable)
        self._init_depthwise(depth_multiplier, depthwise_initializer, depthwise_regularizer)
        self.filters = checks.count("filters", filters, minimum=1)
        self.weight_options("pointwise", pointwise_initializer, pointwise_regularizer,
                            "pointwise_kernel")
        self._pointwise_cache = None

    def _make_weights(self, channels):
        self._add_depthwise_kernel(channels)
        middle = channels * self.depth_multiplier
        self.add_param("pointwise_kernel", initializers.initialize(
            self.pointwise_initializer, (self.filters, middle, 1, 1), middle, self.filters))
        self.add_bias(self.filters, middle, self.filters)

    def forward_linear(self, x, training=False):
        middle = self._depthwise_forward(x, None)
        z, self._pointwise_cache = conv_ops.conv2d_forward(
            middle, self.params["pointwise_kernel"], self.params.get("bias"),
            keep_columns=training)
        return self.from_nchw(z)

    def backward_linear(self, grad_z):
        d_middle, dw, db = conv_ops.conv2d_backward(self.to_nchw(grad_z), self._pointwise_cache)
        self._pointwise_cache = None
        self.set_gradients("pointwise_kernel", dw, db)
        dx, _ = self._depthwise_backward(d_middle, self.needs_input_grad)
        return self.from_nchw(dx)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            **self.weight_config("pointwise"),
        }
