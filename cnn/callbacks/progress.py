"""ProgbarLogger: the progress output of ``fit`` (``verbose=1`` bar, ``verbose=2`` lines)."""

from __future__ import annotations

import sys
import time

from cnn.callbacks.base import Callback
from cnn.utils.progbar import Progbar, format_duration, format_value


class ProgbarLogger(Callback):
    """Prints progress: a live bar per epoch (``verbose=1``) or one line per epoch (``2``)."""

    def __init__(self, verbose: int = 1, stream=None):
        super().__init__()
        self.verbose = verbose
        self.stream = stream or sys.stdout
        self._bar = None
        self._epochs = 0
        self._epoch_start = 0.0

    def on_train_begin(self, logs=None):
        self._epochs = self.params.get("epochs", 0)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()
        if self.verbose == 1:
            self.stream.write(f"Epoch {epoch + 1}/{self._epochs}\n")
            self.stream.flush()
            self._bar = Progbar(self.params.get("steps", 0), stream=self.stream)

    def on_batch_end(self, batch, logs=None):
        if self._bar is not None:
            self._bar.update(batch + 1, logs, finalize=False)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self._bar is not None:
            self._bar.update(self.params.get("steps", 0), logs, finalize=True)
            self._bar = None
        else:
            elapsed = format_duration(time.perf_counter() - self._epoch_start)
            values = "".join(f" - {key}: {format_value(value)}" for key, value in logs.items())
            self.stream.write(f"Epoch {epoch + 1}/{self._epochs} - {elapsed}{values}\n")
            self.stream.flush()
