"""README's main-command numbers are what the main command prints.

The numbers are read from README.md with regular expressions, so changing the code without
README, or README without the code, fails here. README also says what printed them, in a
sentence this test reads (``PRINTED_BY``): the BLAS (OpenBLAS's version and kernel, as
threadpoolctl reports them), the number of BLAS threads and of processes.

float32 matrix products round differently with another OpenBLAS kernel, version or thread
count (a 2000-long float32 dot product differs in the 5th digit between 1 and 2 threads), and
five epochs carry that into the 4th digit. Measured on the project's 2-core AMD EPYC
(OpenBLAS 0.3.31.188.0, Haswell kernels) on 2026-12-01: 1 thread prints accuracy 0.9560,
loss 0.1520 (README's), 2 threads 0.9570, 0.1496, and class 3's precision moves from 0.9592
to 0.9400. So: on README's kernel and version the run uses README's threads and processes and
must print README's numbers exactly (the same machine code in the same order gives the same
bits: OpenBLAS splits a product between a fixed number of threads statically); on any other
BLAS it uses 1 thread (fast on a busy machine) and must come within the bands below, two to
five times the differences measured between thread counts (0.0010, 0.0192 and 0.0024).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy  # noqa: F401  (loaded, so that threadpoolctl sees its BLAS)
import pytest
import threadpoolctl

from helpers import package_env

ACCURACY_BAND, LOSS_BAND = 0.005, 0.01  # 5 of the 1000 test images; 0.01 of 0.15
CLASS_BAND = 0.04  # per-class scores: 4 of a class's 100 images (measured: 0.0192)

README = Path(__file__).resolve().parent.parent / "README.md"
FINAL = re.compile(r"trained (\d+) epoch\(s\) in [\d.]+ s; on the (\d+) test images: "
                   r"accuracy (\d\.\d{4}), loss (\d\.\d{4})")
EPOCH = re.compile(r"(\d+)/\1 \[=+\] .*? - loss: (\d\.\d{4}) - accuracy: (\d\.\d{4}) - "
                   r"val_loss: (\d\.\d{4}) - val_accuracy: (\d\.\d{4})")
EVALUATE = re.compile(r"on the (\d+) test images of [\w-]+:\s+accuracy (\d\.\d{4}), "
                      r"loss (\d\.\d{4})")
MACRO = re.compile(r"macro avg\s+(\d\.\d{4})\s+(\d\.\d{4})\s+(\d\.\d{4})\s+(\d+)")
PRINTED_BY = re.compile(r"printed[^.]*?\bby\s+OpenBLAS\s+(\d[\d.]*\d)\s+\((\w+)\s+kernels\)\s+"
                        r"with\s+(\d+)\s+BLAS\s+threads?\s+in\s+(\d+)\s+process")
CLASS_ROW = re.compile(r"^\s+([0-9])\s+(\d\.\d{4})\s+(\d\.\d{4})\s+(\d\.\d{4})\s+(\d+)\s*$",
                       re.MULTILINE)


def readme_text():
    if not README.is_file():
        pytest.skip(f"no README.md next to the tests ({README})")
    return README.read_text(encoding="utf-8")


def one(pattern, text, what):
    found = pattern.findall(text)
    assert found, f"{what}: no match for {pattern.pattern!r}"
    return found


def openblas() -> tuple[str, str]:
    """(version, kernel) of the OpenBLAS NumPy uses, as README's ``PRINTED_BY`` names them."""
    for info in threadpoolctl.threadpool_info():
        if info.get("internal_api") == "openblas":
            return info.get("version") or "?", info.get("architecture") or "?"
    return "not OpenBLAS", "none"


def printed_by():
    """(OpenBLAS version, kernel, BLAS threads, processes) README's numbers were printed by."""
    [(version, kernel, threads, processes)] = one(PRINTED_BY, readme_text(), "README")
    return version, kernel, int(threads), int(processes)


def exact() -> bool:
    return openblas() == printed_by()[:2]


def run_cnn(*args, cwd):
    _, _, threads, processes = printed_by()
    threads = str(threads if exact() else 1)
    # CNN_WORKERS: the number of processes, for a cnn that chooses it by the cores it finds
    env = package_env({**os.environ, "MPLBACKEND": "Agg", "OPENBLAS_NUM_THREADS": threads,
                       "OMP_NUM_THREADS": threads, "CNN_WORKERS": str(processes)})
    result = subprocess.run([sys.executable, "-m", "cnn", *args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr
    return result.stdout.replace("\r", "\n")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """README's main command, ``python -m cnn train`` (default seed), in an empty directory."""
    directory = tmp_path_factory.mktemp("readme")
    return directory, run_cnn("train", cwd=directory)


def test_readme_states_its_numbers_and_what_printed_them():
    text = readme_text()
    assert len(one(FINAL, text, "README")) == 1
    assert "python -m cnn train" in text
    version, kernel, threads, processes = printed_by()
    assert threads >= 1 and processes >= 1 and kernel and version


def assert_readme_numbers(got, expected, kinds):
    """``got`` and ``expected`` are tuples of strings; ``kinds`` says which entries are
    accuracies ("a"), per-class scores ("c"), losses ("l") or counts ("n")."""
    if exact():
        assert got == expected, (f"printed {got}, README says {expected}, on the BLAS README "
                                 f"names ({openblas()})")
        return
    for value, reference, kind in zip(got, expected, kinds):
        if kind == "n":
            assert value == reference, f"printed {got}, README says {expected}"
        else:
            band = {"a": ACCURACY_BAND, "c": CLASS_BAND, "l": LOSS_BAND}[kind]
            assert abs(float(value) - float(reference)) <= band, (
                f"printed {got}, README says {expected}: more than {band} apart, beyond what "
                f"the BLAS ({openblas()}, not README's {printed_by()[:2]}) explains")


def test_main_command_prints_readme_numbers(trained):
    _, printed = trained
    expected = one(FINAL, readme_text(), "README")[0]
    got = one(FINAL, printed, "python -m cnn train")[-1]
    assert_readme_numbers(got, expected, "nnal")


def test_last_epoch_line_matches_readme(trained):
    _, printed = trained
    expected = one(EPOCH, readme_text(), "README")[0]
    got = one(EPOCH, printed, "python -m cnn train")[-1]
    assert_readme_numbers(got, expected, "nlala")


def test_evaluate_prints_readme_numbers(trained):
    directory, _ = trained
    assert (directory / "runs" / "seed" / "model.h5").is_file()
    printed = run_cnn("evaluate", "runs/seed/model.h5", cwd=directory)
    text = readme_text()
    evaluated = one(EVALUATE, printed, "cnn evaluate")[0]
    _, trained_images, trained_accuracy, trained_loss = one(FINAL, trained[1], "train")[-1]
    assert evaluated == (trained_images, trained_accuracy, trained_loss)  # the same model
    assert_readme_numbers(evaluated, one(EVALUATE, text, "README")[0], "nal")
    assert_readme_numbers(one(MACRO, printed, "cnn evaluate")[0], one(MACRO, text, "README")[0],
                          "aaan")
    rows = dict((row[0], row) for row in one(CLASS_ROW, printed, "cnn evaluate"))
    for row in one(CLASS_ROW, text, "README"):  # the classes README shows (0 and 3)
        assert_readme_numbers(rows[row[0]], row, "ncccn")
