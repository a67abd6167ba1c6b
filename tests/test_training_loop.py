"""The training package: evaluate's order, data adapters (arrays, tuples, generators,
sequences, memmaps) on one batching path, and exact resumes with callbacks' and Dropout's
state."""

from __future__ import annotations

import numpy as np
import pytest

import cnn
from cnn.callbacks import Callback, EarlyStopping, ModelCheckpoint, ReduceLROnPlateau
from cnn.layers import Dense, Dropout, Input, Output
from cnn.models import Model, Sequential, load_model
from cnn.optimizers import SGD
from cnn.training import data_adapters
from helpers import separable_data


def mlp(dropout_seed=None, keras=True):
    cnn.set_seed(0)
    layers = [Input((4,)), Dense(8, activation="relu")]
    if dropout_seed is not None:
        layers.append(Dropout(0.3, seed=dropout_seed))
    model = Sequential(layers + [Output(3)])
    if keras:
        model.compile(optimizer=SGD(0.1), loss="categorical_crossentropy", metrics=["accuracy"])
    else:
        model.compile(0.1, "cross_tropy")
    return model


# -- evaluate's order -----------------------------------------------------------------------

def test_evaluate_follows_the_form_of_compile():
    x, y = separable_data(30)
    keras, seed = mlp(keras=True), mlp(keras=False)
    seed.set_weights(keras.get_weights())
    results = keras.evaluate(x, y, return_dict=True)
    assert keras.metrics_names == ["loss", "accuracy"]
    assert keras.evaluate(x, y) == [results["loss"], results["accuracy"]]
    assert seed.metrics_names == ["accuracy", "loss"]
    assert seed.evaluate(x, y) == (results["accuracy"], results["loss"])
    by_name = mlp()
    by_name.compile(learning_rate=0.1, loss_fcn="cross_tropy")
    assert by_name.metrics_names == ["accuracy", "loss"]
    positional = mlp()
    positional.compile("sgd", "categorical_crossentropy")
    assert positional.metrics_names == ["loss", "accuracy"]
    alone = mlp()
    alone.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=[])
    assert alone.evaluate(x, y) == pytest.approx(results["loss"], rel=1e-5)


def test_the_order_survives_a_save(tmp_path):
    x, y = separable_data(20)
    for keras in (True, False):
        model = mlp(keras=keras)
        model.save(tmp_path / "m.h5")
        loaded = load_model(tmp_path / "m.h5")
        assert loaded.metrics_names == model.metrics_names
        assert loaded.evaluate(x, y) == model.evaluate(x, y)


# -- data adapters --------------------------------------------------------------------------

def batches_of(x, y, size):
    for start in range(0, len(x), size):
        yield x[start:start + size], y[start:start + size]


