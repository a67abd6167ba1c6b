"""Recurrent layers: the seed's Recurrent, SimpleRNN / LSTM / GRU, TimeDistributed, sequence
losses, gradient clipping in recurrent training, and the windowing helper.

Fast kernels are held against the slow reference (cnn.ops.rnn_reference); every backward
against central differences in float64.
"""

from pathlib import Path

import numpy as np
import pytest

import cnn
from cnn import losses, metrics
from cnn.backend import floatx_scope
from cnn.layers import (GRU, LSTM, Dense, Flatten, Input, Output, Recurrent, SimpleRNN,
                        TimeDistributed, deserialize, serialize)
from cnn.models import Model
from cnn.ops import rnn_reference as reference
from cnn.optimizers import SGD
from cnn.utils.gradient_check import numerical_gradient
from cnn.utils.timeseries import sliding_windows
from helpers import (TOLERANCE, build_layer, check_layer_gradients, check_model_gradients,
                     gradient_error)

N, T, F, U = 3, 5, 4, 6

LAYERS = {
    "simple_rnn": lambda **kw: SimpleRNN(U, **kw),
    "lstm": lambda **kw: LSTM(U, **kw),
    "gru": lambda **kw: GRU(U, **kw),
    "gru_reset_before": lambda **kw: GRU(U, reset_after=False, **kw),
}


def random(shape, seed=0, scale=1.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale


def built(kind, seed=1, **kwargs):
    """A float64 layer for (T, F) with its weights perturbed away from the initialisation."""
    cnn.set_seed(seed)
    layer = build_layer(LAYERS[kind](**kwargs), (T, F))
    for key, value in layer.params.items():
        value += random(value.shape, seed=seed + 7, scale=0.3)
    return layer


def reference_outputs(layer, x, states):
    p = layer.params
    if isinstance(layer, SimpleRNN):
        return reference.simple_rnn_reference(x, states[0], p["kernel"], p["recurrent_kernel"],
                                              p["bias"], layer.activation)
    if isinstance(layer, LSTM):
        return reference.lstm_reference(x, states[0], states[1], p["kernel"], p["recurrent_kernel"],
                                        p["bias"], layer.activation, layer.recurrent_activation)[0]
    return reference.gru_reference(x, states[0], p["kernel"], p["recurrent_kernel"], p["bias"],
                                   p.get("recurrent_bias"), layer.activation,
                                   layer.recurrent_activation, layer.reset_after)


# -- forward against the reference ---------------------------------------------------------

@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("go_backwards", [False, True])
def test_forward_matches_reference_with_initial_states(kind, go_backwards):
    layer = built(kind, return_sequences=True, go_backwards=go_backwards)
    x = random((N, T, F), seed=2)
    states = [random((N, U), seed=3 + k, scale=0.5) for k in range(len(layer.state_names))]
    out = layer.forward(x, initial_state=states)
    expected = reference_outputs(layer, x[:, ::-1] if go_backwards else x, states)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.states[0], expected[:, -1], rtol=1e-12, atol=1e-12)


def test_lstm_cell_state_matches_reference():
    layer = built("lstm")
    x = random((N, T, F), seed=2)
    zeros = np.zeros((N, U))
    last = layer.forward(x)
    expected_h, expected_c = reference.lstm_reference(
        x, zeros, zeros, layer.params["kernel"], layer.params["recurrent_kernel"],
        layer.params["bias"], layer.activation, layer.recurrent_activation)
    np.testing.assert_allclose(last, expected_h[:, -1], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.states[1], expected_c, rtol=1e-12, atol=1e-12)


def test_float32_forward_close_to_float64_reference():
    cnn.set_seed(0)
    layer = LSTM(U, return_sequences=True)
    layer.build((T, F))
    x = random((N, T, F), seed=2).astype(np.float32)
    out = layer.forward(x)
    assert out.dtype == np.float32
    p = {k: v.astype(np.float64) for k, v in layer.params.items()}
    zeros = np.zeros((N, U))
    expected, _ = reference.lstm_reference(x.astype(np.float64), zeros, zeros, p["kernel"],
                                           p["recurrent_kernel"], p["bias"], layer.activation,
                                           layer.recurrent_activation)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


# -- gradients ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("return_sequences", [True, False])
def test_gradients(kind, return_sequences):
    layer = built(kind, return_sequences=return_sequences)
    check_layer_gradients(layer, random((N, T, F), seed=4))


