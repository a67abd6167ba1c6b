"""Conv2D and Conv1D: convolution (cross-correlation, as in Keras and PyTorch).

Both run the 2-D kernels of ``cnn.ops.conv``; Conv1D sees a sequence as an image of height
1. Kernels are stored as PyTorch lays them out, (filters, channels, kh, kw) and (filters,
channels, k), whatever the data format (the seed's files store Conv2D's that way).
"""

from __future__ import annotations

from cnn import initializers, regularizers
from cnn.layers import data_format as formats
from cnn.layers.base import ActivatedLayer
from cnn.layers.core import choose, initializer_name
from cnn.layers.node import has_variable_axis
from cnn.ops import conv as conv_ops
from cnn.ops.shapes import check_padding, effective_kernel, pair, window_output_shape
from cnn.utils import checks


def spatial_tuple(value, rank, name):
    """An int or a sequence of ``rank`` positive ints -> a tuple of ``rank`` ints."""
    if rank == 2:
        return pair(value, name)
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise ValueError(f"{name} must be an int or a 1-tuple, got {value!r}")
        value = value[0]
    return (pair(value, name)[0],)


def padding_config(padding):
    """A checked padding as JSON: a mode name or nested lists of amounts."""
    return padding if isinstance(padding, str) else [list(p) for p in padding]


class WindowLayer(ActivatedLayer, register=False):
    """What the convolution layers share: window geometry, data format, bias, config.

    Subclasses set ``rank`` (1 or 2 spatial axes) and implement ``_make_weights(channels)``,
    ``forward_linear`` and ``backward_linear``. The geometry handed to the 2-D kernels
    (``op_kernel``, ``op_strides``, ``op_dilation``, ``pads``) has a leading 1 for 1-D layers.
    """

    samplewise = True
    rank = 2

    def __init__(self, kernel_size, strides, padding, dilation_rate, data_format, activation,
                 use_bias, bias_initializer, bias_regularizer, input_shape, name, trainable):
        super().__init__(activation=activation, input_shape=input_shape, name=name,
                         trainable=trainable)
        self.kernel_size = spatial_tuple(kernel_size, self.rank, "kernel_size")
        self.strides = spatial_tuple(strides, self.rank, "strides")
        self.dilation_rate = spatial_tuple(dilation_rate, self.rank, "dilation_rate")
        self.op_kernel = self._lift(self.kernel_size)
        self.op_strides = self._lift(self.strides)
        self.op_dilation = self._lift(self.dilation_rate)
        self.padding = self._check_padding(padding)
        self.data_format = formats.resolve(data_format, self.rank)
        self.use_bias = bool(use_bias)
        self.weight_options("bias", bias_initializer, bias_regularizer)
        self.pads = None
        self._cache = None

    def weight_options(self, key, initializer, regularizer, param=None):
        """Check and keep ``{key}_initializer`` and ``{key}_regularizer``, the arguments of
        the weight ``param`` (default ``key``); ``cnn.regularizers`` finds the regularizer
        as ``{param}_regularizer``."""
        initializers.get(initializer)
        setattr(self, f"{key}_initializer", initializer)
        setattr(self, f"{key}_regularizer", regularizers.get(regularizer))
        if param is not None:
            setattr(self, f"{param}_regularizer", getattr(self, f"{key}_regularizer"))

    def weight_config(self, key):
        """The config entries of ``weight_options``."""
        return {f"{key}_initializer": initializer_name(getattr(self, f"{key}_initializer")),
                f"{key}_regularizer": regularizers.serialize(getattr(self, f"{key}_regularizer"))}

    def set_gradients(self, key, grad, bias_grad):
        """``grads[key]`` (in the weight's shape) and, with a bias, ``grads["bias"]``."""
        self.grads[key] = grad.reshape(self.params[key].shape)
        if self.use_bias:
            self.grads["bias"] = bias_grad

    # -- geometry ---------------------------------------------------------------------------
    def _check_padding(self, padding):
        if self.rank == 2:
            return check_padding(padding)
        mode = padding.lower() if isinstance(padding, str) else padding
        if mode not in ("valid", "same", "causal"):
            raise ValueError(f"{type(self).__name__} padding must be 'valid', 'same' or "
                             f"'causal', got {padding!r}")
        return mode

    def _lift(self, values):
        """A geometry tuple as the 2-D kernels take it."""
        return tuple(values) if self.rank == 2 else (1, *values)

    def window_output(self, spatial):
        """Output spatial sizes for input ``spatial`` sizes; sets ``self.pads``. A variable
        (None) size gives None, and the pads are set by ``fit_batch`` at every forward."""
        if any(size is None for size in spatial):
            self.pads = None
            return tuple(None for _ in spatial)
        span = effective_kernel(self.op_kernel, self.op_dilation)
        padding = self.padding
        if padding == "causal":
            padding = ((0, 0), (span[1] - 1, 0))
        out, self.pads = window_output_shape(self._lift(spatial), span, self.op_strides, padding)
        return out if self.rank == 2 else out[1:]

    def _build(self, input_shape):
        formats.require_input(self, input_shape, self.rank)
        channels, spatial = formats.split_shape(input_shape, self.data_format)
        if channels is None:
            self.refuse_variable(input_shape, "its channels")
        out = self.window_output(spatial)
        if any(size is not None and size < 1 for size in out):
            raise formats.does_not_fit(self, self.describe_window(), input_shape)
        self._make_weights(channels)
        return formats.join_shape(self.output_channels(channels), out, self.data_format)

    def fit_batch(self, x) -> None:
        """For a layer built on a variable length: the pads for the length of the batch
        ``x`` (they depend on it with "same" padding), or a ValueError when the window does
        not fit it."""
        if not has_variable_axis(self.input_shape):
            return
        sample = tuple(x.shape[1:])
        _, spatial = formats.split_shape(sample, self.data_format)
        if min(self.window_output(spatial)) < 1:
            raise formats.does_not_fit(self, self.describe_window(), sample)

    def describe_window(self):
        size = "x".join(map(str, self.kernel_size))
        dilated = f", dilation {self.dilation_rate}" if max(self.dilation_rate) > 1 else ""
        return (f"a {size} kernel with strides {self.strides}{dilated} and padding "
                f"{self.padding!r}")

    def output_channels(self, channels):
        return self.filters

    def add_bias(self, size, fan_in, fan_out):
        if self.use_bias:
            self.add_param("bias", initializers.initialize(self.bias_initializer, (size,),
                                                           fan_in, fan_out))

    def to_nchw(self, x):
        return formats.to_nchw(x, self.data_format, self.rank)

    def from_nchw(self, y):
        return None if y is None else formats.from_nchw(y, self.data_format, self.rank)

    # -- configuration ----------------------------------------------------------------------
    def get_config(self):
        return {
            **super().get_config(),
            "kernel_size": list(self.kernel_size),
            "strides": list(self.strides),
            "padding": padding_config(self.padding),
            "dilation_rate": list(self.dilation_rate),
            "data_format": self.data_format,
            "use_bias": self.use_bias,
            **self.weight_config("bias"),
        }

    @classmethod
    def from_config(cls, config):
        return cls(**formats.config_with_default(config))


