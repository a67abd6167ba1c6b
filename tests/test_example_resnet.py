"""examples/fashion_mnist_resnet.py on 64 random images: a run interrupted and resumed with
warm restarts (``--resume --cycles``) ends with the weights of the same run made in one go."""

import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from cnn.models import load_model
from cnn.schedules import CosineDecayRestarts
from helpers import fashion_example_on_random_images


def load_example(monkeypatch):
    return fashion_example_on_random_images("fashion_mnist_resnet", monkeypatch, 64, 16)


def run(example, monkeypatch, out, *args):
    monkeypatch.setattr(sys, "argv", ["fashion_mnist_resnet.py", "--blocks", "1", "--batch-size",
                                      "32", "--out", str(out), *args])
    with threadpool_limits(1):
        example.main()


def test_cycles_must_divide_the_epochs(monkeypatch, capsys):
    example = load_example(monkeypatch)
    with pytest.raises(SystemExit) as stop:
        run(example, monkeypatch, "unused", "--epochs", "5", "--cycles", "2")
    assert stop.value.code == 2
    assert "--cycles must be a positive divisor of --epochs (5), got 2" in capsys.readouterr().err


def test_resumed_warm_restart_equals_the_run_made_in_one_go(tmp_path, monkeypatch, capsys):
    example = load_example(monkeypatch)
    run(example, monkeypatch, tmp_path / "a", "--epochs", "2", "--cycles", "1")  # finished
    run(example, monkeypatch, tmp_path / "a", "--epochs", "4", "--cycles", "2", "--resume")
    run(example, monkeypatch, tmp_path / "b", "--epochs", "4", "--cycles", "2")
    out = capsys.readouterr().out
    assert "resuming" in out and out.count("fashion_resnet: test accuracy") == 3
    resumed, in_one_go = (load_model(tmp_path / name / "model.h5") for name in "ab")
    for a, b in zip(resumed.get_weights(), in_one_go.get_weights()):
        np.testing.assert_array_equal(a, b)
    rates = [np.float64(line.split(",")[2]) for line in
             (tmp_path / "a" / "history.csv").read_text().splitlines()[1:]]
    cycles = CosineDecayRestarts(3e-3, 4, t_mul=1.0, m_mul=0.5)  # 2 steps an epoch, 2 epochs
    assert rates == [cycles(step) for step in (1, 3, 5, 7)]  # each epoch's last step's rate
    assert rates[2] > rates[1]  # the restart
    assert resumed.optimizer.learning_rate.get_config()["name"] == "cosine_decay_restarts"
