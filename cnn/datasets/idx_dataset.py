"""MNIST-style data sets stored as the four standard IDX files, found on this machine.

A data set is looked for, in order, in: the ``path`` argument, ``$CNN_DATA/<name>``,
``$CNN_DATA``, the cache ``~/.cache/cnn/<name>``, and the system's copy (Debian's
``dataset-fashion-mnist`` installs ``/usr/share/datasets/fashion-mnist``). Each of the four
files may be gzipped (``.gz``) or not.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cnn.datasets.idx import read_idx

FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cnn"


def candidate_dirs(name: str, path=None, system_dirs=()) -> list[Path]:
    """Directories searched for data set ``name``, in order."""
    dirs = []
    if path is not None:
        dirs.append(Path(path))
    if os.environ.get("CNN_DATA"):
        root = Path(os.environ["CNN_DATA"])
        dirs += [root / name, root]
    dirs.append(cache_dir() / name)
    dirs += [Path(d) for d in system_dirs]
    return dirs


def find_file(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def find_dataset(name: str, path=None, system_dirs=()) -> Path | None:
    """The first candidate directory holding all four files, or None."""
    for directory in candidate_dirs(name, path, system_dirs):
        if all(find_file(directory, stem) for stem in FILES.values()):
            return directory
    return None


def read_dataset(directory: Path, dtype="float32"):
    """Read the four files: images (N, 1, 28, 28) scaled to [0, 1] (raw with ``uint8``),
    labels (N,) int64."""
    arrays = {key: read_idx(find_file(directory, stem)) for key, stem in FILES.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(
                f"{directory}: {split} images {images.shape} and labels {labels.shape} do not match"
            )
    return tuple((_images(arrays[f"x_{s}"], dtype), arrays[f"y_{s}"].astype(np.int64))
                 for s in ("train", "test"))


def _images(raw: np.ndarray, dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    images = raw[:, np.newaxis, :, :]
    if dtype == np.uint8:
        return np.ascontiguousarray(images)
    if dtype.kind != "f":
        raise ValueError(f"dtype must be 'uint8' or a float type, got {dtype}")
    return images.astype(dtype) / dtype.type(255)


def load(name: str, path=None, dtype="float32", system_dirs=()):
    """Find and read data set ``name``; a clear FileNotFoundError says where it looked."""
    directory = find_dataset(name, path, system_dirs)
    if directory is None:
        searched = ", ".join(str(d) for d in candidate_dirs(name, path, system_dirs))
        raise FileNotFoundError(
            f"{name}: the IDX files ({', '.join(FILES.values())}, optionally .gz) were not "
            f"found in any of: {searched}"
        )
    return read_dataset(directory, dtype)
