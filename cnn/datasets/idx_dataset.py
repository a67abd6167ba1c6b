"""MNIST-style data sets stored as the four standard IDX files: found here, or downloaded.

A data set is looked for, in order, in: the ``path`` argument, ``$CNN_DATA/<name>``,
``$CNN_DATA``, the cache ``~/.cache/cnn/<name>`` (``$XDG_CACHE_HOME/cnn/<name>`` when that is
set), and the system's copy (Debian's ``dataset-fashion-mnist`` installs
``/usr/share/datasets/fashion-mnist``). Each of the four files may be gzipped (``.gz``) or
not. When no directory holds all four, the missing ones are downloaded into the cache from
the data set's mirrors and checked against pinned SHA-256 digests (``cnn.datasets.download``).

Files in the cache that have a pinned digest (the downloaded ``.gz`` files) are checked
against it before use (once: the result is remembered, see ``cnn.datasets.verification``); a
damaged one is downloaded afresh, or, with ``download=False``, named in the error with the
command that fixes it. (Files elsewhere are
the user's or the system's: they are read as they are, their headers checked.)
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnn.datasets.download import DownloadError
from cnn.datasets.download import download as download_file
from cnn.datasets.idx import read_idx
from cnn.datasets.pixels import checked_dtype, to_images
from cnn.datasets.verification import damaged_files

FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class IdxDataset:
    """A data set of the four IDX files: its name, where to download it, where systems keep it.

    ``sha256`` maps each downloadable file name (``"train-images-idx3-ubyte.gz"``, ...) to
    its pinned digest; ``mirrors`` are base URLs tried in order.
    """

    name: str
    sha256: dict = field(default_factory=dict)
    mirrors: tuple = ()
    system_dirs: tuple = ()

    def load_data(self, path=None, dtype="float32", *, download=True, base_url=None, verbose=1,
                  **download_options):
        """Find the data set here, or download it into the cache, and read it.

        Args:
            path: a directory to look in first.
            dtype: ``"float32"`` (default) or another float type for images in [0, 1];
                ``"uint8"`` for raw pixels 0..255.
            download: download what is missing when no directory holds all four files.
            base_url: a base URL (or a list of them) to download from instead of ``mirrors``.
            verbose: 1 writes download messages and progress to stderr; 0 is silent.
            download_options: ``retries``, ``backoff``, ``timeout`` (see ``download.download``).
        Returns:
            ``(x_train, y_train), (x_test, y_test)``: images (N, 1, H, W), labels (N,) int64.
        Raises:
            FileNotFoundError: not found and ``download`` is false; says where it looked.
            cnn.datasets.download.DownloadError: a download failed (an OSError).
            ValueError: a bad ``dtype``, or a malformed file (the message names it).
        """
        checked_dtype(dtype, self.name)
        directory = find_dataset(self.name, path, self.system_dirs)
        target = cache_dir() / self.name
        progress = sys.stderr if verbose else None

        def fetch_missing():
            try:
                return fetch(self, target, base_url, progress, **download_options)
            except DownloadError as exc:
                raise DownloadError(f"{exc}. Without a network, copy the four files "
                                    f"({', '.join(FILES.values())}, optionally .gz) into {target}, "
                                    f"or into a directory named by $CNN_DATA") from None

        if directory is None:
            if not download:
                searched = ", ".join(str(d) for d in candidate_dirs(self.name, path, self.system_dirs))
                raise FileNotFoundError(
                    f"{self.name}: the IDX files ({', '.join(FILES.values())}, optionally .gz) "
                    f"were not found in any of: {searched} (and download=False)"
                )
            directory = fetch_missing()
        if directory == target:
            self.verify_cache(target, download, fetch_missing, progress)
        return read_dataset(directory, dtype)

    def verify_cache(self, directory: Path, download: bool, fetch_missing, progress) -> None:
        """Check the cached files against the pinned digests; replace damaged ones with a
        fresh download (``fetch_missing()``), or raise a ValueError naming them and the fix."""
        for attempt in (1, 2):
            damaged = damaged_files(directory, self.sha256)
            if not damaged:
                return
            path, found, pinned = damaged[0]
            if not download or attempt == 2:
                others = f" (and {len(damaged) - 1} more)" if len(damaged) > 1 else ""
                raise ValueError(
                    f"{path}: damaged cached file{others}: its SHA-256 is {found}, the pinned one "
                    f"is {pinned}; remove it (rm '{path}') and load {self.name} again to "
                    "download a fresh copy"
                )
            for path, found, _ in damaged:
                if progress is not None:
                    progress.write(f"{path}: damaged (SHA-256 {found[:12]}...), downloading it "
                                   "again\n")
                path.unlink()
            fetch_missing()


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/cnn``, by default ``~/.cache/cnn``."""
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


def read_dataset(directory, dtype="float32"):
    """Read the four files in ``directory`` as ``(x_train, y_train), (x_test, y_test)``:
    images (N, 1, H, W) scaled to [0, 1] (raw with ``uint8``), labels (N,) int64."""
    directory = Path(directory)
    arrays = {key: read_idx(find_file(directory, stem)) for key, stem in FILES.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(
                f"{directory}: {split} images {images.shape} and labels {labels.shape} do not match"
            )
    dtype = checked_dtype(dtype, str(directory))
    return tuple((to_images(arrays[f"x_{s}"], dtype), arrays[f"y_{s}"].astype(np.int64))
                 for s in ("train", "test"))


def fetch(dataset: IdxDataset, directory, base_url=None, progress=None, **download_options) -> Path:
    """Download into ``directory`` those of the four files that it lacks; return it."""
    directory = Path(directory)
    mirrors = dataset.mirrors if base_url is None else base_url
    for stem in FILES.values():
        if find_file(directory, stem) is None:
            file_name = f"{stem}.gz"
            if file_name not in dataset.sha256:
                raise ValueError(f"{dataset.name}: no pinned SHA-256 for {file_name}; cannot download it")
            download_file(file_name, mirrors, directory / file_name, dataset.sha256[file_name],
                          progress=progress, **download_options)
    return directory