@pytest.mark.parametrize("kind, kwargs", [
    ("simple_rnn", {"activation": "elu", "go_backwards": True}),
    ("lstm", {"activation": "elu", "recurrent_activation": "silu", "use_bias": False}),
    ("lstm", {"go_backwards": True, "unit_forget_bias": False}),
    ("gru", {"activation": "gelu", "recurrent_activation": "softplus", "go_backwards": True}),
    ("gru", {"use_bias": False}),
    ("gru_reset_before", {"activation": "leaky_relu", "use_bias": False}),
])
def test_gradients_with_other_activations_and_options(kind, kwargs):
    layer = built(kind, return_sequences=True, **kwargs)
    check_layer_gradients(layer, random((N, T, F), seed=5))


@pytest.mark.parametrize("kind", LAYERS)
def test_gradients_of_initial_and_final_states(kind):
    """Loss = <output, r> + sum_k <final state k, s_k>, through the initial states too."""
    layer = built(kind, return_state=True)
    x = random((N, T, F), seed=6)
    initial = [random((N, U), seed=7 + k, scale=0.5) for k in range(len(layer.state_names))]
    r = random((N, U), seed=9)
    s = [random((N, U), seed=10 + k) for k in range(len(initial))]

    def objective():
        output, *states = layer(x, initial_state=initial)
        return float((output * r).sum() + sum((a * b).sum() for a, b in zip(states, s)))

    objective()
    layer.backward(r.copy(), state_grads=s)
    analytic = [g.copy() for g in layer.initial_state_grads]
    for state, grad in zip(initial, analytic):
        assert gradient_error(grad, numerical_gradient(objective, state)) < TOLERANCE
    objective()
    layer.backward(r.copy(), state_grads=s)
    kernel_grad = layer.grads["recurrent_kernel"].copy()
    numeric = numerical_gradient(objective, layer.params["recurrent_kernel"])
    assert gradient_error(kernel_grad, numeric) < TOLERANCE


def test_stacked_layers_gradients_through_a_model():
    with floatx_scope("float64"):
        cnn.set_seed(3)
        model = Model(Input((T, F)))
        model.add_layer(LSTM(5, return_sequences=True))
        model.add_layer(GRU(4, return_sequences=True, go_backwards=True))
        model.add_layer(SimpleRNN(3))
        model.add_layer(Dense(2))
        model.compile(0.1, "mse")
        check_model_gradients(model, random((N, T, F), seed=8), random((N, 2), seed=9))


def test_sequence_output_model_gradients_with_fused_softmax():
    """Per-step softmax classification: LSTM(return_sequences) -> Dense(softmax) on (N, T, K)."""
    with floatx_scope("float64"):
        cnn.set_seed(4)
        model = Model(Input((T, F)))
        model.add_layer(LSTM(5, return_sequences=True))
        model.add_layer(TimeDistributed(Dense(3, activation="tanh")))
        model.add_layer(Output(4))
        model.compile(0.1, "categorical_crossentropy")
        targets = np.eye(4)[np.random.default_rng(0).integers(0, 4, (N, T))]
        check_model_gradients(model, random((N, T, F), seed=10), targets)


# -- the seed's Recurrent -------------------------------------------------------------------

def test_recurrent_is_simple_rnn_on_one_sequence():
    cnn.set_seed(0)
    recurrent = build_layer(Recurrent(U, F, "tanh"), (F,))
    simple = build_layer(SimpleRNN(U, return_sequences=True), (T, F))
    simple.set_weights(recurrent.get_weights()[:3])
    x = random((T, F), seed=11)
    np.testing.assert_allclose(recurrent.forward(x), simple.forward(x[None])[0], rtol=1e-12)


def test_recurrent_rejects_batched_input_and_bad_theta():
    layer = build_layer(Recurrent(U, F), (F,))
    with pytest.raises(ValueError, match=r"one sequence.*\(time steps, 4\)"):
        layer.forward(random((N, T, F)))
    with pytest.raises(ValueError, match="theta has shape"):
        build_layer(Recurrent(U, F, theta=np.zeros((U, F))), (F,))
    with pytest.raises(ValueError, match="SimpleRNN/LSTM/GRU"):
        build_layer(Recurrent(U), (T, F))


def test_model_refuses_to_shuffle_state_carrying_layers():
    model = Model(Input((F,)))
    model.add_layer(Recurrent(U, F, "tanh"))
    model.add_layer(Output(2, U, "Linear"))
    model.compile(0.1, "MSE", "MAE")
    with pytest.raises(ValueError, match="shuffle=False"):
        model.fit(random((10, F)), random((10, 2)), verbose=0)
    model.fit(random((10, F)), random((10, 2)), batch_size=5, verbose=0, shuffle=False)


