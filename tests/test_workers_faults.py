"""Faults in ``fit(workers=W)`` (cnn.training.workers): a worker that dies or stops at any
moment gives a WorkerError naming it within the timeout, with the weights of the last good
step; a caller that dies takes its workers and their shared memory with it."""

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import cnn
from cnn.callbacks import Callback
from cnn.layers import Conv2D, Dense, Flatten, Input, Layer, Output
from cnn.models import Model
from cnn.optimizers import SGD
from cnn.training import workers as data_parallel
from cnn.training.strategy import idle_pool
from cnn.training.workers import WorkerError
from helpers import package_env

PARENT = os.getpid()

LIMIT = 60  # seconds any test here may take before it counts as a hang

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGSTOP") or not hasattr(signal, "alarm"),
                                reason="needs POSIX signals")


@pytest.fixture(autouse=True)
def bounded(monkeypatch):
    """Every test ends within LIMIT seconds (a hang fails it), with a 2 s worker timeout."""
    monkeypatch.setattr(data_parallel, "STEP_TIMEOUT", 2.0)
    monkeypatch.delenv("CNN_WORKER_TIMEOUT", raising=False)

    def hung(signum, frame):
        raise TimeoutError(f"the test took more than {LIMIT} s: a hang")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(LIMIT)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


class InWorker(Layer):
    """Passes its input through; in a worker process, sends ``signum`` to that worker at
    its ``at``-th forward (class attributes, set by the test before the workers fork)."""

    samplewise = True
    signum = None
    at = 2
    calls = 0

    def forward(self, x, training=False):
        if os.getpid() != PARENT and training and InWorker.signum is not None:
            InWorker.calls += 1
            if InWorker.calls == InWorker.at:
                os.kill(os.getpid(), InWorker.signum)
        return x

    def backward(self, grad):
        return grad


def model_and_data(extra=()):
    cnn.set_seed(0)
    model = Model(Input((1, 8, 8)))
    model.add(Conv2D(3, 3, activation="relu"))
    model.add(Flatten())
    for layer in extra:
        model.add(layer)
    model.add(Dense(6, activation="relu"))
    model.add(Output(3))
    model.compile(optimizer=SGD(0.1), loss="categorical_crossentropy")
    rng = np.random.default_rng(1)
    x = rng.random((64, 1, 8, 8), dtype=np.float32)
    return model, x, rng.integers(0, 3, 64)


class AfterBatch(Callback):
    """Remembers the weights after every good step; at batch ``at`` runs ``act(pool)``."""

    def __init__(self, at=None, act=None):
        super().__init__()
        self.at, self.act, self.weights = at, act, None

    def on_batch_end(self, batch, logs=None):
        self.weights = self.model.get_weights()
        if batch == self.at:
            self.act(idle_pool(self.model))


def gone(pid) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")  # a zombie has ended: only its exit status is left


def assert_fault(model, x, y, callback, match, workers=3):
    names = []

    def remember(pool):
        names.extend(pool.shared_memory_names())
    started = time.monotonic()
    with pytest.raises(WorkerError, match=match):
        model.fit(x, y, batch_size=16, epochs=2, verbose=0, workers=workers,
                  callbacks=[callback])
    elapsed = time.monotonic() - started
    assert elapsed < 20, f"the fault took {elapsed:.1f} s to surface"
    for after, good in zip(model.get_weights(), callback.weights):
        np.testing.assert_array_equal(after, good)  # the failed step changed nothing
    assert idle_pool(model) is None  # the pool was ended...
    InWorker.signum = None  # (the fresh workers must not fail again)
    model.fit(x, y, batch_size=16, verbose=0, workers=workers)  # ...and a fresh one serves
    pool = idle_pool(model)
    assert pool.alive()
    remember(pool)
    model.close_workers()
    assert not any(Path("/dev/shm", n.lstrip("/")).exists() for n in names)


def kill_worker(signum, index=0):
    def act(pool):
        process = pool.processes[index]
        os.kill(process.pid, signum)
        if signum == signal.SIGKILL:
            process.join(timeout=5)
    return act


def test_a_worker_killed_between_two_steps_is_named():
    model, x, y = model_and_data()
    assert_fault(model, x, y, AfterBatch(1, kill_worker(signal.SIGKILL, 1)),
                 r"training worker 2 \(pid \d+\) died \(killed by signal 9\)")


