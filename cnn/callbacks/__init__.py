"""Callbacks: hooks into ``Model.fit`` (Keras's names and call order).

Subclass :class:`Callback` and override any of ``on_train_begin/end(logs)``,
``on_epoch_begin/end(epoch, logs)``, ``on_batch_begin/end(batch, logs)`` (also spelled
``on_train_batch_begin/end``). ``self.model`` is the model being trained and
``self.params`` holds ``epochs``, ``steps``, ``samples``, ``batch_size`` and ``verbose``.
Setting ``self.model.stop_training = True`` ends training after the current batch.

``logs`` passed to ``on_epoch_end`` hold the epoch's ``loss`` and metrics, ``val_*`` values
when validating and the ``learning_rate``; ``on_batch_end`` receives the running means over
the epoch so far.

Ready-made: ``EarlyStopping``, ``ReduceLROnPlateau``, ``LearningRateScheduler``,
``CSVLogger``, ``TerminateOnNaN`` (``cnn.callbacks.training``), ``ModelCheckpoint``
(``cnn.callbacks.checkpoint``: saves the model every epoch or whenever the monitored value
improves), ``ProgbarLogger``.
"""

from cnn.callbacks.base import Callback, CallbackList, History
from cnn.callbacks.checkpoint import ModelCheckpoint
from cnn.callbacks.progress import ProgbarLogger
from cnn.callbacks.training import (CSVLogger, EarlyStopping, LearningRateScheduler,
                                    ReduceLROnPlateau, TerminateOnNaN)

__all__ = [
    "Callback",
    "CallbackList",
    "History",
    "ProgbarLogger",
    "ModelCheckpoint",
    "EarlyStopping",
    "ReduceLROnPlateau",
    "LearningRateScheduler",
    "CSVLogger",
    "TerminateOnNaN",
]
