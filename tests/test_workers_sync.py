"""BatchNormalization on the local worker processes (#12): the caller and its workers add up
the layer's sums (``cnn.training.slice_allreduce``, reached through ``cnn.replica``), so that
k processes take the step of one process, forward and backward, as the MPI ranks do; the
sums are added in slice order (bit-identical everywhere, run to run); a fault inside the
sums ends the step with the pool's error naming the worker, never a hang."""

import multiprocessing
import os
import signal
import threading
import time

import numpy as np
import pytest

import cnn
from cnn.layers import (AveragePooling2D, BatchNormalization, Conv2D, Dense, Dropout, Flatten,
                        Input, Layer, Output)
from cnn.models import Model
from cnn.optimizers import SGD
from cnn.training import defaults, workers as data_parallel
from cnn.training.errors import NonFiniteLossError
from cnn.training.slice_allreduce import SharedSlots, StepAborted
from cnn.training.strategy import idle_pool
from cnn.training.workers import WorkerError
from worker_helpers import data

PARENT = os.getpid()


def batch_norm_net(seed=0, extra=()):
    """Conv2D -> BatchNormalization (per channel, 4-d) -> pooling -> Flatten ->
    ``extra`` -> BatchNormalization (2-d) -> Dropout -> Dense -> 3 classes."""
    cnn.set_seed(seed)
    model = Model(Input((1, 10, 10)), "bn")
    model.add(Conv2D(4, 3, activation="relu"))
    model.add(BatchNormalization(momentum=0.8))
    model.add(AveragePooling2D(2))
    model.add(Flatten())
    for layer in extra:
        model.add(layer)
    model.add(BatchNormalization(momentum=0.8))
    model.add(Dropout(0.3))
    model.add(Dense(8, activation="relu"))
    model.add(Output(3))
    model.compile(optimizer=SGD(0.1), loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def fit(workers, n=70, batch_size=32, epochs=2, model=None, **kwargs):
    model = model or batch_norm_net()
    x, y = data(n)
    weights = np.random.default_rng(4).uniform(0.2, 2.0, n).astype(np.float32)
    history = model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, seed=3,
                        sample_weight=weights, workers=workers, **kwargs)
    return model, history


