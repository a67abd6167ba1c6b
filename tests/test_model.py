"""Model: building, compiling, training, inference, weights, errors."""

import io
import math

import numpy as np
import pytest

import cnn
from cnn.backend import floatx_scope
from cnn.callbacks import Callback
from cnn.layers import (AveragePooling2D, Conv2D, Dense, Dropout, Flatten, Input, MaxPooling2D,
                        Output)
from cnn.models import Model, NonFiniteLossError, Sequential
from cnn.optimizers import SGD, Adam
from helpers import check_model_gradients


def seed_network(name="MNIST_cnn", input_shape=(1, 28, 28), filters=20, kernel=9):
    model = Model(Input(input_shape), name)
    model.add_layer(Conv2D(filters, kernel, activate_fcn="ReLU"))
    model.add_layer(AveragePooling2D(2))
    model.add_layer(Flatten())
    model.add_layer(Dense(16, activate_fcn="ReLU"))
    model.add_layer(Output(3))
    return model


def toy_data(n=40, shape=(1, 8, 8), classes=3, seed=0):
    """Images whose class is written into their brightness pattern, so models can learn it."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    x = rng.normal(0, 0.3, (n, *shape)).astype(np.float32)
    for c in range(classes):
        x[labels == c, :, c::classes, :] += 1.0
    return x, labels


def small_model(seed=0, dropout=False):
    cnn.set_seed(seed)
    model = Model(Input((1, 8, 8)), "toy")
    model.add_layer(Conv2D(4, 3, activation="relu"))
    model.add_layer(MaxPooling2D(2))
    model.add_layer(Flatten())
    if dropout:
        model.add_layer(Dropout(0.2))
    model.add_layer(Output(3))
    model.compile(0.1, "cross_tropy")
    return model


# -- building ---------------------------------------------------------------------------------

def test_shapes_are_inferred():
    model = Model(Input((1, 28, 28)))
    model.add(Conv2D(6, 5, padding="same"))
    model.add(MaxPooling2D(2))
    model.add(Flatten())
    model.add(Dense(10))
    assert [layer.output_shape for layer in model.layers] == [
        (None, 6, 28, 28), (None, 6, 14, 14), (None, 1176), (None, 10)]
    assert model.output_shape == (None, 10)


def test_declared_shape_mismatch_names_layer_and_shapes():
    model = Model(Input((1, 28, 28)))
    model.add_layer(Conv2D(20, 9, input_shape=(1, 28, 28)))
    with pytest.raises(ValueError) as info:
        model.add_layer(AveragePooling2D(2, input_shape=(20, 10, 10)))
    message = str(info.value)
    assert "AveragePooling2D" in message
    assert "(None, 20, 10, 10)" in message and "(None, 20, 20, 20)" in message


def test_first_layer_can_carry_the_input_shape_and_sequential_works():
    model = Sequential([Dense(4, input_shape=3, activation="relu"), Dense(2)])
    assert model.input_shape == (None, 3)
    assert [layer.name for layer in model.layers] == ["dense", "dense_1"]
    with pytest.raises(ValueError, match="needs an input shape"):
        Model().add(Dense(3))


def test_layer_names_must_be_unique_and_layers_not_shared():
    model = Model(Input(3))
    layer = Dense(2, name="head")
    model.add(layer)
    with pytest.raises(ValueError, match="already belongs"):
        Model(Input(3)).add(layer)
    with pytest.raises(ValueError, match="named 'head'"):
        model.add(Dense(2, name="head"))


# -- compile ----------------------------------------------------------------------------------

def test_compile_seed_form_and_keras_form():
    model = small_model()
    assert isinstance(model.optimizer, SGD) and model.lr == pytest.approx(0.1)
    assert model.loss.name == "categorical_crossentropy"
    assert [m.name for m in model.metrics] == ["accuracy"]
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    assert isinstance(model.optimizer, Adam)
    model.compile("adam", "mse")
    assert model.loss.name == "mean_squared_error"
    model.compile(optimizer=Adam(learning_rate=0.01), loss="cross_tropy")
    assert model.lr == pytest.approx(0.01)
    model.compile(0.01, "MSE", "MAE")
    assert model.loss.name == "seed_mse" and model.metrics[0].name == "MAE"


@pytest.mark.parametrize("kwargs, match", [
    ({"loss": "cross_entropyy"}, "valid loss names"),
    ({"optimizer": "adamm"}, "valid optimizer names: adadelta, adagrad, adam"),
    ({"loss": "mse", "metrics": ["acc2"]}, "valid metric names"),
    ({"learning_rate": -0.1}, "learning_rate"),
    ({"learning_rate": float("nan")}, "learning_rate"),
])
def test_compile_rejects_unknown_names(kwargs, match):
    with pytest.raises(ValueError, match=match):
        small_model().compile(**kwargs)


def test_fit_before_compile_and_without_layers():
    model = Model(Input(3))
    with pytest.raises(ValueError, match="no layers"):
        model.fit(np.zeros((2, 3)), np.zeros((2, 2)))
    model.add(Dense(2))
    with pytest.raises(ValueError, match="before compile"):
        model.fit(np.zeros((2, 3)), np.zeros((2, 2)))


# -- training ---------------------------------------------------------------------------------

def test_fit_learns_and_returns_history():
    x, y = toy_data(120)
    model = small_model()
    history = model.fit(x, y, batch_size=16, epochs=5, verbose=0)
    assert set(history) == {"loss", "accuracy", "learning_rate"}
    assert len(history["loss"]) == 5 and history.history is history
    assert history["loss"][-1] < history["loss"][0]
    assert history["accuracy"][-1] > 0.9
    accuracy, loss = model.evaluate(x, y)
    assert isinstance(accuracy, float) and isinstance(loss, float)
    assert accuracy > 0.9


def test_model_gradient_through_fused_softmax_and_every_layer():
    with floatx_scope("float64"):
        cnn.set_seed(1)
        model = Model(Input((2, 7, 7)))
        model.add(Conv2D(3, 3, padding="same", activation="tanh"))
        model.add(MaxPooling2D(2, padding="same"))
        model.add(Conv2D(2, 2, strides=2, activation="relu"))
        model.add(Flatten())
        model.add(Dense(5, activation="sigmoid"))
        model.add(Output(3))
        model.compile(0.1, "cross_tropy")
        assert model.fused_outputs == (0,)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((4, 2, 7, 7))
        y = np.eye(3)[[0, 1, 2, 1]]
        check_model_gradients(model, x, y)


def test_model_gradient_unfused_regression():
    with floatx_scope("float64"):
        cnn.set_seed(2)
        model = Sequential([Input(4), Dense(6, activation="gelu"), Dense(2)])
        model.compile(0.1, "MSE")
        assert model.fused_outputs == ()
        rng = np.random.default_rng(0)
        check_model_gradients(model, rng.standard_normal((5, 4)), rng.standard_normal((5, 2)))


def test_last_partial_batch_is_used():
    seen = []

    class Count(Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append(batch)

    x, y = toy_data(45)
    small_model().fit(x, y, batch_size=20, epochs=1, verbose=0, callbacks=[Count()])
    assert seen == [0, 1, 2]


def test_integer_labels_equal_one_hot_labels():
    x, y = toy_data(50)
    a = small_model(seed=3)
    b = small_model(seed=3)
    ha = a.fit(x, y, batch_size=8, epochs=2, verbose=0, seed=5)
    hb = b.fit(x, np.eye(3)[y].astype(np.int32), batch_size=8, epochs=2, verbose=0, seed=5)
    assert ha == hb
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_seeded_runs_are_reproducible():
    x, y = toy_data(60)

    def run():
        cnn.set_seed(11)
        model = small_model(seed=11, dropout=True)
        history = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
        return model.get_weights(), history

    (w1, h1), (w2, h2) = run(), run()
    assert h1 == h2
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)


def test_two_fits_continue_like_one_longer_fit():
    x, y = toy_data(60)
    a, b = small_model(seed=4, dropout=True), small_model(seed=4, dropout=True)
    a.fit(x, y, batch_size=16, epochs=4, verbose=0, seed=9)
    b.fit(x, y, batch_size=16, epochs=2, verbose=0, seed=9)
    b.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert b.epoch == 4
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_validation_split_and_data():
    x, y = toy_data(100)
    model = small_model()
    history = model.fit(x, y, epochs=2, verbose=0, validation_split=0.2)
    assert {"val_loss", "val_accuracy"} <= set(history)
    held_out = model.evaluate(x[80:], y[80:])
    assert history["val_accuracy"][-1] == pytest.approx(held_out[0])
    assert history["val_loss"][-1] == pytest.approx(held_out[1], rel=1e-6)
    history = model.fit(x[:80], y[:80], epochs=1, verbose=0, validation_data=(x[80:], y[80:]))
    assert len(history["val_loss"]) == 1


def test_stop_training_from_a_callback():
    class StopAfterFirstEpoch(Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = True

    x, y = toy_data(30)
    history = small_model().fit(x, y, epochs=5, verbose=0, callbacks=[StopAfterFirstEpoch()])
    assert len(history["loss"]) == 1


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning",
                            "ignore:invalid value encountered:RuntimeWarning")
def test_nan_loss_stops_with_epoch_and_batch_and_keeps_last_good_weights():
    x, y = toy_data(64)
    model = small_model()
    model.compile(1e6, "cross_tropy")
    snapshots = []

    class Snapshot(Callback):
        def on_batch_end(self, batch, logs=None):
            snapshots.append(self.model.get_weights())

    with pytest.raises(NonFiniteLossError, match=r"epoch \d+, batch \d+/\d+") as info:
        model.fit(x * 1e3, y, batch_size=8, epochs=3, verbose=0, callbacks=[Snapshot()])
    assert "last good step" in str(info.value)
    for w in model.get_weights():
        assert np.all(np.isfinite(w))
    if snapshots:
        for current, last_good in zip(model.get_weights(), snapshots[-1]):
            np.testing.assert_array_equal(current, last_good)


def test_progress_output_verbose_levels(capsys):
    x, y = toy_data(40)
    model = small_model()
    model.fit(x, y, batch_size=10, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""
    model.fit(x, y, batch_size=10, epochs=2, verbose=2)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("Epoch 3/4") and "loss:" in lines[0]
    model.fit(x, y, batch_size=10, epochs=1, verbose=1)
    out = capsys.readouterr().out
    assert "\r" not in out and "4/4 [" in out and "accuracy:" in out


# -- inference --------------------------------------------------------------------------------

def test_predict_in_batches_equals_one_forward_pass():
    x, _ = toy_data(70)
    model = small_model()
    full = model.forward(x)
    np.testing.assert_allclose(model.predict(x, batch_size=16), full, rtol=1e-6, atol=1e-7)
    assert model.predict(x).dtype == np.float32
    np.testing.assert_array_equal(model.predict_classes(x), full.argmax(axis=1))


def test_evaluate_returns_loss_alone_without_metrics_and_dict_on_request():
    x, y = toy_data(20)
    model = small_model()
    model.compile(0.1, "cross_tropy", metrics=[])
    assert isinstance(model.evaluate(x, y), float)
    model.compile(0.1, "cross_tropy", metrics=["accuracy", "mse"])
    assert set(model.evaluate(x, y, return_dict=True)) == {"loss", "accuracy", "mse"}


# -- weights and summary ----------------------------------------------------------------------

def test_model_weights_round_trip_and_order():
    model = small_model()
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(4, 1, 3, 3), (4,), (3, 36), (3,)]
    other = small_model(seed=99)
    other.set_weights(weights)
    x, _ = toy_data(5)
    np.testing.assert_array_equal(other.predict(x), model.predict(x))
    with pytest.raises(ValueError, match="4 weight arrays"):
        other.set_weights(weights[:3])


def test_summary_prints_the_seed_table():
    model = Model(Input((1, 28, 28)), "test_cnn")
    model.add_layer(Conv2D(20, 9, input_shape=(1, 28, 28), activate_fcn="ReLU", use_bias=False))
    model.add_layer(MaxPooling2D(2, input_shape=(20, 20, 20)))
    model.add_layer(Flatten((20, 10, 10)))
    model.add_layer(Dense(100, 2000, activate_fcn="ReLU", use_bias=False))
    model.add_layer(Output(10, 100, use_bias=False))
    out = io.StringIO()
    model.summary(print_fn=lambda s: out.write(s))
    text = out.getvalue()
    assert "model name: test_cnn" in text
    assert "Conv2D                       (None, 20, 20, 20)        1620" in text
    assert "Dense                        (None, 100)               200000" in text
    assert "Total params: 202620" in text


# -- bad input --------------------------------------------------------------------------------

@pytest.mark.parametrize("x, y, match", [
    (np.zeros((4, 8, 8)), np.zeros(4, int), r"shape \(4, 8, 8\).*expects \(N, 1, 8, 8\)"),
    (np.zeros((4, 1, 8, 9)), np.zeros(4, int), "expects"),
    (np.zeros((4, 1, 8, 8)), np.zeros(3, int), "4 samples but y has 3"),
    (np.zeros((4, 1, 8, 8)), np.zeros((4, 5)), "5 columns but the model outputs 3"),
    (np.zeros((4, 1, 8, 8)), np.array([0, 1, 2, 3]), "class ids from 0 to 3"),
    (np.full((4, 1, 8, 8), np.nan), np.zeros(4, int), "NaN or infinite"),
    (np.zeros((0, 1, 8, 8)), np.zeros(0, int), "empty"),
    (np.array([["a"]]), np.zeros(1, int), "numbers"),
])
def test_bad_training_data_gets_clear_errors(x, y, match):
    with pytest.raises(ValueError, match=match):
        small_model().fit(x, y, verbose=0)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5])
def test_bad_batch_size(batch_size):
    x, y = toy_data(8)
    with pytest.raises(ValueError, match="batch_size"):
        small_model().fit(x, y, batch_size=batch_size, verbose=0)


def test_predict_rejects_a_single_unbatched_sample_with_a_hint():
    with pytest.raises(ValueError, match="batch axis"):
        small_model().predict(np.zeros((1, 8, 8)))


def test_float64_inputs_are_cast_to_float32():
    x, y = toy_data(10)
    model = small_model()
    model.fit(x.astype(np.float64), y, verbose=0)
    assert all(w.dtype == np.float32 for w in model.get_weights())
    assert math.isfinite(model.evaluate(x.astype(np.float64), y)[1])


def test_sequential_rebuilds_from_its_config():
    model = Sequential([Input(3), Dense(4, activation="relu"), Dense(2)], name="seq")
    copy = Sequential.from_config(model.get_config())
    assert type(copy) is Sequential and copy.name == "seq"
    assert [layer.output_shape for layer in copy.layers] == [(None, 4), (None, 2)]


def test_layer_registry_lists_only_concrete_layers():
    from cnn.layers import layer_class

    with pytest.raises(ValueError) as info:
        layer_class("ActivatedLayer")
    assert "Conv2D" in str(info.value) and "ActivatedLayer" not in str(info.value).split(";")[1]
