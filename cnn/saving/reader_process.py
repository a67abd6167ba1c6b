"""Reading an untrusted HDF5 file in a separate process, within a time and a memory limit.

A crafted file can make the HDF5 C library loop forever (tests/fixtures/hostile holds one)
or crash, where no check written in Python can intervene. So the library only ever sees an
untrusted file in a reading process (``cnn.saving.hdf5_reader``): a fresh interpreter,
started on the first load and kept for the next ones (one start per process, not one per
load). The loading process reads the file's bytes once and sends them; what comes back is
JSON and ``.npy`` arrays (``reader_protocol``), never pickles.

``reading(path, data, timeout)`` yields a :class:`Session` whose calls each wait at most what
is left of ``timeout`` seconds (the time the reading process takes, all calls together). When
the time is up, or the process dies, it is ended and :class:`ReadingFailed` says what
happened; the next load starts a new one.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from cnn.saving import reader_protocol as protocol
from cnn.utils import checks

TIMEOUT_VARIABLE = "CNN_HDF5_TIMEOUT"
BASE_TIMEOUT = 60.0            # seconds for any file, plus:
SECONDS_PER_BYTE = 1 / 100e6   # one second per 100 MB
START_TIMEOUT = 120.0          # seconds for a new reading process to import its modules
MEMORY_HEADROOM = 1 << 30      # address space the reading process may add, plus:
MEMORY_PER_FILE_BYTE = 4       # the file's bytes, HDF5's copy, one array read and its .npy
REPLY_LIMIT = 1 << 30          # bytes of one JSON reply (the structure of 100,000 objects)
NPY_HEADER_LIMIT = 1 << 16


# The reading process imports this very cnn (the directory above the package first), and
# nothing from the working directory, where another cnn (or a numpy.py) may lie.
_START = ("import os, sys; sys.path[:] = [{root!r}] + [p for p in sys.path if p not in "
          "('', os.getcwd())]; from cnn.saving.hdf5_reader import main; main()")


class ReadingFailed(Exception):
    """The reading process did not answer; ``problem`` says why, for the file's error."""

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem


def resolve_timeout(timeout, file_bytes: int) -> float:
    """``timeout`` seconds, or ``$CNN_HDF5_TIMEOUT``, or BASE_TIMEOUT plus a second per
    100 MB of the file; a ValueError names a value that is not a positive number."""
    if timeout is not None:
        return checks.positive("read_timeout", timeout)
    if os.environ.get(TIMEOUT_VARIABLE):
        return checks.positive(f"${TIMEOUT_VARIABLE}", os.environ[TIMEOUT_VARIABLE])
    return BASE_TIMEOUT + file_bytes * SECONDS_PER_BYTE


class ReaderProcess:
    """One running ``cnn.saving.hdf5_reader``, with pipes to its standard input and output."""

    def __init__(self):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
               "MKL_NUM_THREADS": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-c", _START.format(root=str(Path(__file__).resolve().parents[2]))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
            close_fds=True)
        self.requests = self.process.stdin.fileno()
        self.replies = self.process.stdout.fileno()
        os.set_blocking(self.requests, False)
        try:
            protocol.receive_json(self.replies, 64, time.monotonic() + START_TIMEOUT)
        except (protocol.ProtocolTimeout, protocol.ProtocolClosed, ValueError):
            self.end()
            raise ReadingFailed(f"the HDF5 reading process did not start (within "
                                f"{START_TIMEOUT:g} s)") from None

    def alive(self) -> bool:
        return self.process.poll() is None

    def end(self) -> None:
        """Kill the process (if it still runs) and collect it."""
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self.process.wait()
        self.close_pipes()

    def close(self) -> None:
        """End it politely: it leaves when its standard input closes."""
        self.close_pipes()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.end()

    def close_pipes(self) -> None:
        for stream in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):
                stream.close()

    def exit_problem(self) -> str:
        """Why the process ended, for the error of the file it was reading."""
        code = self.process.wait()
        if code < 0:
            number = -code
            name = signal.Signals(number).name if number in signal.valid_signals() else number
            if number == signal.SIGXCPU:
                return f"the HDF5 library used up its CPU time limit reading it ({name})"
            return f"the HDF5 library crashed reading it (the reading process got {name})"
        return f"the HDF5 reading process ended with exit status {code} while reading it"


class Session:
    """The calls that read one file; ``timeout`` seconds for all of them together."""

    def __init__(self, reader: ReaderProcess, timeout: float):
        self.reader = reader
        self.timeout = timeout
        self.left = timeout

    def call(self, message: dict, payload: bytes | None = None, array_limit: int = 0):
        """``(reply, .npy bytes or None)`` for ``message`` (and the frame ``payload``)."""
        start = time.monotonic()
        deadline = start + self.left
        reader = self.reader
        try:
            protocol.send_json(reader.requests, message, deadline)
            if payload is not None:
                protocol.send_frame(reader.requests, payload, deadline)
            reply = protocol.receive_json(reader.replies, REPLY_LIMIT, deadline)
            array_bytes = None
            if isinstance(reply.get("value"), dict) and reply["value"].get("array") is True:
                array_bytes = protocol.receive_frame(reader.replies,
                                                     array_limit + NPY_HEADER_LIMIT, deadline)
            return reply, array_bytes
        except protocol.ProtocolTimeout:
            reader.end()
            raise ReadingFailed(f"the HDF5 library did not finish reading it within "
                                f"{self.timeout:g} s (the reading process was ended; "
                                f"${TIMEOUT_VARIABLE} or read_timeout sets the limit)") from None
        except protocol.ProtocolClosed:
            raise ReadingFailed(reader.exit_problem()) from None
        except ValueError as exc:  # a malformed reply: this process can no longer trust it
            reader.end()
            raise ReadingFailed(f"the HDF5 reading process sent a malformed reply ({exc})") \
                from None
        finally:
            self.left -= time.monotonic() - start


_lock = threading.Lock()
_reader: list = [None]


def start_reader() -> None:
    """Start the reading process now, if it does not run (a program about to load files
    can spare its first load the start, about a second)."""
    with _lock:
        _running_reader()


def _running_reader() -> ReaderProcess:
    reader = _reader[0]
    if reader is None or not reader.alive():
        if reader is not None:
            reader.end()
        _reader[0] = reader = ReaderProcess()
    return reader


@contextlib.contextmanager
def reading(data: bytes, timeout: float):
    """Yield ``(session, reply to open)`` for the file whose bytes are ``data``: the reply
    holds ``objects`` (its structure) or ``error`` and ``kind``. One file at a time."""
    with _lock:
        reader = _running_reader()
        session = Session(reader, timeout)
        memory = MEMORY_HEADROOM + MEMORY_PER_FILE_BYTE * len(data)
        reply, _ = session.call({"op": "open", "size": len(data), "cpu_seconds": timeout,
                                 "memory_bytes": memory}, data)
        yield session, reply


def _close_at_exit() -> None:
    if _reader[0] is not None:
        _reader[0].close()
        _reader[0] = None


def _forget_in_forked_child() -> None:
    """A forked process (a training worker) has its own reader when it needs one; it drops
    its copies of the parent's pipes, so the parent's reader still sees them close."""
    global _lock
    _lock = threading.Lock()
    if _reader[0] is not None:
        _reader[0].close_pipes()
        _reader[0] = None


atexit.register(_close_at_exit)
os.register_at_fork(after_in_child=_forget_in_forked_child)
