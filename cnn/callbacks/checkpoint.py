"""ModelCheckpoint: save the model during training (every epoch, or the best one so far)."""

from __future__ import annotations

import math
import os
import string
import sys

from cnn.callbacks.base import Callback
from cnn.callbacks.training import restore_state


class ModelCheckpoint(Callback):
    """Save the model with ``model.save`` (atomic, resumable) while ``fit`` runs (Keras's
    semantics).

    Args:
        filepath: where to save; may contain ``{epoch}`` (1-based), ``{batch}`` (with an
            integer ``save_freq``) and any log value, e.g.
            ``"ckpt/model-{epoch:02d}-{val_loss:.4f}.h5"``.
        monitor: the log value that decides which model is best (``save_best_only``).
        verbose: 1 prints a line whenever a model is saved (or not, with ``save_best_only``).
        save_best_only: save only when ``monitor`` improved on the best value so far
            (the file keeps the best model when ``filepath`` has no fields).
        mode: ``"min"``, ``"max"``, or ``"auto"`` (max for accuracy-like names containing
            "acc" or "auc", min otherwise).
        save_freq: ``"epoch"`` (at the end of every epoch), or an int N: every N batches,
            counted across epochs. A model saved in mid-epoch resumes at the start of that
            epoch, so only ``"epoch"`` makes resumed training repeat the uninterrupted run.
    Raises:
        ValueError: at construction for a bad argument; while training when ``monitor`` or a
            field of ``filepath`` is not among the logs (naming the ones that are).
    """

    def __init__(self, filepath, monitor: str = "val_loss", verbose: int = 0,
                 save_best_only: bool = False, mode: str = "auto", save_freq="epoch", stream=None):
        super().__init__()
        self.filepath = os.fspath(filepath)
        _check_template(self.filepath)
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"monitor must be the name of a logged value, got {monitor!r}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, int)
                                     or save_freq < 1):
            raise ValueError(f"save_freq must be 'epoch' or a positive int, got {save_freq!r}")
        if verbose not in (0, 1):
            raise ValueError(f"verbose must be 0 or 1, got {verbose!r}")
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_freq = save_freq
        if mode == "auto":
            mode = "max" if ("acc" in monitor or "auc" in monitor) else "min"
        self.mode = mode
        self.best = math.inf if mode == "min" else -math.inf
        self.stream = stream or sys.stdout
        self._epoch = 0
        self._batches_seen = 0

    runs_last = True  # saves after the other callbacks have seen the epoch (their state)

    def get_state(self):
        return {"best": self.best, "batches_seen": self._batches_seen}

    def set_state(self, state):
        values = restore_state("ModelCheckpoint", state, {"best": float, "batches_seen": int})
        self.best, self._batches_seen = values["best"], values["batches_seen"]

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._batches_seen += 1
        if self._batches_seen % self.save_freq == 0:
            self._save(self._epoch, logs or {}, batch)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, logs or {})

    def _save(self, epoch: int, logs: dict, batch: int | None = None) -> None:
        path = self._file_path(epoch, logs, batch)
        if not self.save_best_only:
            self._say(f"Epoch {epoch + 1}: saving model to {path}")
            self.model.save(path)
            return
        if self.monitor not in logs:
            raise ValueError(
                f"ModelCheckpoint monitors {self.monitor!r}, which is not among the logged "
                f"values ({', '.join(logs) or 'none'}); pass validation data for 'val_*' values"
            )
        current = float(logs[self.monitor])
        improved = current < self.best if self.mode == "min" else current > self.best
        if improved:
            self._say(f"Epoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to "
                      f"{current:.5f}, saving model to {path}")
            self.best = current
            self.model.save(path)
        else:
            self._say(f"Epoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")

    def _file_path(self, epoch: int, logs: dict, batch: int | None) -> str:
        fields = {**logs, "epoch": epoch + 1}
        if batch is not None:
            fields["batch"] = batch + 1
        try:
            return self.filepath.format(**fields)
        except KeyError as exc:
            raise ValueError(
                f"ModelCheckpoint filepath {self.filepath!r} names the field {exc.args[0]!r}, "
                f"which is not among {', '.join(fields)}"
            ) from None

    def _say(self, line: str) -> None:
        if self.verbose:
            self.stream.write(line + "\n")
            self.stream.flush()


def _check_template(filepath: str) -> None:
    """Refuse a ``filepath`` whose braces do not form valid format fields, before training."""
    try:
        list(string.Formatter().parse(filepath))
    except ValueError as exc:
        raise ValueError(f"ModelCheckpoint filepath {filepath!r} is not a valid format "
                         f"string ({exc})") from None