# -- states ---------------------------------------------------------------------------------

def test_return_state_call_and_states_attribute():
    cnn.set_seed(0)
    layer = LSTM(U, return_sequences=True, return_state=True)
    x = random((N, T, F), seed=12).astype(np.float32)
    output, h, c = layer(x)  # builds on first call, as in Keras
    assert output.shape == (N, T, U) and h.shape == c.shape == (N, U)
    np.testing.assert_array_equal(h, output[:, -1])
    assert layer.forward(x).shape == (N, T, U)  # inside a model: the output only
    assert len(layer.states) == 2


@pytest.mark.parametrize("kind", LAYERS)
def test_stateful_layer_continues_sequences_across_batches(kind):
    whole = built(kind, seed=2, return_sequences=True)
    x = random((N, 2 * T, F), seed=13)
    long = LAYERS[kind](return_sequences=True)
    build_layer(long, (2 * T, F))
    long.set_weights(whole.get_weights())
    expected = long.forward(x)

    stateful = built(kind, seed=2, return_sequences=True, stateful=True)
    first, second = stateful.forward(x[:, :T]), stateful.forward(x[:, T:])
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), expected, rtol=1e-12)

    stateful.reset_states()
    np.testing.assert_allclose(stateful.forward(x[:, :T]), first, rtol=1e-12)
    with pytest.raises(ValueError, match="same batch size"):
        stateful.forward(x[:2, T:])


def test_stateful_model_trains_in_order_and_resets_each_epoch():
    cnn.set_seed(0)
    model = Model(Input((T, F)))
    model.add_layer(GRU(4, stateful=True))
    model.add_layer(Dense(1))
    model.compile("adam", "mse")
    x, y = random((8, T, F), seed=14), random((8, 1), seed=15)
    with pytest.raises(ValueError, match="shuffle=False"):
        model.fit(x, y, batch_size=4, verbose=0)
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, shuffle=False)
    model.reset_states()
    assert model.layers[0]._carried is None


def test_set_initial_state_is_used_and_checked():
    layer = built("lstm")
    x = random((N, T, F), seed=16)
    h0, c0 = random((U,), seed=17), random((U,), seed=18)
    layer.initial_state = [h0, c0]
    expected = layer.forward(x, initial_state=[np.tile(h0, (N, 1)), np.tile(c0, (N, 1))])
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-12)
    with pytest.raises(ValueError, match=r"'c' has shape \(3, 5\), expected \(batch, 6\)"):
        layer.set_initial_state([h0, np.zeros((3, 5))])
    with pytest.raises(ValueError, match=r"2 state\(s\) \(h, c\), got 1"):
        layer.set_initial_state([h0])
    with pytest.raises(ValueError, match="is for 2 sequences but the batch has 3"):
        layer.forward(x, initial_state=[np.zeros((2, U)), np.zeros((2, U))])
    with pytest.raises(ValueError, match="not stateful"):
        layer.reset_states([h0, c0])


# -- bad input ------------------------------------------------------------------------------

def test_batched_layers_reject_bad_input_clearly():
    layer = built("gru")
    with pytest.raises(ValueError, match=r"3-D input .* got a 2-D array of shape \(5, 4\).*x\[None\]"):
        layer.forward(random((T, F)))
    with pytest.raises(ValueError, match=r"built for sequences of 5 time steps, got 3 \(shorter"):
        layer.forward(random((N, 3, F)))
    with pytest.raises(ValueError, match="expects 4 features per time step"):
        layer.forward(random((N, T, 2)))
    with pytest.raises(ValueError, match=r"input_shape \(time steps, features\)"):
        build_layer(LSTM(3), (F,))
    with pytest.raises(ValueError, match="element-wise"):
        LSTM(3, activation="softmax")
    with pytest.raises(ValueError, match="units must be"):
        GRU(0)


def test_model_rejects_sequences_shorter_than_its_input():
    model = Model(Input((T, F)))
    model.add_layer(LSTM(3))
    model.compile("adam", "mse")
    with pytest.raises(ValueError, match=r"shape \(2, 3, 4\), but the model expects \(N, 5, 4\)"):
        model.predict(random((2, 3, F)))


# -- configuration, TimeDistributed ---------------------------------------------------------

@pytest.mark.parametrize("layer", [
    LSTM(4, "relu", return_sequences=True, unit_forget_bias=False, name="encoder"),
    GRU(3, reset_after=False, go_backwards=True, stateful=True),
    SimpleRNN(2, use_bias=False, return_state=True),
    TimeDistributed(Dense(3, activation="tanh")),
])
def test_config_round_trip(layer):
    copy = deserialize(serialize(layer))
    assert type(copy) is type(layer) and copy.get_config() == layer.get_config()


