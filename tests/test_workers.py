"""Data-parallel training, ``fit(workers=W)`` (cnn.training.workers): the same steps as one
process up to float rounding, reproducible, and clear about what it cannot do."""

import copy
import os
import pickle
import signal
from pathlib import Path

import numpy as np
import pytest

import cnn
from cnn.backend import floatx_scope
from cnn.callbacks import Callback, TerminateOnNaN
from cnn.layers import (AveragePooling2D, BatchNormalization, Conv2D, Dense, Dropout, Flatten,
                        Input, Layer, LSTM, MaxPooling2D, Output, RandomBrightness,
                        RandomContrast, RandomCrop, RandomFlip, RandomTranslation, RandomZoom)
from cnn.models import Model, NonFiniteLossError
from cnn.models import model as model_module
from cnn.training.strategy import idle_pool
from cnn.training.workers import SharedArrays, slices
from cnn.optimizers import SGD, Adam

from worker_helpers import BatchCentering, convnet, data

PARENT = os.getpid()


def train(workers, n=70, batch_size=16, epochs=2, **kwargs):
    model = convnet(**kwargs)
    x, y = data(n)
    history = model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, seed=5,
                        workers=workers)
    model.close_workers()
    return model, history


def assert_close_weights(a, b, tolerance=1e-5):
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("workers", [2, 3])
def test_workers_take_the_steps_of_one_process(workers):
    alone, alone_history = train(1)
    shared, shared_history = train(workers)
    assert_close_weights(alone, shared)
    np.testing.assert_allclose(shared_history["loss"], alone_history["loss"], rtol=1e-5)
    assert shared_history["accuracy"] == alone_history["accuracy"]
    assert any(np.any(w != 0) for w in shared.get_weights())


def test_workers_started_with_spawn(monkeypatch):
    """The start method of platforms without fork: the workers rebuild the model from its
    config in a fresh interpreter."""
    from cnn.training import workers

    monkeypatch.setattr(workers, "START_METHOD", "spawn")
    alone, _ = train(1)
    shared, _ = train(2)
    assert_close_weights(alone, shared)


def test_workers_are_reproducible():
    first, _ = train(2, optimizer=Adam(0.01))
    second, _ = train(2, optimizer=Adam(0.01))
    for wa, wb in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_batches_smaller_than_the_workers_and_a_ragged_last_batch():
    alone, _ = train(1, n=9, batch_size=2)  # batches of 2 on 3 processes: one sits out
    shared, _ = train(3, n=9, batch_size=2)
    assert_close_weights(alone, shared)


def test_sample_and_class_weights_and_validation():
    x, y = data()
    weights = np.linspace(0.5, 2.0, len(x))
    results = []
    for workers in (1, 2):
        model = convnet(optimizer=Adam(0.01))
        history = model.fit(x, y, batch_size=16, epochs=2, verbose=0, seed=5, workers=workers,
                            sample_weight=weights, validation_split=0.2)
        model.close_workers()
        results.append((model, history))
    (alone, a), (shared, b) = results
    assert_close_weights(alone, shared, 1e-4)
    np.testing.assert_allclose(b["val_loss"], a["val_loss"], rtol=1e-4)
    class_weighted = convnet()
    class_weighted.fit(x, y, batch_size=16, verbose=0, workers=2, class_weight={0: 1, 1: 3, 2: 1})
    class_weighted.close_workers()


