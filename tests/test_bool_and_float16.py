"""Bool arrays as inputs and targets; float16 models predict but refuse to train."""

import numpy as np
import pytest

import cnn
from cnn.backend import floatx_scope
from cnn.layers import Conv2D, Dense, Flatten, Input, MaxPooling2D
from cnn.models import Sequential, load_model
from cnn.optimizers import check_trainable


def xor_data(n=256, seed=0):
    bits = np.random.default_rng(seed).random((n, 2)) > 0.5
    return bits, np.logical_xor(bits[:, 0], bits[:, 1])


def test_bool_inputs_and_bool_targets_train_a_binary_classifier():
    cnn.set_seed(0)
    x, y = xor_data()
    assert x.dtype == bool and y.dtype == bool
    model = Sequential([Input((2,)), Dense(8, activation="tanh"), Dense(1, activation="sigmoid")])
    model.compile(optimizer=cnn.optimizers.Adam(0.05), loss="binary_crossentropy")
    model.fit(x, y, epochs=40, batch_size=32, verbose=0)
    _, accuracy = model.evaluate(x, y)
    assert accuracy == 1.0
    np.testing.assert_array_equal(model.predict(x), model.predict(x.astype(np.float32)))


def test_bool_inputs_give_the_same_training_as_their_float_values():
    x, y = xor_data(64)
    runs = []
    for inputs, targets in ((x, y), (x.astype(np.float32), y.astype(np.float32))):
        cnn.set_seed(1)
        model = Sequential([Input((2,)), Dense(4, activation="relu"),
                            Dense(1, activation="sigmoid")])
        model.compile(optimizer="adam", loss="binary_crossentropy")
        model.fit(inputs, targets, epochs=2, batch_size=16, verbose=0, seed=3)
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_bool_one_hot_targets_and_bool_class_ids():
    x = np.random.default_rng(0).standard_normal((10, 3))
    model = Sequential([Input((3,)), Dense(2, activation="softmax")])
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    one_hot = np.eye(2, dtype=bool)[np.arange(10) % 2]
    ids = (np.arange(10) % 2).astype(bool)
    assert model.evaluate(x, one_hot) == model.evaluate(x, ids)


def test_strings_are_still_refused():
    model = Sequential([Input((2,)), Dense(1)])
    with pytest.raises(ValueError, match="x must hold numbers or bools, got dtype <U1"):
        model.predict(np.array([["a", "b"]]))


def float16_model():
    with floatx_scope("float16"):
        model = Sequential([Input((1, 8, 8)), Conv2D(4, 3, activation="relu"), MaxPooling2D(2),
                            Flatten(), Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    return model


def test_float16_training_is_refused_with_a_clear_error():
    model = float16_model()
    x, y = np.random.default_rng(0).random((4, 1, 8, 8)), np.arange(4) % 3
    before = model.get_weights()
    with pytest.raises(ValueError, match="cannot train a float16 model: without loss scaling"):
        model.fit(x, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="cannot train a float16 model"):
        model.train_on_batch(x, y)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    check_trainable("float32")
    check_trainable(np.float64)


def test_float16_inference_matches_float32_and_a_float32_model_loads_as_float16(tmp_path):
    cnn.set_seed(0)
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 1, 8, 8)), np.arange(32) % 3
    model = Sequential([Input((1, 8, 8)), Conv2D(4, 3, activation="relu"), MaxPooling2D(2),
                        Flatten(), Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    model.fit(x, y, epochs=2, verbose=0)
    model.save(tmp_path / "m.h5")
    half = load_model(tmp_path / "m.h5", dtype="float16")
    out = half.predict(x)
    assert out.dtype == np.float16 and np.all(np.isfinite(out))
    np.testing.assert_allclose(out, model.predict(x), atol=5e-3)
    loss, accuracy = half.evaluate(x, y)
    assert np.isfinite(loss)
