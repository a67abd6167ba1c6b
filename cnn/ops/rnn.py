"""The recurrences of SimpleRNN, LSTM and GRU over a whole sequence, as pure functions.

Layout (time-major, so that each step reads and writes contiguous memory):

* ``xw`` (T, N, G*U): the input projections ``x_t @ kernel.T + bias`` of all T steps, computed
  by the layer in one GEMM; G gate blocks of U units each (1 SimpleRNN, 4 LSTM, 3 GRU). The
  LSTM takes the inputs ``x`` (T, N, F) and its ``kernel`` and ``bias`` instead, and does the
  projection inside its one GEMM per step (see ``lstm_forward``).
* ``recurrent_kernel`` (G*U, U), gate blocks stacked along the first axis (PyTorch's layout;
  LSTM gates ``i, f, g, o``; GRU gates ``z, r, n``, Keras's order).
* initial states ``h0`` (and LSTM's ``c0``): (N, U).

Each ``*_forward`` returns ``(h, final_states, cache)`` with ``h`` (T, N, U) the hidden states
of every step. Each ``*_backward(cache, dh, final_state_grads)`` takes the gradient with
respect to ``h`` (or None when only the final state is used) and with respect to the final
states (None entries for zero), and returns ``(dxw, initial_state_grads, recurrent_grads)``:
``dxw`` (T, N, G*U) is the gradient with respect to the pre-activations, from which the layer
computes its input and kernel gradients with one GEMM each (the LSTM returns its kernel and
bias gradients itself).

Masks and recurrent dropout (optional keyword arguments of every ``*_forward``):

* ``mask`` (T, N) bool, in the order of ``xw``: at a step where ``mask[t, n]`` is False sample
  ``n`` keeps its previous states (h and, for LSTM, c), so its output there repeats the
  previous output, as Keras's recurrent layers do; gradients pass such a step unchanged.
* ``recurrent_mask`` (N, U): recurrent dropout, the factor (0 or ``1 / (1 - rate)``) that
  multiplies ``h_{t-1}`` where it enters the recurrent kernel, the same at every step of a
  sequence (Gal & Ghahramani; Keras's ``recurrent_dropout``). The GRU's carry
  ``z * h_{t-1}`` uses the undropped state.

Every function takes an optional ``workspace`` dict in which it keeps its large buffers from
one call to the next (the arrays it returns and caches live there, so a later call with the
same workspace overwrites them; the layers copy what they hand out).

Speed: one GEMM per step forward and backward, the recurrent-kernel gradient as one GEMM over
all steps (the LSTM: all its weight gradients in one, see its section), element-wise work on
whole (N, G*U) rows of contiguous buffers, and buffers reused between calls (mapping fresh
pages for every batch cost as much as a third of the time). With the default activations
(tanh and sigmoid) a whole row of gates is activated by one ``tanh``:
``sigmoid(z) = (1 + tanh(z / 2)) / 2``, so ``a = s * tanh(s * z) + (1 - s)`` with ``s = 1/2``
on sigmoid columns and ``s = 1`` on tanh columns (this never overflows either); the LSTM
uses one ``exp`` instead (see ``lstm_forward``). Other element-wise activations are applied
block by block.
"""

from __future__ import annotations

import contextlib

from cnn.backend import array_module, xp

_FAST = ("tanh", "sigmoid")


