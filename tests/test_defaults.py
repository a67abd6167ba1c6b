"""Every core by default (#12): what ``fit``, ``evaluate`` and ``predict`` run on when the user
says nothing (``cnn.training.defaults``), the same results as one process up to float
rounding, reproducible, one BLAS thread per process, and the ways to opt out.

The core count is forced to 2 (``usable_cores`` monkeypatched), so that these tests do not
depend on the machine; ``MIN_PARALLEL_SAMPLES`` is lowered so that small data sets count
as enough work to start worker processes."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cnn
from cnn.cli import build_parser
from cnn.layers import Flatten, Input, Layer, Output
from cnn.models import Model
from cnn.training import defaults, trainer
from cnn.training.strategy import idle_pool
from helpers import package_env
from worker_helpers import BatchCentering, convnet, data as worker_data

CORES = 2


@pytest.fixture(autouse=True)
def two_cores(monkeypatch):
    """Two usable cores, nothing chosen by the user, small data counting as enough work."""
    monkeypatch.setattr(defaults, "usable_cores", lambda: CORES)
    monkeypatch.setattr(defaults, "MIN_PARALLEL_SAMPLES", 64)
    for name in (defaults.WORKERS_VARIABLE, *defaults.THREAD_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    cnn.set_num_threads(None)
    yield
    cnn.set_num_threads(None)


def data(n=160, seed=1):
    return worker_data(n, seed)


def train(workers=None, model=None, epochs=2, **kwargs):
    """``model`` (default: ``convnet()``) after ``epochs`` at batch 64 with validation."""
    model = model or convnet()
    x, y = data()
    history = model.fit(x, y, batch_size=64, epochs=epochs, verbose=0, seed=5,
                        validation_split=0.25, workers=workers, **kwargs)
    return model, history


def assert_close(a, b, tolerance=1e-5):
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=tolerance, atol=tolerance)


def processes(model) -> int:
    pool = idle_pool(model)
    return 1 if pool is None else pool.count + 1


# -- the default on two cores -----------------------------------------------------------------
def test_the_default_trains_on_two_processes_the_steps_of_one():
    shared, shared_history = train()
    assert processes(shared) == 2
    alone, alone_history = train(workers=1)
    assert processes(alone) == 1
    assert_close(shared, alone)
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(shared_history[key], alone_history[key], rtol=1e-5)
    assert shared_history["val_accuracy"] == alone_history["val_accuracy"]
    shared.close_workers()


def test_dropout_and_sample_weights_at_the_default():
    x, y = data()
    weights = np.random.default_rng(3).random(len(x)).astype(np.float32) + 0.5
    models = []
    for workers in (None, 1):
        model = convnet(dropout=True)
        model.fit(x, y, batch_size=64, epochs=2, verbose=0, seed=5, sample_weight=weights,
                  workers=workers)
        models.append(model)
    assert processes(models[0]) == 2
    assert_close(*models)
    models[0].close_workers()


def test_the_same_seed_twice_gives_identical_weights():
    first, first_history = train(model=convnet(dropout=True))
    second, second_history = train(model=convnet(dropout=True))
    assert processes(first) == processes(second) == 2
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert first_history == second_history
    first.close_workers()
    second.close_workers()


def test_batch_normalization_trains_on_two_processes_the_steps_of_one(capsys):
    """BatchNormalization sums its statistics over the slices (cnn.replica): the default
    trains it on both cores, the weights and moving statistics those of workers=1."""
    model, history = train(model=convnet(batch_norm=True, dropout=True))
    assert processes(model) == 2
    alone, alone_history = train(model=convnet(batch_norm=True, dropout=True), workers=1)
    assert_close(model, alone)
    np.testing.assert_allclose(history.history["loss"], alone_history.history["loss"],
                               rtol=1e-5)
    x, y = data()
    model.fit(x, y, batch_size=64, verbose=1)
    assert ("cnn: 2 processes x 1 BLAS thread (2 cores usable, batch 64; workers=1 or "
            "CNN_WORKERS=1 to opt out)") in capsys.readouterr().err
    model.close_workers()


def test_a_layer_that_mixes_samples_falls_back_to_one_process_and_says_why(capsys):
    """A layer that looks across samples without summing over slices needs the whole batch:
    the default trains it in one process (the weights of workers=1, exactly), an explicit
    workers=2 refuses."""
    model, _ = train(model=convnet(extra=[BatchCentering(name="centering")]))
    assert processes(model) == 1
    alone, _ = train(model=convnet(extra=[BatchCentering(name="centering")]), workers=1)
    for a, b in zip(model.get_weights(), alone.get_weights()):
        np.testing.assert_array_equal(a, b)
    x, y = data()
    model.fit(x, y, batch_size=64, verbose=1)
    err = capsys.readouterr().err
    assert ("cnn: 1 process x 1 BLAS thread (2 cores usable, batch 64; one process because "
            'layer "centering" (BatchCentering) does not treat samples independently') in err
    with pytest.raises(ValueError, match=r"workers=2 cuts every batch.*centering.*"
                                         r"workers=1"):
        model.fit(x, y, batch_size=64, verbose=0, workers=2)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_predict_and_evaluate_on_every_core_give_the_outputs_of_one_process(batch_norm):
    """Inference on the worker processes, BatchNormalization and Dropout in inference mode
    included, gathered in order; batches larger than the workers' memory go in chunks."""
    model, _ = train(model=convnet(batch_norm=batch_norm, dropout=True), workers=1)
    x, y = data(300, seed=4)
    alone = model.predict(x, workers=1)
    alone_scores = model.evaluate(x, y, workers=1, return_dict=True)
    shared = model.predict(x, batch_size=128)
    assert processes(model) == 2
    np.testing.assert_allclose(shared, alone, rtol=1e-5, atol=1e-6)
    weights = np.linspace(0.5, 2, len(x)).astype(np.float32)
    for sample_weight in (None, weights):
        shared_scores = model.evaluate(x, y, sample_weight=sample_weight, return_dict=True)
        alone_scores = model.evaluate(x, y, sample_weight=sample_weight, workers=1,
                                      return_dict=True)
        assert shared_scores["accuracy"] == alone_scores["accuracy"]
        np.testing.assert_allclose(shared_scores["loss"], alone_scores["loss"], rtol=1e-5)
    pool = idle_pool(model)
    chunked = model.predict(x, batch_size=300)  # more than the pool's 64 rows a worker
    assert idle_pool(model) is pool
    np.testing.assert_allclose(chunked, alone, rtol=1e-5, atol=1e-6)
    model.close_workers()


