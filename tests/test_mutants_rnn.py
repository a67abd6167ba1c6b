"""What the mutation run of 2026-12-01 found unchecked in cnn.ops.rnn (docs/TESTING.md).

The recurrent kernels keep their large buffers in a ``workspace`` dict between batches, so
that a long sequence does not map (and fault in) hundreds of megabytes afresh every step of
training. A mutant that dropped the workspace gave the same numbers and survived: this test
holds the kernels to the reuse (not to the names of the buffers, which only have to differ).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from cnn import activations
from cnn.ops import reference_rnn as ref
from cnn.ops import rnn as rnn_ops

T, N, U = 4, 3, 2
TANH, SIGMOID = activations.get("tanh"), activations.get("sigmoid")


def run(cell, workspace, rng):
    """Forward and backward of ``cell`` once; returns the backward's ``dxw``."""
    blocks = {"simple_rnn": 1, "lstm": 4, "gru": 3}[cell]
    xw = rng.standard_normal((T, N, blocks * U))
    h0 = rng.standard_normal((N, U))
    kernel = rng.standard_normal((blocks * U, U))
    if cell == "simple_rnn":
        _, _, cache = rnn_ops.simple_rnn_forward(xw, h0, kernel, TANH, workspace)
        backward = rnn_ops.simple_rnn_backward
    elif cell == "lstm":
        x = rng.standard_normal((T, N, 3))
        _, _, cache = rnn_ops.lstm_forward(x, h0, h0.copy(), rng.standard_normal((4 * U, 3)),
                                           kernel, rng.standard_normal(4 * U), TANH, SIGMOID,
                                           workspace)
        backward = rnn_ops.lstm_backward
    else:
        _, _, cache = rnn_ops.gru_forward(xw, h0, kernel, rng.standard_normal(3 * U), TANH,
                                          SIGMOID, True, workspace)
        backward = rnn_ops.gru_backward
    dxw, _, _ = backward(cache, rng.standard_normal((T, N, U)), [None] * (1 + (cell == "lstm")))
    return dxw


def owner(array):
    """The buffer ``array`` is (the LSTM returns a transposed view of its buffer)."""
    return array if array.base is None else array.base


@pytest.mark.parametrize("cell", ["simple_rnn", "lstm", "gru"])
def test_backward_reuses_its_workspace_buffer(cell):
    rng = np.random.default_rng(0)
    workspace = {}
    first = run(cell, workspace, rng)
    assert any(kept is owner(first) for kept in workspace.values())
    kept = list(workspace.values())
    assert len({id(array) for array in kept}) == len(kept)  # no buffer kept under two names
    second = run(cell, workspace, rng)
    assert owner(second) is owner(first)  # the same buffer, not a new one of the same shape
    assert second.shape == (T, N, {"simple_rnn": 1, "lstm": 4, "gru": 3}[cell] * U)


def test_gru_backward_keeps_both_of_its_large_buffers():
    """``dxw`` and the gradient of the memo (both (T, N, 3U) with ``reset_after``) live in the
    workspace, and the next batch gets the same two arrays (run of 2026-12-01 17:30)."""
    rng = np.random.default_rng(0)
    workspace = {}
    xw = rng.standard_normal((T, N, 3 * U))
    h0 = rng.standard_normal((N, U))
    kernel = rng.standard_normal((3 * U, U))
    _, _, cache = rnn_ops.gru_forward(xw, h0, kernel, rng.standard_normal(3 * U), TANH,
                                      SIGMOID, True, workspace)
    forward_buffers = {id(array) for array in workspace.values()}
    rnn_ops.gru_backward(cache, rng.standard_normal((T, N, U)), [None])
    backward_buffers = {id(array) for array in workspace.values()} - forward_buffers
    assert len(backward_buffers) == 2
    assert all(workspace_array.shape == (T, N, 3 * U) for workspace_array in workspace.values()
               if id(workspace_array) in backward_buffers)
    rnn_ops.gru_backward(cache, rng.standard_normal((T, N, U)), [None])
    assert {id(array) for array in workspace.values()} - forward_buffers == backward_buffers


