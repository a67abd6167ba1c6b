"""Models: ``from cnn.models import Model, load_model`` as in the seed."""

from cnn.models.model import Model, NonFiniteLossError, Sequential
from cnn.saving import ModelFileError, load_model, save_model

__all__ = ["Model", "Sequential", "load_model", "save_model", "ModelFileError", "NonFiniteLossError"]