def test_small_batches_and_little_data_stay_in_one_process(monkeypatch):
    x, y = data()
    model = convnet()
    model.fit(x, y, batch_size=32, verbose=0)  # slices of 16 would not pay
    assert processes(model) == 1
    model.fit(x, y, batch_size=63, verbose=0)
    assert processes(model) == 1
    monkeypatch.setattr(defaults, "MIN_PARALLEL_SAMPLES", 10_000)
    model.fit(x, y, batch_size=64, verbose=0)  # too little work to start processes
    assert processes(model) == 1
    model.predict(x[:1])
    assert processes(model) == 1


def test_the_rule():
    assert defaults.MIN_SLICE_ROWS == 32
    assert defaults.automatic_processes(2, 64, None) == 2
    assert defaults.automatic_processes(2, 63, None) == 1
    assert defaults.automatic_processes(2, 32, None) == 1  # the seed's batch: one process
    assert defaults.automatic_processes(8, 64, None) == 2
    assert defaults.automatic_processes(8, 100, None) == 3
    assert defaults.automatic_processes(8, 256, None) == 8
    assert defaults.automatic_processes(1, 256, None) == 1
    assert defaults.automatic_processes(2, 256, defaults.MIN_PARALLEL_SAMPLES - 1) == 1


def test_usable_cores_are_the_affinity(monkeypatch):
    monkeypatch.undo()
    expected = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                else os.cpu_count())
    assert defaults.usable_cores() == expected


def test_a_subclass_of_model_stays_in_one_process():
    class Mine(Model):
        pass

    model = Mine(Input((1, 10, 10)))
    model.add(Flatten())
    model.add(Output(3))
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    x, y = data()
    model.fit(x, y, batch_size=64, verbose=0)
    assert processes(model) == 1


# -- opting out and overriding ----------------------------------------------------------------
def test_cnn_workers_overrides_the_default_and_an_argument_beats_it(monkeypatch):
    x, y = data()
    monkeypatch.setenv("CNN_WORKERS", "1")
    model = convnet()
    model.fit(x, y, batch_size=64, verbose=0)
    assert processes(model) == 1
    monkeypatch.setenv("CNN_WORKERS", "3")
    model.fit(x, y, batch_size=64, verbose=0)
    assert processes(model) == 3
    model.fit(x, y, batch_size=64, verbose=0, workers=1)
    model.close_workers()
    monkeypatch.setenv("CNN_WORKERS", " Auto ")
    model.fit(x, y, batch_size=64, verbose=0)
    assert processes(model) == 2
    model.close_workers()
    monkeypatch.setenv("CNN_WORKERS", "2")
    with pytest.raises(ValueError, match="centering"):  # chosen, so not a default
        convnet(extra=[BatchCentering(name="centering")]).fit(x, y, batch_size=64, verbose=0)


