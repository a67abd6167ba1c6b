"""MNIST (LeCun, Cortes and Burges; CC BY-SA 3.0): 60,000 training and 10,000 test digits.

    (x_train, y_train), (x_test, y_test) = mnist.load_data()

Images (N, 1, 28, 28) float32 in [0, 1] (``dtype="uint8"`` for raw pixels), labels (N,) int64.
For a small offline sample bundled with the package see ``cnn.datasets.mnist_sample``.
"""

from __future__ import annotations

from cnn.datasets import idx_dataset

NAME = "mnist"
SYSTEM_DIRS = ("/usr/share/datasets/mnist",)
CLASS_NAMES = tuple(str(d) for d in range(10))


def load_data(path=None, dtype="float32"):
    """``(x_train, y_train), (x_test, y_test)`` from the first place that has the files."""
    return idx_dataset.load(NAME, path, dtype, SYSTEM_DIRS)