def test_gru_forward_defaults_to_reset_after_as_keras():
    """Keras's GRU (and PyTorch's) applies the reset gate after the recurrent product; the
    kernel's default must agree with the layer's (run of 2026-12-01 17:30)."""
    rng = np.random.default_rng(1)
    xw = rng.standard_normal((T, N, 3 * U))
    h0 = rng.standard_normal((N, U))
    kernel = rng.standard_normal((3 * U, U))
    bias = rng.standard_normal(3 * U)
    default, _, _ = rnn_ops.gru_forward(xw, h0, kernel, bias, TANH, SIGMOID)
    after, _, _ = rnn_ops.gru_forward(xw, h0, kernel, bias, TANH, SIGMOID, True)
    before, _, _ = rnn_ops.gru_forward(xw, h0, kernel, None, TANH, SIGMOID, False)
    np.testing.assert_array_equal(default, after)
    assert not np.allclose(default, before)


def test_gru_forward_keeps_its_gate_buffer():
    """The activated gates (T, N, 3U) of every step, the states and the memo are kept in the
    workspace, and the next batch gets the same arrays."""
    rng = np.random.default_rng(2)
    workspace = {}
    xw = rng.standard_normal((T, N, 3 * U))
    args = (rng.standard_normal((N, U)), rng.standard_normal((3 * U, U)),
            rng.standard_normal(3 * U), TANH, SIGMOID, True, workspace)
    first = rnn_ops.gru_forward(xw, *args)[2][0]
    kept = {id(array) for array in workspace.values()}
    assert len(kept) == 3  # the gates, the states h and the memo h R.T + b
    second = rnn_ops.gru_forward(xw + 1, *args)[2][0]
    assert second is first and first.shape == (T, N, 3 * U)
    assert any(kept is first for kept in workspace.values())
    assert {id(array) for array in workspace.values()} == kept


@pytest.mark.parametrize("activation, keeps", [("tanh", False), ("gelu", True)])
def test_gru_forward_keeps_pre_activations_only_for_an_activation_that_reads_them(activation,
                                                                                  keeps):
    """tanh's and sigmoid's derivatives come from their outputs: no (T, N, 3U) copy of the
    pre-activations; gelu's needs its input, kept in the workspace between batches."""
    rng = np.random.default_rng(3)
    workspace = {}
    xw = rng.standard_normal((T, N, 3 * U))
    args = (rng.standard_normal((N, U)), rng.standard_normal((3 * U, U)),
            rng.standard_normal(3 * U), activations.get(activation), SIGMOID, True, workspace)
    first = rnn_ops.gru_forward(xw, *args)[2][1]
    assert (first is not None) == keeps
    if keeps:
        assert rnn_ops.gru_forward(xw + 1, *args)[2][1] is first
        assert any(kept is first for kept in workspace.values())


def simple_rnn_args(rng, activation="tanh", workspace=None):
    """Arguments of ``simple_rnn_forward`` after ``xw``."""
    return (rng.standard_normal((N, U)), rng.standard_normal((U, U)),
            activations.get(activation), workspace)


def test_simple_rnn_forward_keeps_its_state_buffer():
    """The states h (T + 1, N, U) of every step live in the workspace, and the next batch gets
    the same array (run of 2026-12-01 19:50)."""
    rng = np.random.default_rng(4)
    workspace = {}
    xw = rng.standard_normal((T, N, U))
    args = simple_rnn_args(rng, workspace=workspace)
    first = rnn_ops.simple_rnn_forward(xw, *args)[2][0]
    assert first.shape == (T + 1, N, U)
    assert [kept is first for kept in workspace.values()] == [True]
    second = rnn_ops.simple_rnn_forward(xw + 1, *args)[2][0]
    assert second is first


@pytest.mark.parametrize("activation, keeps", [("tanh", False), ("sigmoid", False),
                                               ("gelu", True)])
def test_simple_rnn_forward_keeps_pre_activations_only_for_an_activation_that_reads_them(
        activation, keeps):
    """tanh's and sigmoid's derivatives come from their outputs: no (T, N, U) copy of the
    pre-activations; gelu's needs its input, kept in the workspace between batches."""
    rng = np.random.default_rng(5)
    workspace = {}
    xw = rng.standard_normal((T, N, U))
    args = simple_rnn_args(rng, activation, workspace)
    first = rnn_ops.simple_rnn_forward(xw, *args)[2][1]
    assert (first is not None) == keeps
    assert len(workspace) == 1 + keeps  # the states h, and the pre-activations if kept
    if keeps:
        assert rnn_ops.simple_rnn_forward(xw + 1, *args)[2][1] is first
        assert any(kept is first for kept in workspace.values())


WIDE = 16  # units enough for float32 and float64 products of 16 terms to round differently