class _Convolution(WindowLayer, register=False):
    """A full convolution: ``filters`` kernels over all input channels."""

    def _init_kernel(self, filters, kernel, kernel_initializer, kernel_regularizer):
        self.filters = checks.count("filters", filters, minimum=1)
        self.weight_options("kernel", kernel_initializer, kernel_regularizer)
        self._initial_kernel = kernel

    def _make_weights(self, channels):
        shape = (self.filters, channels, *self.kernel_size)
        taps = 1
        for k in self.kernel_size:
            taps *= k
        fan_in, fan_out = channels * taps, self.filters * taps
        layout = "(filters, channels, " + ", ".join(["kh", "kw"] if self.rank == 2 else ["k"]) + ")"
        self.add_param("kernel", self.given_or_initialized(
            self._initial_kernel, shape, self.kernel_initializer, fan_in, fan_out, "kernel",
            layout))
        self._initial_kernel = None
        self.add_bias(self.filters, fan_in, fan_out)

    def forward(self, x, training=False):
        """In inference, an activation with an in-place form (ReLU) is applied chunk by
        chunk inside the convolution, while each chunk is in the CPU cache; the results are
        those of applying it afterwards."""
        in_place = self.activation.forward_inplace
        if training or in_place is None or self.activation.needs_input \
                or self.keep_preactivation:
            return super().forward(x, training)
        self.a = self.forward_linear(x, training, epilogue=in_place)
        self.z = None
        return self.a

    def pools_on_the_fly(self, pool) -> bool:
        """Whether ``forward_pooled`` serves this layer followed by the pooling layer
        ``pool``: both 2-D in one data format, on fixed shapes, a one-channel input and a
        kernel band columns serve, an activation with an in-place form (ReLU, linear), and
        pooling windows that tile the output (``pool.tiled_window``)."""
        if (self.rank != 2 or pool.rank != 2 or pool.data_format != self.data_format
                or has_variable_axis(self.input_shape) or self.keep_preactivation
                or self.activation.needs_input or self.activation.forward_inplace is None):
            return False
        window = pool.tiled_window(self._output_shape)
        if window is None:
            return False
        channels, _ = formats.split_shape(self.input_shape, self.data_format)
        out_hw = formats.split_shape(self._output_shape, self.data_format)[1]
        return conv_ops.pooled_band_width(channels, self.kernel_size, self.op_dilation,
                                          out_hw, window[0]) > 0

    def forward_pooled(self, x, pool):
        """Inference: this layer's output pooled by the pooling layer ``pool`` in one pass,
        chunk by chunk (``cnn.ops.conv.conv2d_pool_forward``), for a pair that
        ``pools_on_the_fly``; the same values as the two layers one after the other, up to
        float rounding."""
        pool_size, mode = pool.tiled_window(self._output_shape)
        if not hasattr(self, "_workspace"):
            self._workspace = {}
        y = conv_ops.conv2d_pool_forward(
            self.to_nchw(x), self.params["kernel"], self.params.get("bias"), self.op_strides,
            self.pads, pool_size, mode, epilogue=self.activation.forward_inplace,
            workspace=self._workspace)
        self.a = self.z = self._cache = None
        return self.from_nchw(y)

    def forward_linear(self, x, training=False, epilogue=None):
        if not hasattr(self, "_workspace"):
            self._workspace = {}  # column buffers lent to conv2d_forward, reused every step
        self.fit_batch(x)
        kernel = self.params["kernel"]
        z, self._cache = conv_ops.conv2d_forward(
            self.to_nchw(x), kernel if self.rank == 2 else kernel[:, :, None, :],
            self.params.get("bias"), self.op_strides, self.pads, workspace=self._workspace,
            keep_columns=training, dilation=self.op_dilation, epilogue=epilogue,
        )
        return self.from_nchw(z)

    def backward_linear(self, grad_z):
        dx, dw, db = conv_ops.conv2d_backward(self.to_nchw(grad_z), self._cache,
                                              need_dx=self.needs_input_grad)
        self._cache = None
        self.set_gradients("kernel", dw, db)
        return self.from_nchw(dx)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, **self.weight_config("kernel")}


