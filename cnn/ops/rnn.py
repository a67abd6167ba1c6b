"""The recurrences of SimpleRNN, LSTM and GRU over a whole sequence, as pure functions.

Layout (time-major, so that each step reads and writes contiguous memory):

* ``xw`` (T, N, G*U): the input projections ``x_t @ kernel.T + bias`` of all T steps, computed
  by the layer in one GEMM; G gate blocks of U units each (1 SimpleRNN, 4 LSTM, 3 GRU).
* ``recurrent_kernel`` (G*U, U), gate blocks stacked along the first axis (PyTorch's layout;
  LSTM gates ``i, f, g, o``; GRU gates ``z, r, n``, Keras's order).
* initial states ``h0`` (and LSTM's ``c0``): (N, U).

Each ``*_forward`` returns ``(h, final_states, cache)`` with ``h`` (T, N, U) the hidden states
of every step. Each ``*_backward(cache, dh, final_state_grads)`` takes the gradient with
respect to ``h`` (or None when only the final state is used) and with respect to the final
states, and returns ``(dxw, initial_state_grads, recurrent_grads)``: ``dxw`` (T, N, G*U) is
the gradient with respect to the pre-activations, from which the layer computes its input
and kernel gradients with one GEMM each.

The backward passes precompute every local derivative for all steps at once, so that each
step of the reverse loop is a handful of element-wise products and one GEMM.

Activations must be element-wise. ``tanh`` and ``sigmoid`` are applied in place
(``sigmoid(z) = (1 + tanh(z / 2)) / 2``, which never overflows).
"""

from __future__ import annotations

from cnn.backend import xp


# -- activations in place ------------------------------------------------------------------

def activate(activation, z, out):
    """``out[...] = activation(z)``; ``out`` may be ``z`` itself."""
    if activation.name == "tanh":
        xp.tanh(z, out=out)
    elif activation.name == "sigmoid":
        xp.multiply(z, 0.5, out=out)
        xp.tanh(out, out=out)
        out *= 0.5
        out += 0.5
    else:
        out[...] = activation.forward(z)
    return out


def derivative(activation, z, a):
    """``activation'(z)`` element-wise, from the output ``a`` where that suffices."""
    if activation.name == "tanh":
        return 1 - a * a
    if activation.name == "sigmoid":
        return a * (1 - a)
    return activation.backward(xp.ones_like(a), z, a)


def _empty(shape, like):
    return xp.empty(shape, dtype=like.dtype)


def _carry_in(grad, shape, like):
    """A fresh buffer holding ``grad`` (or zeros): the gradient flowing into the last step."""
    buffer = xp.zeros(shape, dtype=like.dtype)
    if grad is not None:
        buffer += grad
    return buffer


def _sum_over_steps(a, b):
    """``sum_t a[t].T @ b[t]`` as one GEMM: a (T, N, P), b (T, N, Q) -> (P, Q)."""
    return a.reshape(-1, a.shape[-1]).T @ b.reshape(-1, b.shape[-1])


# -- SimpleRNN -----------------------------------------------------------------------------

def simple_rnn_forward(xw, h0, recurrent_kernel, activation):
    """``h_t = activation(xw_t + h_{t-1} @ recurrent_kernel.T)``; xw (T, N, U), h0 (N, U)."""
    steps, batch, units = xw.shape
    rt = xp.ascontiguousarray(recurrent_kernel.T)
    h = _empty((steps + 1, batch, units), xw)  # h[0] = h0, h[t + 1] = h_t
    h[0] = h0
    z = _empty(xw.shape, xw) if activation.needs_input else None
    for t in range(steps):
        pre = xp.matmul(h[t], rt, out=h[t + 1])
        pre += xw[t]
        if z is not None:
            z[t] = pre
        activate(activation, pre, pre)
    cache = (h, z, recurrent_kernel, activation)
    return h[1:], [h[-1]], cache


def simple_rnn_backward(cache, dh_seq, final_state_grads):
    h, z, recurrent_kernel, activation = cache
    local = derivative(activation, None if z is None else z, h[1:])
    dxw = xp.empty_like(local)
    dh = _carry_in(final_state_grads[0], h[0].shape, h)
    for t in range(local.shape[0] - 1, -1, -1):
        if dh_seq is not None:
            dh += dh_seq[t]
        xp.multiply(dh, local[t], out=dxw[t])
        xp.matmul(dxw[t], recurrent_kernel, out=dh)
    return dxw, [dh], [_sum_over_steps(dxw, h[:-1])]


# -- LSTM ----------------------------------------------------------------------------------

