"""The seed's MATLAB layout for MNIST (``data/MNISTData.mat``).

The file holds four matrices, samples on the last axis as MATLAB stores them:

    X_Train (H, W, N) images        D_Train (C, N) one-hot labels
    X_Test  (H, W, M)               D_Test  (C, M)

``load_mat`` turns them into the arrays the seed's example builds by hand:
images (N, 1, H, W) (``X.transpose(2, 0, 1)`` plus a channel axis) and one-hot labels
(N, C) int32 (``D.T``).
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from cnn.utils.fileio import atomic_write

_SPLITS = (("X_Train", "D_Train"), ("X_Test", "D_Test"))


def load_mat(path, dtype="float32"):
    """Read the seed's ``.mat`` file as ``(x_train, y_train), (x_test, y_test)``.

    Args:
        path: the ``.mat`` file (MATLAB v4 to v7.2, which ``scipy.io.loadmat`` reads).
        dtype: dtype of the images; their values are kept as stored (not rescaled).
    Returns:
        x_train: (N, 1, H, W) ``dtype``;  y_train: (N, C) int32 one-hot.
        x_test:  (M, 1, H, W) ``dtype``;  y_test:  (M, C) int32 one-hot.
    Raises:
        ValueError: naming the file, when it is not a readable .mat file, a key is missing,
            or a matrix has the wrong number of dimensions or a sample count that does not
            match its partner.
    """
    path = Path(path)
    scipy_io = scipy_io_module()
    with open(path, "rb") as stream:
        try:
            contents = scipy_io.loadmat(stream)
        except NotImplementedError as exc:  # MATLAB v7.3 files are HDF5
            raise ValueError(f"{path}: cannot read this .mat version ({exc}); "
                             f"save it with -v7 or read it with h5py") from None
        except (ValueError, TypeError, OSError, EOFError, scipy_io.matlab.MatReadError,
                zlib.error) as exc:
            raise ValueError(f"{path}: not a readable .mat file ({exc})") from None

    expected = [key for pair in _SPLITS for key in pair]
    missing = [key for key in expected if key not in contents]
    if missing:
        present = sorted(key for key in contents if not key.startswith("__"))
        raise ValueError(f"{path}: missing key(s) {', '.join(missing)}; "
                         f"the file has {', '.join(present) or 'no variables'}")
    return tuple(_split_from_mat(path, contents, x_key, d_key, dtype) for x_key, d_key in _SPLITS)


def scipy_io_module():
    """``scipy.io``, imported on first use: it brings scipy.sparse and numpy.f2py (more import
    time than the rest of cnn.datasets), which only ``.mat`` files need, so ``cnn train`` on
    other data goes without."""
    import scipy.io  # lazy on purpose, see above

    return scipy.io


def _split_from_mat(path, contents, x_key, d_key, dtype):
    images, one_hot = contents[x_key], contents[d_key]
    if images.ndim == 2:  # MATLAB drops the trailing singleton axis of a single image
        images = images[:, :, np.newaxis]
    if images.ndim != 3:
        raise ValueError(f"{path}: {x_key} must be (height, width, samples), got shape {images.shape}")
    if one_hot.ndim != 2:
        raise ValueError(f"{path}: {d_key} must be (classes, samples), got shape {one_hot.shape}")
    if one_hot.shape[1] != images.shape[2]:
        raise ValueError(f"{path}: {x_key} has {images.shape[2]} samples (shape {images.shape}) "
                         f"but {d_key} has {one_hot.shape[1]} (shape {one_hot.shape})")
    x = np.ascontiguousarray(images.transpose(2, 0, 1)[:, np.newaxis], dtype=dtype)
    y = np.ascontiguousarray(one_hot.T, dtype=np.int32)
    return x, y


def save_mat(path, x_train, y_train, x_test, y_test, num_classes: int = 10) -> None:
    """Write the seed's layout, the inverse of ``load_mat``.

    Args:
        path: the target ``.mat`` file; written atomically (temporary file, then renamed).
        x_train, x_test: images (N, 1, H, W) or (N, H, W); their dtype is kept.
        y_train, y_test: one-hot (N, C), or class ids (N,) turned into one-hot with
            ``num_classes`` columns. Stored as uint8.
    """
    path = Path(path)
    matrices = {}
    for (x_key, d_key), x, y in zip(_SPLITS, (x_train, x_test), (y_train, y_test)):
        x = np.asarray(x)
        if x.ndim == 4 and x.shape[1] == 1:
            x = x[:, 0]
        if x.ndim != 3:
            raise ValueError(f"{path}: images for {x_key} must be (N, 1, H, W) or (N, H, W), "
                             f"got shape {x.shape}")
        one_hot = _as_one_hot(path, d_key, np.asarray(y), num_classes)
        if len(one_hot) != len(x):
            raise ValueError(f"{path}: {len(x)} images but {len(one_hot)} labels for {x_key}/{d_key}")
        matrices[x_key] = x.transpose(1, 2, 0)
        matrices[d_key] = one_hot.T.astype(np.uint8)

    with atomic_write(path) as stream:
        scipy_io_module().savemat(stream, matrices, do_compression=True)


def _as_one_hot(path, key, labels, num_classes):
    if labels.ndim == 2:
        return labels
    if labels.ndim == 1 and labels.dtype.kind in "iu":
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"{path}: class ids for {key} must lie in 0..{num_classes - 1}")
        return np.eye(num_classes, dtype=np.uint8)[labels]
    raise ValueError(f"{path}: labels for {key} must be one-hot (N, C) or integer class ids (N,), "
                     f"got {labels.dtype} of shape {labels.shape}")