class GateActivations:
    """The activations of a row of gate blocks (N, G*U): one activation per block of U units
    (with ``batch_last``, of a column of gate blocks (G*U, N)).

    ``activate(z, out=z)`` writes the activations; ``derivative(a, z, out)`` writes the
    element-wise derivative at the pre-activation ``z`` (read only when an activation needs
    it) with output ``a``.
    """

    def __init__(self, functions, units: int, dtype, batch_last: bool = False):
        self.functions = list(functions)
        self.units = units
        self.batch_last = batch_last
        self.needs_input = any(fn.needs_input for fn in self.functions)
        self.fast = all(fn.name in _FAST for fn in self.functions)
        self.all_tanh = all(fn.name == "tanh" for fn in self.functions)
        self.dtype = dtype
        self._rows = None

    def _blocks(self, a):
        u = self.units
        if self.batch_last:
            return [a[k * u:(k + 1) * u] for k in range(len(self.functions))]
        return [a[..., k * u:(k + 1) * u] for k in range(len(self.functions))]

    def _batch(self, a) -> int:
        return a.shape[-1] if self.batch_last else a.shape[0]

    def _sigmoid_columns(self):
        return xp.concatenate([xp.full(self.units, fn.name == "sigmoid")
                               for fn in self.functions])

    def _row_constants(self, batch):
        """Per-column constants of the fast path, as full (batch, G*U) arrays (element-wise
        ops on equal shapes are several times faster than broadcasting a row)::

            tanh:    a = tanh(z),                 a' = (1 - a) (a + 1)
            sigmoid: a = tanh(z / 2) / 2 + 1 / 2,  a' = (1 - a) (a + 0)
        """
        if self._rows is None or self._rows[0].shape[-1 if self.batch_last else 0] != batch:
            is_sigmoid = self._sigmoid_columns()
            columns = [xp.where(is_sigmoid, 0.5, 1.0), xp.where(is_sigmoid, 0.5, 0.0),
                       xp.where(is_sigmoid, 0.0, 1.0)]
            shape = (batch, is_sigmoid.shape[0])
            if self.batch_last:
                shape, columns = shape[::-1], [column[:, None] for column in columns]
            self._rows = [xp.ascontiguousarray(xp.broadcast_to(c.astype(self.dtype), shape))
                          for c in columns]
            self._scratch = xp.empty(shape, dtype=self.dtype)
        return self._rows

    def input_scale(self):
        """(G*U,) factors by which a caller may multiply the pre-activations' gate units
        before ``activate_scaled`` (folded into its weights: 1/2 on the fast path's sigmoid
        units); None where ``activate_scaled`` is ``activate``."""
        if not self.fast or self.all_tanh:
            return None
        return xp.where(self._sigmoid_columns(), 0.5, 1.0).astype(self.dtype)

    def activate(self, z, out=None):
        out = z if out is None else out
        if self.fast and not self.all_tanh:
            scale, _, _ = self._row_constants(self._batch(z))
            xp.multiply(z, scale, out=out)
            z = out
        return self.activate_scaled(z, out)

    def activate_scaled(self, z, out=None):
        """``activate`` of pre-activations already multiplied by ``input_scale()``."""
        out = z if out is None else out
        if self.all_tanh:
            xp.tanh(z, out=out)
        elif self.fast:
            scale, shift, _ = self._row_constants(self._batch(z))
            xp.tanh(z, out=out)
            out *= scale
            out += shift
        else:
            for fn, z_k, out_k in zip(self.functions, self._blocks(z), self._blocks(out)):
                out_k[...] = fn.forward(z_k)
        return out

    def derivative(self, a, z, out):
        if self.all_tanh:
            xp.multiply(a, a, out=out)
            xp.subtract(1, out, out=out)
        elif self.fast:
            _, _, derivative_shift = self._row_constants(self._batch(a))
            xp.subtract(1, a, out=out)
            out *= xp.add(a, derivative_shift, out=self._scratch)
        else:
            zs = self._blocks(z) if z is not None else [None] * len(self.functions)
            for fn, a_k, z_k, out_k in zip(self.functions, self._blocks(a), zs, self._blocks(out)):
                activation_derivative(fn, a_k, z_k, out_k)
        return out


def buffer(shape, like, workspace=None, name=None):
    """An uninitialised array of ``like``'s dtype; taken from ``workspace`` (a dict the caller
    keeps between calls) when given, so that large buffers are not mapped afresh every call."""
    if workspace is None:
        return xp.empty(shape, dtype=like.dtype)
    buffer = workspace.get(name)
    if buffer is None or buffer.shape != tuple(shape) or buffer.dtype != like.dtype:
        buffer = workspace[name] = xp.empty(shape, dtype=like.dtype)
    return buffer


def _carry_in(grad, shape, like):
    """A fresh buffer holding ``grad`` (or zeros): the gradient flowing into the last step."""
    buffer = xp.zeros(shape, dtype=like.dtype)
    if grad is not None:
        buffer += grad
    return buffer


