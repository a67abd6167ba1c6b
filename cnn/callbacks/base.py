"""The callback machinery: the ``Callback`` base class, ``CallbackList`` and ``History``.

See ``cnn.callbacks`` for the hooks and what ``logs`` hold.
"""

from __future__ import annotations


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