def test_a_worker_stopped_between_two_steps_times_out(monkeypatch):
    # the environment overrides STEP_TIMEOUT; 3 s, not 1, so a loaded machine's slow but
    # running worker is not taken for the stopped one
    monkeypatch.setenv("CNN_WORKER_TIMEOUT", "3")
    model, x, y = model_and_data()
    pids = []

    def stop(pool):
        pids.append(pool.processes[0].pid)
        kill_worker(signal.SIGSTOP)(pool)
    assert_fault(model, x, y, AfterBatch(1, stop),
                 r"training worker 1 \(pid \d+\) did not answer within 3 s")
    assert gone(pids[0])  # the stopped process was ended, not left frozen


@pytest.mark.parametrize("signum, match", [
    (signal.SIGKILL, r"training worker \d \(pid \d+\) died \(killed by signal 9\)"),
    (signal.SIGSTOP, r"training worker \d \(pid \d+\) did not answer within 2 s"),
])
def test_a_worker_killed_or_stopped_mid_step_is_named(monkeypatch, signum, match):
    monkeypatch.setattr(InWorker, "signum", signum)
    monkeypatch.setattr(InWorker, "calls", 0)
    model, x, y = model_and_data(extra=[InWorker()])
    assert_fault(model, x, y, AfterBatch(), match, workers=2)


def test_a_bad_timeout_in_the_environment_is_named(monkeypatch):
    monkeypatch.setenv("CNN_WORKER_TIMEOUT", "soon")
    model, x, y = model_and_data()
    with pytest.raises(ValueError, match="CNN_WORKER_TIMEOUT must be a number"):
        model.fit(x, y, verbose=0, workers=2)
    assert idle_pool(model) is None


CALLER = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    import cnn
    from cnn.callbacks import Callback
    from cnn.layers import Dense, Input, Output
    from cnn.models import Model
    from cnn.training.strategy import idle_pool

    class Report(Callback):
        def on_batch_end(self, batch, logs=None):
            pool = idle_pool(self.model)
            print(json.dumps({"pids": [p.pid for p in pool.processes],
                              "shm": pool.shared_memory_names()}), flush=True)
            time.sleep(600)  # killed here, between two steps

    cnn.set_seed(0)
    model = Model(Input((5,)))
    model.add(Dense(4, activation="relu"))
    model.add(Output(2))
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    x = np.random.default_rng(0).random((32, 5), dtype=np.float32)
    model.fit(x, np.arange(32) % 2, batch_size=8, verbose=0, workers=3, callbacks=[Report()])
""")


def test_killing_the_caller_ends_its_workers_and_frees_the_shared_memory():
    caller = subprocess.Popen([sys.executable, "-c", CALLER], cwd=Path(__file__).parent,
                              text=True, stdout=subprocess.PIPE, env=package_env())
    try:
        ready, _, _ = select.select([caller.stdout], [], [], 30)
        assert ready, "the caller did not start training within 30 s"
        report = json.loads(caller.stdout.readline())
    finally:
        caller.kill()
        caller.wait(timeout=10)
    assert len(report["pids"]) == 2 and report["shm"]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not all(gone(pid) for pid in report["pids"]):
        time.sleep(0.1)
    assert all(gone(pid) for pid in report["pids"]), "the workers outlived their caller"
    shm = Path("/dev/shm")
    if shm.is_dir():
        while time.monotonic() < deadline and any((shm / n.lstrip("/")).exists()
                                                   for n in report["shm"]):
            time.sleep(0.1)
        assert not any((shm / n.lstrip("/")).exists() for n in report["shm"])


def test_the_timeout_per_fit_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("CNN_WORKER_TIMEOUT", "30")
    model, x, y = model_and_data()
    callback = AfterBatch(0, kill_worker(signal.SIGSTOP))
    started = time.monotonic()
    with pytest.raises(WorkerError, match=r"worker 1 \(pid \d+\) did not answer within 0.5 s"):
        model.fit(x, y, batch_size=16, verbose=0, workers=2, worker_timeout=0.5,
                  callbacks=[callback])
    assert time.monotonic() - started < 10
    for bad in (0, -1, float("inf"), "soon", True):
        with pytest.raises(ValueError, match="worker_timeout must be a (finite )?number"):
            model.fit(x, y, verbose=0, workers=2, worker_timeout=bad)
