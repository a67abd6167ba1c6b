"""The ``--dataset`` argument: a data set by name, a ``.mat`` file or a directory of IDX files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnn.datasets import fashion_mnist, idx_dataset, mnist, mnist_sample
from cnn.datasets.matfile import load_mat

NAMED = {
    "mnist-sample": lambda verbose: mnist_sample.load_data(),
    "mnist": lambda verbose: mnist.load_data(verbose=verbose),
    "fashion-mnist": lambda verbose: fashion_mnist.load_data(verbose=verbose),
}
CLASS_NAMES = {"mnist-sample": mnist_sample.CLASS_NAMES, "mnist": mnist.CLASS_NAMES,
               "fashion-mnist": fashion_mnist.CLASS_NAMES}
HELP = "mnist-sample (bundled), mnist, fashion-mnist, a .mat file in the seed's layout, or a directory of IDX files"


@dataclass
class Dataset:
    """A labelled data set: images (N, C, H, W), class ids (N,) int64, class names."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple

    @property
    def input_shape(self) -> tuple:
        return tuple(self.x_train.shape[1:])

    def limited(self, count: int | None) -> "Dataset":
        """At most ``count`` training and ``count`` test samples (the first ones)."""
        if count is None:
            return self
        return Dataset(self.name, self.x_train[:count], self.y_train[:count], self.x_test[:count],
                       self.y_test[:count], self.class_names)


def load_dataset(spec: str, verbose: int = 1) -> Dataset:
    """Resolve ``--dataset``: a name in ``NAMED``, a ``.mat`` file or a directory of IDX files.
    Class names are the data set's own, or "0", "1", ... for files and directories.

    Raises:
        FileNotFoundError: a path that does not exist.
        ValueError: an unknown name, a directory without the four IDX files, a malformed
            file, or labels outside the class names.
    """
    if spec in NAMED:
        (x_train, y_train), (x_test, y_test) = NAMED[spec](verbose)
        names = CLASS_NAMES[spec]
    else:
        path = Path(spec)
        if path.suffix.lower() == ".mat":
            (x_train, y_train), (x_test, y_test) = load_mat(path)
            names = tuple(str(i) for i in range(y_train.shape[1]))
            y_train, y_test = y_train.argmax(axis=1), y_test.argmax(axis=1)
        elif path.is_dir():
            (x_train, y_train), (x_test, y_test) = _read_idx_directory(path)
            names = tuple(str(i) for i in range(int(max(y_train.max(), y_test.max())) + 1))
        elif path.exists():
            raise ValueError(f"{path}: not a data set: expected {HELP}")
        elif path.suffix or "/" in spec:
            raise FileNotFoundError(f"{path}: No such file or directory")
        else:
            raise ValueError(f"unknown data set {spec!r}: expected {HELP}")
    dataset = Dataset(spec, x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64), tuple(names))
    _check_labels(dataset)
    return dataset


def _read_idx_directory(directory: Path):
    missing = [stem for stem in idx_dataset.FILES.values() if idx_dataset.find_file(directory, stem) is None]
    if missing:
        raise ValueError(f"{directory}: not a data set directory: missing "
                         f"{', '.join(stem + '[.gz]' for stem in missing)}")
    return idx_dataset.read_dataset(directory)


def _check_labels(dataset: Dataset) -> None:
    for split, labels in (("training", dataset.y_train), ("test", dataset.y_test)):
        if labels.size and (labels.min() < 0 or labels.max() >= len(dataset.class_names)):
            raise ValueError(f"{dataset.name}: {split} labels run from {labels.min()} to {labels.max()}, "
                             f"but there are {len(dataset.class_names)} class names")