class Batches:
    """A Keras-Sequence-like object: ``len`` batches, ``[i]`` the i-th."""

    def __init__(self, x, y, size):
        self.x, self.y, self.size = x, y, size
        self.epochs_ended = 0

    def __len__(self):
        return -(-len(self.x) // self.size)

    def __getitem__(self, i):
        return self.x[i * self.size:(i + 1) * self.size], self.y[i * self.size:(i + 1) * self.size]

    def on_epoch_end(self):
        self.epochs_ended += 1


def test_generators_tuples_and_sequences_train_like_arrays():
    x, y = separable_data(48)
    arrays = mlp()
    arrays.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    tupled = mlp()
    tupled.fit((x, y), batch_size=8, epochs=2, shuffle=False, verbose=0)
    generated = mlp()
    endless = (batch for _ in range(2) for batch in batches_of(x, y, 8))
    generated.fit(endless, steps_per_epoch=6, epochs=2, verbose=0)
    sequence = Batches(x, y, 8)
    sequenced = mlp()
    sequenced.fit(sequence, epochs=2, shuffle=False, verbose=0)
    assert sequence.epochs_ended == 2
    for model in (tupled, generated, sequenced):
        for a, b in zip(arrays.get_weights(), model.get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    expected = arrays.evaluate(x, y, return_dict=True)
    from_generator = arrays.evaluate(batches_of(x, y, 16), return_dict=True)
    assert from_generator == pytest.approx(expected)
    assert arrays.evaluate(Batches(x, y, 5), steps=2, return_dict=True)["loss"] == pytest.approx(
        arrays.evaluate(x[:10], y[:10], return_dict=True)["loss"], rel=1e-6)
    np.testing.assert_allclose(arrays.predict(batches_of(x, y, 7)), arrays.predict(x), rtol=1e-6)
    np.testing.assert_allclose(arrays.predict((b for b, _ in batches_of(x, y, 7)), steps=2),
                               arrays.predict(x[:14]), rtol=1e-6)


def test_a_sequence_is_reshuffled_every_epoch_reproducibly_under_a_seed():
    x, y = separable_data(40)
    seen = []

    class Recording(Batches):
        def __getitem__(self, i):
            seen.append(i)
            return super().__getitem__(i)

    runs = []
    for _ in range(2):
        seen.clear()
        model = mlp()
        model.fit(Recording(x, y, 8), epochs=3, verbose=0, seed=5)
        runs.append((list(seen), model.get_weights()))
    (order_a, weights_a), (order_b, weights_b) = runs
    assert order_a == order_b
    epochs = [order_a[i * 5:(i + 1) * 5] for i in range(3)]
    assert all(sorted(e) == list(range(5)) for e in epochs) and epochs[0] != epochs[1]
    for a, b in zip(weights_a, weights_b):
        np.testing.assert_array_equal(a, b)


def test_validation_from_a_generator_with_validation_steps():
    x, y = separable_data(40)
    model = mlp()
    history = model.fit(x[:30], y[:30], epochs=1, verbose=0,
                        validation_data=Batches(x[30:], y[30:], 5), validation_steps=1)
    expected = model.evaluate(x[30:35], y[30:35], return_dict=True)
    assert history["val_loss"][0] == pytest.approx(expected["loss"], rel=1e-6)


def test_a_generator_that_runs_out_stops_training_with_a_warning():
    x, y = separable_data(16)
    model = mlp()
    with pytest.warns(UserWarning, match="ran out at epoch 2"):
        history = model.fit(batches_of(x, y, 8), steps_per_epoch=2, epochs=5, verbose=0)
    assert len(history["loss"]) == 1


def test_a_wrong_batch_from_a_generator_names_its_number():
    x, y = separable_data(24)

    def batches():
        yield x[:8], y[:8]
        yield x[8:16], y[8:16]
        yield x[16:, :3], y[16:]

    with pytest.raises(ValueError, match=r"batch 3 from the generator: x has shape \(8, 3\)"):
        mlp().fit(batches(), epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"batch 1 from the sequence: y holds class ids"):
        mlp().fit(Batches(x, y + 7, 8), epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"batch 1 from the generator should be a tuple"):
        mlp().fit(iter([x]), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="y cannot be given with a generator"):
        mlp().fit(batches(), y, verbose=0)
    with pytest.raises(ValueError, match="steps / steps_per_epoch are for generators"):
        mlp().fit(x, y, steps_per_epoch=3, verbose=0)


def test_one_batching_path_serves_fit_evaluate_predict_and_validation(monkeypatch):
    calls = []
    original = data_adapters.ArrayAdapter.batches

    def counting(self, rng=None):
        calls.append(self.batch_size)
        yield from original(self, rng)

    monkeypatch.setattr(data_adapters.ArrayAdapter, "batches", counting)
    x, y = separable_data(20)
    model = mlp()
    model.fit(x, y, batch_size=5, epochs=1, verbose=0, validation_split=0.5)
    model.evaluate(x, y, batch_size=7)
    model.predict(x, batch_size=3)
    assert calls == [5, 256, 7, 3]


def test_a_memmap_is_read_from_its_file_not_through_the_mapping(tmp_path):
    x, y = separable_data(50)
    path = tmp_path / "x.npy"
    np.save(path, x)
    mapped = np.load(path, mmap_mode="r")
    assert data_adapters.FileRows.usable(mapped) and not data_adapters.FileRows.usable(mapped[5:])
    rows = data_adapters.Rows(mapped)
    np.testing.assert_array_equal(rows.take(np.array([7, 3, 49])), x[[7, 3, 49]])
    np.testing.assert_array_equal(rows.range(10, 20), x[10:20])
    from_file, in_memory = mlp(), mlp()
    from_file.fit(mapped, y, batch_size=8, epochs=2, verbose=0, seed=1, validation_split=0.2)
    in_memory.fit(x, y, batch_size=8, epochs=2, verbose=0, seed=1, validation_split=0.2)
    for a, b in zip(from_file.get_weights(), in_memory.get_weights()):
        np.testing.assert_array_equal(a, b)
    bad = np.lib.format.open_memmap(tmp_path / "bad.npy", mode="w+", dtype=np.float32,
                                    shape=(20, 4))
    bad[13, 2] = np.nan
    bad.flush()
    with pytest.raises(ValueError, match="NaN or infinite values.*sample 13"):
        mlp().fit(np.load(tmp_path / "bad.npy", mmap_mode="r"), y[:20], verbose=0)


# -- exact resumes --------------------------------------------------------------------------

class StopAt(Callback):
    """Interrupts training (as a crash would) after epoch ``epoch``."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            self.model.stop_training = True


def watchers():
    return [EarlyStopping(monitor="val_loss", patience=2, min_delta=0.01),
            ReduceLROnPlateau(monitor="val_loss", patience=1, factor=0.5, min_delta=0.05)]


def test_resume_is_exact_for_callbacks_state_and_a_seeded_dropout(tmp_path):
    x, y = separable_data(60, seed=3)
    noisy = y.copy()
    noisy[40:43] = (noisy[40:43] + 1) % 3  # validation labels that stop improving soon
    kwargs = dict(batch_size=8, verbose=0, validation_data=(x[40:], noisy[40:]), seed=2)
    straight = mlp(dropout_seed=9)
    callbacks = watchers()
    full = straight.fit(x[:40], y[:40], epochs=12, callbacks=callbacks, **kwargs)
    stopped_at = callbacks[0].stopped_epoch
    assert 4 < stopped_at < 11  # early stopping really decided the end
    assert len(set(full["learning_rate"])) > 2  # and the rate was reduced more than once

    interrupted = mlp(dropout_seed=9)
    checkpoint = ModelCheckpoint(tmp_path / "ckpt.h5")
    first = interrupted.fit(x[:40], y[:40], epochs=12, callbacks=[checkpoint, *watchers(),
                                                                  StopAt(4)], **kwargs)
    resumed = load_model(tmp_path / "ckpt.h5")
    later = watchers()
    second = resumed.fit(x[:40], y[:40], initial_epoch=resumed.epoch, epochs=12,
                         callbacks=later, **kwargs)
    assert later[0].stopped_epoch == stopped_at and later[0].best == callbacks[0].best
    assert resumed.optimizer.learning_rate == straight.optimizer.learning_rate
    assert first["val_loss"] + second["val_loss"] == full["val_loss"]
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_model_checkpoint_keeps_its_best_across_a_resume(tmp_path):
    x, y = separable_data(40, seed=4)
    path = tmp_path / "best.h5"
    model = mlp()
    best = ModelCheckpoint(path, monitor="val_loss", save_best_only=True)
    model.fit(x[:30], y[:30], epochs=3, batch_size=4, verbose=0,
              validation_data=(x[30:], y[30:]), callbacks=[best])
    saved = load_model(path).get_weights()
    resumed = load_model(path)
    again = ModelCheckpoint(path, monitor="val_loss", save_best_only=True)
    wrong = (y[30:] + 1) % 3  # a worse validation loss: not a new best, nothing is saved
    history = resumed.fit(x[:30], y[:30], epochs=1, verbose=0,
                          validation_data=(x[30:] * 5, wrong), callbacks=[again])
    assert history["val_loss"][0] > best.best
    assert again.best == best.best
    for a, b in zip(saved, load_model(path).get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_seeded_dropout_saves_its_generator(tmp_path):
    x, y = separable_data(20)
    model = mlp(dropout_seed=3)
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "d.h5")
    loaded = load_model(tmp_path / "d.h5")
    dropout, twin = model.get_layer(name="dropout"), loaded.get_layer(name="dropout")
    assert twin.get_state() == dropout.get_state()
    data = x.astype(np.float32)
    np.testing.assert_array_equal(dropout.forward(data, training=True),
                                  twin.forward(data, training=True))


# -- files written before graphs ------------------------------------------------------------

def test_a_format_version_1_file_still_loads_and_resumes_exactly():
    """tests/fixtures/cnn_v1/stack.h5 was written by cnn at 7b96516 (before graphs): a
    Sequential with Conv2D, BatchNormalization, Dropout and Dense, trained 2 epochs with
    Adam; the .npz holds what that code computed from it (and after one more epoch)."""
    from helpers import seed_dir

    fixtures = seed_dir().parent / "cnn_v1"
    expected = np.load(fixtures / "stack_expected.npz")
    model = load_model(fixtures / "stack.h5")
    assert model.is_stack and model.name == "v1_stack" and model.epoch == 2
    np.testing.assert_array_equal(model.predict(expected["x"]), expected["predict"])
    assert model.metrics_names == ["accuracy", "loss"]  # the order it returned then
    accuracy, loss = model.evaluate(expected["x"], expected["y"])
    assert accuracy == expected["accuracy"] and loss == pytest.approx(float(expected["loss"]),
                                                                      rel=1e-6)
    model.fit(expected["x"], expected["y"], epochs=1, batch_size=8, verbose=0)
    np.testing.assert_allclose(np.concatenate([w.ravel() for w in model.get_weights()]),
                               expected["resumed"], rtol=1e-6, atol=1e-7)