def random_layers_model(seed=0):
    """Augmentation, unseeded and seeded Dropout: every random draw a worker could make."""
    cnn.set_seed(seed)
    model = Model(Input((1, 10, 10)), "random")
    model.add(RandomFlip(data_format="channels_first"))
    model.add(RandomTranslation(0.2, 0.2, seed=3, data_format="channels_first"))
    model.add(RandomZoom(0.2, data_format="channels_first"))
    model.add(RandomContrast(0.3, value_range=(-3, 3), seed=4, data_format="channels_first"))
    model.add(RandomBrightness(0.1, value_range=(-3, 3), data_format="channels_first"))
    model.add(RandomCrop(8, 8, data_format="channels_first"))
    model.add(Conv2D(4, 3, activation="relu"))
    model.add(Flatten())
    model.add(Dropout(0.3))
    model.add(Dense(8, activation="relu"))
    model.add(Dropout(0.2, seed=5))
    model.add(Output(3))
    model.compile(optimizer=Adam(0.01), loss="categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.mark.parametrize("part_bytes", [None, 4000])
def test_random_layers_draw_the_masks_of_one_process(monkeypatch, part_bytes):
    """Dropout (seeded or not) and augmentation draw for the whole batch from the caller's
    generator states: 2 and 3 processes train the weights one process trains, also when
    every process runs its slice in several parts (``Model.parts``)."""
    if part_bytes is not None:
        monkeypatch.setattr(model_module, "PART_BYTES", part_bytes)
        assert len(random_layers_model().parts(16)) > 1
    x, y = data()
    weights = np.linspace(0.5, 2.0, len(x))
    results = []
    for workers in (1, 2, 3):
        model = random_layers_model()
        history = model.fit(x, y, batch_size=16, epochs=3, verbose=0, seed=5,
                            workers=workers, sample_weight=weights, validation_split=0.2)
        model.close_workers()
        results.append((model, history))
    (alone, a), *others = results
    assert a["loss"][-1] < a["loss"][0]
    for shared, b in others:
        assert_close_weights(alone, shared)
        for key in ("loss", "val_loss", "val_accuracy"):
            np.testing.assert_allclose(b[key], a[key], rtol=1e-5, atol=1e-6)
        assert b["accuracy"] == a["accuracy"]
        assert shared.layer_states() == alone.layer_states()  # seeded layers moved on alike


def test_max_pooling_and_every_trainable_layer_type():
    alone, _ = train(1, extra=[Dense(12, activation="tanh")])
    shared, _ = train(2, extra=[Dense(12, activation="tanh")])
    assert_close_weights(alone, shared)
    cnn.set_seed(0)
    model = Model(Input((1, 10, 10)))
    model.add(Conv2D(3, 3, padding="same", activation="relu"))
    model.add(MaxPooling2D(2))
    model.add(Flatten())
    model.add(Output(3))
    model.compile(optimizer=SGD(0.1), loss="categorical_crossentropy")
    x, y = data()
    before = model.get_weights()
    model.fit(x, y, batch_size=20, verbose=0, workers=2)
    model.close_workers()
    assert all(np.any(a != b) for a, b in zip(before, model.get_weights()))


def test_layers_that_mix_samples_are_refused():
    """BatchNormalization sums its statistics over the slices (test_workers_sync.py); a layer
    that mixes samples otherwise cannot be split."""
    model = convnet(extra=[BatchCentering(name="centering")])
    x, y = data()
    with pytest.raises(ValueError, match=r"centering.*does not treat samples.*workers=1"):
        model.fit(x, y, verbose=0, workers=2)


@pytest.mark.parametrize("workers", [0, -1, 1.5, True, "2"])
def test_bad_worker_counts(workers):
    model = convnet()
    x, y = data()
    with pytest.raises(ValueError, match="workers must be an int >= 1"):
        model.fit(x, y, verbose=0, workers=workers)


def test_workers_stay_up_between_fits_and_end_with_close_workers():
    model = convnet()
    x, y = data()
    model.fit(x, y, batch_size=16, verbose=0, workers=2)
    pool = idle_pool(model)
    assert pool is not None and pool.alive()
    names = [pool.shared_weights.name, *(io.name for io in pool.io)]
    model.fit(x, y, batch_size=16, verbose=0, workers=2)
    assert idle_pool(model) is pool  # same set-up: the same processes
    model.fit(x, y, batch_size=8, verbose=0, workers=2)
    assert idle_pool(model) is not pool and not pool.alive()  # a new batch size: new ones
    pool = idle_pool(model)
    processes = list(pool.processes)
    model.close_workers()
    assert idle_pool(model) is None
    assert not any(process.is_alive() for process in processes)
    shm = Path("/dev/shm")
    if shm.is_dir():
        assert not any((shm / name.lstrip("/")).exists() for name in names)


def test_copies_and_pickles_leave_the_workers_behind():
    model = convnet()
    x, y = data()
    model.fit(x, y, batch_size=16, verbose=0, workers=2)
    pool = idle_pool(model)
    for copied in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert idle_pool(copied) is None
        np.testing.assert_array_equal(copied.predict(x), model.predict(x))
        copied.fit(x, y, batch_size=16, verbose=0, workers=2)  # starts its own
        assert idle_pool(copied) is not pool
        copied.close_workers()
    assert pool.alive() and idle_pool(model) is pool
    model.close_workers()


def test_a_killed_worker_is_replaced_at_the_next_fit():
    model = convnet()
    x, y = data()
    model.fit(x, y, batch_size=16, verbose=0, workers=2)
    pool = idle_pool(model)
    os.kill(pool.processes[0].pid, signal.SIGKILL)
    pool.processes[0].join(timeout=5)
    model.fit(x, y, batch_size=16, verbose=0, workers=2)
    assert idle_pool(model) is not pool and idle_pool(model).alive()
    model.close_workers()


class FailsInWorkers(Layer):
    """Passes its input through, but raises in any process but the test's."""

    samplewise = True

    def forward(self, x, training=False):
        if os.getpid() != PARENT:
            raise ArithmeticError("this layer refuses to run in a worker")
        return x

    def backward(self, grad):
        return grad


def test_an_error_in_a_worker_names_the_worker_and_its_traceback():
    model = convnet(extra=[FailsInWorkers()])
    x, y = data()
    before = model.get_weights()
    with pytest.raises(RuntimeError, match=r"training worker 1 \(pid \d+\) failed") as info:
        model.fit(x, y, batch_size=16, verbose=0, workers=2)
    assert "this layer refuses to run in a worker" in str(info.value)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)  # the failed step changed nothing
    assert idle_pool(model) is None  # and the processes are gone


