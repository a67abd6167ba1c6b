"""ProgbarLogger: the progress output of ``fit``.

``verbose=1``: an "Epoch i/n" line, then a bar that redraws itself in a terminal (steps done,
ETA, running loss and metrics) and ends as one line with the epoch's time and values; when
the output is not a terminal only that final line is written, with no carriage returns.
``verbose=2``: one line per epoch. ``verbose=0``: nothing (``fit`` then adds no logger).

The ``learning_rate`` the history records is shown only once it is not the constant it was
when training began (a schedule, ``ReduceLROnPlateau``, ...).
"""

from __future__ import annotations

import sys
import time

from cnn.callbacks.base import Callback
from cnn.utils.progbar import Progbar, format_duration, format_values


class ProgbarLogger(Callback):
    """Prints progress: a live bar per epoch (``verbose=1``) or one line per epoch (``2``).

    Args:
        verbose: 0 (nothing), 1 or 2, as ``fit``'s argument.
        stream: where to write (default ``sys.stdout``, looked up when the logger is made).
        interval: the least number of seconds between two redraws of a live bar.
    """

    chief_only = True

    def __init__(self, verbose: int = 1, stream=None, interval: float = 0.05):
        super().__init__()
        if verbose not in (0, 1, 2):
            raise ValueError(f"ProgbarLogger verbose must be 0, 1 (bar) or 2 (a line per epoch), "
                             f"got {verbose!r}")
        self.verbose = verbose
        self.stream = stream or sys.stdout
        self.interval = interval
        self._bar = None
        self._steps_done = 0
        self._epochs = 0
        self._epoch_start = 0.0
        self._first_learning_rate = None

    def on_train_begin(self, logs=None):
        self._epochs = self.params.get("epochs", 0)
        self._first_learning_rate = None

    def _shown(self, logs):
        """The logs to print: ``learning_rate`` only once it has changed."""
        rate = logs.get("learning_rate")
        if self._first_learning_rate is None:
            self._first_learning_rate = rate
        if rate is None or rate != self._first_learning_rate or self._varies():
            return logs
        return {key: value for key, value in logs.items() if key != "learning_rate"}

    def _varies(self) -> bool:
        optimizer = getattr(self.model, "optimizer", None)
        return optimizer is not None and callable(optimizer.learning_rate)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()
        self._steps_done = 0
        if self.verbose == 1:
            self.stream.write(f"Epoch {epoch + 1}/{self._epochs}\n")
            self.stream.flush()
            self._bar = Progbar(self.params.get("steps", 0), stream=self.stream, interval=self.interval)

    def on_batch_end(self, batch, logs=None):
        self._steps_done = batch + 1
        if self._bar is not None:
            self._bar.update(self._steps_done, logs, finalize=False)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.verbose == 0:
            return
        if self._bar is not None:
            self._bar.update(self._steps_done, self._shown(logs), finalize=True)
            self._bar = None
        else:
            elapsed = format_duration(time.perf_counter() - self._epoch_start)
            self.stream.write(f"Epoch {epoch + 1}/{self._epochs} - {elapsed}{format_values(self._shown(logs))}\n")
            self.stream.flush()
