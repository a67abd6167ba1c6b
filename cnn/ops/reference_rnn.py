"""Slow, obvious back-propagation through time for SimpleRNN, LSTM and GRU: the reference
twins the tests hold the fast recurrences of ``cnn.ops.rnn`` and ``cnn.layers.rnn`` against.

Written from the equations alone, sharing nothing with ``cnn.ops.rnn``: batch-major input
x (N, T, F), one Python iteration per time step, one matrix product per gate and per weight,
every intermediate value kept in a per-step record (the "tape"), and the backward pass the
chain rule applied to that record step by step, newest first. Activations are given by name
(``"tanh"``, ``"sigmoid"``, ``"relu"``, ``"linear"``) and differentiated here.

Weights in the layers' layout: ``kernel`` (G*U, F), ``recurrent_kernel`` (G*U, U), ``bias``
(G*U,) or None, gate blocks of U rows stacked on the first axis: SimpleRNN one block, LSTM
``i, f, g, o`` (Keras's order i, f, c, o), GRU ``z, r, n``.

Each ``*_forward`` returns ``(outputs, final_states, tape)``: outputs (N, T, U) in the order
the steps were processed (reversed with ``go_backwards``, as Keras returns them), the final
states ``[h]`` or ``[h, c]`` (N, U). ``*_backward(tape, d_outputs, d_final_states)`` takes the
gradient of the loss with respect to the outputs (N, T, U) or None, and with respect to the
final states (a list, None entries for zero), and returns a dict of gradients: ``x``,
``kernel``, ``recurrent_kernel``, ``bias`` (when there is one), ``recurrent_bias`` (GRU with
``reset_after``), ``h0`` (and ``c0``). Use small inputs only.
"""

from __future__ import annotations

from cnn.backend import xp


def _sigmoid(z):
    return 1.0 / (1.0 + xp.exp(-z))


ACTIVATIONS = {
    "tanh": (xp.tanh, lambda z: 1.0 - xp.tanh(z) ** 2),
    "sigmoid": (_sigmoid, lambda z: _sigmoid(z) * (1.0 - _sigmoid(z))),
    "relu": (lambda z: xp.maximum(z, 0.0), lambda z: (z > 0).astype(z.dtype)),
    "linear": (lambda z: z, xp.ones_like),
}


def _activation(name):
    if name not in ACTIVATIONS:
        raise ValueError(f"reference recurrences know {sorted(ACTIVATIONS)}, not {name!r}")
    return ACTIVATIONS[name]


def _block(w, k, units):
    return w[k * units:(k + 1) * units]


def _steps(x, go_backwards):
    """The time indices of x in the order they are processed."""
    order = list(range(x.shape[1]))
    return order[::-1] if go_backwards else order


def _zero_grads(kernel, recurrent_kernel, bias, x):
    grads = {"x": xp.zeros_like(x), "kernel": xp.zeros_like(kernel),
             "recurrent_kernel": xp.zeros_like(recurrent_kernel)}
    if bias is not None:
        grads["bias"] = xp.zeros_like(bias)
    return grads


def _output_grad(d_outputs, step):
    return 0.0 if d_outputs is None else d_outputs[:, step]


def _state_grad(d_final_states, index, like):
    grads = d_final_states or []
    if index < len(grads) and grads[index] is not None:
        return xp.array(grads[index], dtype=like.dtype)
    return xp.zeros_like(like)


def _add_gate_grads(grads, k, units, dz, x_t, h_prev, kernel, recurrent_kernel, bias, t,
                    recurrent=True):
    """The gradients of one gate block's pre-activation ``x_t W_k.T + h_prev R_k.T + b_k``
    given its gradient ``dz`` (N, U); returns its contribution to the gradient of h_prev."""
    rows = slice(k * units, (k + 1) * units)
    grads["kernel"][rows] += dz.T @ x_t
    grads["x"][:, t] += dz @ _block(kernel, k, units)
    if bias is not None:
        grads["bias"][rows] += dz.sum(axis=0)
    if not recurrent:
        return 0.0
    grads["recurrent_kernel"][rows] += dz.T @ h_prev
    return dz @ _block(recurrent_kernel, k, units)


# -- SimpleRNN ------------------------------------------------------------------------------