def test_time_distributed_dense_equals_dense_on_sequences():
    cnn.set_seed(0)
    wrapped = build_layer(TimeDistributed(Dense(3, activation="tanh")), (T, F))
    plain = build_layer(Dense(3, activation="tanh"), (T, F))
    plain.set_weights(wrapped.get_weights())
    x = random((N, T, F), seed=19)
    np.testing.assert_allclose(wrapped.forward(x), plain.forward(x), rtol=1e-12)
    assert wrapped.output_shape == (None, T, 3)
    check_layer_gradients(wrapped, x)


def test_time_distributed_flatten_per_step():
    layer = build_layer(TimeDistributed(Flatten()), (T, 2, 3))
    x = random((N, T, 2, 3))
    assert layer.output_shape == (None, T, 6)
    np.testing.assert_array_equal(layer.forward(x), x.reshape(N, T, 6))
    with pytest.raises(ValueError, match=r"\(batch, time steps, \.\.\.\)"):
        build_layer(TimeDistributed(Dense(2)), (F,))


# -- sequence losses and metrics ------------------------------------------------------------

@pytest.mark.parametrize("name", ["categorical_crossentropy", "MSE", "mse", "binary_crossentropy"])
def test_sequence_loss_is_the_mean_over_steps_of_the_step_loss(name):
    rng = np.random.default_rng(0)
    output = rng.uniform(0.05, 0.95, (N, T, 4))
    output /= output.sum(axis=-1, keepdims=True)
    target = np.eye(4)[rng.integers(0, 4, (N, T))]
    loss = losses.get(name)
    per_step = loss.per_sample(output.reshape(N * T, 4), target.reshape(N * T, 4)).reshape(N, T)
    np.testing.assert_allclose(loss.per_sample(output, target), per_step.mean(axis=1))
    # the gradient is that of the per-sample loss
    numeric = numerical_gradient(lambda: loss.per_sample(output, target).sum(), output)
    assert gradient_error(loss.gradient(output, target), numeric) < TOLERANCE


@pytest.mark.parametrize("name", ["accuracy", "MAE", "mae"])
def test_sequence_metrics_average_the_step_scores(name):
    rng = np.random.default_rng(1)
    output, target = rng.random((N, T, 4)), np.eye(4)[rng.integers(0, 4, (N, T))]
    sequence, steps = metrics.get(name), metrics.get(name)
    sequence.update(output, target)
    steps.update(output.reshape(N * T, 4), target.reshape(N * T, 4))
    assert sequence.result() == pytest.approx(steps.result())


# -- gradient clipping in recurrent training ------------------------------------------------

def exploding_rnn_model(optimizer):
    cnn.set_seed(0)
    model = Model(Input((6, 2)))
    model.add_layer(SimpleRNN(8, activation="linear", recurrent_initializer="ones"))
    model.add_layer(Dense(1))
    model.compile(optimizer=optimizer, loss="mse")
    return model


@pytest.mark.parametrize("clip", [{"clipnorm": 1.0}, {"clipvalue": 0.01}, {"global_clipnorm": 1.0}])
def test_clipping_bounds_the_updates_of_an_exploding_rnn(clip):
    x, y = random((4, 6, 2), seed=20, scale=0.1), random((4, 1), seed=21)
    unclipped = exploding_rnn_model(SGD(0.1))
    before = unclipped.get_weights()
    unclipped.train_on_batch(x, y)
    raw_steps = [b - a for a, b in zip(unclipped.get_weights(), before)]
    model = exploding_rnn_model(SGD(0.1, **clip))
    model.train_on_batch(x, y)
    steps = [b - a for a, b in zip(model.get_weights(), before)]
    norms = [np.linalg.norm(s) for s in steps]
    assert max(np.linalg.norm(s) for s in raw_steps) > 1e3  # the gradient does explode
    if "clipnorm" in clip:
        assert max(norms) <= 0.1 * 1.0 * (1 + 1e-3)
    elif "clipvalue" in clip:
        assert max(np.abs(s).max() for s in steps) <= 0.1 * 0.01 * (1 + 1e-3)
    else:
        assert np.sqrt(sum(n * n for n in norms)) <= 0.1 * 1.0 * (1 + 1e-3)
    # clipping changes the length, not the direction (norm clipping)
    if "clipvalue" not in clip:
        big = int(np.argmax([np.linalg.norm(s) for s in raw_steps]))
        cosine = np.dot(steps[big].ravel(), raw_steps[big].ravel()) / (
            norms[big] * np.linalg.norm(raw_steps[big]))
        assert cosine == pytest.approx(1.0, abs=1e-4)


