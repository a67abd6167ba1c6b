"""Utilities: ``cnn.utils.pad_sequences``, ``cnn.utils.to_categorical`` and the modules of
this package."""

from cnn.utils.categorical import to_categorical
from cnn.utils.sequences import pad_sequences

__all__ = ["pad_sequences", "to_categorical"]
