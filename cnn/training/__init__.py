"""The training loop, Keras-shaped: data adapters -> epoch iterator -> trainer -> strategy.

Importing this package registers the loop with ``cnn.models.seam``, so that ``Model.fit``,
``evaluate`` and ``predict`` reach it (``cnn/__init__.py`` imports it). See
docs/ARCHITECTURE.md.
"""

from cnn.models import seam
from cnn.training import trainer
from cnn.training.errors import NonFiniteLossError

seam.register_loop(trainer)
seam.register_export("NonFiniteLossError", NonFiniteLossError)

__all__ = ["NonFiniteLossError", "trainer"]
