"""Utilities: ``cnn.utils.pad_sequences`` and the modules of this package."""

from cnn.utils.sequences import pad_sequences