@pytest.mark.parametrize("value", ["two", "0", "-1", "1.5"])
def test_a_bad_cnn_workers_names_the_variable(monkeypatch, value):
    monkeypatch.setenv("CNN_WORKERS", value)
    x, y = data()
    with pytest.raises(ValueError, match=rf"environment variable CNN_WORKERS must be an int "
                                         rf">= 1 or 'auto', got '{value}'"):
        convnet().fit(x, y, verbose=0)
    convnet().fit(x, y, verbose=0, workers=1)  # an argument does not read it


@pytest.mark.parametrize("command", [["train"], ["evaluate", "m.h5"], ["predict", "m.h5", "a.png"]])
def test_the_workers_flag(command):
    parser = build_parser()
    assert parser.parse_args(command).workers is None
    assert parser.parse_args([*command, "--workers", "1"]).workers == 1
    with pytest.raises(SystemExit):
        parser.parse_args([*command, "--workers", "0"])


class Stop(Exception):
    pass


def test_cnn_train_passes_the_flag_on(monkeypatch, tmp_path):
    seen = []

    def spy(*args, **kwargs):
        seen.append(kwargs.get("workers"))
        raise Stop

    monkeypatch.setattr(trainer, "fit", spy)
    from cnn.cli import main
    for flag, expected in (["--workers", "1"], 1), ([], None):
        with pytest.raises(Stop):
            main(["train", "--limit", "40", "--epochs", "1", *flag, "--out", str(tmp_path)])
    assert seen == [1, None]


# -- what verbose runs say --------------------------------------------------------------------
def test_the_verbose_line(capsys):
    model, _ = train()
    x, y = data()
    model.fit(x, y, batch_size=64, verbose=2)
    err = capsys.readouterr().err
    assert err.count("cnn: ") == 1
    assert ("cnn: 2 processes x 1 BLAS thread (2 cores usable, batch 64; workers=1 or "
            "CNN_WORKERS=1 to opt out)") in err
    model.evaluate(x, y, verbose=1)
    assert "cnn: 2 processes x 1 BLAS thread (2 cores usable, batch 160;" in capsys.readouterr().err
    model.predict(x, verbose=0)
    model.fit(x, y, batch_size=64, verbose=0)
    assert capsys.readouterr().err == ""
    model.fit(x, y, batch_size=64, verbose=1, workers=1)
    assert "cnn: 1 process x 1 BLAS thread (2 cores usable, batch 64; as chosen)" in \
        capsys.readouterr().err
    model.fit(x, y, batch_size=32, verbose=1)
    assert "one process because batches of 32 leave less than 32 samples a process" in \
        capsys.readouterr().err
    model.close_workers()


# -- BLAS threads: one per process, unless the user chose ------------------------------------
class RecordsThreads(Layer):
    """Passes its input through; in training, writes the BLAS threads of the process that
    runs it into ``folder``/<pid>."""

    samplewise = True

    def __init__(self, folder="", **kwargs):
        super().__init__(**kwargs)
        self.folder = folder

    def get_config(self):
        return {**super().get_config(), "folder": self.folder}

    def forward(self, x, training=False):
        if training:
            Path(self.folder, str(os.getpid())).write_text(str(cnn.get_num_threads()))
        return x

    def backward(self, grad):
        return grad


def threads_seen(tmp_path, **fit_kwargs) -> dict:
    """``{pid: BLAS threads}`` of every process that trained a step of a fit."""
    for old in tmp_path.iterdir():
        old.unlink()
    model = convnet(extra=[RecordsThreads(str(tmp_path))])
    x, y = data()
    model.fit(x, y, batch_size=64, verbose=0, **fit_kwargs)
    model.close_workers()
    return {int(path.name): int(path.read_text()) for path in tmp_path.iterdir()}


