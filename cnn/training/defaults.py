"""What ``fit``, ``evaluate`` and ``predict`` use when the user does not say: how many
processes share each batch and how many BLAS threads each process runs.

The rule (``docs/PERFORMANCE.md``, "Every core by default"):

* **processes**: one per core this process may use (``usable_cores()``), but no more than
  leave every process a slice of at least ``MIN_SLICE_ROWS`` samples of a batch, and only
  for at least ``MIN_PARALLEL_SAMPLES`` samples of work (below that, starting the worker
  processes costs more than they save). ``workers=W`` (``--workers W`` on the command line)
  chooses; else the environment variable ``CNN_WORKERS`` (an int, or ``auto``); else this
  rule. Models the worker processes cannot run fall back to one process
  (``cnn.training.strategy``).
* **BLAS threads**: one per process, for the duration of the call, unless the user chose:
  ``cnn.set_num_threads(n)`` or one of ``THREAD_VARIABLES`` set in the environment; then
  their count, shared among the processes. Importing cnn changes nothing.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np

from cnn import backend

# The smallest slice of a batch that pays for its round trip to a worker process. Measured
# on 2 cores (docs/PERFORMANCE.md, "Every core by default"): at batch 32 (slices of 16) the
# caller's half-step, with copying the weights out and the gradients back, costs ~83% of a
# whole one-process step, so two processes were only 1.2x faster on a quiet machine and
# 1.55x slower than that with another process keeping one core busy; one process is 1.01x
# its quiet time under the same load. Slices of 32 (batch 64 on 2 cores) and more win.
MIN_SLICE_ROWS = 32
# The least work (samples, all epochs together) for which the default starts worker
# processes: their start-up (forking and rebuilding the model, tens of ms) is paid back
# only over a few thousand samples.
MIN_PARALLEL_SAMPLES = 2048
# The batch size the worker processes' shared memory is first sized for when the data makes
# its own batches (a Sequence or a generator: the size is known at the first batch); a
# larger batch then restarts the workers once with room for it.
DATA_BATCH_ROWS = 32
WORKERS_VARIABLE = "CNN_WORKERS"
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), else the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity on this platform (macOS, Windows)
        return max(1, os.cpu_count() or 1)


def check_workers(workers, name: str = "workers") -> int:
    """``workers`` as an int >= 1, or a ValueError naming ``name``."""
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"{name} must be an int >= 1, got {workers!r}")
    return int(workers)


def requested_workers(workers) -> int | None:
    """The processes the user asked for: ``workers`` when given (not None), else the
    environment variable ``CNN_WORKERS`` (``auto`` or unset: None, the default's choice)."""
    if workers is not None:
        return check_workers(workers)
    value = os.environ.get(WORKERS_VARIABLE)
    if value is None or value.strip().lower() in ("", "auto"):
        return None
    try:
        count = int(value.strip())
    except ValueError:
        count = 0
    if count < 1:
        raise ValueError(f"the environment variable {WORKERS_VARIABLE} must be an int >= 1 "
                         f"or 'auto', got {value!r}")
    return count


def chosen_threads() -> int | None:
    """The BLAS threads the user chose (``cnn.set_num_threads``, or a thread variable in the
    environment: the count the library runs now), or None when nobody chose."""
    if backend.thread_limit() is not None:
        return backend.thread_limit()
    if any(os.environ.get(name, "").strip() for name in THREAD_VARIABLES):
        return backend.get_num_threads()
    return None


def automatic_processes(cores: int, rows: int | None, samples: int | None) -> int:
    """The processes the default uses for batches of ``rows`` samples (None: made by the
    data, a Sequence or generator) and ``samples`` samples of work in all (None: unknown)."""
    if samples is not None and samples < MIN_PARALLEL_SAMPLES:
        return 1
    if rows is None:
        return cores
    return max(1, min(cores, rows // MIN_SLICE_ROWS))


def threads_per_process(processes: int) -> int:
    """BLAS threads for each of ``processes`` processes: the user's count shared among them
    (at least one each), else one."""
    chosen = chosen_threads()
    return 1 if chosen is None else max(1, chosen // processes)


class Plan(NamedTuple):
    """What a call runs on: ``processes`` x ``threads`` BLAS threads; ``cores`` usable,
    batches of ``rows`` (None: the data's own, a Sequence's or generator's); ``automatic``:
    chosen by the default; ``reason``: why the default kept one process (None when it did
    not, or when the user chose)."""

    processes: int
    threads: int
    cores: int
    rows: int | None
    automatic: bool
    reason: str | None = None

    def describe(self) -> str:
        """The line verbose runs print, e.g. ``cnn: 2 processes x 1 BLAS thread (2 cores
        usable, batch 64; workers=1 or CNN_WORKERS=1 to opt out)``; ``batches from the
        data`` in place of ``batch 64`` for a Sequence or generator."""
        batch = "batches from the data" if self.rows is None else f"batch {self.rows}"
        head = (f"cnn: {self.processes} process{'es' if self.processes > 1 else ''} x "
                f"{self.threads} BLAS thread{'s' if self.threads > 1 else ''} "
                f"({self.cores} core{'s' if self.cores > 1 else ''} usable, {batch}")
        if not self.automatic:
            return f"{head}; as chosen)"
        if self.reason is not None:
            return f"{head}; one process because {self.reason})"
        return f"{head}; workers=1 or {WORKERS_VARIABLE}=1 to opt out)"
