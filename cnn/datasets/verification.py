"""Checking cached data set files against their pinned SHA-256 digests, once.

Hashing the 30 MB of a data set on every load would be wasted time, so the digest of each
file is remembered in ``verified.json`` beside it, with the file's size and modification
time: while those are unchanged the file is taken as verified; a file that was replaced,
truncated or touched is hashed again. The record is only a cache of the computation: a
missing or damaged record means hashing again, never trusting a file.
"""

from __future__ import annotations

import json
from pathlib import Path

from cnn.datasets.download import file_sha256
from cnn.utils.fileio import atomic_write

RECORD_NAME = "verified.json"


def file_digest(path: Path) -> str:
    """The SHA-256 of ``path``, from the record when the file is unchanged since it was
    hashed, otherwise computed and recorded."""
    path = Path(path)
    record_path = path.parent / RECORD_NAME
    record = read_record(record_path)
    stat = path.stat()
    entry = record.get(path.name)
    stamp = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if isinstance(entry, dict) and all(entry.get(k) == v for k, v in stamp.items()) \
            and isinstance(entry.get("sha256"), str):
        return entry["sha256"]
    digest = file_sha256(path)
    record[path.name] = {**stamp, "sha256": digest}
    try:
        with atomic_write(record_path, "w") as stream:
            json.dump(record, stream, indent=1, sort_keys=True)
    except OSError:
        pass  # a read-only directory: the file is simply hashed again next time
    return digest


def read_record(record_path: Path) -> dict:
    """The record of ``record_path``, or an empty one when it is missing or unreadable."""
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def damaged_files(directory: Path, sha256: dict) -> list[tuple[Path, str, str]]:
    """``(path, found digest, pinned digest)`` of every file in ``directory`` named in
    ``sha256`` whose digest is not the pinned one."""
    damaged = []
    for name, pinned in sha256.items():
        path = Path(directory) / name
        if path.is_file():
            found = file_digest(path)
            if found != pinned.lower():
                damaged.append((path, found, pinned.lower()))
    return damaged
