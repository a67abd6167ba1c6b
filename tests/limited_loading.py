"""Loading model files in a child process whose address space is limited.

``load_limited(paths)`` starts one Python process that imports cnn, then caps its address
space (``resource.setrlimit(RLIMIT_AS)``) at what it uses then plus ``headroom`` bytes, and
calls ``load_model`` on every path in turn. A loader that tried to allocate far more than
the file's real contents would get a MemoryError at once instead of swapping the machine.
Returns, per path, ``(outcome, message, seconds)``: outcome is ``"loaded"``, the name of the
exception's class, or ``"died"`` when the process itself did not survive.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADROOM = 1 << 30  # 1 GiB above what the process uses after its imports

_CHILD = r"""
import json, resource, sys, time, traceback, warnings
import numpy as np
import cnn
from cnn.models import ModelFileError, load_model

warnings.simplefilter("ignore")
headroom, paths = int(sys.argv[1]), sys.argv[2:]
with open("/proc/self/status") as status:
    used = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (used + headroom, used + headroom))
for path in paths:
    start = time.perf_counter()
    try:
        load_model(path)
        outcome, message = "loaded", ""
    except ModelFileError as exc:
        outcome, message = "ModelFileError", str(exc)
    except BaseException as exc:
        outcome, message = type(exc).__name__, f"{exc} | {traceback.format_exc()[-1500:]}"
    seconds = time.perf_counter() - start
    print(json.dumps([path, outcome, message[:2000], seconds]), flush=True)
"""


def load_limited(paths, headroom: int = HEADROOM, timeout: float = 600.0) -> dict:
    """``{path: (outcome, message, seconds)}`` for every path (see the module docstring)."""
    paths = [str(p) for p in paths]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    process = subprocess.run([sys.executable, "-c", _CHILD, str(headroom), *paths], env=env,
                             capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    results = {}
    for line in process.stdout.splitlines():
        path, outcome, message, seconds = json.loads(line)
        results[path] = (outcome, message, seconds)
    for path in paths:  # the process died on this one (and left the rest untried)
        if path not in results:
            results[path] = ("died", f"exit status {process.returncode}: "
                                     f"{process.stderr[-2000:]}", 0.0)
            break
    return results
