"""Atomic file writing: a temporary file beside the target, renamed over it when complete.

A crash, a full disk or an exception while writing never leaves a half-written file where
the old one was: the old file stays until ``os.replace`` swaps in the complete new one.

A process killed while writing cannot remove its temporary file, so temporary files are
named after their target, their host and their writer's process id,
``.<target name>.<host>.<pid>.<random>.tmp``, and every write to a target first removes the
stale temporary files of that same target: those whose writer (on this host) is no longer
running, and any older than ``STALE_AFTER`` seconds. A kill leaves garbage behind at most
until the next write of the same target.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import time
import uuid
from pathlib import Path

STALE_AFTER = 24 * 3600.0
HOST_TAG = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"


def temporary_name(path: Path) -> Path:
    """A fresh temporary path beside ``path``, named so ``remove_stale_temporaries`` can tell
    whose it is."""
    return path.with_name(f".{path.name}.{HOST_TAG}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove the temporary files of ``path`` left by writers that died; return them.

    A temporary file of another process that is still running (on this host) is left alone,
    unless it is older than ``STALE_AFTER`` seconds.
    """
    pattern = re.compile(re.escape(f".{path.name}.") + r"(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)"
                         r"\.[0-9a-f]{8}\.tmp")
    removed = []
    try:
        candidates = list(path.parent.iterdir())
    except OSError:
        return removed
    for candidate in candidates:
        match = pattern.fullmatch(candidate.name)
        if match is None:
            continue
        try:
            age = time.time() - candidate.lstat().st_mtime
        except OSError:
            continue
        mine = match["host"] == HOST_TAG
        if (mine and not process_running(int(match["pid"]))) or age > STALE_AFTER:
            with contextlib.suppress(OSError):
                candidate.unlink()
                removed.append(candidate)
    return removed


def process_running(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (it may belong to another user)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:
        return False
    return True


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success it replaces ``path``.

    For writers that want a file name (h5py). Parent directories are created; stale
    temporary files of ``path`` are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    temporary = temporary_name(path)
    try:
        yield temporary
        _fsync(temporary)
        try:
            os.replace(temporary, path)
        except OSError as exc:  # name the file asked for (a directory in the way), not ours
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
    finally:
        temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb"):
    """Yield an open stream to a temporary file that replaces ``path`` when the block ends."""
    with atomic_path(path) as temporary:
        with open(temporary, mode) as stream:
            yield stream


def _fsync(path: Path) -> None:
    with open(path, "rb") as stream:
        os.fsync(stream.fileno())