class StepMask:
    """A (T, N) boolean step mask as the float factors the kernels multiply by.

    ``keep(t)`` (N, 1) is 1 where step ``t`` of a sample counts; ``hold(t, grad)`` splits
    ``grad`` into the part for the step (returned in place, zero at skipped steps) and the
    part that passes the step unchanged (returned as a new array)."""

    def __init__(self, mask, like, batch_last: bool = False):
        if mask.ndim != 2 or mask.shape != like.shape[:2]:
            raise ValueError(f"the step mask must be (time steps, batch) = {like.shape[:2]}, "
                             f"got {tuple(mask.shape)}")
        index = (slice(None), None, slice(None)) if batch_last else (Ellipsis, None)
        self.factors = xp.asarray(mask, dtype=like.dtype)[index]
        self.skipped = ~xp.asarray(mask, dtype=bool)[index]

    def keep_previous(self, t, new, previous) -> None:
        """Where step ``t`` is skipped, ``new`` (N, U) takes the values of ``previous``."""
        xp.copyto(new, previous, where=self.skipped[t])

    def hold(self, t, grad):
        passed = grad * (1 - self.factors[t])
        grad *= self.factors[t]
        return passed


def _step_mask(mask, like, batch_last=False):
    return None if mask is None else StepMask(mask, like, batch_last)


def _dropped(h, recurrent_mask, out=None):
    """``h * recurrent_mask`` (``h`` itself when there is no recurrent dropout)."""
    if recurrent_mask is None:
        return h
    return xp.multiply(h, recurrent_mask, out=out)


def _sum_over_steps(a, b):
    """``sum_t a[t].T @ b[t]`` as one GEMM: a (T, N, P), b (T, N, Q) -> (P, Q)."""
    return a.reshape(-1, a.shape[-1]).T @ b.reshape(-1, b.shape[-1])


# -- SimpleRNN -----------------------------------------------------------------------------

def simple_rnn_forward(xw, h0, recurrent_kernel, activation, workspace=None, *, mask=None,
                       recurrent_mask=None):
    """``h_t = activation(xw_t + h_{t-1} @ recurrent_kernel.T)``; xw (T, N, U), h0 (N, U)."""
    steps, batch, units = xw.shape
    act = GateActivations([activation], units, xw.dtype)
    steps_mask = _step_mask(mask, xw)
    rt = xp.ascontiguousarray(recurrent_kernel.T)
    h = buffer((steps + 1, batch, units), xw, workspace, "h")  # h[0] = h0, h[t + 1] = h_t
    h[0] = h0
    z = buffer(xw.shape, xw, workspace, "z") if act.needs_input else None
    dropped = None if recurrent_mask is None else xp.empty((batch, units), dtype=xw.dtype)
    for t in range(steps):
        pre = xp.matmul(_dropped(h[t], recurrent_mask, dropped), rt, out=h[t + 1])
        pre += xw[t]
        if z is not None:
            z[t] = pre
        act.activate(pre)
        if steps_mask is not None:
            steps_mask.keep_previous(t, h[t + 1], h[t])
    cache = (h, z, recurrent_kernel, act, workspace, steps_mask, recurrent_mask)
    return h[1:], [h[-1]], cache


def simple_rnn_backward(cache, dh_seq, final_state_grads):
    h, z, recurrent_kernel, act, workspace, steps_mask, recurrent_mask = cache
    steps = h.shape[0] - 1
    dxw = buffer((steps, *h.shape[1:]), h, workspace, "dxw")
    dh = _carry_in(final_state_grads[0], h[0].shape, h)
    for t in range(steps - 1, -1, -1):
        if dh_seq is not None:
            dh += dh_seq[t]
        passed = None if steps_mask is None else steps_mask.hold(t, dh)
        act.derivative(h[t + 1], None if z is None else z[t], out=dxw[t])
        dxw[t] *= dh
        xp.matmul(dxw[t], recurrent_kernel, out=dh)
        _dropped(dh, recurrent_mask, out=dh)
        if passed is not None:
            dh += passed
    return dxw, [dh], [_sum_over_steps(dxw, _dropped(h[:-1], recurrent_mask))]


