"""Slow, obvious twins of ``cnn.ops.rnn``, which the tests hold the fast recurrences against.

Batch-major inputs x (N, T, F), one Python step per time step, one matrix product per gate,
the equations written as in the papers; no fused gate GEMM, no in-place tricks, no
precomputation. Weights in the layers' layout: ``kernel`` (G*U, F), ``recurrent_kernel``
(G*U, U), ``bias`` (G*U,), gate blocks stacked on the first axis. Use small inputs only.
"""

from __future__ import annotations

from cnn.backend import xp


def _block(w, k, units):
    return w[k * units:(k + 1) * units]


def simple_rnn_reference(x, h0, kernel, recurrent_kernel, bias, activation):
    """Returns the hidden states of every step (N, T, U)."""
    h, outputs = h0, []
    for t in range(x.shape[1]):
        h = activation.forward(x[:, t] @ kernel.T + h @ recurrent_kernel.T + bias)
        outputs.append(h)
    return xp.stack(outputs, axis=1)


def lstm_reference(x, h0, c0, kernel, recurrent_kernel, bias, activation, recurrent_activation):
    """Returns ``(h (N, T, U), c_T (N, U))``; gates in the order i, f, g, o."""
    units = h0.shape[-1]

    def gate(k, x_t, h):
        return (x_t @ _block(kernel, k, units).T + h @ _block(recurrent_kernel, k, units).T
                + _block(bias, k, units))

    h, c, outputs = h0, c0, []
    for t in range(x.shape[1]):
        x_t = x[:, t]
        input_gate = recurrent_activation.forward(gate(0, x_t, h))
        forget_gate = recurrent_activation.forward(gate(1, x_t, h))
        candidate = activation.forward(gate(2, x_t, h))
        output_gate = recurrent_activation.forward(gate(3, x_t, h))
        c = forget_gate * c + input_gate * candidate
        h = output_gate * activation.forward(c)
        outputs.append(h)
    return xp.stack(outputs, axis=1), c


def gru_reference(x, h0, kernel, recurrent_kernel, bias, recurrent_bias, activation,
                  recurrent_activation, reset_after=True):
    """Returns the hidden states (N, T, U); gates in the order z (update), r (reset), n."""
    units = h0.shape[-1]
    if recurrent_bias is None:
        recurrent_bias = xp.zeros(3 * units, dtype=x.dtype)
    h, outputs = h0, []
    for t in range(x.shape[1]):
        x_t = x[:, t]
        x_z, x_r, x_n = (x_t @ _block(kernel, k, units).T + _block(bias, k, units) for k in range(3))
        h_z, h_r, h_n = (h @ _block(recurrent_kernel, k, units).T + _block(recurrent_bias, k, units)
                         for k in range(3))
        update = recurrent_activation.forward(x_z + h_z)
        reset = recurrent_activation.forward(x_r + h_r)
        if reset_after:
            candidate = activation.forward(x_n + reset * h_n)
        else:
            candidate = activation.forward(x_n + (reset * h) @ _block(recurrent_kernel, 2, units).T)
        h = update * h + (1 - update) * candidate
        outputs.append(h)
    return xp.stack(outputs, axis=1)
