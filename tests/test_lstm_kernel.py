"""The LSTM kernel's fast paths (cnn.ops.rnn): one exp for every gate, the backward's factors
computed for all steps at once (with sigmoid/tanh, paired around ``i g`` and ``o act(c)``),
and the gate-major gradient layout.

The kernels' results are held to the slow BPTT twin in test_reference_rnn.py; these tests pin
what that twin does not reach: saturated gates, the exactness of the exp-based activations
over the whole float32 range, the shared derivative helper, and the layout that lets the
layer take the input gradient in one GEMM without copying.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from cnn import activations
from cnn.layers import LSTM
from cnn.ops import rnn as rnn_ops
from cnn.ops import reference_rnn as ref
from helpers import build_layer

TANH, SIGMOID = activations.get("tanh"), activations.get("sigmoid")


def sigmoid64(z):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z.astype(np.float64)))


def one_step_states(z, recurrent_activation=SIGMOID):
    """The final [h, c] of one step from zero states whose every gate's pre-activation is
    ``z`` (N,): one feature, a kernel of ones, no recurrent input, no bias."""
    units = 2
    x = z.astype(np.float32)[None, :, None]  # (T=1, N, F=1)
    zeros = np.zeros((z.size, units), np.float32)
    kernel = np.ones((4 * units, 1), np.float32)
    recurrent = np.zeros((4 * units, units), np.float32)
    _, (h, c), _ = rnn_ops.lstm_forward(x, zeros, zeros, kernel, recurrent, None, TANH,
                                        recurrent_activation)
    return h, c


@pytest.mark.parametrize("recurrent", ["sigmoid", "tanh"])
def test_exp_based_gates_match_exact_activations_over_the_float32_range(recurrent):
    z = np.concatenate([np.linspace(-100, 100, 2001), [-1e30, -3e4, -89, -88, 88, 89, 1e30]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # exp(-z) overflowing to inf must stay silent
        h, c = one_step_states(z, activations.get(recurrent))
    gate = sigmoid64(z) if recurrent == "sigmoid" else np.tanh(z)
    c_exact = gate * np.tanh(z)  # c_1 = i * g (c_0 = 0)
    h_exact = gate * np.tanh(c_exact)
    assert np.isfinite(h).all() and np.isfinite(c).all()
    np.testing.assert_allclose(c[:, 0], c_exact, rtol=0, atol=3e-7)
    np.testing.assert_allclose(h[:, 0], h_exact, rtol=0, atol=3e-7)
    saturated = np.abs(z) >= 89  # every gate exactly 0 or 1 (tanh: -1 or 1)
    assert np.isin(np.abs(c[saturated]), [0.0, 1.0]).all()


def test_saturated_lstm_layer_trains_to_the_twins_gradients_without_warnings():
    """Weights 300x too large saturate nearly every gate; the fast path must give the twin's
    outputs and gradients (float64), with no overflow warning and no NaN."""
    rng = np.random.default_rng(4)
    n, t, f, u = 3, 6, 4, 5
    arrays = {"x": rng.standard_normal((n, t, f)),
              "kernel": 300 * rng.standard_normal((4 * u, f)),
              "recurrent_kernel": 300 * rng.standard_normal((4 * u, u)),
              "bias": rng.standard_normal(4 * u),
              "h0": np.zeros((n, u)), "c0": np.zeros((n, u))}
    with np.errstate(over="ignore"):  # the twin's float64 exp overflows to an exact 0 gate
        expected, _, tape = ref.lstm_forward(arrays["x"], arrays["h0"], arrays["c0"],
                                             arrays["kernel"], arrays["recurrent_kernel"],
                                             bias=arrays["bias"])
        d_out = rng.standard_normal(expected.shape)
        expected_grads = ref.lstm_backward(tape, d_out)
    layer = build_layer(LSTM(u, return_sequences=True), (t, f))
    for name in ("kernel", "recurrent_kernel", "bias"):
        layer.params[name][...] = arrays[name]
    layer.needs_input_grad = True
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = layer.forward(arrays["x"], training=True)
        dx = layer.backward(d_out)
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, expected_grads["x"], rtol=1e-9, atol=1e-9)
    for name in ("kernel", "recurrent_kernel", "bias"):
        np.testing.assert_allclose(layer.grads[name], expected_grads[name], rtol=1e-9,
                                   atol=1e-9)


@pytest.mark.parametrize("name", activations.names())
def test_activation_derivative_is_the_activations_own_backward_bit_for_bit(name):
    """The shared helper (the GRU's and SimpleRNN's block-by-block derivative as well) gives
    exactly ``fn.backward(1, z, a)``, in any shape."""
    fn = activations.get(name)
    if name == "softmax":
        pytest.skip("softmax is refused by the recurrent layers (not element-wise)")
    z = np.random.default_rng(0).standard_normal((3, 4, 5)).astype(np.float32) * 3
    a = fn.forward(z)
    out = np.empty_like(z)
    result = rnn_ops.activation_derivative(fn, a, z, out)
    assert result is out
    np.testing.assert_array_equal(out, fn.backward(np.ones_like(a), z, a))


def test_backward_gradient_layout_lets_the_input_gradient_skip_a_copy():
    """``dxw`` (T, N, 4U) is a view of the workspace's gate-major buffer whose (T * N, 4U)
    reshape is still a view: the layer's one input-gradient GEMM reads it in place."""
    rng = np.random.default_rng(1)
    t, n, f, u = 5, 3, 2, 4
    workspace = {}
    x = rng.standard_normal((t, n, f))
    h0 = rng.standard_normal((n, u))
    _, _, cache = rnn_ops.lstm_forward(x, h0, h0, rng.standard_normal((4 * u, f)),
                                       rng.standard_normal((4 * u, u)),
                                       rng.standard_normal(4 * u), TANH, SIGMOID, workspace)
    dxw, _, _ = rnn_ops.lstm_backward(cache, None, [rng.standard_normal((n, u)), None])
    flat = dxw.reshape(-1, 4 * u)
    assert dxw.shape == (t, n, 4 * u)
    assert any(flat.base is kept or np.shares_memory(flat, kept)
               for kept in workspace.values())
    assert not flat.flags.owndata