# -- LSTM ----------------------------------------------------------------------------------
#
# The LSTM works batch-last inside: every per-step array is (rows, N), so that each gate block
# (U, N) is contiguous (element-wise work on column blocks of (N, 4U) rows cost up to 6x
# more), and its one GEMM per step is ``weights (4U, U + F + 1) @ [h_{t-1}; x_t; 1] (.., N)``.
# The columns ``[h_{t-1}; x_t; 1]`` live in one (U + F + 1, T + 1, N) buffer, so that those of
# all steps are one (U + F + 1, T * N) matrix for the weight gradients' one GEMM.
# At N = 32 a NumPy call costs about as much as its arithmetic, so the hot loops bind the
# array module's functions once and do per step only what depends on the previous step.

def lstm_weights(kernel, recurrent_kernel, bias, scale=None):
    """The weights of the LSTM's one GEMM per step, (4U, U + F [+ 1]): the columns
    ``[recurrent_kernel, kernel, bias]`` (no bias column when ``bias`` is None), each row
    multiplied by ``scale`` (4U,) when given."""
    blocks = [recurrent_kernel, kernel] + ([] if bias is None else [bias[:, None]])
    weights = xp.concatenate(blocks, axis=1)
    if scale is not None:
        weights *= scale[:, None]
    return weights


def lstm_exp_scale(gate_fns):
    """(4U,) factors folded into the weights of the exp-based fast path: -1 on sigmoid gate
    rows, -2 on tanh gate rows, so that one ``exp`` of the GEMM's output serves every gate."""
    return xp.concatenate([xp.full(gate_fns.units, -1.0 if fn.name == "sigmoid" else -2.0,
                                   dtype=gate_fns.dtype) for fn in gate_fns.functions])


def _overflow_ignored(module):
    """NumPy's errstate(over="ignore") (a no-op context for array modules without one)."""
    errstate = getattr(module, "errstate", None)
    return contextlib.nullcontext() if errstate is None else errstate(over="ignore")


