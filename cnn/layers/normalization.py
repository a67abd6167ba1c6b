"""BatchNormalization (Ioffe & Szegedy, 2015), with Keras's arguments and conventions, and
LayerNormalization (at the end of this module).

For each channel ``c`` (the normalised axis), over all other axes of the batch::

    training:   y = gamma * (x - mean_B) / sqrt(var_B + epsilon) + beta
    inference:  y = gamma * (x - moving_mean) / sqrt(moving_variance + epsilon) + beta

``mean_B`` and ``var_B`` are the batch's mean and *biased* variance (divided by the count,
as Keras does; PyTorch keeps the unbiased one for its running variance). Each training step
updates the moving statistics as Keras does::

    moving = momentum * moving + (1 - momentum) * batch_statistic     (momentum=0.99)

PyTorch's ``momentum`` is the weight of the *new* value: its ``momentum=0.1`` is Keras's
``momentum=0.9``. ``epsilon`` defaults to Keras's 1e-3 (PyTorch: 1e-5).

The backward pass is the exact gradient of whichever forward ran: in training mode it
includes the dependence of the batch statistics on ``x``; in inference mode the layer is the
affine map ``x * gamma / sqrt(moving_variance + eps) + const``. A layer with
``trainable=False`` always uses the moving statistics (Keras 3's behaviour for frozen
BatchNormalization, as in fine-tuning). A batch whose statistics are not finite leaves the
moving statistics unchanged.
"""

from __future__ import annotations

import math

from cnn import backend, initializers, replica
from cnn.backend import xp
from cnn.layers.base import Layer
from cnn.layers.core import initializer_name
from cnn.ops import normalization as normalization_ops
from cnn.utils import checks


