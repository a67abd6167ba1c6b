"""Layer normalization (Ba, Kiros & Hinton, 2016) as pure functions.

Over the normalised ``axes`` of each sample (the other axes are kept apart)::

    mean, var = mean and biased variance of x over axes
    x_hat = (x - mean) / sqrt(var + epsilon);   y = gamma * x_hat + beta

``gamma`` and ``beta`` are broadcast to x (1 on the kept axes) or None.
"""

from __future__ import annotations

from cnn.backend import xp


def layer_norm_forward(x, axes, gamma, beta, epsilon):
    """Returns ``(y, cache)``; ``axes`` a tuple of axes of ``x``."""
    mean = x.mean(axis=axes, keepdims=True)
    centered = x - mean
    variance = (centered * centered).mean(axis=axes, keepdims=True)
    inv_std = 1.0 / xp.sqrt(variance + x.dtype.type(epsilon))
    x_hat = centered
    x_hat *= inv_std
    y = x_hat * gamma if gamma is not None else x_hat.copy()
    if beta is not None:
        y += beta
    return y, (x_hat, inv_std, axes)


def layer_norm_backward(cache, grad, gamma):
    """Returns ``(dx, d_gamma, d_beta)``, the parameter gradients in x's full shape (sum them
    over the kept axes to get the gradients of gamma and beta)."""
    x_hat, inv_std, axes = cache
    d_gamma = grad * x_hat
    d_beta = grad
    g = grad * gamma if gamma is not None else grad
    # d/dx of (x - mean) / std over the normalised values: (g - mean(g) - x_hat mean(g x_hat))
    dx = g - g.mean(axis=axes, keepdims=True)
    dx -= x_hat * (g * x_hat).mean(axis=axes, keepdims=True)
    dx *= inv_std
    return dx, d_gamma, d_beta
