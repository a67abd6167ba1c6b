"""Scaled dot-product attention over heads, and the per-head projections, as pure functions.

Layout: heads on axis 1, ``q`` (N, H, Tq, K), ``k`` (N, H, Tv, K), ``v`` (N, H, Tv, V).
``allowed`` (N, 1 or H, Tq, Tv) bool (True where query step i may attend to key step j) or
None. A disallowed pair gets the logit ``MASKED_LOGIT`` before the softmax, as Keras adds
a large negative number, so a query with no allowed key attends uniformly (no NaN). Those
constant logits depend on neither ``q`` nor ``k``: the backward pass gives them no gradient.
"""

from __future__ import annotations

from cnn.backend import xp

MASKED_LOGIT = -1e9


def project_heads(x, kernel, bias):
    """(N, T, D) with kernel (D, H, K) and bias (H, K) or None -> (N, H, T, K)."""
    n, steps, features = x.shape
    _, heads, size = kernel.shape
    out = (x.reshape(-1, features) @ kernel.reshape(features, heads * size))
    out = out.reshape(n, steps, heads, size)
    if bias is not None:
        out += bias
    return out.transpose(0, 2, 1, 3)


def project_heads_backward(x, kernel, grad):
    """Gradients of ``project_heads`` from ``grad`` (N, H, T, K): ``(dx, d_kernel, d_bias)``."""
    n, steps, features = x.shape
    _, heads, size = kernel.shape
    flat = grad.transpose(0, 2, 1, 3).reshape(-1, heads * size)
    d_kernel = (x.reshape(-1, features).T @ flat).reshape(kernel.shape)
    d_bias = flat.sum(axis=0).reshape(heads, size)
    dx = (flat @ kernel.reshape(features, heads * size).T).reshape(x.shape)
    return dx, d_kernel, d_bias


def merge_heads(context, kernel, bias):
    """(N, H, Tq, V) with kernel (H, V, O) and bias (O,) or None -> (N, Tq, O)."""
    n, heads, steps, size = context.shape
    flat = context.transpose(0, 2, 1, 3).reshape(-1, heads * size)
    out = flat @ kernel.reshape(heads * size, -1)
    if bias is not None:
        out += bias
    return out.reshape(n, steps, -1)


def merge_heads_backward(context, kernel, grad):
    """Gradients of ``merge_heads``: ``(d_context, d_kernel, d_bias)``."""
    n, heads, steps, size = context.shape
    flat = context.transpose(0, 2, 1, 3).reshape(-1, heads * size)
    g = grad.reshape(-1, grad.shape[-1])
    d_kernel = (flat.T @ g).reshape(kernel.shape)
    d_context = (g @ kernel.reshape(heads * size, -1).T).reshape(n, steps, heads, size)
    return d_context.transpose(0, 2, 1, 3), d_kernel, g.sum(axis=0)


def causal_mask(query_steps, value_steps):
    """(Tq, Tv) bool, True on and below the diagonal: step i attends to steps <= i (Keras's
    ``use_causal_mask``, aligned at the start)."""
    return xp.tril(xp.ones((query_steps, value_steps), dtype=bool))


def attention_forward(q, k, v, allowed=None, dropout_mask=None):
    """``softmax(q k^T / sqrt(K))`` (the scores), dropped out, times ``v``.

    ``dropout_mask`` (N, H, Tq, Tv) the inverted-dropout factors, or None.
    Returns ``(context (N, H, Tq, V), scores (N, H, Tq, Tv), cache)``.
    """
    scale = q.dtype.type(1.0 / (q.shape[-1] ** 0.5))
    logits = (q * scale) @ k.swapaxes(-1, -2)
    if allowed is not None:
        logits = xp.where(allowed, logits, logits.dtype.type(MASKED_LOGIT))
    logits -= logits.max(axis=-1, keepdims=True)
    scores = xp.exp(logits, out=logits)
    scores /= scores.sum(axis=-1, keepdims=True)
    weights = scores if dropout_mask is None else scores * dropout_mask
    context = weights @ v
    return context, scores, (q, k, v, scores, weights, dropout_mask, scale, allowed)


def attention_backward(cache, d_context):
    """Returns ``(dq, dk, dv)`` from the gradient of the context (N, H, Tq, V)."""
    q, k, v, scores, weights, dropout_mask, scale, allowed = cache
    dv = weights.swapaxes(-1, -2) @ d_context
    d_scores = d_context @ v.swapaxes(-1, -2)
    if dropout_mask is not None:
        d_scores *= dropout_mask
    # softmax: d logits = s * (d s - sum(d s * s))
    d_logits = scores * (d_scores - (d_scores * scores).sum(axis=-1, keepdims=True))
    if allowed is not None:  # MASKED_LOGIT is a constant
        d_logits = xp.where(allowed, d_logits, d_logits.dtype.type(0))
    dq = (d_logits @ k) * scale
    dk = d_logits.swapaxes(-1, -2) @ q * scale
    return dq, dk, dv