def simple_rnn_forward(x, h0, kernel, recurrent_kernel, bias=None, activation="tanh",
                       go_backwards=False):
    """``h_t = activation(x_t W.T + h_{t-1} R.T + b)``."""
    act, _ = _activation(activation)
    h, outputs, records = h0, [], []
    for t in _steps(x, go_backwards):
        z = x[:, t] @ kernel.T + h @ recurrent_kernel.T
        if bias is not None:
            z = z + bias
        records.append({"t": t, "h_prev": h, "z": z})
        h = act(z)
        outputs.append(h)
    tape = {"x": x, "kernel": kernel, "recurrent_kernel": recurrent_kernel, "bias": bias,
            "activation": activation, "records": records, "h0": h0}
    return xp.stack(outputs, axis=1), [h], tape


def simple_rnn_backward(tape, d_outputs, d_final_states=None):
    _, act_grad = _activation(tape["activation"])
    kernel, recurrent_kernel, bias = tape["kernel"], tape["recurrent_kernel"], tape["bias"]
    grads = _zero_grads(kernel, recurrent_kernel, bias, tape["x"])
    units = recurrent_kernel.shape[1]
    dh = _state_grad(d_final_states, 0, tape["h0"])
    for position in range(len(tape["records"]) - 1, -1, -1):
        record = tape["records"][position]
        dh = dh + _output_grad(d_outputs, position)
        dz = dh * act_grad(record["z"])
        dh = _add_gate_grads(grads, 0, units, dz, tape["x"][:, record["t"]], record["h_prev"],
                             kernel, recurrent_kernel, bias, record["t"])
    grads["h0"] = dh
    return grads


# -- LSTM -----------------------------------------------------------------------------------

def lstm_forward(x, h0, c0, kernel, recurrent_kernel, bias=None, activation="tanh",
                 recurrent_activation="sigmoid", go_backwards=False):
    """Gates i, f, g, o: ``c_t = f c_{t-1} + i g``, ``h_t = o act(c_t)``."""
    act, _ = _activation(activation)
    sig, _ = _activation(recurrent_activation)
    units = h0.shape[1]
    h, c, outputs, records = h0, c0, [], []
    for t in _steps(x, go_backwards):
        z = []
        for k in range(4):
            z_k = x[:, t] @ _block(kernel, k, units).T + h @ _block(recurrent_kernel, k, units).T
            if bias is not None:
                z_k = z_k + _block(bias, k, units)
            z.append(z_k)
        i, f, g, o = sig(z[0]), sig(z[1]), act(z[2]), sig(z[3])
        records.append({"t": t, "h_prev": h, "c_prev": c, "z": z, "i": i, "f": f, "g": g,
                        "o": o})
        c = f * c + i * g
        records[-1]["c"] = c
        h = o * act(c)
        outputs.append(h)
    tape = {"x": x, "kernel": kernel, "recurrent_kernel": recurrent_kernel, "bias": bias,
            "activation": activation, "recurrent_activation": recurrent_activation,
            "records": records, "h0": h0, "c0": c0}
    return xp.stack(outputs, axis=1), [h, c], tape


def lstm_backward(tape, d_outputs, d_final_states=None):
    act, act_grad = _activation(tape["activation"])
    _, sig_grad = _activation(tape["recurrent_activation"])
    kernel, recurrent_kernel, bias = tape["kernel"], tape["recurrent_kernel"], tape["bias"]
    grads = _zero_grads(kernel, recurrent_kernel, bias, tape["x"])
    units = recurrent_kernel.shape[1]
    dh = _state_grad(d_final_states, 0, tape["h0"])
    dc = _state_grad(d_final_states, 1, tape["c0"])
    for position in range(len(tape["records"]) - 1, -1, -1):
        r = tape["records"][position]
        dh = dh + _output_grad(d_outputs, position)
        d_o = dh * act(r["c"])
        dc = dc + dh * r["o"] * act_grad(r["c"])
        d_i, d_f, d_g = dc * r["g"], dc * r["c_prev"], dc * r["i"]
        dc = dc * r["f"]
        dz = [d_i * sig_grad(r["z"][0]), d_f * sig_grad(r["z"][1]),
              d_g * act_grad(r["z"][2]), d_o * sig_grad(r["z"][3])]
        dh = 0.0
        for k in range(4):
            dh = dh + _add_gate_grads(grads, k, units, dz[k], tape["x"][:, r["t"]], r["h_prev"],
                                      kernel, recurrent_kernel, bias, r["t"])
    grads["h0"], grads["c0"] = dh, dc
    return grads


# -- GRU ------------------------------------------------------------------------------------

