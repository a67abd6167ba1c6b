"""Conv2D: 2-D convolution (cross-correlation, as in Keras and PyTorch) on NCHW batches."""

from __future__ import annotations

from cnn import initializers, regularizers
from cnn.layers.base import ActivatedLayer
from cnn.layers.core import _init_name, choose
from cnn.ops import conv as conv_ops
from cnn.ops.shapes import check_padding, pair, window_output_shape
from cnn.utils import checks


class Conv2D(ActivatedLayer):
    """2-D convolution layer.

    Args (seed order first, then Keras-style keywords):
        filters: number of output channels F.
        kernel_size: int or (kh, kw).
        stride / strides: int or (sh, sw); default 1.
        input_shape: the seed's explicit (C, H, W), checked when built.
        padding: "valid", "same", "full", an int, or ((top, bottom), (left, right)).
        activate_fcn / activation: activation name (default linear).
        kernel: initial kernel (F, C, kh, kw), as the seed's files store it.
        use_bias: add a bias per filter (the seed had none: ``use_bias=False``).
        kernel_regularizer / bias_regularizer: a penalty on the weights, added to the loss
            (``"l1"``, ``"l2"``, ``"l1_l2"`` or a ``cnn.regularizers`` object).
    Weights: ``kernel`` (F, C, kh, kw), ``bias`` (F,).
    Shapes: (N, C, H, W) -> (N, F, out_h, out_w), sizes as in ``cnn.ops.shapes``.

    The backward pass is the exact gradient of this forward pass (for the input: a full
    correlation with the kernel flipped; the seed forgot the flip).
    """

    samplewise = True

    def __init__(self, filters, kernel_size, stride=None, input_shape=None, padding="valid",
                 activate_fcn=None, kernel=None, *, activation=None, strides=None,
                 use_bias=True, kernel_initializer="he_normal", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, name=None, trainable=True):
        activation = choose(activate_fcn, activation, "activate_fcn", "activation")
        super().__init__(activation=activation, input_shape=input_shape, name=name,
                         trainable=trainable)
        self.filters = checks.count("filters", filters, minimum=1)
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.strides = pair(choose(stride, strides, "stride", "strides", 1), "strides")
        self.padding = check_padding(padding)
        self.use_bias = bool(use_bias)
        initializers.get(kernel_initializer)
        initializers.get(bias_initializer)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self._initial_kernel = kernel
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self._pads = None
        self._cache = None

    def _build(self, input_shape):
        self.require_rank(input_shape, 3, "(channels, height, width)")
        channels, height, width = input_shape
        kh, kw = self.kernel_size
        (out_h, out_w), self._pads = window_output_shape(
            (height, width), self.kernel_size, self.strides, self.padding
        )
        if out_h < 1 or out_w < 1:
            raise ValueError(
                f"layer {self.describe()}: a {kh}x{kw} kernel with strides {self.strides} and "
                f"padding {self.padding!r} does not fit the input {input_shape}"
            )
        shape = (self.filters, channels, kh, kw)
        fan_in, fan_out = channels * kh * kw, self.filters * kh * kw
        self.add_param("kernel", self.given_or_initialized(
            self._initial_kernel, shape, self.kernel_initializer, fan_in, fan_out, "kernel",
            "(filters, channels, kh, kw)"))
        self._initial_kernel = None
        if self.use_bias:
            self.add_param("bias", initializers.initialize(self.bias_initializer, (self.filters,),
                                                           fan_in, fan_out))
        return (self.filters, out_h, out_w)

    def forward_linear(self, x, training=False):
        if not hasattr(self, "_workspace"):
            self._workspace = {}  # column buffers lent to conv2d_forward, reused every step
        z, self._cache = conv_ops.conv2d_forward(
            x, self.params["kernel"], self.params.get("bias"), self.strides, self._pads,
            workspace=self._workspace, keep_columns=training,
        )
        return z

    def backward_linear(self, grad_z):
        dx, dw, db = conv_ops.conv2d_backward(grad_z, self._cache, need_dx=self.needs_input_grad)
        self._cache = None
        self.grads["kernel"] = dw
        if self.use_bias:
            self.grads["bias"] = db
        return dx

    def get_config(self):
        padding = self.padding if isinstance(self.padding, str) else [list(p) for p in self.padding]
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": list(self.kernel_size),
            "strides": list(self.strides),
            "padding": padding,
            "use_bias": self.use_bias,
            "kernel_initializer": _init_name(self.kernel_initializer),
            "bias_initializer": _init_name(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
        }
