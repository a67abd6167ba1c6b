"""The recurrent layers' backward passes against a slow, independent BPTT (cnn.ops.reference_rnn).

The reference twin is itself checked against central differences first, so that what the
layers are held to is known to be right without trusting the layers' own code.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cnn.layers import GRU, LSTM, SimpleRNN
from cnn.ops import reference_rnn as ref
from cnn.utils.gradient_check import check_directional, check_gradients
from helpers import build_layer

N, T, F, U = 3, 4, 2, 3
RTOL = 1e-10

CELLS = {
    # name: (layer class, layer kwargs, gate blocks, state count)
    "simple_rnn": (SimpleRNN, {}, 1, 1),
    "lstm": (LSTM, {}, 4, 2),
    "gru_reset_after": (GRU, {"reset_after": True}, 3, 1),
    "gru_reset_before": (GRU, {"reset_after": False}, 3, 1),
}
ACTIVATIONS = {
    # the fast mixed tanh/sigmoid rows, all-tanh rows, and block-by-block activations
    "default": {},
    "all_tanh": {"recurrent_activation": "tanh"},
    "relu_candidate": {"activation": "relu"},
    # the LSTM's tanh-based path: fast gates, but a cell activation that is not tanh
    "sigmoid_candidate": {"activation": "sigmoid"},
    # the same with tanh gates: the tanh-based path's scale of 1 on the tanh gates' rows
    "tanh_gates_sigmoid_candidate": {"activation": "sigmoid", "recurrent_activation": "tanh"},
}
# SimpleRNN has one activation and no recurrent_activation
ACTIVATION_CASES = [(cell, name) for cell in CELLS for name in ACTIVATIONS
                    if cell != "simple_rnn" or set(ACTIVATIONS[name]) == {"activation"}]


def random_arrays(cell, rng, use_bias=True, batch=N):
    _, kwargs, blocks, states = CELLS[cell]
    arrays = {
        "x": rng.standard_normal((batch, T, F)),
        "kernel": 0.6 * rng.standard_normal((blocks * U, F)),
        "recurrent_kernel": 0.6 * rng.standard_normal((blocks * U, U)),
        "h0": rng.standard_normal((batch, U)),
    }
    if use_bias:
        arrays["bias"] = 0.5 * rng.standard_normal(blocks * U)
        if kwargs.get("reset_after"):
            arrays["recurrent_bias"] = 0.5 * rng.standard_normal(blocks * U)
    if states == 2:
        arrays["c0"] = rng.standard_normal((batch, U))
    return arrays


def reference_forward(cell, a, go_backwards=False, activation="tanh",
                      recurrent_activation="sigmoid"):
    common = dict(bias=a.get("bias"), activation=activation, go_backwards=go_backwards)
    if cell == "simple_rnn":
        return ref.simple_rnn_forward(a["x"], a["h0"], a["kernel"], a["recurrent_kernel"],
                                      **common)
    if cell == "lstm":
        return ref.lstm_forward(a["x"], a["h0"], a["c0"], a["kernel"], a["recurrent_kernel"],
                                recurrent_activation=recurrent_activation, **common)
    return ref.gru_forward(a["x"], a["h0"], a["kernel"], a["recurrent_kernel"],
                           recurrent_bias=a.get("recurrent_bias"),
                           recurrent_activation=recurrent_activation,
                           reset_after=cell == "gru_reset_after", **common)


BACKWARD = {"simple_rnn": ref.simple_rnn_backward, "lstm": ref.lstm_backward,
            "gru_reset_after": ref.gru_backward, "gru_reset_before": ref.gru_backward}


# -- the twin against central differences -------------------------------------------------

@pytest.mark.parametrize("cell, go_backwards, use_bias",
                         list(itertools.product(CELLS, [False, True], [True, False])))
def test_reference_backward_matches_central_differences(cell, go_backwards, use_bias):
    rng = np.random.default_rng(11)
    arrays = random_arrays(cell, rng, use_bias)
    r_out = rng.standard_normal((N, T, U))
    r_states = [rng.standard_normal((N, U)) for _ in range(CELLS[cell][3])]

    def objective():
        out, final, _ = reference_forward(cell, arrays, go_backwards)
        return float((out * r_out).sum() + sum((s * r).sum() for s, r in zip(final, r_states)))

    _, _, tape = reference_forward(cell, arrays, go_backwards)
    grads = BACKWARD[cell](tape, r_out, r_states)
    assert set(grads) == set(arrays)
    check_gradients(objective, arrays, grads, tolerance=1e-7)


@pytest.mark.parametrize("cell, activations", ACTIVATION_CASES)
def test_reference_backward_other_activations_directional(cell, activations):
    kwargs = ACTIVATIONS[activations]
    rng = np.random.default_rng(5)
    arrays = random_arrays(cell, rng)
    r_out = rng.standard_normal((N, T, U))

    def objective():
        return float((reference_forward(cell, arrays, **kwargs)[0] * r_out).sum())

    grads = BACKWARD[cell](reference_forward(cell, arrays, **kwargs)[2], r_out)
    check_directional(objective, arrays, grads, directions=3, tolerance=1e-7)


def test_reference_rejects_unknown_activation():
    arrays = random_arrays("simple_rnn", np.random.default_rng(0))
    with pytest.raises(ValueError, match="softsign"):
        reference_forward("simple_rnn", arrays, activation="softsign")


# -- the layers against the twin ----------------------------------------------------------

def make_layer(cell, arrays, activations=None, **options):
    cls, kwargs, _, _ = CELLS[cell]
    kwargs = {**kwargs, **(activations or {})}
    layer = build_layer(cls(U, use_bias="bias" in arrays, **kwargs, **options), (T, F))
    for key in layer.params:
        layer.params[key][...] = arrays[key]
    layer.needs_input_grad = True
    return layer


def assert_close(actual, expected, what):
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=1e-12, err_msg=what)


CASES = list(itertools.product(CELLS, [True, False], [False, True], [True, False]))


@pytest.mark.parametrize("cell, return_sequences, go_backwards, initial_state", CASES)
def test_layer_matches_reference_bptt(cell, return_sequences, go_backwards, initial_state):
    rng = np.random.default_rng(3)
    arrays = random_arrays(cell, rng)
    states = CELLS[cell][3]
    if not initial_state:
        arrays["h0"][...] = 0
        arrays.get("c0", np.zeros(1))[...] = 0
    layer = make_layer(cell, arrays, return_sequences=return_sequences,
                       go_backwards=go_backwards)
    start = [arrays[name] for name in ["h0", "c0"][:states]] if initial_state else None
    out = layer.forward(arrays["x"].copy(), training=True, initial_state=start)
    ref_out, ref_final, tape = reference_forward(cell, arrays, go_backwards)

    assert_close(out, ref_out if return_sequences else ref_out[:, -1], "output")
    for state, expected in zip(layer.states, ref_final):
        assert_close(state, expected, "final state")

    grad = rng.standard_normal(out.shape)
    state_grads = [rng.standard_normal((N, U)) for _ in range(states)]
    dx = layer.backward(grad.copy(), state_grads=[g.copy() for g in state_grads])
    if return_sequences:
        expected = BACKWARD[cell](tape, grad, state_grads)
    else:
        final = [state_grads[0] + grad] + state_grads[1:]
        expected = BACKWARD[cell](tape, None, final)
    assert_close(dx, expected["x"], "input gradient")
    for key in layer.params:
        assert_close(layer.grads[key], expected[key], f"gradient of {key}")
    names = ["h0", "c0"][:states]
    for got, name in zip(layer.initial_state_grads, names):
        assert_close(got, expected[name], f"gradient of the initial state {name}")


@pytest.mark.parametrize("cell, activations", ACTIVATION_CASES)
def test_layer_matches_reference_with_other_activations(cell, activations):
    kwargs = ACTIVATIONS[activations]
    rng = np.random.default_rng(8)
    arrays = random_arrays(cell, rng)
    arrays["h0"][...] = 0
    arrays.get("c0", np.zeros(1))[...] = 0
    layer = make_layer(cell, arrays, kwargs, return_sequences=True)
    out = layer.forward(arrays["x"].copy(), training=True)
    ref_out, _, tape = reference_forward(cell, arrays, **kwargs)
    assert_close(out, ref_out, "output")
    grad = rng.standard_normal(out.shape)
    dx = layer.backward(grad.copy())
    expected = BACKWARD[cell](tape, grad)
    assert_close(dx, expected["x"], "input gradient")
    for key in layer.params:
        assert_close(layer.grads[key], expected[key], f"gradient of {key}")


@pytest.mark.parametrize("cell", CELLS)
def test_layer_without_bias_matches_reference(cell):
    rng = np.random.default_rng(4)
    arrays = random_arrays(cell, rng, use_bias=False)
    arrays["h0"][...] = 0
    arrays.get("c0", np.zeros(1))[...] = 0
    layer = make_layer(cell, arrays)
    assert "bias" not in layer.params and "recurrent_bias" not in layer.params
    out = layer.forward(arrays["x"].copy(), training=True)
    ref_out, _, tape = reference_forward(cell, arrays)
    assert_close(out, ref_out[:, -1], "output")
    grad = rng.standard_normal(out.shape)
    dx = layer.backward(grad.copy())
    states = CELLS[cell][3]
    expected = BACKWARD[cell](tape, None, [grad] + [None] * (states - 1))
    assert_close(dx, expected["x"], "input gradient")
    for key in layer.params:
        assert_close(layer.grads[key], expected[key], f"gradient of {key}")


def test_lstm_bptt_over_a_long_sequence_directional():
    """30 steps: the full check would need 2 forward passes per weight; one direction does."""
    rng = np.random.default_rng(9)
    steps = 30
    layer = build_layer(LSTM(4, return_sequences=True), (steps, 3))
    layer.needs_input_grad = True
    x = rng.standard_normal((2, steps, 3))
    r = rng.standard_normal((2, steps, 4))
    layer.forward(x, training=True)
    dx = layer.backward(r.copy())
    arrays = {"x": x, **layer.params}
    analytic = {"x": dx, **{k: layer.grads[k].copy() for k in layer.params}}

    def objective():
        return float((layer.forward(x, training=True) * r).sum())

    check_directional(objective, arrays, analytic, directions=2, tolerance=1e-7)