def lstm_forward(x, h0, c0, kernel, recurrent_kernel, bias, activation, recurrent_activation,
                 workspace=None, *, mask=None, recurrent_mask=None):
    """One LSTM layer over T steps (gates ``i, f, g, o``; ``act`` = activation,
    ``sig`` = recurrent_activation)::

        i, f, o = sig(.), g = act(.)  of  x_t @ kernel.T + h_{t-1} @ recurrent_kernel.T + bias
        c_t = f * c_{t-1} + i * g;   h_t = o * act(c_t)

    x (T, N, F) time-major inputs (any layout or float dtype; copied once), kernel (4U, F),
    recurrent_kernel (4U, U), bias (4U,) or None, h0 and c0 (N, U). Each step is ONE GEMM
    with ``lstm_weights``: the columns ``[h_{t-1}; x_t; 1]`` of every step sit in one
    (U + F + 1, T + 1, N) buffer, so the input projection and the bias cost no pass of their
    own, and the backward pass gets all three weight gradients from it in one GEMM. With
    sigmoid and tanh gates and a tanh cell, one ``exp`` per step activates every gate (one
    exp costs about half a tanh): the weights' rows are multiplied by -1 (sigmoid) and -2
    (tanh), and ``sigmoid(z) = 1 / (1 + exp(-z))``, ``tanh(z) = 2 sigmoid(2z) - 1``.
    Returns ``(h, [h_T, c_T], cache)``: ``h`` (T, N, U) and the states (N, U) are views of
    the workspace's buffers.
    """
    m = array_module()
    multiply, matmul = m.multiply, m.matmul
    steps, batch, features = x.shape
    u = recurrent_kernel.shape[1]
    like = recurrent_kernel
    gate_fns = GateActivations([recurrent_activation, recurrent_activation, activation,
                                recurrent_activation], u, like.dtype, batch_last=True)
    cell_fn = GateActivations([activation], u, like.dtype, batch_last=True)
    by_exp = gate_fns.fast and cell_fn.all_tanh
    scale = lstm_exp_scale(gate_fns) if by_exp else gate_fns.input_scale()
    weights = lstm_weights(kernel, recurrent_kernel, bias, scale)
    width = weights.shape[1]
    # hx[:, t] = [h_{t-1} (dropped); x_t; 1] of step t; h_T lands in hx[:u, T]
    hx = buffer((width, steps + 1, batch), like, workspace, "hx")
    hx[u:u + features, :steps] = x.transpose(2, 0, 1)
    if bias is not None:
        hx[-1] = 1
    if recurrent_mask is None:
        h = hx[:u].transpose(1, 0, 2)  # (T + 1, U, N) view: h[t] = h_t
    else:
        h = buffer((steps + 1, u, batch), like, workspace, "h")
        recurrent_mask = m.ascontiguousarray(recurrent_mask.T)
    gates = buffer((steps, 4 * u, batch), like, workspace, "gates")  # activated i, f, g, o
    z = buffer(gates.shape, like, workspace, "z") if gate_fns.needs_input else None
    c = buffer((steps + 1, u, batch), like, workspace, "c")
    act_c = buffer((steps, u, batch), like, workspace, "act_c")
    h[0], c[0] = h0.T, c0.T
    input_times_candidate = m.empty((u, batch), dtype=like.dtype)
    steps_mask = _step_mask(mask, x, batch_last=True)
    columns = hx.transpose(1, 0, 2)  # columns[t] = hx[:, t]
    i_gate, f_gate, g_gate, o_gate = (gates[:, k * u:(k + 1) * u] for k in range(4))
    tanh_rows = [gates[:, k * u:(k + 1) * u] for k, fn in enumerate(gate_fns.functions)
                 if fn.name == "tanh"]
    with _overflow_ignored(m):  # exp(-z) of a very negative z is inf: a gate of exactly 0
        for t in range(steps):
            if recurrent_mask is not None:
                multiply(h[t], recurrent_mask, out=columns[t, :u])
            pre = matmul(weights, columns[t], out=gates[t])
            if z is not None:
                z[t] = pre
            if by_exp:  # pre = -z (sigmoid rows), -2z (tanh rows)
                m.exp(pre, out=pre)
                pre += 1
                m.reciprocal(pre, out=pre)  # sigmoid(z) = 1 / (1 + exp(-z))
                for rows in tanh_rows:      # tanh(z) = 2 sigmoid(2z) - 1
                    rows_t = rows[t]
                    rows_t *= 2
                    rows_t -= 1
            else:
                gate_fns.activate_scaled(pre)
            multiply(f_gate[t], c[t], out=c[t + 1])
            c[t + 1] += multiply(i_gate[t], g_gate[t], out=input_times_candidate)
            if by_exp:
                m.tanh(c[t + 1], out=act_c[t])
            else:
                cell_fn.activate(c[t + 1], out=act_c[t])
            multiply(o_gate[t], act_c[t], out=h[t + 1])
            if steps_mask is not None:
                steps_mask.keep_previous(t, h[t + 1], h[t])
                steps_mask.keep_previous(t, c[t + 1], c[t])
    cache = (gates, z, hx, c, act_c, recurrent_kernel, features, bias is not None, gate_fns,
             cell_fn, workspace, steps_mask, recurrent_mask)
    return h[1:].transpose(0, 2, 1), [h[-1].T, c[-1].T], cache


def _lstm_step_factors(gates, z, c, act_c, gate_fns, cell_fn, workspace):
    """What the backward pass multiplies the carried gradients by, for all T steps at once.

    Returns ``(gate_factors, cell_factors)``: ``gate_factors`` (T, 4U, N), the rows
    ``[g i', c_{t-1} f', i g', act(c_t) o']`` (``'``: the gate activation's derivative at its
    pre-activation), so that ``d loss / d pre-activation`` of step ``t`` is ``dc_t`` times
    the first three blocks and ``dh_t`` times the last; ``cell_factors`` (T, U, N),
    ``act'(c_t) o``, the factor from ``dh_t`` to ``dc_t``.
    """
    u = c.shape[1]
    gate_factors = buffer(gates.shape, gates, workspace, "gate_factors")
    cell_factors = buffer(act_c.shape, act_c, workspace, "cell_factors")
    i_rows, f_rows, g_rows, o_rows = (slice(k * u, (k + 1) * u) for k in range(4))
    rec, _, act, _ = gate_fns.functions  # act is the cell's activation as well
    i, f, g, o = (gates[:, rows] for rows in (i_rows, f_rows, g_rows, o_rows))
    if gate_fns.fast:
        # The factors pair up around the products i g and o act(c_t) (13 passes, not 15);
        # the f rows hold each product until their own factor replaces it.
        product = gate_factors[:, f_rows]
        xp.multiply(i, g, out=product)
        derivative_times(rec, i, g, product, gate_factors[:, i_rows])
        derivative_times(act, g, i, product, gate_factors[:, g_rows])
        xp.multiply(o, act_c, out=product)
        derivative_times(rec, o, act_c, product, gate_factors[:, o_rows])
        derivative_times(act, act_c, o, product, cell_factors)
        activation_derivative(rec, f, None, product)
        product *= c[:-1]
        return gate_factors, cell_factors
    for k, fn in enumerate(gate_fns.functions):
        rows = slice(k * u, (k + 1) * u)
        activation_derivative(fn, gates[:, rows], None if z is None else z[:, rows],
                              gate_factors[:, rows])
    gate_factors[:, i_rows] *= g
    gate_factors[:, f_rows] *= c[:-1]
    gate_factors[:, g_rows] *= i
    gate_factors[:, o_rows] *= act_c
    activation_derivative(cell_fn.functions[0], act_c, c[1:], cell_factors)
    cell_factors *= o
    return gate_factors, cell_factors


def derivative_times(fn, a, b, product, out):
    """``out`` = ``fn``'s derivative (``fn`` sigmoid or tanh, output ``a``) times ``b``, in
    two passes from ``product`` = ``a * b``: ``product (1 - a)`` for sigmoid, ``b - product a``
    for tanh (``b (1 - a^2)``)."""
    if fn.name == "sigmoid":
        xp.subtract(1, a, out=out)
        out *= product
    elif fn.name == "tanh":
        xp.multiply(product, a, out=out)
        xp.subtract(b, out, out=out)
    else:
        raise ValueError(f"derivative_times takes sigmoid or tanh, got {fn.name!r}")
    return out


def activation_derivative(fn, a, z, out):
    """``out`` = the element-wise derivative of activation ``fn`` with output ``a`` (at the
    pre-activation ``z``, read only when ``fn.needs_input``); any shape."""
    if fn.name == "sigmoid":
        xp.subtract(1, a, out=out)
        out *= a
    elif fn.name == "tanh":
        xp.multiply(a, a, out=out)
        xp.subtract(1, out, out=out)
    else:
        out[...] = fn.backward(xp.ones_like(a), z, a)
    return out