class BatchNormalization(Layer):
    """Normalise each channel (or feature) over the batch; learnable scale and shift.

    Args:
        axis: the channel axis, counting the batch axis as 0 (Keras). Default: 1 (channels)
            for (N, C, H, W) conv maps, -1 (features) for (N, F) and any other input; -1
            (Keras's default) for every input when the layer is created under
            ``cnn.set_image_data_format("channels_last")``. Give ``axis=-1`` for
            channels-last maps otherwise.
        momentum: weight of the old value in the moving statistics (Keras's convention).
        epsilon: added to the variance.
        center / scale: learn ``beta`` / ``gamma`` (otherwise fixed 0 / 1).
        beta_initializer, gamma_initializer, moving_mean_initializer,
            moving_variance_initializer: initialiser names.
    Weights: ``gamma`` (C,), ``beta`` (C,) trainable; ``moving_mean`` (C,),
        ``moving_variance`` (C,) buffers (non-trainable), in Keras's order.
    Shapes: any (N, ...) -> the same shape.
    """

    variable_length = True  # on the axes other than the channels
    samplewise_in_inference = True  # the moving statistics: samples independent (workers)
    replica_synchronized = True  # its batch sums go through cnn.replica's allreduce_sum

    def __init__(self, axis=None, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones", *,
                 input_shape=None, name=None, trainable=True):
        super().__init__(input_shape=input_shape, name=name, trainable=trainable)
        if axis is not None and (isinstance(axis, bool) or not isinstance(axis, int) or axis == 0):
            raise ValueError(f"BatchNormalization axis must be a non-zero int (0 is the batch axis) "
                             f"or None, got {axis!r}")
        if axis is None and backend.image_data_format() == "channels_last":
            axis = -1
        self.axis = axis
        self.momentum = checks.fraction("momentum", momentum, upper_inclusive=True)
        self.epsilon = checks.positive("epsilon", epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.initializer_names = {
            "beta": beta_initializer,
            "gamma": gamma_initializer,
            "moving_mean": moving_mean_initializer,
            "moving_variance": moving_variance_initializer,
        }
        for init in self.initializer_names.values():
            initializers.get(init)
        self.channels = None
        self._stat_shape = None
        self._sum_spec = None
        self._cache = None

    def _build(self, input_shape):
        ndim = len(input_shape) + 1
        axis = self.axis if self.axis is not None else (1 if len(input_shape) == 3 else -1)
        axis = axis + ndim if axis < 0 else axis
        if not 1 <= axis < ndim:
            raise ValueError(
                f"layer {self.describe()}: axis {self.axis} is out of range for input of shape "
                f"(None, {', '.join(map(str, input_shape))})"
            )
        channels = self.channels = input_shape[axis - 1]
        if channels is None:
            self.refuse_variable(input_shape, f"its normalized axis {self.axis}")
        letters = "abcdefghijklmnopqrstuvwxyz"[:ndim]
        self._sum_spec = f"{letters}->{letters[axis]}"
        self._stat_shape = tuple(channels if i == axis else 1 for i in range(ndim))
        for key, trainable in (("gamma", self.scale), ("beta", self.center)):
            if trainable:
                self._add_vector(key, channels, trainable=True)
        for key in ("moving_mean", "moving_variance"):
            self._add_vector(key, channels, trainable=False)
        return input_shape

    def _add_vector(self, key, channels, trainable):
        values = initializers.initialize(self.initializer_names[key], (channels,), channels, channels)
        self.add_param(key, values, trainable=trainable)

    def _broadcast(self, per_channel):
        return per_channel.reshape(self._stat_shape)

    def _channel_sum(self, a, b=None):
        """Per-channel sum of ``a`` (or of ``a * b``); einsum avoids strided reductions."""
        if b is None:
            return xp.einsum(self._sum_spec, a)
        inputs, output = self._sum_spec.split("->")
        return xp.einsum(f"{inputs},{inputs}->{output}", a, b)

    def forward(self, x, training=False):
        count = x.size // self.channels
        if training and self.trainable:
            # Under data parallelism the statistics are those of the global batch: the
            # slices' sums are added up over all processes (cnn.replica).
            sums = self._global_sums(self._channel_sum(x), count)
            count = int(sums[-1])
            mean = sums[:-1] / x.dtype.type(count)
            centered = x - self._broadcast(mean)
            variance = self._global_sums(self._channel_sum(centered, centered))
            variance /= x.dtype.type(count)
            self._update_moving_statistics(mean, variance)
        else:
            centered = x - self._broadcast(self.buffers["moving_mean"])
            variance = self.buffers["moving_variance"]
        inv_std = 1.0 / xp.sqrt(variance + x.dtype.type(self.epsilon))
        x_hat = centered
        x_hat *= self._broadcast(inv_std)  # in place: one array less
        self._cache = (x_hat, inv_std, training and self.trainable, count)
        y = x_hat * self._broadcast(self.params["gamma"]) if self.scale else x_hat.copy()
        if self.center:
            y += self._broadcast(self.params["beta"])
        return y

    def _update_moving_statistics(self, mean, variance):
        # A batch that overflowed must not poison the statistics: fit then refuses the step
        # and keeps the last good state (see Model.fit, TerminateOnNaN).
        if not (bool(xp.isfinite(mean).all()) and bool(xp.isfinite(variance).all())):
            return
        keep = self.momentum
        for key, batch_value in (("moving_mean", mean), ("moving_variance", variance)):
            moving = self.buffers[key]
            moving *= moving.dtype.type(keep)
            moving += batch_value * moving.dtype.type(1.0 - keep)

    def backward(self, grad):
        x_hat, inv_std, batch_statistics, count = self._cache
        self._cache = None
        grad_beta = self._channel_sum(grad)
        grad_gamma = self._channel_sum(grad, x_hat)
        if self.center:
            self.grads["beta"] = grad_beta
        if self.scale:
            self.grads["gamma"] = grad_gamma
        if not self.needs_input_grad:
            return None
        gain = inv_std * self.params["gamma"] if self.scale else inv_std
        if not batch_statistics:
            return grad * self._broadcast(gain)
        # d/dx of gamma * (x - mean) / std with mean and std taken over the m values of x
        # sharing the channel: gain * (g - mean(g) - x_hat * mean(g * x_hat)).
        # The means run over the global batch (count samples in all; see forward); the
        # parameters' own gradients stay this slice's share, which the strategy adds up.
        channels = self.channels
        sums = self._global_sums(xp.concatenate([grad_beta, grad_gamma]))
        sum_grad, sum_grad_x_hat = sums[:channels], sums[channels:]
        dx = x_hat * self._broadcast(-gain * sum_grad_x_hat / count)
        dx += grad * self._broadcast(gain)
        dx -= self._broadcast(gain * sum_grad / count)
        return dx

    @staticmethod
    def _global_sums(local, count=None):
        """``local`` (with ``count`` appended if given) summed over the processes that share
        the batch (``cnn.replica``); ``local`` itself when this process has the whole batch."""
        if count is not None:
            local = xp.concatenate([local, xp.asarray([count], dtype=local.dtype)])
        slice_ = replica.current()
        return slice_.allreduce_sum(xp.ascontiguousarray(local)) if slice_.synchronized else local

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            **{f"{key}_initializer": initializer_name(init) for key, init in self.initializer_names.items()},
        }



