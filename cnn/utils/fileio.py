"""Atomic file writing: a temporary file beside the target, renamed over it when complete.

A crash, a full disk or an exception while writing never leaves a half-written file where
the old one was: the old file stays until ``os.replace`` swaps in the complete new one.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success it replaces ``path``.

    For writers that want a file name (h5py). Parent directories are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield temporary
        _fsync(temporary)
        os.replace(temporary, path)
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
