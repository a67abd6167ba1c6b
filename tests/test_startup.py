"""Start-up cost of ``import cnn`` and ``python -m cnn``: heavy libraries load only when used.

Each check runs in a fresh interpreter, so that what this test session already imported does
not hide an import; ``sys.modules`` then tells what was loaded.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import cnn

# Where the cnn under test lives (the checkout, or site-packages for an installed copy): the
# fresh interpreters start there, so that they import that same copy.
ROOT = Path(cnn.__file__).resolve().parent.parent
# Libraries that cost tenths of a second to import; `import cnn` needs none of them.
HEAVY = ("matplotlib", "h5py", "scipy", "onnx", "onnxruntime", "torch", "PIL", "mpi4py")


def modules_after(statement: str) -> set:
    """The names in ``sys.modules`` after a fresh interpreter runs ``statement``."""
    program = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, check=True)
    return set(json.loads(result.stdout.splitlines()[-1]))


def loaded(modules: set, names) -> list:
    """Those of the top-level packages ``names`` with any module in ``modules``."""
    return [name for name in names
            if any(module == name or module.startswith(name + ".") for module in modules)]


def test_import_cnn_loads_no_heavy_library():
    modules = modules_after("import cnn")
    assert "cnn.training" in modules and "cnn.saving" in modules  # the package is all there
    assert loaded(modules, HEAVY) == []


def test_import_of_the_data_sets_loads_neither_scipy_nor_http():
    # scipy.io is for .mat files only, http.client and ssl for downloads only.
    modules = modules_after("import cnn.datasets; cnn.datasets.mnist_sample.load_data()")
    assert loaded(modules, ("scipy", "http", "ssl", "urllib.request")) == []


def test_the_command_line_loads_neither_matplotlib_nor_the_optional_extras():
    # ``cnn train`` draws its plots in a process of its own (cnn.cli.figures), which imports
    # matplotlib there; ``cnn --help``, an argument error, evaluate and summary never need it.
    modules = modules_after("import cnn.cli")
    assert "cnn.cli.train" in modules and "cnn.cli.figures" in modules
    assert loaded(modules, HEAVY + ("http",)) == []


@pytest.fixture(scope="module")
def saved_seed_model(tmp_path_factory):
    """An untrained seed network saved as an .h5 file."""
    path = tmp_path_factory.mktemp("model") / "seed.h5"
    program = f"""
from cnn import networks
from cnn.saving import save_model
model = networks.build("seed", (1, 28, 28), 10)
model.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["accuracy"])
save_model(model, {str(path)!r}, metadata={{"dataset": "mnist-sample"}})
"""
    subprocess.run([sys.executable, "-c", program], cwd=ROOT, timeout=120, check=True)
    return path


@pytest.mark.parametrize("argv, expected_status", [
    (["--help"], 0), (["train", "--help"], 0), (["train", "--epochs", "0"], 2),
    (["train", "--no-such-option"], 2), (["summary", "MODEL"], 0),
    (["evaluate", "MODEL", "--batch-size", "500"], 0),
])
def test_commands_that_draw_nothing_import_no_matplotlib(argv, expected_status, saved_seed_model):
    argv = [str(saved_seed_model) if arg == "MODEL" else arg for arg in argv]
    program = (f"from cnn.cli import main\ntry:\n    status = main({argv!r})\n"
               "except SystemExit as exit:\n    status = exit.code\n"
               f"assert status == {expected_status}, status")
    modules = modules_after(program)
    assert "cnn.cli" in modules
    assert loaded(modules, ("matplotlib", "PIL", "scipy", "onnx", "torch")) == []


def test_cnn_train_draws_its_figures_outside_its_own_process(tmp_path):
    # The four PNGs are written, yet the command's process never imported matplotlib.
    program = (f"from cnn.cli import main\nassert main(['train', '--limit', '60', '--epochs', "
               f"'1', '--verbose', '0', '--out', {str(tmp_path)!r}]) == 0")
    modules = modules_after(program)
    assert "cnn.cli.figures" in modules and loaded(modules, ("matplotlib",)) == []
    for name in ("accuracy", "loss", "confusion", "misclassified"):
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG", name


def test_a_mat_file_and_a_saved_model_still_load_their_libraries_when_used(tmp_path):
    program = f"""
import numpy as np
import cnn
from cnn.datasets import matfile
from cnn.layers import Dense, Input
from cnn.models import Sequential
from cnn.saving import load_model, save_model
images, labels = np.zeros((3, 1, 2, 2), np.float32), np.array([0, 1, 2])
matfile.save_mat({str(tmp_path / "d.mat")!r}, images, labels, images, labels)
(x, y), _ = matfile.load_mat({str(tmp_path / "d.mat")!r})
assert x.shape == (3, 1, 2, 2) and y.argmax(axis=1).tolist() == [0, 1, 2]
model = Sequential([Input((4,)), Dense(2)])
save_model(model, {str(tmp_path / "m.h5")!r})
again = load_model({str(tmp_path / "m.h5")!r})
assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), again.get_weights()))
"""
    modules = modules_after(program)
    assert loaded(modules, ("scipy", "h5py")) == ["scipy", "h5py"]


@pytest.mark.parametrize("statement", ["import cnn", "import cnn.cli"])
def test_import_leaves_no_process_or_thread_behind(statement):
    # Importing starts nothing: worker and reading processes start when training or
    # loading needs them.
    program = (f"{statement}\nimport multiprocessing, threading\n"
               "print(len(multiprocessing.active_children()), threading.active_count())")
    result = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, check=True)
    assert result.stdout.split() == ["0", "1"]