def float32_forward(cell, recurrent_mask):
    """The float32 outputs (T, N, WIDE) of ``cell``'s forward on fixed random data."""
    rng = np.random.default_rng(6)
    blocks = {"simple_rnn": 1, "gru": 3}[cell]
    xw = rng.standard_normal((T, N, blocks * WIDE)).astype(np.float32)
    h0 = rng.standard_normal((N, WIDE)).astype(np.float32)
    kernel = (rng.standard_normal((blocks * WIDE, WIDE)) / 4).astype(np.float32)
    if cell == "simple_rnn":
        h, _, _ = rnn_ops.simple_rnn_forward(xw, h0, kernel, TANH,
                                             recurrent_mask=recurrent_mask)
    else:
        bias = rng.standard_normal(3 * WIDE).astype(np.float32)
        h, _, _ = rnn_ops.gru_forward(xw, h0, kernel, bias, TANH, SIGMOID, True,
                                      recurrent_mask=recurrent_mask)
    return h


@pytest.mark.parametrize("cell", ["simple_rnn", "gru"])
def test_a_recurrent_dropout_mask_of_ones_changes_no_bit_in_float32(cell):
    """Recurrent dropout at rate 0 multiplies the state by 1: the result must be the one
    without dropout bit for bit. A dropped state kept in float64 would send every step's
    recurrent product through a float64 GEMM (rounding differently, and casting the kernel
    to float64 every step)."""
    ones = np.ones((N, WIDE), dtype=np.float32)
    with_mask = float32_forward(cell, ones)
    assert with_mask.dtype == np.float32
    np.testing.assert_array_equal(with_mask, float32_forward(cell, None))


def lstm_inputs(rng, scale=1.0):
    """Arguments of ``lstm_forward`` up to its activations: x (T, N, 3), h0, c0, kernel,
    recurrent_kernel, bias, with the inputs multiplied by ``scale``."""
    return (scale * rng.standard_normal((T, N, 3)), rng.standard_normal((N, U)),
            rng.standard_normal((N, U)), rng.standard_normal((4 * U, 3)),
            rng.standard_normal((4 * U, U)), rng.standard_normal(4 * U))


def test_lstm_backward_keeps_its_large_buffers():
    """The backward's three (T, ., N) buffers (the per-step factors of the gates and of the
    cell, and ``dxw``) live in the workspace, and the next batch gets the same arrays (run of
    2026-12-01 20:30)."""
    rng = np.random.default_rng(7)
    workspace = {}
    _, _, cache = rnn_ops.lstm_forward(*lstm_inputs(rng), TANH, SIGMOID, workspace)
    forward_buffers = {id(array) for array in workspace.values()}
    rnn_ops.lstm_backward(cache, rng.standard_normal((T, N, U)), [None, None])
    backward = {id(array): array.shape for array in workspace.values()
                if id(array) not in forward_buffers}
    assert sorted(backward.values()) == sorted([(T, 4 * U, N), (T, U, N), (4 * U, T, N)])
    rnn_ops.lstm_backward(cache, rng.standard_normal((T, N, U)), [None, None])
    assert {id(array) for array in workspace.values()} - forward_buffers == set(backward)


def test_lstm_forward_saturates_its_gates_without_a_floating_point_error():
    """The fast path computes ``sigmoid(z) = 1 / (1 + exp(-z))``: ``exp`` overflows to inf
    for a very negative gate, whose value is then exactly 0. That overflow is expected, so the
    kernel must neither warn nor raise where the caller's NumPy raises on overflow, and must
    leave the caller's error state as it found it."""
    rng = np.random.default_rng(8)
    before = np.geterr()
    with np.errstate(over="raise"):
        h, (h_last, c_last), cache = rnn_ops.lstm_forward(*lstm_inputs(rng, 1e4), TANH,
                                                           SIGMOID)
        assert np.geterr()["over"] == "raise"
    assert np.geterr() == before
    gates = cache[0]
    assert np.isfinite(h).all() and np.isfinite(c_last).all()
    assert ((gates[:, :2 * U] == 0) | (gates[:, :2 * U] == 1)).mean() > 0.9  # saturated i, f
    assert (gates[:, :2 * U] == 0).any()


