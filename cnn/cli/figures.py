"""``cnn train``'s figures, drawn in a process of their own while the command trains and scores.

Importing matplotlib and drawing the first figure (fonts, the Agg renderer, the PNG writer)
cost about a second, and the four figures as much again. ``FigureProcess`` forks a process
when the command starts; it imports ``cnn.utils.visualization`` and draws a throw-away figure
while the network trains, then draws each figure it is sent while the command goes on (the
curves while the test images are scored, the test figures while the model is saved).
``FigureProcesses`` runs two of them on two cores, so that the last two figures are drawn
at the same time.
``wait()`` returns once every figure is written, and raises the error of a figure that could
not be: the same ``OSError`` or ``ValueError`` the drawing raised (the command then prints one
line, as for its own errors), or ``FigureError`` when the process failed otherwise or died.
The process prints nothing, so the command's output keeps its order; each file is written
under a temporary name and renamed when complete, so no half-written PNG is left behind.

``InlineFigures`` draws the same figures in this process, when it is called: for platforms
without ``fork`` and for MPI ranks (an MPI library need not survive a fork).
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import pickle
import queue
import signal
import threading
import traceback
from multiprocessing.connection import wait as wait_for
from pathlib import Path

from cnn import distributed
from cnn.training.defaults import usable_cores
from cnn.utils.fileio import remove_stale_temporaries

# The figures a FigureProcess may be asked to draw: functions of cnn.utils.visualization.
DRAWINGS = ("history_show", "confusion_show", "misclassified_show")
VISUALIZATION = "cnn.utils.visualization"
# How much lower the figure process's priority is than the command's: it yields to training.
NICENESS = 5
# Processes drawing at once: cnn train's last two figures take about as long as each other.
MAX_PROCESSES = 2


class FigureError(RuntimeError):
    """A figure could not be drawn for a reason other than a bad file or bad values."""


def start_figures():
    """``FigureProcesses`` (one per usable core, at most ``MAX_PROCESSES``) where processes
    can fork and this is no MPI rank, else ``InlineFigures``; each is a context manager,
    ended on leaving the ``with`` block."""
    if "fork" in multiprocessing.get_all_start_methods() and not distributed.launched_by_mpi():
        return FigureProcesses(min(MAX_PROCESSES, usable_cores()))
    return InlineFigures()


class InlineFigures:
    """Draws each figure in this process, when ``draw`` is called."""

    def draw(self, drawing: str, files, *args, **kwargs) -> None:
        """Call ``cnn.utils.visualization.<drawing>(*args, **kwargs)``, which writes ``files``."""
        check_drawing(drawing)
        visualization_function(drawing)(*args, **kwargs)

    def wait(self) -> None:
        """Every figure is drawn already."""

    def close(self) -> None:
        """Nothing to end."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class FigureProcess(InlineFigures):
    """Draws figures in a forked process; ``draw`` sends one there and returns at once."""

    def __init__(self):
        context = multiprocessing.get_context("fork")
        jobs, self.jobs = context.Pipe(duplex=False)  # (reading end, writing end)
        self.replies, replies = context.Pipe(duplex=False)
        self.process = context.Process(target=serve, args=(jobs, replies, self.jobs, self.replies),
                                       name="cnn-figures", daemon=True)
        self.process.start()
        jobs.close()
        replies.close()  # the replies then end (EOFError) when the process does
        self.pending: list[tuple[str, list[Path]]] = []  # sent, not yet reported drawn

    def draw(self, drawing: str, files, *args, **kwargs) -> None:
        """Send ``cnn.utils.visualization.<drawing>(*args, **kwargs)``, which writes the paths
        ``files``, to the process; ``wait`` says whether it succeeded."""
        check_drawing(drawing)
        self.pending.append((drawing, [Path(file) for file in files]))
        try:
            self.jobs.send((drawing, args, kwargs))
        except OSError:  # the process has died: wait() says so
            pass

    def wait(self) -> None:
        """Return once every figure sent is written; raise the first one's failure.

        Raises:
            OSError, ValueError: as the drawing raised them (a file that cannot be written,
                values that cannot be drawn).
            FigureError: the drawing failed otherwise, or the process died.
        """
        failure = self.collect(block=True)
        if failure is not None:
            self.close()
            raise failure

    def collect(self, block: bool):
        """Take the replies for the figures sent (all of them when ``block``, else those that
        have come); return the first failure among them, or None."""
        while self.pending and (block or self.replies.poll()):
            drawing, files = self.pending.pop(0)
            failure = self.receive(drawing, files)
            if failure is not None:
                return failure
        return None

    def receive(self, drawing: str, files: list[Path]):
        """The exception the process reports for ``drawing`` (which wrote ``files``), or None
        when it was drawn; waits for the reply."""
        wait_for([self.replies, self.process.sentinel])
        try:
            status, payload = self.replies.recv()
        except (EOFError, OSError):
            self.process.join()
            for file in files:  # the temporary file of a write cut short
                remove_stale_temporaries(file)
            names = ", ".join(file.name for file in files)
            return FigureError(f"the figure process died (exit code {self.process.exitcode}) "
                               f"while drawing {names}")
        if status == "done":
            return None
        return payload

    def close(self) -> None:
        """End the process (whatever it is doing: a figure sent and not waited for is not
        wanted any more, and its temporary file is removed) and reap it."""
        if self.process.is_alive():
            self.process.terminate()
        self.process.join()
        self.jobs.close()
        self.replies.close()
        for _, files in self.pending:
            for file in files:
                remove_stale_temporaries(file)
        self.pending = []


