"""Callbacks: hooks into ``Model.fit`` (Keras's names and call order).

Subclass :class:`Callback` and override any of ``on_train_begin/end(logs)``,
``on_epoch_begin/end(epoch, logs)``, ``on_batch_begin/end(batch, logs)`` (also spelled
``on_train_batch_begin/end``). ``self.model`` is the model being trained and
``self.params`` holds ``epochs``, ``steps``, ``samples``, ``batch_size`` and ``verbose``.
Setting ``self.model.stop_training = True`` ends training after the current batch.

``logs`` passed to ``on_epoch_end`` hold the epoch's ``loss`` and metrics, and ``val_*``
values when validating; ``on_batch_end`` receives the running means over the epoch so far.
"""

from __future__ import annotations

import sys
import time

from cnn.utils.progbar import Progbar, format_duration, format_value


class Callback:
    """Base class; every hook does nothing."""

    def __init__(self):
        self.model = None
        self.params: dict = {}

    def set_model(self, model) -> None:
        self.model = model

    def set_params(self, params: dict) -> None:
        self.params = params

    def on_train_begin(self, logs=None): ...

    def on_train_end(self, logs=None): ...

    def on_epoch_begin(self, epoch, logs=None): ...

    def on_epoch_end(self, epoch, logs=None): ...

    def on_batch_begin(self, batch, logs=None):
        self.on_train_batch_begin(batch, logs)

    def on_batch_end(self, batch, logs=None):
        self.on_train_batch_end(batch, logs)

    def on_train_batch_begin(self, batch, logs=None): ...

    def on_train_batch_end(self, batch, logs=None): ...


class CallbackList:
    """Calls each hook on every callback, in order."""

    def __init__(self, callbacks, model, params: dict):
        self.callbacks = list(callbacks)
        for callback in self.callbacks:
            if not isinstance(callback, Callback):
                raise ValueError(f"callbacks must be cnn.callbacks.Callback instances, got {callback!r}")
            callback.set_model(model)
            callback.set_params(params)

    def __getattr__(self, hook):
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        def call(*args):
            for callback in self.callbacks:
                getattr(callback, hook)(*args)

        return call


class History(Callback, dict):
    """Per-epoch logs: a dict of lists (``history["loss"][epoch]``), as ``fit`` returns it.

    ``history.history`` is the history itself (Keras's spelling), ``history.epoch`` the list of
    epoch indices recorded.
    """

    def __init__(self):
        Callback.__init__(self)
        dict.__init__(self)
        self.epoch: list[int] = []

    @property
    def history(self):
        return self

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.setdefault(key, []).append(float(value))

    def __repr__(self):
        return f"History({dict.__repr__(self)})"

    __hash__ = object.__hash__
    __eq__ = dict.__eq__


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