class LayerNormalization(Layer):
    """Normalise each sample over ``axis`` (the features, by default); Keras's arguments.

    ``y = gamma * (x - mean) / sqrt(var + epsilon) + beta`` with the mean and biased variance
    of each sample taken over ``axis`` (see ``cnn.ops.normalization``); the same in training
    and inference, no moving statistics.

    Args:
        axis: an axis or a list of axes (counting the batch axis as 0), default -1.
        epsilon: added to the variance (Keras's default 1e-3; PyTorch's LayerNorm 1e-5).
        center / scale: learn ``beta`` / ``gamma``.
        beta_initializer, gamma_initializer: initialiser names.
    Weights: ``gamma`` and ``beta``, of the sizes of the normalised axes (``(F,)`` for
        axis=-1), in Keras's order. Shapes: any (N, ...) -> the same shape.
    """

    samplewise = True
    variable_length = True  # on the axes it does not normalize
    supports_masking = True

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", *, input_shape=None,
                 name=None, trainable=True):
        super().__init__(input_shape=input_shape, name=name, trainable=trainable)
        axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
        if not axes or any(isinstance(a, bool) or not isinstance(a, int) or a == 0 for a in axes):
            raise ValueError(f"LayerNormalization axis must be a non-zero int or a list of them "
                             f"(0 is the batch axis), got {axis!r}")
        self.axis = axis if isinstance(axis, int) else list(axis)
        self.epsilon = checks.positive("epsilon", epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.initializer_names = {"gamma": gamma_initializer, "beta": beta_initializer}
        for init in self.initializer_names.values():
            initializers.get(init)
        self._axes = None
        self._param_shape = None
        self._cache = None

    def _build(self, input_shape):
        ndim = len(input_shape) + 1
        axes = []
        for a in (self.axis if isinstance(self.axis, list) else [self.axis]):
            positive = a + ndim if a < 0 else a
            if not 1 <= positive < ndim or positive in axes:
                raise ValueError(f"layer {self.describe()}: axis {self.axis} does not fit input "
                                 f"of shape (None, {', '.join(map(str, input_shape))})")
            axes.append(positive)
        self._axes = tuple(sorted(axes))
        if any(input_shape[i - 1] is None for i in self._axes):
            self.refuse_variable(input_shape, f"its normalized axis {self.axis}")
        self._param_shape = tuple(input_shape[i - 1] if i in self._axes else 1
                                  for i in range(1, ndim))
        sizes = tuple(input_shape[i - 1] for i in self._axes)
        for key, wanted in (("gamma", self.scale), ("beta", self.center)):
            if wanted:
                count = math.prod(sizes)
                self.add_param(key, initializers.initialize(self.initializer_names[key], sizes,
                                                            count, count))
        return input_shape

    def _broadcast(self, key):
        return self.params[key].reshape(self._param_shape) if key in self.params else None

    def forward(self, x, training=False):
        self.check_input(x)
        y, self._cache = normalization_ops.layer_norm_forward(
            x, self._axes, self._broadcast("gamma"), self._broadcast("beta"), self.epsilon)
        return y

    def backward(self, grad):
        if self._cache is None:
            raise ValueError(f"layer {self.describe()}: backward called without a forward pass")
        dx, d_gamma, d_beta = normalization_ops.layer_norm_backward(
            self._cache, grad, self._broadcast("gamma"))
        self._cache = None
        kept = tuple(i for i in range(grad.ndim) if i not in self._axes)
        for key, full in (("gamma", d_gamma), ("beta", d_beta)):
            if key in self.params:
                self.grads[key] = full.sum(axis=kept).reshape(self.params[key].shape)
        return dx if self.needs_input_grad else None

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            **{f"{key}_initializer": initializer_name(init)
               for key, init in self.initializer_names.items()},
        }


__all__ = ["BatchNormalization", "LayerNormalization"]