def gru_forward(x, h0, kernel, recurrent_kernel, bias=None, recurrent_bias=None,
                activation="tanh", recurrent_activation="sigmoid", reset_after=True,
                go_backwards=False):
    """Gates z (update), r (reset), n (candidate); ``h_t = z h_{t-1} + (1 - z) n`` with::

        reset_after=True:  n = act(x_t W_n.T + b_n + r * (h_{t-1} R_n.T + b'_n))
        reset_after=False: n = act(x_t W_n.T + b_n + (r * h_{t-1}) R_n.T)

    (the recurrent bias ``b'`` only with ``reset_after``; z and r add it too).
    """
    act, _ = _activation(activation)
    sig, _ = _activation(recurrent_activation)
    units = h0.shape[1]
    h, outputs, records = h0, [], []
    for t in _steps(x, go_backwards):
        from_x, from_h = [], []
        for k in range(3):
            x_k = x[:, t] @ _block(kernel, k, units).T
            if bias is not None:
                x_k = x_k + _block(bias, k, units)
            h_k = h @ _block(recurrent_kernel, k, units).T
            if recurrent_bias is not None:
                h_k = h_k + _block(recurrent_bias, k, units)
            from_x.append(x_k)
            from_h.append(h_k)
        a_z, a_r = from_x[0] + from_h[0], from_x[1] + from_h[1]
        z, r = sig(a_z), sig(a_r)
        if reset_after:
            a_n = from_x[2] + r * from_h[2]
        else:
            a_n = from_x[2] + (r * h) @ _block(recurrent_kernel, 2, units).T
        n = act(a_n)
        records.append({"t": t, "h_prev": h, "a_z": a_z, "a_r": a_r, "a_n": a_n, "z": z,
                        "r": r, "n": n, "h_n": from_h[2]})
        h = z * h + (1.0 - z) * n
        outputs.append(h)
    tape = {"x": x, "kernel": kernel, "recurrent_kernel": recurrent_kernel, "bias": bias,
            "recurrent_bias": recurrent_bias, "activation": activation,
            "recurrent_activation": recurrent_activation, "reset_after": reset_after,
            "records": records, "h0": h0}
    return xp.stack(outputs, axis=1), [h], tape


def gru_backward(tape, d_outputs, d_final_states=None):
    _, act_grad = _activation(tape["activation"])
    _, sig_grad = _activation(tape["recurrent_activation"])
    kernel, recurrent_kernel, bias = tape["kernel"], tape["recurrent_kernel"], tape["bias"]
    recurrent_bias, reset_after = tape["recurrent_bias"], tape["reset_after"]
    grads = _zero_grads(kernel, recurrent_kernel, bias, tape["x"])
    if recurrent_bias is not None:
        grads["recurrent_bias"] = xp.zeros_like(recurrent_bias)
    units = recurrent_kernel.shape[1]
    r_n = _block(recurrent_kernel, 2, units)
    dh = _state_grad(d_final_states, 0, tape["h0"])
    for position in range(len(tape["records"]) - 1, -1, -1):
        rec = tape["records"][position]
        t, h_prev = rec["t"], rec["h_prev"]
        x_t = tape["x"][:, t]
        dh = dh + _output_grad(d_outputs, position)
        d_z = dh * (h_prev - rec["n"])
        d_an = dh * (1.0 - rec["z"]) * act_grad(rec["a_n"])
        dh_prev = dh * rec["z"]
        if reset_after:
            d_r = d_an * rec["h_n"]
            d_hn = d_an * rec["r"]  # gradient of h_prev R_n.T + b'_n
        else:
            d_rh = d_an @ r_n       # gradient of r * h_prev
            d_r = d_rh * h_prev
            dh_prev = dh_prev + d_rh * rec["r"]
            grads["recurrent_kernel"][2 * units:] += d_an.T @ (rec["r"] * h_prev)
        d_az, d_ar = d_z * sig_grad(rec["a_z"]), d_r * sig_grad(rec["a_r"])
        for k, d_a in ((0, d_az), (1, d_ar)):
            dh_prev = dh_prev + _add_gate_grads(grads, k, units, d_a, x_t, h_prev, kernel,
                                                recurrent_kernel, bias, t)
            if recurrent_bias is not None:
                grads["recurrent_bias"][k * units:(k + 1) * units] += d_a.sum(axis=0)
        _add_gate_grads(grads, 2, units, d_an, x_t, h_prev, kernel, recurrent_kernel, bias, t,
                        recurrent=False)
        if reset_after:
            grads["recurrent_kernel"][2 * units:] += d_hn.T @ h_prev
            dh_prev = dh_prev + d_hn @ r_n
            if recurrent_bias is not None:
                grads["recurrent_bias"][2 * units:] += d_hn.sum(axis=0)
        dh = dh_prev
    grads["h0"] = dh
    return grads