def lstm_forward(xw, h0, c0, recurrent_kernel, activation, recurrent_activation):
    """One LSTM layer over T steps (gates ``i, f, g, o``; ``act`` = activation,
    ``sig`` = recurrent_activation)::

        i, f, o = sig(.), g = act(.)  of  xw_t + h_{t-1} @ recurrent_kernel.T
        c_t = f * c_{t-1} + i * g;   h_t = o * act(c_t)

    xw (T, N, 4U), h0 and c0 (N, U). Returns ``(h (T, N, U), [h_T, c_T], cache)``.
    """
    steps, batch, four_units = xw.shape
    u = four_units // 4
    rt = xp.ascontiguousarray(recurrent_kernel.T)
    gates = _empty(xw.shape, xw)  # activated i, f, g, o of every step
    keep_z = activation.needs_input or recurrent_activation.needs_input
    z = _empty(xw.shape, xw) if keep_z else None
    h = _empty((steps + 1, batch, u), xw)
    c = _empty((steps + 1, batch, u), xw)
    act_c = _empty((steps, batch, u), xw)
    h[0], c[0] = h0, c0
    for t in range(steps):
        pre = xp.matmul(h[t], rt, out=gates[t])
        pre += xw[t]
        if keep_z:
            z[t] = pre
        activate(recurrent_activation, pre[:, :2 * u], pre[:, :2 * u])
        activate(activation, pre[:, 2 * u:3 * u], pre[:, 2 * u:3 * u])
        activate(recurrent_activation, pre[:, 3 * u:], pre[:, 3 * u:])
        i, f, g, o = pre[:, :u], pre[:, u:2 * u], pre[:, 2 * u:3 * u], pre[:, 3 * u:]
        xp.multiply(f, c[t], out=c[t + 1])
        c[t + 1] += i * g
        activate(activation, c[t + 1], act_c[t])
        xp.multiply(o, act_c[t], out=h[t + 1])
    cache = (gates, z, h, c, act_c, recurrent_kernel, activation, recurrent_activation)
    return h[1:], [h[-1], c[-1]], cache


def lstm_backward(cache, dh_seq, final_state_grads):
    gates, z, h, c, act_c, recurrent_kernel, activation, recurrent_activation = cache
    steps, batch, four_units = gates.shape
    u = four_units // 4
    g4 = gates.reshape(steps, batch, 4, u)
    z4 = None if z is None else z.reshape(steps, batch, 4, u)
    i, f, g, o = g4[:, :, 0], g4[:, :, 1], g4[:, :, 2], g4[:, :, 3]

    def local(k, fn):  # derivative of gate k's activation, all steps at once
        return derivative(fn, None if z4 is None else z4[:, :, k], g4[:, :, k])

    # d loss / d pre-activation of gate k = (dc or dh) * scale[k]
    scale = _empty((steps, batch, 4, u), gates)
    scale[:, :, 0] = g * local(0, recurrent_activation)
    scale[:, :, 1] = c[:-1] * local(1, recurrent_activation)
    scale[:, :, 2] = i * local(2, activation)
    scale[:, :, 3] = act_c * local(3, recurrent_activation)
    dc_from_dh = o * derivative(activation, c[1:], act_c)

    dxw = _empty(gates.shape, gates)
    d4 = dxw.reshape(steps, batch, 4, u)
    dh = _carry_in(final_state_grads[0], (batch, u), gates)
    dc = _carry_in(final_state_grads[1], (batch, u), gates)
    for t in range(steps - 1, -1, -1):
        if dh_seq is not None:
            dh += dh_seq[t]
        dc += dh * dc_from_dh[t]
        xp.multiply(dc[:, None, :], scale[t, :, :3], out=d4[t, :, :3])
        xp.multiply(dh, scale[t, :, 3], out=d4[t, :, 3])
        dc *= f[t]
        xp.matmul(dxw[t], recurrent_kernel, out=dh)
    return dxw, [dh, dc], [_sum_over_steps(dxw, h[:-1])]


# -- GRU -----------------------------------------------------------------------------------