class FigureProcesses(InlineFigures):
    """Several ``FigureProcess``: each figure goes to the one with the fewest figures pending
    (the confusion matrix and the misclassified digits are then drawn at the same time)."""

    def __init__(self, count: int):
        self.processes = [FigureProcess() for _ in range(count)]
        self.failure = None  # the first failure reported before wait()

    def draw(self, drawing: str, files, *args, **kwargs) -> None:
        check_drawing(drawing)
        for process in self.processes:
            self.failure = self.failure or process.collect(block=False)
        idlest = min(self.processes, key=lambda process: len(process.pending))
        idlest.draw(drawing, files, *args, **kwargs)

    def wait(self) -> None:
        """As ``FigureProcess.wait``, for every process."""
        failures = [self.failure] + [process.collect(block=True) for process in self.processes]
        failure = next((failure for failure in failures if failure is not None), None)
        if failure is not None:
            self.close()
            raise failure

    def close(self) -> None:
        for process in self.processes:
            process.close()


def check_drawing(drawing: str) -> None:
    """Refuse a name that is not one of ``DRAWINGS``."""
    if drawing not in DRAWINGS:
        raise ValueError(f"unknown figure {drawing!r}; expected one of {', '.join(DRAWINGS)}")


def visualization_function(drawing: str):
    """``cnn.utils.visualization.<drawing>``, imported on first use (it imports matplotlib)."""
    return getattr(importlib.import_module(VISUALIZATION), drawing)


def serve(jobs, replies, parents_jobs, parents_replies) -> None:
    """The figure process: import matplotlib, warm it up, then draw what arrives on ``jobs``
    until the pipe ends, with one reply on ``replies`` per figure. A thread receives the jobs
    as they come, so that the command never waits on a full pipe while a figure is drawn.
    ``parents_jobs`` and ``parents_replies``, the command's ends, are closed here."""
    parents_jobs.close()  # so that a command that dies ends ``jobs`` (EOFError)
    parents_replies.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the command's to handle
    os.nice(NICENESS)
    received = queue.SimpleQueue()
    threading.Thread(target=receive, args=(jobs, received), daemon=True).start()
    try:
        visualization_function("warm_up")()
    except Exception:  # noqa: BLE001 - a real figure will report the problem
        pass
    while (job := received.get()) is not None:
        drawing, args, kwargs = job
        try:
            visualization_function(drawing)(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the command
            replies.send(("error", reportable(exc, drawing)))
        else:
            replies.send(("done", None))


def receive(jobs, received) -> None:
    """Put every job read from ``jobs`` on the queue ``received``; None when the pipe ends."""
    while True:
        try:
            job = jobs.recv()
        except (EOFError, OSError):
            job = None
        received.put(job)
        if job is None:
            return


def reportable(exc: BaseException, drawing: str) -> BaseException:
    """``exc`` as the command should raise it: an OSError or ValueError as it is (with the
    figure process's traceback as a note), anything else as a FigureError."""
    where = "".join(traceback.format_exception(exc)).rstrip()
    if isinstance(exc, (OSError, ValueError)):
        exc.add_note(f"in the figure process ({drawing}):\n{where}")
        try:
            pickle.loads(pickle.dumps(exc))
            return exc
        except Exception:  # noqa: BLE001 - an exception that does not survive pickling
            pass
    message = str(exc) or type(exc).__name__
    error = FigureError(f"{drawing} failed in the figure process: {type(exc).__name__}: {message}")
    error.add_note(where)
    return error
