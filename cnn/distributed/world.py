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
import pickle
import sys
import threading
import time
import traceback

import numpy as np

from cnn.utils import checks

# Variables that the common launchers set in every process they start: MPICH's and Intel
# MPI's Hydra (PMI_*), Open MPI (OMPI_*), PMIx-based launchers (Open MPI 5, Slurm), MVAPICH.
_LAUNCHER_VARIABLES = ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK",
                       "MV2_COMM_WORLD_SIZE")
TIMEOUT_VARIABLE = "CNN_MPI_TIMEOUT"
COLLECTIVE_TIMEOUT = 60.0  # seconds a rank waits for the others in one collective operation
ANSWER_SECONDS = 2.0       # seconds the rank that gave up waits for the others to answer
FIRST_PAUSE = 1e-5         # seconds between two tests of a request, doubling up to:
LONGEST_PAUSE = 5e-4
# seconds a rank that aborts every rank waits after writing its error: mpiexec forwards a
# rank's output asynchronously, and an immediate MPI_Abort once lost a failing rank's
# traceback in CI (mpiexec exited non-zero with empty output)
ABORT_GRACE_SECONDS = 0.5
QUESTION, ANSWER = 7301, 7302  # tags on the control communicator


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
    """The ranks of ``comm`` (an ``mpi4py.MPI.Comm``, normally ``COMM_WORLD``).

    Every collective operation is started non-blocking and waited for with a deadline
    (``timeout`` seconds, ``collective_timeout``): a rank that is stopped, stuck or gone makes
    the others give up after that time instead of waiting forever. The first rank to give up
    asks the others over a second communicator which of them are waiting too; those that do
    not answer within ANSWER_SECONDS are named in the error, and every rank is ended
    (``MPI_Abort``): a collective that some rank never joins cannot be taken back.
    """

    def __init__(self, comm, timeout=None):
        from mpi4py import MPI  # noqa: PLC0415 - mpi4py is an optional extra, loaded on demand

        self._mpi = MPI
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.timeout = collective_timeout(timeout)
        self.collectives = 0  # collective operations started so far (the same on every rank)
        self._control = comm.Dup() if self.size > 1 else None
        self._answers: list = []  # sends of answers in flight, with their buffers

    def allreduce_sum(self, buffer: np.ndarray) -> np.ndarray:
        _require_contiguous(buffer, "allreduce_sum")
        self.wait(self.comm.Iallreduce(self._mpi.IN_PLACE, buffer, op=self._mpi.SUM),
                  "allreduce_sum")
        return buffer

    def broadcast(self, buffer: np.ndarray) -> np.ndarray:
        _require_contiguous(buffer, "broadcast")
        self.wait(self.comm.Ibcast(buffer, root=0), "broadcast")
        return buffer

    def broadcast_object(self, obj):
        """Rank 0's ``obj``, pickled (the ranks of one job trust each other)."""
        data = pickle.dumps(obj) if self.rank == 0 else b""
        length = np.array([len(data)], dtype=np.int64)
        self.wait(self.comm.Ibcast(length, root=0), "broadcast_object")
        payload = np.frombuffer(data, dtype=np.uint8).copy() if self.rank == 0 else \
            np.empty(int(length[0]), dtype=np.uint8)
        self.wait(self.comm.Ibcast(payload, root=0), "broadcast_object")
        return obj if self.rank == 0 else pickle.loads(payload.tobytes())

    def allgather_object(self, obj) -> list:
        data = np.frombuffer(pickle.dumps(obj), dtype=np.uint8).copy()
        lengths = np.zeros(self.size, dtype=np.int64)
        self.wait(self.comm.Iallgather(np.array([data.size], dtype=np.int64), lengths),
                  "allgather_object")
        gathered = np.empty(int(lengths.sum()), dtype=np.uint8)
        self.wait(self.comm.Iallgatherv(data, [gathered, lengths.tolist()]), "allgather_object")
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        return [pickle.loads(gathered[a:b].tobytes()) for a, b in zip(offsets[:-1], offsets[1:])]

    def barrier(self) -> None:
        self.wait(self.comm.Ibarrier(), "barrier")

    def abort(self, code: int = 1) -> None:
        """End every rank with exit status ``code``, once what this rank wrote has had
        ``ABORT_GRACE_SECONDS`` to reach mpiexec."""
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
        time.sleep(ABORT_GRACE_SECONDS)
        self.comm.Abort(code)

    def wait(self, request, what: str) -> None:
        """Wait for ``request`` (a collective this rank started) at most ``timeout`` s; then
        end every rank with an error naming the ranks that did not arrive."""
        self.collectives += 1
        if request.Test():
            return
        deadline = time.monotonic() + self.timeout
        pause = FIRST_PAUSE
        while not request.Test():
            self._answer_questions()
            if time.monotonic() > deadline:
                self._give_up(what)
            time.sleep(pause)
            pause = min(2 * pause, LONGEST_PAUSE)

    def _answer_questions(self) -> None:
        """Tell every rank that asked (it gave up waiting) that this one is waiting too."""
        status = self._mpi.Status()
        while self._control.Iprobe(source=self._mpi.ANY_SOURCE, tag=QUESTION, status=status):
            source = status.Get_source()
            asked = np.empty(1, dtype=np.int64)
            self._control.Recv(asked, source=source, tag=QUESTION)
            answer = np.array([self.collectives], dtype=np.int64)
            self._answers.append((self._control.Isend(answer, dest=source, tag=ANSWER), answer))

    def _give_up(self, what: str) -> None:
        missing = self.absent_ranks()
        names = ", ".join(map(str, missing)) if missing else "unknown (every rank answered)"
        sys.stderr.write(
            f"cnn.distributed: rank {self.rank} of {self.size} waited {self.timeout:g} s in "
            f"collective operation #{self.collectives} ({what}) for rank(s) {names}, which "
            f"did not arrive (stopped, stuck or overloaded; set {TIMEOUT_VARIABLE} or "
            "cnn.distributed.init(timeout=...) to wait longer); aborting all ranks\n")
        sys.stderr.flush()
        self.abort(1)

    def absent_ranks(self) -> list[int]:
        """The other ranks that do not answer within ANSWER_SECONDS (a rank that is waiting
        in a collective operation answers, or asks itself)."""
        others = [r for r in range(self.size) if r != self.rank]
        question = np.array([self.collectives], dtype=np.int64)
        sends = [self._control.Isend(question, dest=r, tag=QUESTION) for r in others]
        heard = set()
        status = self._mpi.Status()
        deadline = time.monotonic() + ANSWER_SECONDS
        while len(heard) < len(others) and time.monotonic() < deadline:
            for tag in (ANSWER, QUESTION):
                while self._control.Iprobe(source=self._mpi.ANY_SOURCE, tag=tag, status=status):
                    source = status.Get_source()
                    self._control.Recv(np.empty(1, dtype=np.int64), source=source, tag=tag)
                    heard.add(source)
            time.sleep(LONGEST_PAUSE)
        del sends  # never waited for: a stopped rank does not receive
        return [r for r in others if r not in heard]

    def __repr__(self):
        return f"<cnn.distributed world: rank {self.rank} of {self.size} (MPI)>"


