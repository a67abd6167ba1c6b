"""Conv2DTranspose: the transposed ("deconvolution") layer, with Keras's output sizes."""

from __future__ import annotations

from cnn import initializers
from cnn.layers.conv import WindowLayer
from cnn.ops import conv_transpose as transpose_ops
from cnn.ops.shapes import transposed_axis
from cnn.utils import checks


class Conv2DTranspose(WindowLayer):
    """Transposed 2-D convolution: each input pixel paints a kernel-sized patch.

    Args (Keras's):
        filters: output channels F; kernel_size: int or (kh, kw); strides: int or pair.
        padding: "valid" or "same" ("same" with ``output_padding=None`` gives
            ``out = in * stride``).
        output_padding: None, an int or a pair, each < its stride: the output size is then
            ``(in - 1) * s + span + output_padding`` ("valid") or
            ``(in - 1) * s + span % 2 + output_padding`` ("same"), span the dilated kernel.
        data_format, dilation_rate, activation, use_bias, initializers, regularizers: as
            for Conv2D.
    Weights: ``kernel`` (C, F, kh, kw) (PyTorch's ConvTranspose2d layout), ``bias`` (F,).
    Shapes: (N, C, H, W) -> (N, F, out_h, out_w), or channels last.
    """

    def __init__(self, filters, kernel_size, strides=1, padding="valid", output_padding=None,
                 data_format=None, dilation_rate=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, *, input_shape=None,
                 name=None, trainable=True):
        if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
            raise ValueError(f"Conv2DTranspose padding must be 'valid' or 'same', got {padding!r}")
        super().__init__(kernel_size, strides, padding, dilation_rate, data_format, activation,
                         use_bias, bias_initializer, bias_regularizer, input_shape, name,
                         trainable)
        self.filters = checks.count("filters", filters, minimum=1)
        self.output_padding = None
        if output_padding is not None:
            self.output_padding = tuple(checks.count("output_padding", p, minimum=0)
                                        for p in _two(output_padding))
            for p, s in zip(self.output_padding, self.strides):
                if p >= s:
                    raise ValueError(f"Conv2DTranspose output_padding {self.output_padding} must "
                                     f"be smaller than the strides {self.strides}")
        self.weight_options("kernel", kernel_initializer, kernel_regularizer)
        self.crop = None
        self.out_hw = None

    def window_output(self, spatial):
        paddings = self.output_padding or (None, None)
        sizes = [transposed_axis(n, k, s, self.padding, p, d) for n, k, s, p, d in zip(
            spatial, self.kernel_size, self.strides, paddings, self.dilation_rate)]
        self.out_hw = tuple(out for out, _ in sizes)
        self.crop = tuple(crop for _, crop in sizes)
        return self.out_hw

    def describe_window(self):
        return f"{super().describe_window()} transposed"

    def _make_weights(self, channels):
        kh, kw = self.kernel_size
        self.add_param("kernel", initializers.initialize(
            self.kernel_initializer, (channels, self.filters, kh, kw), self.filters * kh * kw,
            channels * kh * kw))
        self.add_bias(self.filters, self.filters * kh * kw, channels * kh * kw)

    def forward_linear(self, x, training=False):
        z, self._cache = transpose_ops.conv2d_transpose_forward(
            self.to_nchw(x), self.params["kernel"], self.params.get("bias"), self.strides,
            self.crop, self.out_hw, self.dilation_rate)
        return self.from_nchw(z)

    def backward_linear(self, grad_z):
        dx, dw, db = transpose_ops.conv2d_transpose_backward(
            self.to_nchw(grad_z), self._cache, need_dx=self.needs_input_grad)
        self._cache = None
        self.set_gradients("kernel", dw, db)
        return self.from_nchw(dx)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "output_padding": None if self.output_padding is None else list(self.output_padding),
            **self.weight_config("kernel"),
        }


def _two(value):
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(f"output_padding must be an int or a pair, got {value!r}")
        return tuple(value)
    return (value, value)
