"""Element-wise activation functions and their backward passes, as pure functions.

Each ``*_backward(grad, z, a)`` takes the gradient with respect to the output ``a = f(z)``
and returns the gradient with respect to ``z``. All functions are numerically stable for
inputs of any magnitude: no ``exp`` of a large positive number is ever taken, so there are
no overflow warnings and no NaN (the seed's ``1 / (1 + exp(-z))`` and ``exp(z) / sum``
overflow for large ``|z|``).

Softmax works along the last axis unless given ``axis``. ``*_inplace`` variants overwrite
their input and return it.
"""

from __future__ import annotations

import math

from cnn import backend
from cnn.backend import xp


def linear(z):
    return z


def linear_backward(grad, z, a):
    return grad


def relu(z):
    return xp.maximum(z, 0)


def relu_inplace(z):
    """``relu`` written over ``z`` (for a layer that does not keep its pre-activation).

    The zero is an array of one sample's shape in ``z``'s memory order, broadcast over the
    batch: NumPy's maximum against a scalar ran 1.5-5x slower here than against an array
    (most for small arrays), for the same values (signed zeros and NaNs included). The
    array must follow the memory order: against a channels-last activation read as
    (N, C, H, W), zeros shaped (C, H, W) ran 2-4x slower than the scalar."""
    memory = in_memory_order(z)
    zeros = xp.zeros(memory.shape[1:] if memory.ndim > 1 else memory.shape, dtype=z.dtype)
    xp.maximum(memory, zeros, out=memory)
    return z


def in_memory_order(z):
    """``z``'s axes permuted so that the view is C-contiguous (e.g. an (N, H, W, C) array
    seen through its (N, C, H, W) transpose comes back as (N, H, W, C)); ``z`` itself when
    it already is, or when no permutation makes it so (a sliced view)."""
    if z.flags.c_contiguous:
        return z
    axes = sorted(range(z.ndim), key=lambda axis: -abs(z.strides[axis]))
    view = z.transpose(axes)
    return view if view.flags.c_contiguous else z


def relu_backward(grad, z, a):
    return grad * (a > 0)


def relu_backward_inplace(grad, z, a):
    """``relu_backward`` written over ``grad``."""
    grad *= a > 0
    return grad


def leaky_relu(z, alpha=0.01):
    return xp.where(z > 0, z, z * z.dtype.type(alpha))


def leaky_relu_backward(grad, z, a, alpha=0.01):
    return xp.where(z > 0, grad, grad * grad.dtype.type(alpha))


def thresholded_relu(z, negative_slope=0.0, max_value=None, threshold=0.0):
    """Keras's general ReLU: ``min(z, max_value)`` for ``z > threshold``, else
    ``negative_slope * (z - threshold)`` (``max_value=None``: no upper bound)."""
    dtype = z.dtype.type
    out = xp.where(z > dtype(threshold), z, (z - dtype(threshold)) * dtype(negative_slope))
    return out if max_value is None else xp.minimum(out, dtype(max_value))


def thresholded_relu_backward(grad, z, a, negative_slope=0.0, max_value=None, threshold=0.0):
    dtype = z.dtype.type
    slope = xp.where(z > dtype(threshold), dtype(1), dtype(negative_slope))
    if max_value is not None:
        slope = xp.where(z >= dtype(max_value), dtype(0), slope)
    return grad * slope


def prelu(z, alpha):
    """``z`` where ``z >= 0``, ``alpha * z`` elsewhere (``alpha`` broadcasts against ``z``)."""
    return xp.where(z >= 0, z, z * alpha)


def prelu_backward(grad, z, alpha):
    """Gradients with respect to ``z`` and to ``alpha`` (before summing ``alpha``'s
    broadcast axes): ``(grad_z, grad * min(z, 0))``; at ``z = 0`` the slope is ``alpha``, as
    in PyTorch's ``prelu`` and in ``leaky_relu_backward``."""
    negative = z <= 0
    return xp.where(negative, grad * alpha, grad), grad * xp.where(negative, z, 0)


def elu(z, alpha=1.0):
    negative = xp.expm1(xp.minimum(z, 0)) * z.dtype.type(alpha)
    return xp.where(z > 0, z, negative)


def elu_backward(grad, z, a, alpha=1.0):
    return xp.where(z > 0, grad, grad * (a + a.dtype.type(alpha)))


def sigmoid(z):
    # exp(-|z|) never overflows; both branches are exact for their sign of z.
    e = xp.exp(-xp.abs(z))
    return xp.where(z >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_backward(grad, z, a):
    return grad * a * (1 - a)


def tanh(z):
    return xp.tanh(z)


def tanh_backward(grad, z, a):
    return grad * (1 - a * a)


def softmax(z, axis=-1):
    shifted = z - z.max(axis=axis, keepdims=True)
    e = xp.exp(shifted)
    return e / e.sum(axis=axis, keepdims=True)


def softmax_backward(grad, z, a, axis=-1):
    return a * (grad - (grad * a).sum(axis=axis, keepdims=True))


def log_softmax(z):
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))


def softplus(z):
    return xp.logaddexp(0, z)


def softplus_backward(grad, z, a):
    return grad * sigmoid(z)


def silu(z):
    return z * sigmoid(z)


def silu_backward(grad, z, a):
    s = sigmoid(z)
    return grad * (s * (1 + z * (1 - s)))


_SQRT_HALF = 1 / math.sqrt(2)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


def gelu(z):
    """Exact GELU, ``z * Phi(z)`` with the normal CDF (PyTorch's and Keras's default)."""
    return z * (0.5 * (1 + backend.erf(z * z.dtype.type(_SQRT_HALF))))


def gelu_backward(grad, z, a):
    cdf = 0.5 * (1 + backend.erf(z * z.dtype.type(_SQRT_HALF)))
    pdf = xp.exp(-0.5 * z * z) * z.dtype.type(_INV_SQRT_2PI)
    return grad * (cdf + z * pdf)