def test_one_blas_thread_in_every_process_at_the_default(tmp_path):
    """No collapse: nothing spins a second BLAS thread on a core another process uses."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=2, user_api="blas"):  # the library's default on 2 cores
        if cnn.get_num_threads() != 2:
            pytest.skip("the BLAS library here cannot run 2 threads")
        seen = threads_seen(tmp_path)
        assert len(seen) == 2 and os.getpid() in seen
        assert set(seen.values()) == {1}
        assert cnn.get_num_threads() == 2  # restored after fit
        seen = threads_seen(tmp_path, workers=1)
        assert seen == {os.getpid(): 1}


def test_the_users_threads_are_respected(tmp_path, monkeypatch):
    from threadpoolctl import threadpool_limits

    cnn.set_num_threads(2)
    if cnn.get_num_threads() != 2:
        pytest.skip("the BLAS library here cannot run 2 threads")
    assert threads_seen(tmp_path, workers=1) == {os.getpid(): 2}
    assert set(threads_seen(tmp_path).values()) == {1}  # two processes share the two
    cnn.set_num_threads(None)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    with threadpool_limits(limits=2, user_api="blas"):  # what the variable did at start-up
        assert threads_seen(tmp_path, workers=1) == {os.getpid(): 2}


def test_importing_cnn_leaves_the_blas_threads_alone():
    code = ("import numpy, threadpoolctl\n"
            "before = [i['num_threads'] for i in threadpoolctl.threadpool_info()]\n"
            "import cnn\n"
            "after = [i['num_threads'] for i in threadpoolctl.threadpool_info()]\n"
            "assert before == after, (before, after)\n")
    subprocess.run([sys.executable, "-c", code], check=True, env=package_env(), timeout=120)


# -- under MPI --------------------------------------------------------------------------------
class FakeWorld:
    size, rank = 2, 0


def test_under_mpi_explicit_workers_are_refused(monkeypatch):
    monkeypatch.setattr(trainer.distributed, "world", lambda: FakeWorld())
    with pytest.raises(ValueError, match=r"workers=2 starts local worker processes, which "
                                         r"cannot run inside an MPI rank"):
        trainer.strategy_for(convnet(), 2, 64, 1000, "fit")
    monkeypatch.setenv("CNN_WORKERS", "2")
    with pytest.raises(ValueError, match="inside an MPI rank"):
        trainer.strategy_for(convnet(), None, 64, 1000, "predict")
    monkeypatch.delenv("CNN_WORKERS")
    strategy, plan = trainer.strategy_for(convnet(), None, 64, 1000, "fit")
    assert plan.processes == 1 and "2 MPI ranks share each batch" in plan.describe()


# -- data that makes its own batches ----------------------------------------------------------
class Batches:
    """A Keras-style Sequence of ``count`` batches of ``rows`` samples of ``data()``."""

    def __init__(self, rows, count=3):
        x, y = data(rows * count)
        self.x, self.y, self.rows, self.count = x, y, rows, count

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        part = slice(index * self.rows, (index + 1) * self.rows)
        return self.x[part], self.y[part]


def test_a_sequence_of_batches_of_64_trains_on_two_processes_and_says_so(capsys):
    """A Sequence's batches (64 here) are larger than the batch_size that fit does not get:
    the plan says the batches come from the data and the workers make room for them."""
    shared = convnet()
    shared.fit(Batches(64), epochs=2, verbose=1, shuffle=False, seed=5)
    err = capsys.readouterr().err
    assert ("cnn: 2 processes x 1 BLAS thread (2 cores usable, batches from the data; "
            "workers=1 or CNN_WORKERS=1 to opt out)") in err
    assert "batch 64" not in err
    assert processes(shared) == 2 and idle_pool(shared).capacity == 32
    alone = convnet()
    alone.fit(Batches(64), epochs=2, verbose=0, shuffle=False, seed=5, workers=1)
    assert_close(shared, alone)
    np.testing.assert_allclose(shared.predict(Batches(64), verbose=0),
                               alone.predict(Batches(64), verbose=0), rtol=1e-5, atol=1e-6)
    shared.close_workers()


def test_the_plan_line_for_data_that_makes_its_batches():
    plan = defaults.Plan(2, 1, 2, None, True)
    assert plan.describe() == ("cnn: 2 processes x 1 BLAS thread (2 cores usable, batches "
                               "from the data; workers=1 or CNN_WORKERS=1 to opt out)")
    assert defaults.automatic_processes(2, None, None) == 2
    assert defaults.automatic_processes(2, None, 10) == 1


def test_a_generator_of_batches_of_64_trains_on_two_processes_the_steps_of_one(capsys):
    def batches():
        sequence = Batches(64)
        while True:
            yield from (sequence[i] for i in range(len(sequence)))

    shared, alone = convnet(), convnet()
    shared.fit(batches(), steps_per_epoch=3, epochs=2, verbose=2, seed=5)
    assert "usable, batches from the data; workers=1" in capsys.readouterr().err
    assert processes(shared) == 2
    alone.fit(batches(), steps_per_epoch=3, epochs=2, verbose=0, seed=5, workers=1)
    assert_close(shared, alone)
    shared.close_workers()
