"""The package as installed: the console script, package data, declared test dependencies.

``.ci/run`` installs the package (not editable) into a fresh environment and runs these tests
from outside the source tree with ``CNN_TEST_INSTALLED=1``; then nothing here may skip, and
the ``cnn`` the tests import must be the installed copy, not the checkout. In a development
run from the source tree the checks that need an installation skip with a message.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from importlib import resources
from pathlib import Path

import pytest

import cnn
from cnn.layers import Dense, Input, Output
from cnn.models import Sequential
from helpers import package_env

CHECKOUT = Path(__file__).resolve().parent.parent
INSTALLED = os.environ.get("CNN_TEST_INSTALLED") == "1"
# import name -> distribution name, for the third-party modules the tests may import
DISTRIBUTIONS = {"PIL": "pillow", "numpy": "numpy", "scipy": "scipy", "h5py": "h5py",
                 "matplotlib": "matplotlib", "pytest": "pytest", "threadpoolctl": "threadpoolctl",
                 "mpi4py": "mpi4py", "onnx": "onnx", "onnxruntime": "onnxruntime"}
ORACLE_ONLY = {"torch"}  # never a dependency: tests that use it importorskip it


def needs_installation(reason):
    if not INSTALLED:
        pytest.skip(f"{reason}: run against an installed copy (CNN_TEST_INSTALLED=1, as .ci/run)")


def console_script():
    found = Path(sys.executable).parent / "cnn"
    if found.is_file():
        return str(found)
    on_path = shutil.which("cnn")
    if on_path is None and INSTALLED:
        pytest.fail("the cnn console script is not installed next to the Python running the tests")
    if on_path is None:
        needs_installation("no cnn console script on PATH")
    return on_path


def test_tests_import_the_installed_copy():
    needs_installation("which copy the tests import")
    location = Path(cnn.__file__).resolve()
    assert CHECKOUT not in location.parents, f"tests imported the checkout's cnn: {location}"
    assert "site-packages" in location.parts, location


def test_package_data_is_installed():
    sample = resources.files("cnn.datasets") / "data" / "mnist_sample.npz"
    assert sample.is_file(), f"{sample} is missing from the package"
    from cnn.datasets import mnist_sample
    (x_train, y_train), (x_test, y_test) = mnist_sample.load_data()
    assert x_train.shape == (4000, 1, 28, 28) and x_test.shape == (1000, 1, 28, 28)


def run_script(*args, cwd):
    env = package_env({**os.environ, "MPLBACKEND": "Agg"})
    return subprocess.run([console_script(), *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env=env)


def test_console_script_help(tmp_path):
    result = run_script("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for command in ("train", "evaluate", "predict", "summary"):
        assert command in result.stdout


def test_console_script_summary(tmp_path):
    model = Sequential([Input((4,)), Dense(3, activation="relu", name="hidden"),
                        Output(2, name="scores")])
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    model.save(tmp_path / "small.h5")
    result = run_script("summary", "small.h5", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "hidden" in result.stdout and "scores" in result.stdout
    assert str(model.count_params()) in result.stdout.replace(",", "")  # 4*3+3 + 3*2+2 = 23
    assert model.count_params() == 23


def test_console_script_reports_a_bad_file(tmp_path):
    (tmp_path / "broken.h5").write_bytes(b"not an HDF5 file")
    result = run_script("summary", "broken.h5", cwd=tmp_path)
    assert result.returncode != 0 and "broken.h5" in result.stderr
    assert "Traceback" not in result.stderr


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_every_test_dependency_is_declared():
    pyproject = CHECKOUT / "pyproject.toml"
    if not pyproject.is_file():
        pytest.skip(f"no pyproject.toml next to the tests ({CHECKOUT})")
    project = tomllib.loads(pyproject.read_text())["project"]
    declared = {requirement_name(r) for r in project["dependencies"]}
    declared |= {requirement_name(r) for r in project["optional-dependencies"]["test"]}
    local = {p.stem for p in Path(__file__).parent.glob("*.py")} | {"cnn", "conftest"}
    local |= {p.stem for p in (CHECKOUT / "examples").glob("*.py")}  # tests run the examples
    missing = {}
    for test_file in sorted(Path(__file__).parent.glob("*.py")):
        for module in imported_modules(test_file) - local - set(sys.stdlib_module_names):
            if module in ORACLE_ONLY:
                continue
            distribution = DISTRIBUTIONS.get(module)
            assert distribution is not None, f"{test_file.name} imports {module}: add it here"
            if distribution not in declared and not uses_importorskip(test_file, module):
                missing.setdefault(distribution, []).append(test_file.name)
    assert not missing, f"used by tests but not declared in the test extra: {missing}"


def test_oracle_only_modules_are_imported_with_importorskip():
    for test_file in sorted(Path(__file__).parent.glob("*.py")):
        for module in ORACLE_ONLY & imported_modules(test_file):
            assert uses_importorskip(test_file, module), (
                f"{test_file.name} imports {module} without pytest.importorskip")


def uses_importorskip(path: Path, module: str) -> bool:
    text = path.read_text(encoding="utf-8")
    return f'importorskip("{module}"' in text or f"importorskip('{module}'" in text


def requirement_name(requirement: str) -> str:
    name = requirement
    for separator in "<>=!~[; ":
        name = name.split(separator)[0]
    return name.strip().lower()


def test_python_dash_m_cnn_outside_the_checkout(tmp_path):
    """``python -m cnn`` from a directory with no checkout in it."""
    result = subprocess.run([sys.executable, "-m", "cnn", "--version"], cwd=tmp_path,
                            env=package_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("cnn "), result.stderr
