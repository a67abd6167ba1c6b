"""Fashion-MNIST (Zalando, MIT licence): 60,000 training and 10,000 test images, 10 classes.

    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()

Images (N, 1, 28, 28) float32 in [0, 1] (``dtype="uint8"`` for raw pixels), labels (N,) int64.
On Debian: ``apt-get install dataset-fashion-mnist``.
"""

from __future__ import annotations

from cnn.datasets import idx_dataset

NAME = "fashion-mnist"
SYSTEM_DIRS = ("/usr/share/datasets/fashion-mnist",)
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot")


def load_data(path=None, dtype="float32"):
    """``(x_train, y_train), (x_test, y_test)`` from the first place that has the files."""
    return idx_dataset.load(NAME, path, dtype, SYSTEM_DIRS)