def test_activation_derivative_gives_the_activation_a_gradient_like_its_output():
    """A custom activation's ``backward(grad, z, a)`` gets ``grad`` of ones with the shape
    and dtype of ``a`` (not a scalar, nor an object array), and its result lands in ``out``."""
    seen = []

    def backward(grad, z, a):
        seen.append(grad)
        return 2 * grad * a

    doubled = activations.ActivationFunction("doubled", lambda z: z, backward)
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    out = np.empty_like(a)
    assert rnn_ops.activation_derivative(doubled, a, None, out) is out
    (grad,) = seen
    assert isinstance(grad, np.ndarray) and grad.shape == a.shape and grad.dtype == a.dtype
    np.testing.assert_array_equal(grad, np.ones_like(a))
    np.testing.assert_array_equal(out, 2 * a)


class WithoutErrstate:
    """NumPy less ``errstate``, as CuPy is (it has no floating-point error state)."""

    def __getattr__(self, name):
        if name == "errstate":
            raise AttributeError(name)
        return getattr(np, name)


def test_lstm_forward_runs_on_an_array_module_without_errstate(monkeypatch):
    """The overflow guard is NumPy's ``errstate``; on an array module without one (CuPy) the
    kernel runs unguarded and computes the same values."""
    inputs = lstm_inputs(np.random.default_rng(9))
    expected, _, _ = rnn_ops.lstm_forward(*inputs, TANH, SIGMOID)
    expected = expected.copy()
    monkeypatch.setattr(rnn_ops, "array_module", WithoutErrstate)
    got, _, _ = rnn_ops.lstm_forward(*inputs, TANH, SIGMOID)
    np.testing.assert_array_equal(got, expected)


class Float32Only:
    """NumPy, less any float64 array in or out of the functions the kernels call on it."""

    def __getattr__(self, name):
        function = getattr(np, name)
        if not callable(function):
            return function

        def checked(*args, **kwargs):
            result = function(*args, **kwargs)
            for value in [*args, *kwargs.values(), result]:
                if isinstance(value, np.ndarray) and value.dtype == np.float64:
                    raise AssertionError(f"np.{name} of a float64 array in a float32 kernel")
            return result
        return checked


@pytest.mark.parametrize("masks", [False, True])
def test_lstm_kernels_compute_in_float32(monkeypatch, masks):
    """float32 in, float32 arithmetic throughout: a float64 scratch row would send every
    step's GEMM through float64 (casting the weights every step) and round differently."""
    rng = np.random.default_rng(10)
    inputs = [array.astype(np.float32) for array in lstm_inputs(rng)]
    options = {}
    if masks:
        options = {"mask": rng.random((T, N)) < 0.7,
                   "recurrent_mask": (2 * (rng.random((N, U)) < 0.5)).astype(np.float32)}
    monkeypatch.setattr(rnn_ops, "array_module", Float32Only)
    h, _, cache = rnn_ops.lstm_forward(*inputs, TANH, SIGMOID, **options)
    dh = rng.standard_normal((T, N, U)).astype(np.float32)
    dxw, state_grads, weight_grads = rnn_ops.lstm_backward(cache, dh, [None, None])
    for array in [h, dxw, *state_grads, *weight_grads]:
        assert array.dtype == np.float32


def recording(fn, shapes):
    """``fn`` under another name (so off the fast path) whose backward records the shape of
    the output it is given."""
    def backward(grad, z, a):
        shapes.append(a.shape)
        return fn.backward(grad, z, a)
    return activations.ActivationFunction("recorded_" + fn.name, fn.forward, backward)


def test_lstm_backward_differentiates_each_gate_on_its_own_rows():
    """The derivatives of the gates i, f, o (recurrent_activation) are taken once each, on
    their own U rows of every step and sample, not on the rows of the gates after them."""
    rng = np.random.default_rng(11)
    shapes = []
    _, _, cache = rnn_ops.lstm_forward(*lstm_inputs(rng), TANH, recording(SIGMOID, shapes))
    rnn_ops.lstm_backward(cache, rng.standard_normal((T, N, U)), [None, None])
    assert shapes == [(T, U, N)] * 3


def test_lstm_backward_without_bias_returns_two_weight_gradients():
    """``[d_kernel, d_recurrent_kernel]`` and no third one when the LSTM has no bias (the
    weights' last column is then the kernel's, not a bias)."""
    rng = np.random.default_rng(12)
    x, h0, c0, kernel, recurrent, _ = lstm_inputs(rng)
    _, _, cache = rnn_ops.lstm_forward(x, h0, c0, kernel, recurrent, None, TANH, SIGMOID)
    _, _, weight_grads = rnn_ops.lstm_backward(cache, rng.standard_normal((T, N, U)),
                                               [None, None])
    assert [grad.shape for grad in weight_grads] == [kernel.shape, recurrent.shape]


