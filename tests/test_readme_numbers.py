"""README's main-command numbers are what the main command prints.

The numbers are read from README.md with regular expressions, so changing the code without
README, or README without the code, fails here.

They are exact only on the BLAS README's numbers came from: float32 matrix products round
differently with another OpenBLAS kernel or thread count (measured: a 2000-long dot product
differs in the 5th digit between 1 and 2 threads), and five epochs carry that into the 4th
digit. README's runs were on a 2-core Sapphire Rapids Xeon, OpenBLAS's SkylakeX kernels, 2
threads (benchmarks/RESULTS.md); an AMD EPYC with the Haswell kernels gives accuracy 0.9500,
loss 0.1779 with 1 thread and 0.9480, 0.1822 with 2. So: with the SkylakeX kernels the run
uses 2 threads and must print README's numbers exactly; with any other kernel it uses 1
thread (fast on a busy machine) and must come within ``ACCURACY_BAND`` and ``LOSS_BAND``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import threadpoolctl

from helpers import package_env

REFERENCE_KERNEL, REFERENCE_THREADS = "SkylakeX", 2
ACCURACY_BAND, LOSS_BAND = 0.005, 0.01  # 5 of the 1000 test images; 0.01 of 0.18
CLASS_BAND = 0.02  # per-class scores: 2 of a class's 100 images

README = Path(__file__).resolve().parent.parent / "README.md"
FINAL = re.compile(r"trained (\d+) epoch\(s\) in [\d.]+ s; on the (\d+) test images: "
                   r"accuracy (\d\.\d{4}), loss (\d\.\d{4})")
EPOCH = re.compile(r"(\d+)/\1 \[=+\] .*? - loss: (\d\.\d{4}) - accuracy: (\d\.\d{4}) - "
                   r"val_loss: (\d\.\d{4}) - val_accuracy: (\d\.\d{4})")
EVALUATE = re.compile(r"on the (\d+) test images of [\w-]+:\s+accuracy (\d\.\d{4}), "
                      r"loss (\d\.\d{4})")
MACRO = re.compile(r"macro avg\s+(\d\.\d{4})\s+(\d\.\d{4})\s+(\d\.\d{4})\s+(\d+)")
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


def blas_kernel() -> str:
    kernels = [info.get("architecture") for info in threadpoolctl.threadpool_info()
               if info.get("internal_api") == "openblas"]
    return kernels[0] if kernels else "not OpenBLAS"


EXACT = blas_kernel() == REFERENCE_KERNEL


def run_cnn(*args, cwd):
    threads = str(REFERENCE_THREADS if EXACT else 1)
    env = package_env({**os.environ, "MPLBACKEND": "Agg", "OPENBLAS_NUM_THREADS": threads,
                       "OMP_NUM_THREADS": threads})
    result = subprocess.run([sys.executable, "-m", "cnn", *args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr
    return result.stdout.replace("\r", "\n")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """README's main command, ``python -m cnn train`` (default seed), in an empty directory."""
    directory = tmp_path_factory.mktemp("readme")
    return directory, run_cnn("train", cwd=directory)


def test_readme_states_its_numbers():
    text = readme_text()
    assert len(one(FINAL, text, "README")) == 1
    assert "python -m cnn train" in text


def assert_readme_numbers(got, expected, kinds):
    """``got`` and ``expected`` are tuples of strings; ``kinds`` says which entries are
    accuracies ("a"), per-class scores ("c"), losses ("l") or counts ("n")."""
    if EXACT:
        assert got == expected, f"printed {got}, README says {expected}"
        return
    for value, reference, kind in zip(got, expected, kinds):
        if kind == "n":
            assert value == reference, f"printed {got}, README says {expected}"
        else:
            band = {"a": ACCURACY_BAND, "c": CLASS_BAND, "l": LOSS_BAND}[kind]
            assert abs(float(value) - float(reference)) <= band, (
                f"printed {got}, README says {expected}: more than {band} apart, beyond what "
                f"the BLAS kernel ({blas_kernel()}, not {REFERENCE_KERNEL}) explains")


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