def lstm_backward(cache, dh_seq, final_state_grads):
    """Returns ``(dxw, [dh0, dc0], [d_kernel, d_recurrent_kernel(, d_bias)])``: ``dxw``
    (T, N, 4U) the gradient with respect to the pre-activations (a view whose
    ``reshape(T * N, 4U)`` is a view as well; the input gradient is ``dxw @ kernel``); the
    three weight gradients come from one GEMM over all steps."""
    (gates, z, hx, c, act_c, recurrent_kernel, features, has_bias, gate_fns, cell_fn,
     workspace, steps_mask, recurrent_mask) = cache
    m = array_module()
    multiply, matmul = m.multiply, m.matmul
    steps, four_units, batch = gates.shape
    u = four_units // 4
    if dh_seq is not None:
        dh_seq = m.ascontiguousarray(dh_seq.transpose(0, 2, 1))
    gate_factors, cell_factors = _lstm_step_factors(gates, z, c, act_c, gate_fns, cell_fn,
                                                    workspace)
    # d loss / d pre-activations of one step (4U, N), copied into the gate-major dxw
    d = m.empty((four_units, batch), dtype=gates.dtype)
    by_cell, by_output = d[:3 * u].reshape(3, u, batch), d[3 * u:]
    cell_rows = gate_factors[:, :3 * u].reshape(steps, 3, u, batch)
    output_rows = gate_factors[:, 3 * u:]
    f_gate = gates[:, u:2 * u]
    dh_to_dc = m.empty((u, batch), dtype=gates.dtype)
    recurrent_t = m.ascontiguousarray(recurrent_kernel.T)  # 1.4x faster GEMMs than the view
    dxw = buffer((four_units, steps, batch), gates, workspace, "dxw")
    dh = _carry_in(_transposed(final_state_grads[0]), (u, batch), gates)
    dc = _carry_in(_transposed(final_state_grads[1]), (u, batch), gates)
    for t in range(steps - 1, -1, -1):
        if dh_seq is not None:
            dh += dh_seq[t]
        passed = None if steps_mask is None else (steps_mask.hold(t, dh), steps_mask.hold(t, dc))
        dc += multiply(dh, cell_factors[t], out=dh_to_dc)
        multiply(dc, cell_rows[t], out=by_cell)
        multiply(dh, output_rows[t], out=by_output)
        dc *= f_gate[t]
        matmul(recurrent_t, d, out=dh)
        dxw[:, t] = d
        if recurrent_mask is not None:
            dh *= recurrent_mask
        if passed is not None:
            dh += passed[0]
            dc += passed[1]
    width = hx.shape[0]
    # [d_recurrent_kernel, d_kernel, d_bias] side by side, as the rows [h_{t-1}; x_t; 1]
    grads = matmul(dxw.reshape(four_units, -1), hx[:, :steps].reshape(width, -1).T)
    weight_grads = [grads[:, u:u + features], grads[:, :u]] + ([grads[:, -1]] if has_bias else [])
    return (dxw.transpose(1, 2, 0), [dh.T.copy(), dc.T.copy()],
            [m.ascontiguousarray(grad) for grad in weight_grads])


def _transposed(grad):
    return None if grad is None else grad.T


# -- GRU -----------------------------------------------------------------------------------

def gru_forward(xw, h0, recurrent_kernel, recurrent_bias, activation, recurrent_activation,
                reset_after=True, workspace=None, *, mask=None, recurrent_mask=None):
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
    gate_fns = GateActivations([recurrent_activation, recurrent_activation], u, xw.dtype)
    candidate_fn = GateActivations([activation], u, xw.dtype)
    rt = xp.ascontiguousarray(recurrent_kernel.T)
    gates = buffer(xw.shape, xw, workspace, "gates")  # activated z, r, n
    keep_z = gate_fns.needs_input or candidate_fn.needs_input
    z_pre = buffer(xw.shape, xw, workspace, "z") if keep_z else None
    h = buffer((steps + 1, batch, u), xw, workspace, "h")
    h[0] = h0
    # reset_after: h R.T + b of every step; else r * h of every step
    memo = buffer(xw.shape if reset_after else (steps, batch, u), xw, workspace, "memo")
    steps_mask = _step_mask(mask, xw)
    dropped = None if recurrent_mask is None else xp.empty((batch, u), dtype=xw.dtype)
    for t in range(steps):
        pre = gates[t]
        h_in = _dropped(h[t], recurrent_mask, dropped)  # h_{t-1} where it meets the kernel
        if reset_after:
            xp.matmul(h_in, rt, out=memo[t])
            if recurrent_bias is not None:
                memo[t] += recurrent_bias
            xp.add(xw[t, :, :2 * u], memo[t, :, :2 * u], out=pre[:, :2 * u])
        else:
            xp.matmul(h_in, rt[:, :2 * u], out=pre[:, :2 * u])
            pre[:, :2 * u] += xw[t, :, :2 * u]
        if keep_z:
            z_pre[t, :, :2 * u] = pre[:, :2 * u]
        gate_fns.activate(pre[:, :2 * u])
        update, reset, candidate = pre[:, :u], pre[:, u:2 * u], pre[:, 2 * u:]
        if reset_after:
            xp.multiply(reset, memo[t, :, 2 * u:], out=candidate)
        else:
            xp.multiply(reset, h_in, out=memo[t])
            xp.matmul(memo[t], rt[:, 2 * u:], out=candidate)
        candidate += xw[t, :, 2 * u:]
        if keep_z:
            z_pre[t, :, 2 * u:] = candidate
        candidate_fn.activate(candidate)
        # h_t = n + z * (h_{t-1} - n)
        xp.subtract(h[t], candidate, out=h[t + 1])
        h[t + 1] *= update
        h[t + 1] += candidate
        if steps_mask is not None:
            steps_mask.keep_previous(t, h[t + 1], h[t])
    cache = (gates, z_pre, h, memo, recurrent_kernel, gate_fns, candidate_fn, reset_after,
             workspace, steps_mask, recurrent_mask)
    return h[1:], [h[-1]], cache