@pytest.mark.parametrize("names", [("sigmoid", "tanh", "sigmoid"), ("sigmoid", "sigmoid"),
                                   ("tanh",), ("sigmoid", "gelu"), ("relu", "tanh")])
@pytest.mark.parametrize("batch_last", [False, True])
def test_gate_activations_apply_each_function_to_its_own_block(names, batch_last):
    """``activate`` and ``derivative`` give each block of U units (columns, or rows with
    ``batch_last``) its own function's forward and backward, for batches of any size in turn
    (the fast path keeps per-batch constants: they must follow the batch, including one of
    G*U rows)."""
    functions = [activations.get(name) for name in names]
    units = 2
    gates = rnn_ops.GateActivations(functions, units, np.float64, batch_last)
    rng = np.random.default_rng(13)
    for batch in [3, len(names) * units, 3, 5]:
        z = 3 * rng.standard_normal((batch, len(names) * units))
        blocks = [z[:, k * units:(k + 1) * units] for k in range(len(names))]
        expected = np.concatenate([fn.forward(z_k) for fn, z_k in zip(functions, blocks)], 1)
        expected_derivative = np.concatenate(
            [fn.backward(np.ones_like(z_k), z_k, fn.forward(z_k))
             for fn, z_k in zip(functions, blocks)], axis=1)
        if batch_last:
            z, expected, expected_derivative = z.T.copy(), expected.T, expected_derivative.T
        a = gates.activate(z.copy())
        np.testing.assert_allclose(a, expected, rtol=1e-12, atol=1e-15)
        derivative = gates.derivative(a, z, np.empty_like(z))
        np.testing.assert_allclose(derivative, expected_derivative, rtol=1e-10, atol=1e-14)