def gru_forward(xw, h0, recurrent_kernel, recurrent_bias, activation, recurrent_activation,
                reset_after=True):
    """One GRU layer over T steps (gates ``z, r, n``; ``act`` = activation, ``sig`` =
    recurrent_activation; ``R_z, R_r, R_n`` the blocks of recurrent_kernel)::

        z = sig(xw_z + h R_z.T + b_z),  r = sig(xw_r + h R_r.T + b_r)
        reset_after=True  (Keras default, PyTorch): n = act(xw_n + r * (h R_n.T + b_n))
        reset_after=False (the original GRU):       n = act(xw_n + (r * h) R_n.T)
        h_t = z * h_{t-1} + (1 - z) * n

    ``recurrent_bias`` (3U,) is used with ``reset_after`` only (else pass None).
    Returns ``(h (T, N, U), [h_T], cache)``.
    """
    steps, batch, three_units = xw.shape
    u = three_units // 3
    rt = xp.ascontiguousarray(recurrent_kernel.T)
    gates = _empty(xw.shape, xw)  # activated z, r, n
    keep_z = activation.needs_input or recurrent_activation.needs_input
    z_pre = _empty(xw.shape, xw) if keep_z else None
    h = _empty((steps + 1, batch, u), xw)
    h[0] = h0
    # reset_after: h R.T + b of every step; else r * h of every step
    memo = _empty(xw.shape if reset_after else (steps, batch, u), xw)
    for t in range(steps):
        pre = gates[t]
        if reset_after:
            xp.matmul(h[t], rt, out=memo[t])
            if recurrent_bias is not None:
                memo[t] += recurrent_bias
            xp.add(xw[t, :, :2 * u], memo[t, :, :2 * u], out=pre[:, :2 * u])
        else:
            xp.matmul(h[t], rt[:, :2 * u], out=pre[:, :2 * u])
            pre[:, :2 * u] += xw[t, :, :2 * u]
        if keep_z:
            z_pre[t, :, :2 * u] = pre[:, :2 * u]
        activate(recurrent_activation, pre[:, :2 * u], pre[:, :2 * u])
        update, reset, candidate = pre[:, :u], pre[:, u:2 * u], pre[:, 2 * u:]
        if reset_after:
            xp.multiply(reset, memo[t, :, 2 * u:], out=candidate)
        else:
            xp.multiply(reset, h[t], out=memo[t])
            xp.matmul(memo[t], rt[:, 2 * u:], out=candidate)
        candidate += xw[t, :, 2 * u:]
        if keep_z:
            z_pre[t, :, 2 * u:] = candidate
        activate(activation, candidate, candidate)
        # h_t = n + z * (h_{t-1} - n)
        xp.subtract(h[t], candidate, out=h[t + 1])
        h[t + 1] *= update
        h[t + 1] += candidate
    cache = (gates, z_pre, h, memo, recurrent_kernel, activation, recurrent_activation,
             reset_after)
    return h[1:], [h[-1]], cache


def gru_backward(cache, dh_seq, final_state_grads):
    """Returns ``(dxw, [dh0], [d_recurrent_kernel, d_recurrent_bias])`` (the bias gradient
    only with ``reset_after``)."""
    gates, z_pre, h, memo, recurrent_kernel, activation, recurrent_activation, reset_after = cache
    steps, batch, three_units = gates.shape
    u = three_units // 3
    g3 = gates.reshape(steps, batch, 3, u)
    zp3 = None if z_pre is None else z_pre.reshape(steps, batch, 3, u)
    update, reset, candidate = g3[:, :, 0], g3[:, :, 1], g3[:, :, 2]

    def local(k, fn):
        return derivative(fn, None if zp3 is None else zp3[:, :, k], g3[:, :, k])

    dz_scale = (h[:-1] - candidate) * local(0, recurrent_activation)  # dh -> d pre_z
    dn_scale = (1 - update) * local(2, activation)                     # dh -> d pre_n
    # d pre_n -> d pre_r: through r * (h R_n.T + b_n), or through (r * h) R_n.T
    dr_scale = local(1, recurrent_activation)
    if reset_after:
        dr_scale = dr_scale * memo[:, :, 2 * u:]
    rn = recurrent_kernel[2 * u:]
    rzr = recurrent_kernel[:2 * u]

    dxw = _empty(gates.shape, gates)
    d3 = dxw.reshape(steps, batch, 3, u)
    # gradient w.r.t. h R.T + b (reset_after) or w.r.t. r * h (not reset_after)
    dmemo = _empty(memo.shape, gates)
    dh = _carry_in(final_state_grads[0], (batch, u), gates)
    for t in range(steps - 1, -1, -1):
        if dh_seq is not None:
            dh += dh_seq[t]
        xp.multiply(dh, dz_scale[t], out=d3[t, :, 0])
        xp.multiply(dh, dn_scale[t], out=d3[t, :, 2])
        dh *= update[t]
        if reset_after:
            dm = dmemo[t].reshape(batch, 3, u)
            xp.multiply(d3[t, :, 2], dr_scale[t], out=d3[t, :, 1])
            dm[:, :2] = d3[t, :, :2]
            xp.multiply(d3[t, :, 2], reset[t], out=dm[:, 2])
            dh += dmemo[t] @ recurrent_kernel
        else:
            d_rh = d3[t, :, 2] @ rn
            xp.multiply(d_rh, h[t], out=d3[t, :, 1])
            d3[t, :, 1] *= dr_scale[t]
            xp.multiply(d_rh, reset[t], out=dmemo[t])
            dh += dmemo[t]
            dh += dxw[t, :, :2 * u] @ rzr
    if reset_after:
        return dxw, [dh], [_sum_over_steps(dmemo, h[:-1]), dmemo.sum(axis=(0, 1))]
    d_recurrent = xp.concatenate([_sum_over_steps(dxw[:, :, :2 * u], h[:-1]),
                                  _sum_over_steps(dxw[:, :, 2 * u:], memo)], axis=0)
    return dxw, [dh], [d_recurrent]
