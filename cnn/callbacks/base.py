"""The callback machinery: the ``Callback`` base class, ``CallbackList`` and ``History``.

See ``cnn.callbacks`` for the hooks and what ``logs`` hold.
"""

from __future__ import annotations


class Callback:
    """Base class; every hook does nothing.

    A callback whose decisions depend on earlier epochs (EarlyStopping's best value) returns
    them from ``get_state()`` (JSON-able), so that a model saved during ``fit`` resumes with
    them (``set_state``). ``runs_last = True`` puts a callback after the others (a
    checkpoint then saves the others' state of the same epoch).
    """

    runs_last = False

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

    def get_state(self) -> dict | None:
        """What a resumed fit needs to continue as if uninterrupted; None: nothing."""
        return None

    def set_state(self, state: dict) -> None:
        """Restore ``get_state()``'s value (called after ``on_train_begin``)."""


class CallbackList:
    """Calls each hook on every callback, in order."""

    def __init__(self, callbacks, model, params: dict):
        callbacks = list(callbacks)
        self.callbacks = ([c for c in callbacks if not getattr(c, "runs_last", False)]
                          + [c for c in callbacks if getattr(c, "runs_last", False)])
        for callback in self.callbacks:
            if not isinstance(callback, Callback):
                raise ValueError(f"callbacks must be cnn.callbacks.Callback instances, got {callback!r}")
            callback.set_model(model)
            callback.set_params(params)

    def _keys(self) -> list:
        """``"EarlyStopping:0"``: the class name and its rank among callbacks of that class."""
        counts: dict[str, int] = {}
        keys = []
        for callback in self.callbacks:
            kind = type(callback).__name__
            keys.append(f"{kind}:{counts.get(kind, 0)}")
            counts[kind] = counts.get(kind, 0) + 1
        return keys

    def get_states(self) -> dict:
        """``{key: state}`` of the callbacks that have state (see ``Callback.get_state``)."""
        states = {}
        for key, callback in zip(self._keys(), self.callbacks):
            state = callback.get_state()
            if state is not None:
                states[key] = state
        return states

    def set_states(self, states: dict) -> None:
        """Give each callback the state saved for the callback of its class and rank."""
        for key, callback in zip(self._keys(), self.callbacks):
            if key in states:
                callback.set_state(states[key])

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
