"""Slow, obvious BatchNormalization, forward and backward, the reference twin the tests hold
``cnn.layers.BatchNormalization`` against.

The channel axis is moved last and every channel is handled on its own, in a Python loop.
Training mode (batch statistics): the backward pass builds, for each channel's m values, the
full m x m Jacobian of ``y_i = gamma (x_i - mean) / sqrt(var + eps) + beta`` with respect to
``x_j``::

    dy_i / dx_j = gamma / sqrt(var + eps) * (delta_ij - 1/m - x_hat_i x_hat_j / m)

(``var`` the biased variance), and multiplies the output gradient by it: no shortcut.
Inference mode (given mean and variance): ``y`` is affine in ``x``, ``dy_i / dx_j =
delta_ij gamma / sqrt(variance + eps)``. Use small inputs only.
"""

from __future__ import annotations

from cnn.backend import xp


def _channels_last(a, axis):
    """``a`` with its channel axis last, as (m, C), and the function that undoes it."""
    moved = xp.moveaxis(a, axis, -1)
    shape = moved.shape

    def restore(flat):
        return xp.moveaxis(flat.reshape(shape), -1, axis)

    return moved.reshape(-1, shape[-1]), restore


def batch_norm_forward(x, gamma, beta, axis, epsilon, mean=None, variance=None):
    """``y``: x (N, ...), gamma and beta (C,) or None (1 and 0); batch statistics unless
    ``mean`` and ``variance`` (C,) are given."""
    flat, restore = _channels_last(x, axis)
    y = xp.zeros_like(flat)
    for c in range(flat.shape[1]):
        values = flat[:, c]
        mu = values.mean() if mean is None else mean[c]
        var = ((values - values.mean()) ** 2).mean() if variance is None else variance[c]
        scale = 1.0 if gamma is None else gamma[c]
        shift = 0.0 if beta is None else beta[c]
        y[:, c] = scale * (values - mu) / xp.sqrt(var + epsilon) + shift
    return restore(y)


def batch_norm_backward(dy, x, gamma, axis, epsilon, mean=None, variance=None):
    """``(dx, dgamma, dbeta)`` of ``batch_norm_forward`` with the same arguments: training
    mode (the statistics are functions of x) unless ``mean`` and ``variance`` are given."""
    flat, restore = _channels_last(x, axis)
    grad, _ = _channels_last(dy, axis)
    m, channels = flat.shape
    dx = xp.zeros_like(flat)
    dgamma, dbeta = xp.zeros(channels, dtype=x.dtype), xp.zeros(channels, dtype=x.dtype)
    for c in range(channels):
        values, g = flat[:, c], grad[:, c]
        scale = 1.0 if gamma is None else gamma[c]
        if variance is None:
            mu, var = values.mean(), ((values - values.mean()) ** 2).mean()
        else:
            mu, var = mean[c], variance[c]
        std = xp.sqrt(var + epsilon)
        x_hat = (values - mu) / std
        if variance is None:
            jacobian = (scale / std) * (xp.eye(m) - 1.0 / m - xp.outer(x_hat, x_hat) / m)
        else:
            jacobian = (scale / std) * xp.eye(m)
        dx[:, c] = jacobian.T @ g
        dgamma[c] = (g * x_hat).sum()
        dbeta[c] = g.sum()
    return restore(dx), dgamma, dbeta