def test_lstm_exp_scale_folds_minus_one_and_minus_two():
    gate_fns = rnn_ops.GateActivations([SIGMOID, SIGMOID, TANH, SIGMOID], 3, np.float32,
                                       batch_last=True)
    scale = rnn_ops.lstm_exp_scale(gate_fns)
    assert scale.dtype == np.float32
    np.testing.assert_array_equal(scale, [-1] * 6 + [-2] * 3 + [-1] * 3)


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_derivative_times_is_the_derivative_times_the_other_factor(name):
    """``derivative_times(fn, a, b, a * b, out)`` = fn's derivative at output ``a`` times
    ``b``, from the product (the backward factors' paired form), in float64 to rounding and
    in float32 within a float32 rounding of ``b`` also where the gate saturates."""
    fn = activations.get(name)
    rng = np.random.default_rng(3)
    z = np.concatenate([rng.standard_normal(200) * 3, [-40.0, -12.0, 12.0, 40.0]])
    b = rng.standard_normal(z.shape)
    for dtype, tolerance in ((np.float64, 1e-15), (np.float32, 3e-7)):
        a = fn.forward(z.astype(dtype))
        b_typed = b.astype(dtype)
        out = np.empty_like(a)
        result = rnn_ops.derivative_times(fn, a, b_typed, a * b_typed, out)
        assert result is out and out.dtype == dtype
        expected = fn.backward(b.astype(np.float64), z, a.astype(np.float64))
        np.testing.assert_allclose(out, expected, rtol=0, atol=tolerance * np.abs(b).max())


def test_derivative_times_refuses_an_activation_without_the_paired_form():
    a = np.full(3, 0.5)
    with pytest.raises(ValueError, match="sigmoid or tanh.*'relu'"):
        rnn_ops.derivative_times(activations.get("relu"), a, a, a * a, np.empty(3))


def renamed(fn):
    """``fn`` under another name: the same function, off the fast paths."""
    return activations.ActivationFunction("renamed_" + fn.name, fn.forward, fn.backward)


@pytest.mark.parametrize("recurrent_name", ["sigmoid", "tanh"])
@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
def test_paired_backward_factors_match_the_block_by_block_ones(name, recurrent_name):
    """With sigmoid/tanh gates and cell the backward factors pair up around ``i g`` and
    ``o act(c)``: the backward gives what the block-by-block factors of the same
    activations under other names give (float64, to rounding), masks and dropout included."""
    rng = np.random.default_rng(5)
    t, n, f, u = 6, 4, 3, 5
    x = rng.standard_normal((t, n, f))
    h0, c0 = rng.standard_normal((n, u)), rng.standard_normal((n, u))
    weights = (rng.standard_normal((4 * u, f)), rng.standard_normal((4 * u, u)) * 0.5,
               rng.standard_normal(4 * u))
    options = {"mask": rng.random((t, n)) > 0.3,
               "recurrent_mask": (rng.random((n, u)) > 0.2) / 0.8}
    dh = rng.standard_normal((t, n, u))
    finals = [rng.standard_normal((n, u)), rng.standard_normal((n, u))]
    act, rec = activations.get(name), activations.get(recurrent_name)
    results = []
    for pair in ((act, rec), (renamed(act), renamed(rec))):
        _, _, cache = rnn_ops.lstm_forward(x, h0, c0, *weights, *pair, **options)
        results.append(rnn_ops.lstm_backward(cache, dh, finals))
    (paired_dxw, paired_states, paired_weights), (dxw, states, weight_grads) = results
    np.testing.assert_allclose(paired_dxw, dxw, rtol=1e-12, atol=1e-12)
    for ours, theirs in zip(paired_states + paired_weights, states + weight_grads):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_activation_derivative_of_sigmoid_and_tanh_is_the_closed_form_from_the_output(name):
    """sigmoid's and tanh's derivatives come from the output alone (``a (1 - a)``,
    ``1 - a^2``), not from the activation's generic backward (an extra ones array and pass):
    a backward that raises is never called (mutation run 9)."""
    fn = activations.get(name)

    def refuse(*args):
        raise AssertionError(f"{name}'s generic backward called")

    same_name = activations.ActivationFunction(name, fn.forward, refuse)
    a = fn.forward(np.linspace(-3.0, 3.0, 7))
    out = rnn_ops.activation_derivative(same_name, a, None, np.empty_like(a))
    np.testing.assert_allclose(out, a * (1 - a) if name == "sigmoid" else 1 - a * a,
                               rtol=1e-15)