def test_a_nan_in_a_workers_slice_stops_training_before_the_update():
    model = convnet()
    x, y = data(32)
    x[-1] = 3e38  # overflows in the second half of the only batch: the worker's slice
    before = model.get_weights()
    with np.errstate(all="ignore"), pytest.raises(NonFiniteLossError, match="epoch 1, batch 1"):
        model.fit(x, y, batch_size=32, verbose=0, workers=2)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    model.close_workers()


def test_terminate_on_nan_stops_quietly_and_the_workers_serve_the_next_fit():
    model = convnet()
    x, y = data(64)
    bad = x.copy()
    bad[-1] = 3e38  # the worker's slice of the second batch
    with np.errstate(all="ignore"):
        history = model.fit(bad, y, batch_size=32, verbose=0, shuffle=False, workers=2,
                            callbacks=[TerminateOnNaN()])
    assert np.isnan(history["loss"][-1])
    pool = idle_pool(model)
    history = model.fit(x, y, batch_size=32, verbose=0, workers=2)
    assert idle_pool(model) is pool and np.isfinite(history["loss"][-1])
    model.close_workers()


def test_slices_cover_the_batch_larger_first():
    for n in range(0, 12):
        for count in range(1, 5):
            parts = slices(n, count)
            sizes = [p.stop - p.start for p in parts]
            assert len(parts) == count and sum(sizes) == n
            assert parts[0].start == 0 and all(a.stop == b.start for a, b in zip(parts, parts[1:]))
            assert sizes == sorted(sizes, reverse=True) and max(sizes) - min(sizes) <= 1


def test_shared_arrays_are_seen_by_a_second_attachment():
    spec = {"a": ((3, 5), np.float32), "b": ((7,), np.int64)}
    owner = SharedArrays(spec)
    other = SharedArrays(spec, name=owner.name)
    owner["a"][...] = np.arange(15).reshape(3, 5)
    other["b"][...] = 9
    np.testing.assert_array_equal(other["a"], np.arange(15).reshape(3, 5))
    assert owner["b"].tolist() == [9] * 7
    assert owner["b"].ctypes.data % 64 == 0
    other.close()
    owner.close(unlink=True)


def test_float64_frozen_layers_and_weight_penalties():
    """Penalties are added once, by the caller; frozen layers send no gradient; in float64 the
    steps agree with one process to rounding."""
    results = []
    for workers in (1, 2):
        with floatx_scope("float64"):
            cnn.set_seed(0)
            model = Model(Input((1, 10, 10)))
            model.add(Conv2D(4, 3, activation="relu", trainable=False))
            model.add(AveragePooling2D(2))
            model.add(Flatten())
            model.add(Dense(8, activation="relu", kernel_regularizer="l2"))
            model.add(Output(3, kernel_regularizer="l1"))
            model.compile(optimizer=Adam(0.01), loss="categorical_crossentropy")
        x, y = data()
        frozen = model.layers[0].get_weights()
        history = model.fit(x, y, batch_size=16, epochs=2, verbose=0, seed=5, workers=workers)
        model.close_workers()
        for a, b in zip(frozen, model.layers[0].get_weights()):
            np.testing.assert_array_equal(a, b)
        results.append((model, history))
    (alone, a), (shared, b) = results
    assert shared.get_weights()[0].dtype == np.float64
    assert_close_weights(alone, shared, 1e-12)
    np.testing.assert_allclose(b["loss"], a["loss"], rtol=1e-12)


def test_close_workers_without_workers_is_harmless():
    model = convnet()
    model.close_workers()
    x, y = data()
    model.fit(x, y, verbose=0)  # workers=1 starts nothing
    assert idle_pool(model) is None


def test_each_process_takes_its_share_of_the_blas_threads():
    """Threads chosen with cnn.set_num_threads are shared among the processes."""
    seen = []

    class Threads(Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append(cnn.get_num_threads())

    model = convnet()
    x, y = data()
    cnn.set_num_threads(4)
    try:
        if cnn.get_num_threads() != 4:
            pytest.skip("the BLAS library here cannot run 4 threads")
        model.fit(x, y, batch_size=16, verbose=0, workers=2, callbacks=[Threads()])
        assert set(seen) == {2} and idle_pool(model).blas_threads == 2
        assert cnn.get_num_threads() == 4  # restored after fit
    finally:
        cnn.set_num_threads(None)
        model.close_workers()


def test_recurrent_dropout_draws_the_masks_of_one_process():
    rng = np.random.default_rng(2)
    x = rng.random((30, 6, 4), dtype=np.float32)
    y = rng.integers(0, 3, 30)
    results = []
    for workers in (1, 2):
        cnn.set_seed(0)
        inputs = Input((6, 4))
        hidden = LSTM(5, return_sequences=True, recurrent_dropout=0.3)(inputs)
        model = Model(inputs, Output(3)(Flatten()(Dropout(0.25)(hidden))))
        model.compile(optimizer=Adam(0.01), loss="categorical_crossentropy")
        history = model.fit(x, y, batch_size=10, epochs=2, verbose=0, seed=3, workers=workers)
        model.close_workers()
        results.append((model, history))
    (alone, a), (shared, b) = results
    assert_close_weights(alone, shared)
    np.testing.assert_allclose(b["loss"], a["loss"], rtol=1e-5)
