"""Saving and loading models: our HDF5 format (``h5_format``), the original implementation's
files (``seed_format``) and the safe reading of untrusted files (``model_file``)."""

from cnn.saving.h5_format import load_model, save_model
from cnn.saving.model_file import ModelFileError

__all__ = ["load_model", "save_model", "ModelFileError"]