class Conv2D(_Convolution):
    """2-D convolution layer.

    Args (seed order first, then Keras-style keywords):
        filters: number of output channels F.
        kernel_size: int or (kh, kw).
        stride / strides: int or (sh, sw); default 1.
        input_shape: the seed's explicit (C, H, W), checked when built.
        padding: "valid", "same" (Keras: an odd extra row or column goes at the end),
            "full", an int, or ((top, bottom), (left, right)).
        activate_fcn / activation: activation name (default linear).
        kernel: initial kernel (F, C, kh, kw), as the seed's files store it.
        dilation_rate: int or (dh, dw): taps ``dh`` rows and ``dw`` columns apart.
        data_format: "channels_first" (N, C, H, W) or "channels_last" (N, H, W, C); default
            ``cnn.image_data_format()``.
        use_bias: add a bias per filter (the seed had none: ``use_bias=False``).
        kernel_regularizer / bias_regularizer: a penalty on the weights, added to the loss
            (``"l1"``, ``"l2"``, ``"l1_l2"`` or a ``cnn.regularizers`` object).
    Weights: ``kernel`` (F, C, kh, kw), ``bias`` (F,).
    Shapes: (N, C, H, W) -> (N, F, out_h, out_w), or (N, H, W, C) -> (N, out_h, out_w, F);
        sizes as in ``cnn.ops.shapes`` for the dilated span ``(k - 1) * d + 1``.

    The backward pass is the exact gradient of this forward pass (for the input: a full
    correlation with the kernel flipped; the seed forgot the flip).
    """

    def __init__(self, filters, kernel_size, stride=None, input_shape=None, padding="valid",
                 activate_fcn=None, kernel=None, *, activation=None, strides=None,
                 dilation_rate=1, data_format=None, use_bias=True,
                 kernel_initializer="he_normal", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, name=None, trainable=True):
        super().__init__(kernel_size, choose(stride, strides, "stride", "strides", 1), padding,
                         dilation_rate, data_format,
                         choose(activate_fcn, activation, "activate_fcn", "activation"),
                         use_bias, bias_initializer, bias_regularizer, input_shape, name,
                         trainable)
        self._init_kernel(filters, kernel, kernel_initializer, kernel_regularizer)


class Conv1D(_Convolution):
    """1-D convolution over the steps of a sequence, as Keras's Conv1D.

    Args:
        filters: number of output channels F.
        kernel_size: int k; strides: int; dilation_rate: int.
        padding: "valid", "same" (an odd extra step goes at the end) or "causal" (all
            ``(k - 1) * dilation`` zeros before the first step: output t sees steps <= t).
        data_format: "channels_last" (N, steps, C), the default whatever
            ``cnn.image_data_format()`` says, like the recurrent layers; or "channels_first"
            (N, C, steps).
        activation, use_bias, initializers, regularizers: as for Conv2D.
    Weights: ``kernel`` (F, C, k) (PyTorch's layout), ``bias`` (F,).
    Shapes: (N, L, C) -> (N, out_L, F); L may be variable (None), out_L is then None.
    """

    rank = 1
    variable_length = True  # sequences of any length: Input((None, channels))

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, *, kernel=None,
                 input_shape=None, name=None, trainable=True):
        super().__init__(kernel_size, strides, padding, dilation_rate,
                         data_format, activation, use_bias,
                         bias_initializer, bias_regularizer, input_shape, name, trainable)
        self._init_kernel(filters, kernel, kernel_initializer, kernel_regularizer)
