"""The usage example at the top of the seed's README runs as written."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from cnn.datasets import matfile, mnist_sample
from cnn.models import load_model
from helpers import package_env

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "seed_readme_example.py"


def test_seed_readme_example_runs_unchanged(tmp_path):
    (x_train, y_train), (x_test, y_test) = mnist_sample.load_data(dtype="float64")
    (tmp_path / "data").mkdir()
    matfile.save_mat(tmp_path / "data" / "MNISTData.mat",
                     x_train[:600], y_train[:600], x_test[:200], y_test[:200])
    env = package_env({k: v for k, v in os.environ.items() if k not in ("DISPLAY", "MPLBACKEND")})
    result = subprocess.run([sys.executable, str(EXAMPLE)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    accuracy, loss = eval(lines[lines.index(next(l for l in lines if "测试集" in l)) + 1])
    assert 0.5 < accuracy <= 1.0 and 0 < loss < 2.0
    saved = tmp_path / "model\\MNIST_cnn.h5"  # the seed's Windows path is a file name here
    assert saved.exists()
    model = load_model(saved)
    x = np.expand_dims(x_test[:200], 1) if x_test.ndim == 3 else x_test[:200]
    assert model.evaluate(x, y_test[:200])[0] == accuracy
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr
