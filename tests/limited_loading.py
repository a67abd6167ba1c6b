"""Loading model files in a child process whose address space is limited.

``load_limited(paths)`` starts one Python process that imports cnn, then caps its address
space (``resource.setrlimit(RLIMIT_AS)``) at what it uses then plus ``headroom`` bytes, and
calls ``load_model`` on every path in turn. A loader that tried to allocate far more than
the file's real contents would get a MemoryError at once instead of swapping the machine.
The HDF5 reading process (``cnn.saving.reader_process``) is started before the limit and
before the first load's clock (and again, off the clock, after a load that ended it), and
each load gives it ``read_timeout`` seconds (``$CNN_HDF5_TIMEOUT``). Each load also has
``seconds`` (an alarm whose default action ends the process), a watchdog for a hang in the
loader itself; a process that dies is started again for the paths left. Returns, per path,
``(outcome, message, seconds)``: outcome is ``"loaded"``, the name of the exception's class,
or ``"died"`` when the process did not survive that path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from helpers import package_env

HERE = Path(__file__).resolve().parent  # holds no `cnn`: the child imports package_env's
HEADROOM = 1 << 30  # 1 GiB above what the process uses after its imports

_CHILD = r"""
import json, resource, signal, sys, time, traceback, warnings
import numpy as np
import cnn
from cnn.models import ModelFileError, load_model
from cnn.saving import reader_process

warnings.simplefilter("ignore")
headroom, seconds, paths = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
signal.signal(signal.SIGALRM, signal.SIG_DFL)
reader_process.start_reader()
with open("/proc/self/status") as status:
    used = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (used + headroom, used + headroom))
for path in paths:
    start = time.perf_counter()
    signal.alarm(seconds)
    try:
        load_model(path)
        outcome, message = "loaded", ""
    except ModelFileError as exc:
        outcome, message = "ModelFileError", str(exc)
    except BaseException as exc:
        outcome, message = type(exc).__name__, f"{exc} | {traceback.format_exc()[-1500:]}"
    signal.alarm(0)
    spent = time.perf_counter() - start
    reader_process.start_reader()  # a new one, if this load ended the last: off the clock
    print(json.dumps([path, outcome, message[:2000], spent]), flush=True)
"""


def load_limited(paths, headroom: int = HEADROOM, timeout: float = 600.0,
                 seconds: int = 10, read_timeout: float = 5.0) -> dict:
    """``{path: (outcome, message, seconds)}`` for every path (see the module docstring)."""
    left = [str(p) for p in paths]
    env = {**package_env(), "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "CNN_HDF5_TIMEOUT": str(read_timeout)}
    results = {}
    while left:
        process = subprocess.run([sys.executable, "-c", _CHILD, str(headroom), str(seconds),
                                  *left], env=env, capture_output=True, text=True,
                                 timeout=timeout, cwd=HERE)
        for line in process.stdout.splitlines():
            path, outcome, message, spent = json.loads(line)
            results[path] = (outcome, message, spent)
        left = [path for path in left if path not in results]
        if left:  # the process died on the first of these
            results[left.pop(0)] = ("died", f"exit status {process.returncode}: "
                                            f"{process.stderr[-2000:]}", float(seconds))
    return results
