"""MPI ranks train the weights one process trains (cnn.training.ranks): the same global
batches, split across ranks, one allreduce per step, BatchNormalization over the global
batch and Dropout masks drawn per global sample."""

import json

import numpy as np
import pytest

from mpi_helpers import require_mpi, run_ranks

# Trains a small convnet with BatchNormalization, Dropout and sample weights on 50 samples
# in batches of 16 (the last one of 2 rows: with 3 or 4 ranks some ranks get none), with
# validation, and writes rank 0's weights and history (every rank checks it has the same).
TRAIN = """
    import json, sys
    import numpy as np
    import cnn
    import cnn.distributed as dist
    from cnn.layers import (BatchNormalization, Conv2D, Dense, Dropout, Flatten, Input,
                            MaxPooling2D, Output)
    from cnn.models import Sequential
    from cnn.callbacks import CSVLogger

    dist.init()
    out = sys.argv[1]
    cnn.set_seed(3)
    data = np.random.default_rng(0)
    x = data.normal(size=(50, 1, 8, 8)).astype(np.float32)
    y = data.integers(0, 3, size=50)
    w = data.uniform(0.5, 2.0, size=50)
    model = Sequential([
        Input((1, 8, 8)), Conv2D(4, 3, activation="relu"), BatchNormalization(),
        MaxPooling2D(2), Flatten(), Dropout(0.3), Dense(8, activation="relu"),
        Dropout(0.2, seed=5), Output(3)])
    model.compile(optimizer=cnn.optimizers.SGD(0.05, momentum=0.9),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=16, epochs=3, sample_weight=w, verbose=0,
                        validation_data=(x[:20], y[:20]), seed=11,
                        callbacks=[CSVLogger(out + "-log.csv")])
    weights = model.get_weights()
    gathered = dist.world().allgather_object([a.tobytes() for a in weights])
    assert all(g == gathered[0] for g in gathered), "ranks disagree on the weights"
    scores = model.evaluate(x, y, return_dict=True)
    predictions = model.predict(x)
    if dist.is_chief():
        np.savez(out + ".npz", *weights, predictions=predictions)
        with open(out + ".json", "w") as f:
            json.dump({"history": history.history, "scores": scores}, f)
    print("rank", dist.rank(), "of", dist.size(), "done", flush=True)
"""


def _train(tmp_path, ranks):
    out = tmp_path / f"ranks{ranks}"
    if ranks == 1:
        result = run_ranks(1, TRAIN, tmp_path, args=[out])
    else:
        result = run_ranks(ranks, TRAIN, tmp_path, args=[out], timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    arrays = np.load(str(out) + ".npz")
    with open(str(out) + ".json") as f:
        logs = json.load(f)
    return arrays, logs, out


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    require_mpi()
    return _train(tmp_path_factory.mktemp("one"), 1)


@pytest.mark.parametrize("ranks", [2, 3, 4])
def test_ranks_train_the_weights_one_process_trains(tmp_path, one_process, ranks):
    expected, expected_logs, _ = one_process
    arrays, logs, out = _train(tmp_path, ranks)
    assert sorted(arrays.files) == sorted(expected.files)
    for key in expected.files:
        np.testing.assert_allclose(arrays[key], expected[key], rtol=1e-5, atol=1e-5,
                                   err_msg=f"{key} with {ranks} ranks")
    for key, values in expected_logs["history"].items():
        np.testing.assert_allclose(logs["history"][key], values, rtol=1e-5, atol=1e-6,
                                   err_msg=key)
    for key, value in expected_logs["scores"].items():
        assert logs["scores"][key] == pytest.approx(value, rel=1e-5, abs=1e-6)
    # The CSV log is written once, by rank 0.
    assert len(out.with_name(out.name + "-log.csv").read_text().splitlines()) == 4


def test_workers_cannot_run_inside_an_mpi_rank(tmp_path):
    result = run_ranks(2, """
        import numpy as np
        import cnn.distributed as dist
        from cnn.layers import Dense, Input
        from cnn.models import Sequential
        dist.init()
        model = Sequential([Input((3,)), Dense(2)])
        model.compile(optimizer="sgd", loss="mse")
        try:
            model.fit(np.zeros((8, 3)), np.zeros((8, 2)), workers=2, verbose=0)
        except ValueError as exc:
            open(f"rank{dist.rank()}.txt", "w").write(str(exc))
    """, tmp_path)
    assert result.returncode == 0, result.stderr
    for rank in (0, 1):
        assert "cannot run inside an MPI rank (2 ranks" in (tmp_path / f"rank{rank}.txt").read_text()


def test_stateful_recurrent_layers_are_refused_across_ranks(tmp_path):
    result = run_ranks(2, """
        import numpy as np
        import cnn.distributed as dist
        from cnn.layers import Dense, Input, LSTM
        from cnn.models import Sequential
        dist.init()
        model = Sequential([Input((4, 3)), LSTM(2, stateful=True), Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
        try:
            model.fit(np.zeros((8, 4, 3)), np.zeros((8, 1)), shuffle=False, verbose=0)
        except ValueError as exc:
            open(f"rank{dist.rank()}.txt", "w").write(str(exc))
    """, tmp_path)
    assert result.returncode == 0, result.stderr
    for rank in (0, 1):
        assert "cannot be split across 2 MPI ranks" in (tmp_path / f"rank{rank}.txt").read_text()


RESUME = """
    import sys
    import numpy as np
    import cnn
    import cnn.distributed as dist
    from cnn.callbacks import ModelCheckpoint
    from cnn.layers import BatchNormalization, Dense, Dropout, Input, Output
    from cnn.models import Sequential, load_model

    dist.init()
    mode, path = sys.argv[1], sys.argv[2]
    data = np.random.default_rng(1)
    x = data.normal(size=(40, 6)).astype(np.float32)
    y = data.integers(0, 2, size=40)
    if mode == "resume":
        model = load_model(path)
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    else:
        cnn.set_seed(2)
        model = Sequential([Input((6,)), Dense(5, activation="relu"), BatchNormalization(),
                            Dropout(0.25), Output(2)])
        model.compile(optimizer="adam", loss="categorical_crossentropy")
        epochs = 2 if mode == "whole" else 1
        model.fit(x, y, batch_size=8, epochs=epochs, verbose=0, seed=4,
                  callbacks=[ModelCheckpoint(path)])
    if dist.is_chief():
        np.savez(path + "." + mode + ".npz", *model.get_weights())
"""


def test_a_checkpoint_saved_on_two_ranks_resumes_on_three(tmp_path):
    require_mpi()
    whole, ckpt = tmp_path / "whole.h5", tmp_path / "ckpt.h5"
    for ranks, mode, path in ((1, "whole", whole), (2, "first", ckpt), (3, "resume", ckpt)):
        result = run_ranks(ranks, RESUME, tmp_path, args=[mode, path], timeout=240)
        assert result.returncode == 0, result.stdout + result.stderr
    expected = np.load(str(whole) + ".whole.npz")
    resumed = np.load(str(ckpt) + ".resume.npz")
    for key in expected.files:
        np.testing.assert_allclose(resumed[key], expected[key], rtol=1e-5, atol=1e-6)
