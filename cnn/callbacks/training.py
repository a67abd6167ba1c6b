"""Callbacks that steer training: EarlyStopping, ReduceLROnPlateau, LearningRateScheduler,
CSVLogger and TerminateOnNaN, with Keras's names, arguments and semantics.

A monitored quantity (``monitor="val_loss"`` etc.) is read from the logs ``fit`` passes to
``on_epoch_end``; a name that is not there raises ``ValueError`` listing the names that are
(Keras only warns). ``mode="auto"`` maximises names containing "acc" or "auc" and minimises
losses and errors (``loss``, ``mae``, ``mse``, ...); for any other name give ``mode``.
"""

from __future__ import annotations

import csv
import inspect
import math
from pathlib import Path

from cnn.callbacks.base import Callback
from cnn.utils import checks

_MODES = ("auto", "min", "max")
_LOWER_IS_BETTER = ("mae", "mse", "seed_mae")


class _Monitor:
    """Which log value to watch, in which direction, and what counts as an improvement."""

    def __init__(self, owner: str, monitor: str, mode: str, min_delta):
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"{owner}: monitor must be a log name such as 'val_loss', got {monitor!r}")
        if mode not in _MODES:
            raise ValueError(f"{owner}: mode must be one of {', '.join(_MODES)}, got {mode!r}")
        self.owner = owner
        self.name = monitor
        self.higher_is_better = _higher_is_better(owner, monitor) if mode == "auto" else mode == "max"
        self.min_delta = abs(checks.number("min_delta", min_delta))

    def worst(self) -> float:
        return -math.inf if self.higher_is_better else math.inf

    def improved(self, current: float, reference: float) -> bool:
        """``current`` beats ``reference`` by more than ``min_delta`` (False for NaN)."""
        if self.higher_is_better:
            return current - self.min_delta > reference
        return current + self.min_delta < reference

    def value(self, logs) -> float:
        logs = logs or {}
        if self.name not in logs:
            hint = ""
            if self.name.startswith("val_"):
                hint = " (validation values need validation_split or validation_data in fit)"
            raise ValueError(
                f"{self.owner} monitors {self.name!r}, which is not in the logs{hint}; "
                f"available: {', '.join(sorted(logs)) or 'none'}"
            )
        return float(logs[self.name])


def _higher_is_better(owner: str, monitor: str) -> bool:
    base = monitor[4:] if monitor.startswith("val_") else monitor
    if "acc" in base.lower() or "auc" in base.lower():
        return True
    if base.lower() in _LOWER_IS_BETTER or base.lower().endswith(("loss", "error")):
        return False
    raise ValueError(
        f"{owner}: cannot tell whether {monitor!r} should rise or fall; pass mode='min' or 'max'"
    )


def restore_state(owner, state, fields: dict) -> dict:
    """``state`` checked to hold a number of the right kind for each of ``fields``
    (``{name: int or float}``); a ValueError names ``owner`` and the field otherwise."""
    if not isinstance(state, dict):
        raise ValueError(f"{owner}: a saved state should be a dict, got {state!r:.80}")
    values = {}
    for name, kind in fields.items():
        value = state.get(name)
        valid = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not valid or (kind is int and not isinstance(value, int)):
            raise ValueError(f"{owner}: saved state {name!r} should be a {kind.__name__}, "
                             f"got {value!r:.80}")
        values[name] = kind(value)
    return values


def _float_learning_rate(model, owner: str) -> float:
    """The optimizer's learning rate, refusing a schedule (two owners would fight over it)."""
    if model is None or model.optimizer is None:
        raise ValueError(f"{owner} needs a compiled model")
    lr = model.optimizer.learning_rate
    if callable(lr):
        raise ValueError(
            f"{owner} sets the optimizer's learning rate, but it is the schedule {lr!r}; "
            "use a float learning rate with this callback, or the schedule alone"
        )
    return float(lr)