def gru_backward(cache, dh_seq, final_state_grads):
    """Returns ``(dxw, [dh0], [d_recurrent_kernel, d_recurrent_bias])`` (the bias gradient
    only with ``reset_after``)."""
    (gates, z_pre, h, memo, recurrent_kernel, gate_fns, candidate_fn, reset_after,
     workspace, steps_mask, recurrent_mask) = cache
    steps, batch, three_units = gates.shape
    u = three_units // 3
    r_n, r_zr = recurrent_kernel[2 * u:], recurrent_kernel[:2 * u]
    dxw = buffer(gates.shape, gates, workspace, "dxw")
    # gradient w.r.t. h R.T + b (reset_after) or w.r.t. r * h (not reset_after)
    dmemo = buffer(memo.shape, gates, workspace, "dmemo")
    local = buffer((batch, three_units), gates)
    dh = _carry_in(final_state_grads[0], (batch, u), gates)
    for t in range(steps - 1, -1, -1):
        if dh_seq is not None:
            dh += dh_seq[t]
        passed = None if steps_mask is None else steps_mask.hold(t, dh)
        a, zt = gates[t], None if z_pre is None else z_pre[t]
        update, reset, candidate = a[:, :u], a[:, u:2 * u], a[:, 2 * u:]
        gate_fns.derivative(a[:, :2 * u], None if zt is None else zt[:, :2 * u], out=local[:, :2 * u])
        candidate_fn.derivative(candidate, None if zt is None else zt[:, 2 * u:], out=local[:, 2 * u:])
        d = dxw[t]  # d loss / d pre-activations z, r, n
        xp.subtract(h[t], candidate, out=d[:, :u])
        xp.subtract(1, update, out=d[:, 2 * u:])
        d[:, :u] *= dh
        d[:, 2 * u:] *= dh
        d[:, 2 * u:] *= local[:, 2 * u:]
        if reset_after:
            xp.multiply(d[:, 2 * u:], memo[t, :, 2 * u:], out=d[:, u:2 * u])
            d[:, :2 * u] *= local[:, :2 * u]
            dmemo[t, :, :2 * u] = d[:, :2 * u]
            xp.multiply(d[:, 2 * u:], reset, out=dmemo[t, :, 2 * u:])
            dh *= update
            dh += _dropped(dmemo[t] @ recurrent_kernel, recurrent_mask)
        else:
            d_rh = d[:, 2 * u:] @ r_n
            xp.multiply(d_rh, _dropped(h[t], recurrent_mask), out=d[:, u:2 * u])
            d[:, :2 * u] *= local[:, :2 * u]
            xp.multiply(d_rh, reset, out=dmemo[t])
            dh *= update
            d_in = dmemo[t] + d[:, :2 * u] @ r_zr  # gradient w.r.t. the dropped h_{t-1}
            dh += _dropped(d_in, recurrent_mask, out=d_in)
        if passed is not None:
            dh += passed
    h_in = _dropped(h[:-1], recurrent_mask)
    if reset_after:
        return dxw, [dh], [_sum_over_steps(dmemo, h_in), dmemo.sum(axis=(0, 1))]
    d_recurrent = xp.concatenate([_sum_over_steps(dxw[:, :, :2 * u], h_in),
                                  _sum_over_steps(dxw[:, :, 2 * u:], memo)], axis=0)
    return dxw, [dh], [d_recurrent]