def collective_timeout(seconds=None) -> float:
    """The seconds a rank waits in a collective operation: ``seconds`` if given, else
    ``$CNN_MPI_TIMEOUT`` if set, else COLLECTIVE_TIMEOUT."""
    if seconds is not None:
        return checks.positive("timeout", seconds)
    if os.environ.get(TIMEOUT_VARIABLE):
        return checks.positive(f"${TIMEOUT_VARIABLE}", os.environ[TIMEOUT_VARIABLE])
    return COLLECTIVE_TIMEOUT


def _require_contiguous(buffer, what: str) -> None:
    if not isinstance(buffer, np.ndarray) or not buffer.flags.c_contiguous:
        raise TypeError(f"{what} needs a C-contiguous NumPy array, got {type(buffer).__name__}")


_world: list = [None]


def init(comm=None, timeout=None):
    """Join the MPI job this process was started in, or set up a world of one process.

    Idempotent: later calls return the same world. ``comm`` (an mpi4py communicator) replaces
    ``COMM_WORLD``. Under MPI, an exception that reaches the top of any thread of any rank
    prints its traceback with the rank's number and aborts every rank (``MPI_Abort``), so a
    failing rank can never leave the others waiting in a collective operation; and a rank
    that does not arrive in a collective operation within ``timeout`` seconds (default
    ``$CNN_MPI_TIMEOUT``, else 60) ends every rank too, with an error naming it.
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
    world = MPIWorld(MPI.COMM_WORLD if comm is None else comm, timeout)
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