# -- learning and reproducibility -----------------------------------------------------------

def memory_task(n=64, steps=6, seed=0):
    """The target is the first value of the sequence: the layer must remember it."""
    x = np.random.default_rng(seed).uniform(-1, 1, (n, steps, 1)).astype(np.float32)
    return x, x[:, 0, :].copy()


@pytest.mark.parametrize("kind", [LSTM, GRU])
def test_gated_layers_learn_to_remember_and_are_reproducible(kind):
    x, y = memory_task()

    def train():
        cnn.set_seed(5)
        model = Model(Input((6, 1)))
        model.add_layer(kind(8))
        model.add_layer(Dense(1))
        model.compile(optimizer="adam", loss="mse")
        before = model.evaluate(x, y, return_dict=True)["loss"]
        model.compile(optimizer=cnn.optimizers.Adam(0.03), loss="mse")
        model.fit(x, y, batch_size=16, epochs=30, verbose=0, seed=1)
        return before, model

    before, model = train()
    _, again = train()
    after = model.evaluate(x, y, return_dict=True)["loss"]
    assert after < before / 10
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)


# -- windows ----------------------------------------------------------------------------------

def test_sliding_windows_values_and_errors():
    series = np.arange(20.0).reshape(10, 2)
    x, y = sliding_windows(series, 3, horizon=2)
    assert x.shape == (6, 3, 2) and y.shape == (6, 2)
    np.testing.assert_array_equal(x[4], series[4:7])
    np.testing.assert_array_equal(y[4], series[8])
    x1, y1 = sliding_windows(np.arange(5.0), 2)
    assert x1.shape == (3, 2, 1) and y1[:, 0].tolist() == [2.0, 3.0, 4.0]
    with pytest.raises(ValueError, match="at least 11 steps, but it has 10"):
        sliding_windows(series, 10)
    with pytest.raises(ValueError, match="length must be"):
        sliding_windows(series, 0)
    with pytest.raises(ValueError, match=r"\(time steps, features\)"):
        sliding_windows(np.zeros((2, 3, 4)), 1)


def test_save_and_load_a_recurrent_model(tmp_path):
    from cnn.models import load_model

    cnn.set_seed(0)
    model = Model(Input((T, F)), "seq")
    model.add_layer(LSTM(5, return_sequences=True, unit_forget_bias=False))
    model.add_layer(GRU(4, return_sequences=True, reset_after=False, go_backwards=True))
    model.add_layer(TimeDistributed(Dense(2, activation="tanh")))
    model.compile(optimizer="adam", loss="mse")
    x = random((N, T, F), seed=22).astype(np.float32)
    model.train_on_batch(x, random((N, T, 2), seed=23))
    model.save(tmp_path / "seq.h5")
    loaded = load_model(tmp_path / "seq.h5")
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert [layer.get_config() for layer in loaded.layers] == [
        layer.get_config() for layer in model.layers]


def test_poi_examples_run_end_to_end(tmp_path, monkeypatch, capsys):
    """Both POI examples on a synthetic periodic trajectory in the seed's .mat layout."""
    import runpy
    import sys

    from scipy.io import savemat

    examples = Path(__file__).resolve().parent.parent / "examples"
    steps = np.arange(2427)
    trajectory = np.stack([np.sin(steps / 2.7), np.cos(steps / 2.7), 0.5 * np.sin(steps / 1.3)])
    savemat(tmp_path / "POI.mat", {"SquPOI": trajectory + np.array([[2.0], [1.5], [51.0]])})
    monkeypatch.syspath_prepend(str(examples))
    runs = [("poi_rnn.py", ["--rounds", "1"]),
            ("poi_lstm.py", ["--epochs", "1", "--window", "4", "--units", "4"])]
    for script, extra in runs:
        monkeypatch.setattr(sys, "argv", [script, "--data", str(tmp_path / "POI.mat"),
                                          "--out", str(tmp_path), *extra])
        runpy.run_path(str(examples / script), run_name="__main__")
    printed = capsys.readouterr().out
    assert printed.count("test MAE") >= 2 and "closed loop, 100 steps" in printed
    for name in ("rnn", "lstm"):
        for kind in ("one_step", "closed_loop"):
            assert (tmp_path / f"poi_{name}_{kind}.png").stat().st_size > 10_000