def assert_close_weights(a, b, tolerance=1e-5):
    for wa, wb in zip(a.get_weights(), b.get_weights()):  # moving statistics included
        np.testing.assert_allclose(wa, wb, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("workers", [2, 3])
@pytest.mark.parametrize("n", [70, 75])  # last batches of 6 and of 11 (uneven slices)
def test_batch_normalization_on_workers_takes_the_steps_of_one_process(workers, n):
    alone, alone_history = fit(1, n)
    model, history = fit(workers, n)
    assert idle_pool(model).synchronized and idle_pool(model).count == workers - 1
    assert_close_weights(model, alone)
    moving = [w for layer in model.layers if isinstance(layer, BatchNormalization)
              for w in layer.buffers.values()]
    assert moving and all(np.all(np.isfinite(w)) for w in moving)
    for key in ("loss", "accuracy"):
        np.testing.assert_allclose(history.history[key], alone_history.history[key],
                                   rtol=1e-5, atol=1e-6)
    model.close_workers()


def test_batch_normalization_on_workers_started_with_spawn(monkeypatch):
    """The shared slots and doorbells reach workers started in a fresh interpreter."""
    monkeypatch.setattr(data_parallel, "START_METHOD", "spawn")
    alone, _ = fit(1)
    model, _ = fit(2)
    assert_close_weights(model, alone)
    model.close_workers()


@pytest.mark.parametrize("n", [70, 66])
def test_float64_batch_normalization_on_workers_matches_one_process_closely(n):
    """In float64 the only difference is the order of additions. n=66 ends with a batch of
    2, fewer than the 3 processes: that step runs whole in the caller. (In float32 the
    statistics of 2 samples magnify rounding: 5e-5 after two epochs, measured.)"""
    cnn.set_floatx("float64")
    try:
        alone, _ = fit(1, n)
        model, _ = fit(3, n)
        assert_close_weights(model, alone, tolerance=1e-10)
        model.close_workers()
    finally:
        cnn.set_floatx("float32")


def test_a_frozen_batch_normalization_uses_its_moving_statistics_on_every_process():
    """trainable=False: no sums (every slice skips them alike), the moving statistics kept."""
    def frozen():
        model = batch_norm_net()
        for layer in model.layers:
            if isinstance(layer, BatchNormalization):
                layer.trainable = False
        model.compile(optimizer=SGD(0.1), loss="categorical_crossentropy")
        return model
    alone, _ = fit(1, model=frozen())
    model, _ = fit(2, model=frozen())
    assert_close_weights(model, alone)
    start = frozen()
    for layer, fresh in zip(model.layers, start.layers):
        for key, value in layer.buffers.items():
            np.testing.assert_array_equal(value, fresh.buffers[key])
    model.close_workers()


def test_batch_normalization_runs_on_workers_by_default_and_says_so(monkeypatch, capsys):
    monkeypatch.setattr(defaults, "usable_cores", lambda: 2)
    monkeypatch.setattr(defaults, "MIN_PARALLEL_SAMPLES", 64)
    for name in (defaults.WORKERS_VARIABLE, *defaults.THREAD_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    cnn.set_num_threads(None)
    # batch 64: the default gives each process a slice of at least 32 rows
    first, first_history = fit(None, n=140, batch_size=64, epochs=2)
    assert idle_pool(first).count == 1  # 2 processes
    second, second_history = fit(None, n=140, batch_size=64, epochs=2)
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(a, b)  # two default runs: bit-identical
    assert first_history.history == second_history.history
    alone, _ = fit(1, n=140, batch_size=64)
    assert_close_weights(first, alone)
    x, y = data(140)
    first.fit(x, y, batch_size=64, verbose=1)
    assert ("cnn: 2 processes x 1 BLAS thread (2 cores usable, batch 64; workers=1 or "
            "CNN_WORKERS=1 to opt out)") in capsys.readouterr().err
    first.close_workers()
    second.close_workers()


def test_workers_one_stays_bit_identical_to_one_process():
    model, _ = fit(1)
    assert idle_pool(model) is None
    cnn.set_seed(0)
    again = batch_norm_net()
    x, y = data(70)
    weights = np.random.default_rng(4).uniform(0.2, 2.0, 70).astype(np.float32)
    again.fit(x, y, batch_size=32, epochs=2, verbose=0, seed=3, sample_weight=weights)
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_nan_in_a_workers_slice_reaches_every_slice_and_stops_before_the_update():
    model = batch_norm_net()
    x, y = data(32)
    x[-1] = 3e38  # overflows in the worker's slice; the sums carry it to the caller's
    before = model.get_weights()
    with np.errstate(all="ignore"), pytest.raises(NonFiniteLossError, match="epoch 1, batch 1"):
        model.fit(x, y, batch_size=32, verbose=0, workers=2)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)  # moving statistics included
    model.close_workers()


class FailsIn(Layer):
    """Passes its input through; raises in the caller (``where`` "caller") or in the workers
    (``where`` "workers"), in training: in its forward, or with ``backward`` in its backward
    pass (once every sum of the step is done, for a FailsIn before every BatchNormalization)."""

    samplewise = True
    where = None
    backward_pass = False

    def fail_here(self):
        in_caller = os.getpid() == PARENT
        if FailsIn.where == ("caller" if in_caller else "workers"):
            raise ArithmeticError(f"this layer refuses to run in the {FailsIn.where}")

    def forward(self, x, training=False):
        if training and not FailsIn.backward_pass:
            self.fail_here()
        return x

    def backward(self, grad):
        if FailsIn.backward_pass:
            self.fail_here()
        return grad


@pytest.mark.parametrize("where, backward_pass, error, match", [
    ("workers", False, WorkerError, r"training worker \d \(pid \d+\) failed(.|\n)*refuses"),
    ("workers", True, WorkerError, r"training worker \d \(pid \d+\) failed(.|\n)*refuses"),
    ("caller", False, ArithmeticError, "refuses to run in the caller"),
])
def test_an_error_on_one_side_of_the_sums_leaves_nobody_waiting(monkeypatch, where,
                                                                  backward_pass, error, match):
    """The step fails whole: no weight and no moving statistic changes, within seconds."""
    monkeypatch.setattr(FailsIn, "where", where)
    monkeypatch.setattr(FailsIn, "backward_pass", backward_pass)
    monkeypatch.setattr(data_parallel, "STEP_TIMEOUT", 30.0)
    model = batch_norm_net(extra=[FailsIn()])
    if backward_pass:  # before the only BatchNormalization: its backward comes after
        model = Model(Input((1, 10, 10)), "bn")
        for layer in [Conv2D(4, 3), FailsIn(), BatchNormalization(), Flatten(), Output(3)]:
            model.add(layer)
        model.compile(optimizer=SGD(0.1), loss="categorical_crossentropy")
    x, y = data(64)
    before = model.get_weights()
    started = time.monotonic()
    with pytest.raises(error, match=match):
        model.fit(x, y, batch_size=32, verbose=0, workers=3)
    assert time.monotonic() - started < 10  # not the 30 s timeout: the others were told
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    monkeypatch.setattr(FailsIn, "where", None)
    model.fit(x, y, batch_size=32, verbose=0, workers=3)  # the next fit serves
    assert idle_pool(model).alive()
    model.close_workers()


# -- the sums themselves -------------------------------------------------------------------
def run_participants(parties, work, watch=lambda missing, waited: None):
    """``work(participant)`` in ``parties`` threads (one per participant); their results
    (or exceptions) in participant order."""
    slots = SharedSlots(parties, 16, np.float32, multiprocessing.get_context("fork"))
    results = [None] * parties

    def run(index):
        participant = slots.participant(index, watch)
        try:
            results[index] = work(participant)
        except BaseException as exc:  # noqa: BLE001 (the test looks at it)
            results[index] = exc
    threads = [threading.Thread(target=run, args=(i,)) for i in range(parties)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert not any(thread.is_alive() for thread in threads), "a participant hangs"
    return results, slots


def test_the_sums_add_the_slots_in_slice_order_in_every_participant():
    rng = np.random.default_rng(0)
    values = rng.standard_normal((3, 5, 11)).astype(np.float32) * 10.0 ** rng.integers(
        -6, 6, (3, 5, 11)).astype(np.float32)

    def work(participant):
        out = []
        for call in range(5):  # more calls than the two banks: the slots are reused
            buffer = values[participant.index, call].copy()
            out.append(participant.allreduce_sum(buffer).copy())
        return out
    results, _ = run_participants(3, work)
    for call in range(5):
        expected = values[0, call] + values[1, call] + values[2, call]  # slice order
        for participant in range(3):
            np.testing.assert_array_equal(results[participant][call], expected)


def test_a_buffer_of_another_type_or_too_large_is_refused():
    slots = SharedSlots(2, 4, np.float32, multiprocessing.get_context("fork"))
    participant = slots.participant(0, lambda missing, waited: None)
    with pytest.raises(ValueError, match="at most 4 values of float32.*got 5 of float32"):
        participant.allreduce_sum(np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="got 2 of float64"):
        participant.allreduce_sum(np.zeros(2, np.float64))


def test_an_abort_wakes_the_waiting_participants_and_reset_clears_it():
    def work(participant):
        if participant.index == 2:
            time.sleep(0.2)
            participant.abort()
            return "aborted"
        return participant.allreduce_sum(np.ones(3, np.float32))
    results, slots = run_participants(3, work)
    assert isinstance(results[0], StepAborted) and isinstance(results[1], StepAborted)
    caller = slots.participant(0, lambda missing, waited: None)
    caller.reset()
    assert not caller.counts.any()
    assert all(not doorbell.acquire(False) for doorbell in slots.doorbells)


def test_the_watch_is_asked_while_waiting_and_its_error_ends_the_wait():
    seen = []

    def watch(missing, waited):
        seen.append(list(missing))
        if waited > 0.3:
            raise TimeoutError(f"participants {missing} missing")

    def work(participant):
        if participant.index == 1:
            return "never comes"
        return participant.allreduce_sum(np.ones(3, np.float32))
    results, _ = run_participants(2, work, watch)
    assert isinstance(results[0], TimeoutError) and "[1]" in str(results[0])
    assert seen and all(missing == [1] for missing in seen[:1])


# -- faults inside the sums (the pool's own errors, as in test_workers_faults.py) ----------
class KillsInWorker(Layer):
    """Passes its input through; in a worker, sends ``signum`` to itself at its first
    training forward (so the caller waits in the BatchNormalization after it)."""

    samplewise = True
    signum = None

    def forward(self, x, training=False):
        if os.getpid() != PARENT and training and KillsInWorker.signum is not None:
            os.kill(os.getpid(), KillsInWorker.signum)
        return x

    def backward(self, grad):
        return grad


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs POSIX signals")
@pytest.mark.parametrize("signum, match", [
    (getattr(signal, "SIGKILL", None), r"training worker 1 \(pid \d+\) died \(killed by signal 9"),
    (getattr(signal, "SIGSTOP", None), r"training worker 1 \(pid \d+\) did not answer within 2 s"),
])
def test_a_worker_lost_inside_the_sums_is_named(monkeypatch, signum, match):
    monkeypatch.setattr(data_parallel, "STEP_TIMEOUT", 2.0)
    monkeypatch.delenv("CNN_WORKER_TIMEOUT", raising=False)
    monkeypatch.setattr(KillsInWorker, "signum", signum)
    model = batch_norm_net(extra=[KillsInWorker()])
    x, y = data(64)
    before = model.get_weights()
    started = time.monotonic()
    with pytest.raises(WorkerError, match=match):
        model.fit(x, y, batch_size=32, verbose=0, workers=2)
    assert time.monotonic() - started < 15
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert idle_pool(model) is None  # the pool was ended
    monkeypatch.setattr(KillsInWorker, "signum", None)
    model.fit(x, y, batch_size=32, verbose=0, workers=2)  # a fresh one serves
    assert idle_pool(model).alive()
    model.close_workers()