class EarlyStopping(Callback):
    """Stop training when ``monitor`` has not improved for ``patience`` epochs.

    Args:
        monitor: the log to watch (default ``"val_loss"``).
        min_delta: an improvement must beat the best value by more than this.
        patience: epochs without improvement after which training stops.
        verbose: 1 prints when it stops and when it restores weights.
        mode: "auto", "min" or "max" (see the module docstring).
        baseline: training stops after ``patience`` epochs unless the value beats this.
        restore_best_weights: at the end of training, set the weights (and buffers, such as
            moving statistics) of the best epoch (Keras 3: also when training was not cut short).
        start_from_epoch: epochs to wait before watching (warm-up).
    After training, ``stopped_epoch`` is the (0-based) epoch at which training stopped (0 if
    it did not) and ``best_epoch`` the epoch with the best value.
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        self._monitor = _Monitor("EarlyStopping", monitor, mode, min_delta)
        self.monitor = monitor
        self.patience = checks.count("patience", patience)
        self.verbose = verbose
        self.baseline = None if baseline is None else checks.number("baseline", baseline)
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = checks.count("start_from_epoch", start_from_epoch)
        self._reset()

    def _reset(self):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = self._monitor.worst()
        self.best_epoch = 0
        self.best_weights = None

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        current = self._monitor.value(logs)
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._monitor.improved(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._monitor.improved(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def get_state(self):
        """The best value, its epoch and the epochs waited (not ``best_weights``)."""
        return {"wait": self.wait, "stopped_epoch": self.stopped_epoch, "best": self.best,
                "best_epoch": self.best_epoch}

    def set_state(self, state):
        self.__dict__.update(restore_state("EarlyStopping", state, {
            "wait": int, "stopped_epoch": int, "best": float, "best_epoch": int}))

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` stops improving.

    Args:
        monitor, mode, min_delta: as for ``EarlyStopping`` (``min_delta`` defaults to 1e-4).
        factor: the new rate is ``max(rate * factor, min_lr)``; must be < 1.
        patience: epochs without improvement before the rate is reduced.
        cooldown: epochs to wait after a reduction before counting again.
        min_lr: the rate is never reduced below this.
        verbose: 1 prints every reduction.
    Needs a float learning rate (it assigns ``model.optimizer.learning_rate``); with a schedule
    it raises ``ValueError`` when training begins.
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        super().__init__()
        self.factor = checks.fraction("factor", factor)
        if self.factor == 0:
            raise ValueError("ReduceLROnPlateau: factor must be in (0, 1), got 0")
        self._monitor = _Monitor("ReduceLROnPlateau", monitor, mode, min_delta)
        self.monitor = monitor
        self.patience = checks.count("patience", patience)
        self.cooldown = checks.count("cooldown", cooldown)
        self.min_lr = checks.positive("min_lr", min_lr, allow_zero=True)
        self.verbose = verbose
        self._reset()

    def _reset(self):
        self.best = self._monitor.worst()
        self.wait = 0
        self.cooldown_counter = 0

    def on_train_begin(self, logs=None):
        _float_learning_rate(self.model, "ReduceLROnPlateau")
        self._reset()

    def get_state(self):
        return {"best": self.best, "wait": self.wait, "cooldown_counter": self.cooldown_counter}

    def set_state(self, state):
        self.__dict__.update(restore_state("ReduceLROnPlateau", state, {
            "best": float, "wait": int, "cooldown_counter": int}))

    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def on_epoch_end(self, epoch, logs=None):
        current = self._monitor.value(logs)
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._monitor.improved(current, self.best):
            self.best = current
            self.wait = 0
            return
        if self.in_cooldown():
            return
        self.wait += 1
        if self.wait < self.patience:
            return
        old_lr = _float_learning_rate(self.model, "ReduceLROnPlateau")
        if old_lr > self.min_lr:
            new_lr = max(old_lr * self.factor, self.min_lr)
            self.model.optimizer.learning_rate = new_lr
            if self.verbose > 0:
                print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr:.4g}.")
            self.cooldown_counter = self.cooldown
            self.wait = 0


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of every epoch from ``schedule``.

    ``schedule(epoch, lr) -> new lr`` (the current rate as second argument) or
    ``schedule(epoch) -> lr``; a ``cnn.schedules`` object works too, counting epochs instead
    of steps. Needs a float learning rate in the optimizer (a schedule there raises).
    """

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise ValueError(f"LearningRateScheduler needs a callable schedule, got {schedule!r}")
        self.schedule = schedule
        self.verbose = verbose
        self._pass_rate = _takes_two_arguments(schedule)

    def on_train_begin(self, logs=None):
        _float_learning_rate(self.model, "LearningRateScheduler")

    def on_epoch_begin(self, epoch, logs=None):
        current = _float_learning_rate(self.model, "LearningRateScheduler")
        lr = self.schedule(epoch, current) if self._pass_rate else self.schedule(epoch)
        try:
            self.model.optimizer.learning_rate = lr
        except ValueError:
            raise ValueError(
                f"LearningRateScheduler: the schedule returned {lr!r} for epoch {epoch}; "
                "a learning rate must be a finite number > 0"
            ) from None
        if self.verbose > 0:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {float(lr):.4g}.")


def _takes_two_arguments(function) -> bool:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # some builtins have no signature
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in parameters)


class CSVLogger(Callback):
    """Write each epoch's logs as a row of a CSV file: ``epoch`` then the log names, sorted.

    Args:
        filename: the file (its folder is created if needed).
        separator: the column separator.
        append: add to an existing file (its header is kept) instead of replacing it.
    A value missing in an epoch is written as ``NA``. The file is flushed after every epoch
    and closed when training ends.
    """

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename = Path(filename)
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(f"CSVLogger: separator must be one character, got {separator!r}")
        self.separator = separator
        self.append = bool(append)
        self.keys: list[str] | None = None
        self._file = None
        self._writer = None

    def on_train_begin(self, logs=None):
        self.filename.parent.mkdir(parents=True, exist_ok=True)
        self.keys = None
        if self.append and self.filename.exists():
            with open(self.filename, newline="") as existing:
                header = next(csv.reader(existing, delimiter=self.separator), None)
            if header:
                self.keys = header[1:]
        self._file = open(self.filename, "a" if self.append else "w", newline="")
        self._writer = csv.writer(self._file, delimiter=self.separator)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            self._writer.writerow(["epoch", *self.keys])
        unknown = sorted(set(logs) - set(self.keys))
        if unknown:
            raise ValueError(
                f"CSVLogger: {self.filename} has the columns {', '.join(self.keys)}; the logs "
                f"also hold {', '.join(unknown)} (append to a file written by the same set-up)"
            )
        self._writer.writerow([epoch, *(logs.get(key, "NA") for key in self.keys)])
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = None
            self._writer = None


class TerminateOnNaN(Callback):
    """Stop training, without raising, when a batch's loss is NaN or infinite.

    ``fit`` never applies such a step, so the weights are those of the last good step; the
    epoch still ends (validation, ``on_epoch_end``) with ``loss`` NaN in its logs. Without
    this callback ``fit`` raises ``NonFiniteLossError``.
    """

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True
        super().on_batch_end(batch, logs)