def test_lstm_forward_keeps_its_buffers():
    """The columns [h; x; 1] of every step, the gates, the cell states and their activations
    (and, with recurrent dropout, the undropped states) live in the workspace, and the next
    batch gets the same arrays."""
    rng = np.random.default_rng(14)
    workspace = {}
    inputs = lstm_inputs(rng)
    dropout = {"recurrent_mask": 2.0 * (rng.random((N, U)) < 0.5)}
    cache = rnn_ops.lstm_forward(*inputs, TANH, SIGMOID, workspace, **dropout)[2]
    kept = {id(array) for array in workspace.values()}
    assert len(kept) == len(workspace) == 5  # columns, states h, gates, cells c, act(c)
    gates, hx, c = cache[0], cache[2], cache[3]
    assert {id(gates), id(hx), id(c)} <= kept
    again = rnn_ops.lstm_forward(inputs[0] + 1, *inputs[1:], TANH, SIGMOID, workspace,
                                 **dropout)[2]
    assert again[0] is gates and again[2] is hx
    assert {id(array) for array in workspace.values()} == kept


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "linear"])
def test_lstm_forward_with_other_cell_activations_and_more_samples_than_units(activation):
    """Every sample's cell activation, where the batch (5) differs from the units (2): the
    kernel works batch-last, so a cell activation applied along the wrong axis would touch
    only the first U samples (or fail to broadcast)."""
    rng = np.random.default_rng(15)
    batch = 5
    x = rng.standard_normal((batch, T, 3))
    h0, c0 = rng.standard_normal((2, batch, U))
    kernel, recurrent, bias = (rng.standard_normal((4 * U, 3)),
                               rng.standard_normal((4 * U, U)), rng.standard_normal(4 * U))
    expected, (h_last, c_last), _ = ref.lstm_forward(x, h0, c0, kernel, recurrent, bias,
                                                     activation=activation)
    got, states, _ = rnn_ops.lstm_forward(x.transpose(1, 0, 2), h0, c0, kernel, recurrent,
                                          bias, activations.get(activation), SIGMOID)
    np.testing.assert_allclose(got.transpose(1, 0, 2), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(states[1], c_last, rtol=1e-10, atol=1e-12)


class CallCounter:
    """NumPy, counting the calls of each function the kernels call on it."""

    def __init__(self):
        self.calls = {}

    def __getattr__(self, name):
        function = getattr(np, name)
        if not callable(function):
            return function

        def counted(*args, **kwargs):
            self.calls[name] = self.calls.get(name, 0) + 1
            return function(*args, **kwargs)
        return counted


def test_lstm_forward_activates_all_gates_with_one_exp_per_step(monkeypatch):
    """With sigmoid gates and a tanh cell (the defaults) every gate of a step comes from one
    ``exp`` of the GEMM's output (lstm2's fast path; the tanh-based path is for other cell
    activations only)."""
    counter = CallCounter()
    monkeypatch.setattr(rnn_ops, "array_module", lambda: counter)
    rnn_ops.lstm_forward(*lstm_inputs(np.random.default_rng(16)), TANH, SIGMOID)
    assert counter.calls["exp"] == T and counter.calls["reciprocal"] == T


@pytest.mark.parametrize("activation, keeps", [("tanh", False), ("sigmoid", False),
                                               ("gelu", True)])
def test_lstm_forward_keeps_pre_activations_only_for_an_activation_that_reads_them(activation,
                                                                                   keeps):
    """tanh's and sigmoid's derivatives come from their outputs: no (T, 4U, N) copy of the
    pre-activations; gelu's (the candidate g here) needs its input, kept in the workspace."""
    rng = np.random.default_rng(17)
    workspace = {}
    inputs = lstm_inputs(rng)
    first = rnn_ops.lstm_forward(*inputs, activations.get(activation), SIGMOID, workspace)[2][1]
    assert (first is not None) == keeps
    assert len(workspace) == 4 + keeps  # columns, gates, cells c, act(c) (+ pre-activations)
    if keeps:
        assert first.shape == (T, 4 * U, N)
        again = rnn_ops.lstm_forward(inputs[0] + 1, *inputs[1:], activations.get(activation),
                                     SIGMOID, workspace)[2][1]
        assert again is first and any(kept is first for kept in workspace.values())


@pytest.mark.parametrize("cell", ["simple_rnn", "gru", "lstm"])
def test_backward_state_gradients_stay_float32(cell):
    """The gradient carried into the last step starts as float32 zeros: a float64 one would
    run every step's GEMM in float64 and hand back float64 initial-state gradients."""
    rng = np.random.default_rng(18)
    blocks = {"simple_rnn": 1, "lstm": 4, "gru": 3}[cell]
    h0 = rng.standard_normal((N, U)).astype(np.float32)
    kernel = rng.standard_normal((blocks * U, U)).astype(np.float32)
    if cell == "lstm":
        x, _, c0, input_kernel, _, bias = (a.astype(np.float32) for a in lstm_inputs(rng))
        cache = rnn_ops.lstm_forward(x, h0, c0, input_kernel, kernel, bias, TANH, SIGMOID)[2]
        backward, finals = rnn_ops.lstm_backward, [None, None]
    else:
        xw = rng.standard_normal((T, N, blocks * U)).astype(np.float32)
        if cell == "gru":
            bias = rng.standard_normal(3 * U).astype(np.float32)
            cache = rnn_ops.gru_forward(xw, h0, kernel, bias, TANH, SIGMOID)[2]
            backward = rnn_ops.gru_backward
        else:
            cache = rnn_ops.simple_rnn_forward(xw, h0, kernel, TANH)[2]
            backward = rnn_ops.simple_rnn_backward
        finals = [None]
    dxw, state_grads, weight_grads = backward(cache, None, finals)
    assert [grad.dtype for grad in [dxw, *state_grads, *weight_grads]] == (
        [np.float32] * (1 + len(state_grads) + len(weight_grads)))


def test_step_mask_is_batch_major_by_default_and_takes_any_0_1_mask():
    """``StepMask(mask, like)`` reads a (T, N) mask for (T, N, U) arrays; a mask of 0/1 numbers
    means what the same booleans mean."""
    like = np.zeros((T, N, U), dtype=np.float32)
    booleans = np.random.default_rng(19).random((T, N)) < 0.5
    for mask in [booleans, booleans.astype(np.float32), booleans.astype(np.int64)]:
        steps = rnn_ops.StepMask(mask, like)
        assert steps.factors.shape == (T, N, 1) and steps.factors.dtype == np.float32
        new, previous = np.zeros((N, U)), np.ones((N, U))
        steps.keep_previous(1, new, previous)
        np.testing.assert_array_equal(new, np.repeat(~booleans[1, :, None], U, axis=1))


@pytest.mark.parametrize("shape", [(T, N + 1), (T + 1, N), (T, N, 1)])
def test_step_mask_of_the_wrong_shape_is_refused_naming_both_shapes(shape):
    like = np.zeros((T, N, U))
    with pytest.raises(ValueError, match=rf"\(time steps, batch\) = \({T}, {N}\), got "
                                         + re.escape(str(shape))):
        rnn_ops.StepMask(np.ones(shape, dtype=bool), like)
