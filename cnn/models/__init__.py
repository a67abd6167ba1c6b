"""Models: ``from cnn.models import Model, Sequential, load_model`` as in the seed.

``Model`` and ``Sequential`` live here; ``load_model``, ``save_model``, ``ModelFileError``
(``cnn.saving``) and ``NonFiniteLossError`` (``cnn.training``) are offered here too, through
the names those packages register in ``cnn.models.seam`` (this package imports neither).
"""

from cnn.models import seam
from cnn.models.model import Gradients, Model, Sequential

__all__ = ["Model", "Sequential", "Gradients", "load_model", "save_model", "ModelFileError",
           "NonFiniteLossError"]


def __getattr__(name):
    return seam.exported(name)
