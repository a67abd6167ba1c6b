"""Who runs where: one process, or the ranks of an MPI job.

``init()`` looks at the environment once. Started by ``mpiexec`` (or ``srun``), it joins the
MPI job through mpi4py and installs the abort hook; otherwise it sets up a world of one
process, so that a script written for many ranks runs unchanged on one. Both worlds offer the
same few collective operations, all on NumPy arrays, which is all the training loop needs:

* ``allreduce_sum(buffer)``: every rank's ``buffer`` replaced, in place, by the sum over ranks;
* ``broadcast(buffer)``: rank 0's ``buffer`` copied into every rank's, in place;
* ``broadcast_object(obj)``, ``allgather_object(obj)``: small Python values (pickled by MPI);
* ``barrier()``, ``abort(code)``.
"""

from __future__ import annotations

import os
import sys
import threading
import traceback

import numpy as np

# Variables that the common launchers set in every process they start: MPICH's and Intel
# MPI's Hydra (PMI_*), Open MPI (OMPI_*), PMIx-based launchers (Open MPI 5, Slurm), MVAPICH.
_LAUNCHER_VARIABLES = ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK",
                       "MV2_COMM_WORLD_SIZE")


def launched_by_mpi() -> bool:
    """True when this process was started by an MPI launcher (or by ``python -m mpi4py``)."""
    return any(name in os.environ for name in _LAUNCHER_VARIABLES) or "mpi4py.MPI" in sys.modules


class SingleProcess:
    """The world of one process: every collective operation is the identity."""

    rank = 0
    size = 1

    def allreduce_sum(self, buffer: np.ndarray) -> np.ndarray:
        return buffer

    def broadcast(self, buffer: np.ndarray) -> np.ndarray:
        return buffer

    def broadcast_object(self, obj):
        return obj

    def allgather_object(self, obj) -> list:
        return [obj]

    def barrier(self) -> None:
        pass

    def abort(self, code: int = 1) -> None:
        os._exit(code)

    def __repr__(self):
        return "<cnn.distributed world: 1 process>"


class MPIWorld:
    """The ranks of ``comm`` (an ``mpi4py.MPI.Comm``, normally ``COMM_WORLD``)."""

    def __init__(self, comm):
        from mpi4py import MPI  # noqa: PLC0415 - mpi4py is an optional extra, loaded on demand

        self._mpi = MPI
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()

    def allreduce_sum(self, buffer: np.ndarray) -> np.ndarray:
        _require_contiguous(buffer, "allreduce_sum")
        self.comm.Allreduce(self._mpi.IN_PLACE, buffer, op=self._mpi.SUM)
        return buffer

    def broadcast(self, buffer: np.ndarray) -> np.ndarray:
        _require_contiguous(buffer, "broadcast")
        self.comm.Bcast(buffer, root=0)
        return buffer

    def broadcast_object(self, obj):
        return self.comm.bcast(obj, root=0)

    def allgather_object(self, obj) -> list:
        return self.comm.allgather(obj)

    def barrier(self) -> None:
        self.comm.Barrier()

    def abort(self, code: int = 1) -> None:
        self.comm.Abort(code)

    def __repr__(self):
        return f"<cnn.distributed world: rank {self.rank} of {self.size} (MPI)>"


def _require_contiguous(buffer, what: str) -> None:
    if not isinstance(buffer, np.ndarray) or not buffer.flags.c_contiguous:
        raise TypeError(f"{what} needs a C-contiguous NumPy array, got {type(buffer).__name__}")


_world: list = [None]


def init(comm=None):
    """Join the MPI job this process was started in, or set up a world of one process.

    Idempotent: later calls return the same world. ``comm`` (an mpi4py communicator) replaces
    ``COMM_WORLD``. Under MPI, an exception that reaches the top of any thread of any rank
    prints its traceback with the rank's number and aborts every rank (``MPI_Abort``), so a
    failing rank can never leave the others waiting in a collective operation.
    """
    if _world[0] is not None:
        return _world[0]
    if comm is None and not launched_by_mpi():
        _world[0] = SingleProcess()
        return _world[0]
    try:
        from mpi4py import MPI  # noqa: PLC0415 - optional extra
    except ImportError:
        raise RuntimeError(
            "this process was started by an MPI launcher, but mpi4py is not installed: "
            "pip install 'cnn[mpi]'") from None
    world = MPIWorld(MPI.COMM_WORLD if comm is None else comm)
    _world[0] = world
    if world.size > 1:
        install_abort_hook(world)
    return world


def world():
    """The world ``init()`` set up (a world of one process before ``init()``)."""
    return _world[0] if _world[0] is not None else SingleProcess()


def is_initialized() -> bool:
    return _world[0] is not None


def rank() -> int:
    """This process's rank, 0 to ``size() - 1`` (0 outside MPI)."""
    return world().rank


def size() -> int:
    """The number of ranks (1 outside MPI)."""
    return world().size


def is_chief() -> bool:
    """True on rank 0: the rank that prints, writes files and saves checkpoints."""
    return world().rank == 0


def install_abort_hook(world_) -> None:
    """Make an uncaught exception in any thread end every rank of ``world_``."""

    def abort(kind, value, tb, thread_name="main thread"):
        message = "".join(traceback.format_exception(kind, value, tb))
        sys.stderr.write(f"cnn.distributed: rank {world_.rank} of {world_.size} failed in the "
                         f"{thread_name}; aborting all ranks\n{message}")
        sys.stderr.flush()
        world_.abort(1)

    sys.excepthook = abort
    threading.excepthook = lambda args: abort(args.exc_type, args.exc_value,
                                              args.exc_traceback, f"thread {args.thread.name}")
