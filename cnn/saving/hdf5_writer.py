"""Writing HDF5 files: h5py, imported on the first write.

This process only ever writes HDF5 (files are read by a separate reading process, see
``cnn.saving.reader_process``), and h5py with the HDF5 library it loads is slow to import,
so ``import cnn`` goes without it until a model or weights are saved.
"""

from __future__ import annotations

import numpy as np


def h5py_module():
    """The ``h5py`` module."""
    import h5py  # lazy on purpose, see the module docstring

    return h5py


def create_file(path):
    """A new HDF5 file at ``path`` (truncating one there), open for writing: ``h5py.File``."""
    return h5py_module().File(path, "w")


def strings_dtype() -> np.dtype:
    """The dtype of variable-length UTF-8 strings in HDF5 (``h5py.string_dtype()``)."""
    return h5py_module().string_dtype()


def string_array(values) -> np.ndarray:
    """(n,) ``values`` as an array of HDF5 strings (for attributes such as layer names)."""
    return np.array(values, dtype=strings_dtype())
