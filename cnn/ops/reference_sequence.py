"""Slow, obvious twins of the sequence kernels, which the tests hold the fast ones against.

* ``masked_rnn_reference``: SimpleRNN / LSTM / GRU one sample and one step at a time, with a
  step mask (a skipped step keeps the previous states) and a recurrent-dropout factor on
  ``h_{t-1}`` where it meets the recurrent kernel (``cnn.ops.rnn``'s semantics).
* ``layer_normalization_reference``: mean and variance by explicit loops over samples.
* ``attention_reference``: multi-head attention head by head, sample by sample.

Weights are in the layers' layouts; use small inputs only.
"""

from __future__ import annotations

import numpy as np


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _block(w, k, units):
    return w[k * units:(k + 1) * units]


def _cell_step(kind, x_t, h, c, kernel, recurrent_kernel, bias, recurrent_bias, h_in,
               reset_after):
    """One step of one sample; ``h_in`` is ``h`` after recurrent dropout."""
    units = h.shape[-1]
    if kind == "SimpleRNN":
        return np.tanh(kernel @ x_t + recurrent_kernel @ h_in + bias), None
    if kind == "LSTM":
        pre = [_block(kernel, k, units) @ x_t + _block(recurrent_kernel, k, units) @ h_in
               + _block(bias, k, units) for k in range(4)]
        i, f, g, o = _sigmoid(pre[0]), _sigmoid(pre[1]), np.tanh(pre[2]), _sigmoid(pre[3])
        c_new = f * c + i * g
        return o * np.tanh(c_new), c_new
    x_z, x_r, x_n = (_block(kernel, k, units) @ x_t + _block(bias, k, units) for k in range(3))
    rb = np.zeros(3 * units) if recurrent_bias is None else recurrent_bias
    r_z, r_r, r_n = (_block(recurrent_kernel, k, units) @ h_in + _block(rb, k, units)
                     for k in range(3))
    update, reset = _sigmoid(x_z + r_z), _sigmoid(x_r + r_r)
    if reset_after:
        candidate = np.tanh(x_n + reset * r_n)
    else:
        candidate = np.tanh(x_n + _block(recurrent_kernel, 2, units) @ (reset * h_in))
    return update * h + (1 - update) * candidate, None


def masked_rnn_reference(kind, x, kernel, recurrent_kernel, bias, units, mask=None,
                         recurrent_mask=None, recurrent_bias=None, reset_after=True,
                         go_backwards=False):
    """Default activations (tanh, sigmoid). x (N, T, F), mask (N, T) bool, recurrent_mask
    (N, U). Returns ``(outputs (N, T, U), h_T (N, U), c_T (N, U) or None)``; with
    ``go_backwards`` the steps (and the outputs) run from the last to the first."""
    n, steps, _ = x.shape
    mask = np.ones((n, steps), dtype=bool) if mask is None else mask
    drop = np.ones((n, units)) if recurrent_mask is None else recurrent_mask
    order = range(steps - 1, -1, -1) if go_backwards else range(steps)
    outputs = np.zeros((n, steps, units))
    final_h, final_c = np.zeros((n, units)), np.zeros((n, units))
    for s in range(n):
        h, c = np.zeros(units), np.zeros(units)
        for k, t in enumerate(order):
            if mask[s, t]:
                h, c_new = _cell_step(kind, x[s, t], h, c, kernel, recurrent_kernel, bias,
                                      recurrent_bias, h * drop[s], reset_after)
                c = c if c_new is None else c_new
            outputs[s, k] = h
        final_h[s], final_c[s] = h, c
    return outputs, final_h, (final_c if kind == "LSTM" else None)


def layer_normalization_reference(x, gamma, beta, epsilon):
    """Normalise every row of the last axis of x by its own mean and variance."""
    rows = x.reshape(-1, x.shape[-1])
    out = np.empty_like(rows)
    for i, row in enumerate(rows):
        mean = sum(row) / len(row)
        variance = sum((v - mean) ** 2 for v in row) / len(row)
        out[i] = (row - mean) / np.sqrt(variance + epsilon)
    out = out.reshape(x.shape)
    if gamma is not None:
        out = out * gamma
    if beta is not None:
        out = out + beta
    return out


def attention_reference(query, value, key, weights, attention_mask=None):
    """Multi-head attention, one sample and one head at a time.

    query (N, Tq, Dq), value (N, Tv, Dv), key (N, Tv, Dk); ``weights`` a dict with Keras's
    per-head kernels ``query_kernel`` (Dq, H, K), ``key_kernel`` (Dk, H, K),
    ``value_kernel`` (Dv, H, V), ``output_kernel`` (H, V, O) and optional biases
    ``query_bias`` (H, K), ``key_bias`` (H, K), ``value_bias`` (H, V), ``output_bias`` (O,).
    attention_mask (N, Tq, Tv) bool, True where a query may attend. Returns
    ``(output (N, Tq, O), scores (N, H, Tq, Tv))``.
    """
    n, tq, _ = query.shape
    tv = value.shape[1]
    heads, key_dim = weights["query_kernel"].shape[1:]
    out_dim = weights["output_kernel"].shape[-1]
    output = np.zeros((n, tq, out_dim))
    scores = np.zeros((n, heads, tq, tv))
    for s in range(n):
        for h in range(heads):
            q = query[s] @ weights["query_kernel"][:, h]
            k = key[s] @ weights["key_kernel"][:, h]
            v = value[s] @ weights["value_kernel"][:, h]
            if "query_bias" in weights:
                q = q + weights["query_bias"][h]
                k = k + weights["key_bias"][h]
                v = v + weights["value_bias"][h]
            logits = q @ k.T / np.sqrt(key_dim)
            if attention_mask is not None:
                logits = np.where(attention_mask[s], logits, -1e9)
            probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
            probs /= probs.sum(axis=-1, keepdims=True)
            scores[s, h] = probs
            output[s] += (probs @ v) @ weights["output_kernel"][h]
        if "output_bias" in weights:
            output[s] += weights["output_bias"]
    return output, scores
