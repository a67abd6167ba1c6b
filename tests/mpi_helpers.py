"""Running a small script on N MPI ranks from a test (``mpiexec`` from the ``[mpi]`` extra)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import cnn


def require_mpi():
    """Skip (with the reason) unless mpi4py and an ``mpiexec`` are installed."""
    pytest.importorskip("mpi4py", reason="mpi4py is not installed (pip install 'cnn[mpi]')")
    if shutil.which("mpiexec") is None:
        pytest.skip("no mpiexec on PATH (pip install 'cnn[mpi]' brings MPICH's)")


def run_ranks(n: int, code: str, tmp_path: Path, timeout: float = 120, launcher=("python",),
              args=()) -> subprocess.CompletedProcess:
    """Run ``code`` (dedented) as a script on ``n`` ranks; returns the finished process.

    The ranks import the same ``cnn`` as this test (the directory above the package is put
    first on their path), whether it is installed or a checkout.
    """
    require_mpi()
    script = tmp_path / "rank_script.py"
    script.write_text(textwrap.dedent(code))
    package_root = str(Path(cnn.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [package_root, *filter(None, [os.environ.get("PYTHONPATH")])]),
        "MPLBACKEND": "Agg", "OPENBLAS_NUM_THREADS": "1"}
    launcher = [sys.executable if part == "python" else part for part in launcher]
    command = ["mpiexec", "-n", str(n), *launcher, str(script), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=tmp_path)
