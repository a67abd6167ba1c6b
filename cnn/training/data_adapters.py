"""Data adapters: what users pass to ``fit`` / ``evaluate`` / ``predict``, as batches.

An adapter checks the data against the model once, then yields :class:`Batch` es (the
inputs, targets and sample weights of one step, cast to the model's float type) for one
epoch at a time (``batches(rng)``; ``rng`` is the epoch's generator, which shuffles):

* :class:`ArrayAdapter`: arrays (one per input / output, or lists or dicts of them), drawn
  by index and cast one batch at a time, so no copy of the data set is made. A
  ``numpy.memmap`` (``np.load(..., mmap_mode="r")`` or ``np.memmap``) is read with ``pread``
  rather than through the mapping, so that resident memory stays within a few batches;
* :class:`GeneratorAdapter`: a Python generator or iterable yielding ``(x, y)`` /
  ``(x, y, sample_weight)`` (``x`` alone for ``predict``); ``steps`` batches an epoch, or
  until it ends;
* :class:`SequenceAdapter`: an object with ``__len__`` and ``__getitem__(i)`` returning a
  batch (Keras's ``Sequence``/``PyDataset``): its batches are visited in a new order every
  epoch when shuffling, reproducibly under ``fit``'s seed, and its ``on_epoch_end()`` (if
  any) is called after each epoch.

Batches from generators and sequences are checked as they come; an error names the batch.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from cnn import backend
from cnn.training import data_checks


class Batch(NamedTuple):
    """One step's data: ``x`` and ``y`` are lists (one array per input / output; an entry
    of ``y`` is None for an output without loss; ``y`` is None for ``predict``),
    ``sample_weight`` (n,) or None."""

    x: list
    y: list | None
    sample_weight: object

    @property
    def rows(self) -> int:
        return int(self.x[0].shape[0])


def per_input(model, x, what: str = "x") -> list:
    """``x`` as a list with one entry per model input (from an array, a list or a dict)."""
    names = model.input_names
    return _per_slot(x, names, what, "inputs")


def per_output(model, y, what: str = "y") -> list:
    """``y`` as a list with one entry per model output."""
    return _per_slot(y, model.output_names, what, "outputs")


def _per_slot(value, names, what, kind) -> list:
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(names))
        missing = [name for name in names if name not in value]
        if unknown or (kind == "inputs" and missing):
            raise ValueError(f"{what} has the keys {sorted(value)}, but the model's {kind} are "
                             f"named {names}")
        return [value.get(name) for name in names]
    if len(names) > 1:
        if not isinstance(value, (list, tuple)) or len(value) != len(names):
            got = f"{len(value)} entries" if isinstance(value, (list, tuple)) else \
                type(value).__name__
            raise ValueError(f"the model has {len(names)} {kind} ({', '.join(names)}): give "
                             f"{what} as a list or dict with one array each, got {got}")
        return list(value)
    if isinstance(value, (list, tuple)) and len(value) == 1 and hasattr(value[0], "shape"):
        return [value[0]]
    return [value]


class FileRows:
    """Rows of a C-ordered ``numpy.memmap`` read from its file with ``pread``, so that the
    pages read are not mapped into this process (resident memory stays small)."""

    def __init__(self, array):
        self.dtype = array.dtype
        self.shape = array.shape
        self.row_bytes = int(np.prod(array.shape[1:], dtype=np.int64)) * array.dtype.itemsize
        self.offset = int(array.offset)
        self.descriptor = os.open(os.fspath(array.filename), os.O_RDONLY)

    @staticmethod
    def usable(array) -> bool:
        """A memmap straight from a file (not a view of one), C-ordered, on NumPy."""
        return (isinstance(array, np.memmap) and isinstance(array.base, mmap.mmap)
                and array.filename is not None and array.flags.c_contiguous
                and array.ndim >= 1 and hasattr(os, "preadv")
                and backend.backend_name() == "numpy")

    def range(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start, *self.shape[1:]), dtype=self.dtype)
        self._read_into(out, start)
        return out

    def take(self, indices) -> np.ndarray:
        indices = np.asarray(indices)
        out = np.empty((indices.shape[0], *self.shape[1:]), dtype=self.dtype)
        for position, row in enumerate(indices):
            self._read_into(out[position:position + 1], int(row))
        return out

    def _read_into(self, out: np.ndarray, row: int) -> None:
        view = memoryview(out.reshape(-1).view(np.uint8))
        done = os.preadv(self.descriptor, [view], self.offset + row * self.row_bytes)
        if done != out.nbytes:
            raise OSError(f"the memmap's file ended early (read {done} of {out.nbytes} bytes)")

    def close(self) -> None:
        if self.descriptor is not None:
            os.close(self.descriptor)
            self.descriptor = None

    def __del__(self):
        self.close()


class Rows:
    """Reads rows of one array: slices or index arrays, from a file for a memmap."""

    def __init__(self, array):
        self.array = array
        self.file = FileRows(array) if FileRows.usable(array) else None

    def range(self, start: int, stop: int):
        return self.array[start:stop] if self.file is None else self.file.range(start, stop)

    def take(self, indices):
        if isinstance(indices, slice):
            return self.range(indices.start, indices.stop)
        return self.array[indices] if self.file is None else self.file.take(indices)


class ArrayAdapter:
    """Arrays in memory (or memmaps): batches of ``batch_size`` samples, the last one
    smaller, in a new random order every epoch when ``shuffle``.

    ``indices`` (a range) limits the adapter to those samples (``validation_split``).
    """

    def __init__(self, model, x, y=None, sample_weight=None, class_weight=None,
                 batch_size=32, shuffle=False, targets_needed=True, prepared=None, label=""):
        self.model = model
        self.batch_size = batch_size
        self.shuffle = shuffle
        if prepared is not None:
            self.x, self.rows, self.targets, self.weights, self.indices = prepared
            return
        x_names = _names(f"{label}x", model.input_names)
        self.x = [data_checks.as_array(a, what) for a, what in
                  zip(per_input(model, x, x_names[0]), x_names)]
        self.rows = [Rows(a) for a in self.x]
        for array, rows, shape, what in zip(self.x, self.rows, model.input_shapes, x_names):
            data_checks.check_inputs(array, shape, what, rows.range)
        n = self.x[0].shape[0]
        for array, what in zip(self.x[1:], x_names[1:]):
            if array.shape[0] != n:
                raise ValueError(f"the inputs have different sample counts: x has {n} and "
                                 f"{what} has {array.shape[0]}")
        self.targets = None
        if targets_needed:
            if y is None:
                raise ValueError(f"{label}y is missing: fit and evaluate need targets for "
                                 "arrays x")
            self.targets = prepare_targets(model, y, n, f"{label}y")
        elif y is not None:
            self.targets = prepare_targets(model, y, n, f"{label}y")
        if class_weight is not None and len(model.outputs) > 1:
            raise ValueError("class_weight is for models with one output; use sample_weight")
        self.weights = data_checks.sample_weights(
            n, sample_weight, class_weight, None if self.targets is None else self.targets[0])
        self.indices = range(n)

    @property
    def samples(self) -> int:
        return len(self.indices)

    @property
    def num_batches(self) -> int:
        return -(-self.samples // self.batch_size)

    def split(self, fraction):
        """``(training, validation)`` adapters: the last ``fraction`` of the samples, taken
        before shuffling, held out (Keras's ``validation_split``)."""
        if not 0.0 < float(fraction) < 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {fraction!r}")
        n = self.samples
        split_at = int(n * (1.0 - float(fraction)))
        if split_at == 0 or split_at == n:
            raise ValueError(f"validation_split={fraction} leaves an empty set of {n} samples")
        parts = []
        for indices in (self.indices[:split_at], self.indices[split_at:]):
            parts.append(ArrayAdapter(self.model, None, batch_size=self.batch_size,
                                      shuffle=self.shuffle, prepared=(
                                          self.x, self.rows, self.targets, self.weights,
                                          indices)))
        parts[1].shuffle = False
        return parts[0], parts[1]

    def batches(self, rng=None):
        n = self.samples
        first = self.indices.start
        order = rng.permutation(n) if self.shuffle and rng is not None else None
        for start in range(0, n, self.batch_size):
            stop = min(start + self.batch_size, n)
            if order is None:
                index = slice(first + start, first + stop)
            else:
                index = order[start:stop] + first
            yield self._batch(index)

    def _batch(self, index) -> Batch:
        dtype = self.model.dtype
        xs = [backend.asarray(rows.take(index), dtype=dtype) for rows in self.rows]
        ys = None
        if self.targets is not None:
            ys = [None if t is None else backend.asarray(t[index], dtype=dtype)
                  for t in self.targets]
        weights = None if self.weights is None else backend.asarray(self.weights[index],
                                                                    dtype=dtype)
        return Batch(xs, ys, weights)


def prepare_targets(model, y, n: int, what: str = "y") -> list:
    """Targets as one float array per output (None for an output without loss)."""
    ys = per_output(model, y, what)
    names = _names(what, model.output_names)
    prepared = []
    for k, (target, shape, loss) in enumerate(zip(ys, model.output_shapes,
                                                  model.output_losses)):
        if target is None:
            if loss is not None:
                raise ValueError(f"{names[k]} is missing: output {model.output_names[k]!r} "
                                 "has a loss and needs targets")
            prepared.append(None)
            continue
        prepared.append(data_checks.prepare_targets(target, n, shape, loss, model.dtype,
                                                    names[k]))
    return prepared


def _names(what: str, names: list) -> list:
    """Argument names for messages: ``x`` for one input, ``x['name']`` for several."""
    if len(names) == 1:
        return [what]
    return [f"{what}[{name!r}]" for name in names]


class _BatchChecker:
    """Checks and converts one batch from a generator or sequence, naming the batch."""

    def __init__(self, model, purpose: str, source: str):
        self.model = model
        self.purpose = purpose
        self.source = source

    def __call__(self, item, number: int) -> Batch:
        where = f"batch {number} from the {self.source}"
        if self.purpose == "predict":
            x = item[0] if isinstance(item, tuple) else item
            y = weights = None
        else:
            if not isinstance(item, tuple) or len(item) not in (2, 3):
                raise ValueError(f"{where} should be a tuple (x, y) or (x, y, sample_weight), "
                                 f"got {type(item).__name__}")
            x, y = item[0], item[1]
            weights = item[2] if len(item) == 3 else None
        model = self.model
        xs = per_input(model, x, f"{where}: x")
        checked = []
        for array, shape, what in zip(xs, model.input_shapes,
                                      _names(f"{where}: x", model.input_names)):
            checked.append(data_checks.check_inputs(array, shape, what))
        n = checked[0].shape[0]
        dtype = model.dtype
        ys = None
        if y is not None:
            ys = [None if t is None else backend.asarray(t, dtype=dtype)
                  for t in prepare_targets(model, y, n, f"{where}: y")]
        if weights is not None:
            weights = backend.asarray(data_checks.sample_weights(n, weights), dtype=dtype)
        return Batch([backend.asarray(a, dtype=dtype) for a in checked], ys, weights)


class GeneratorAdapter:
    """A generator (used up across epochs: each epoch takes the next ``steps`` batches) or
    a re-iterable object (iterated afresh each epoch), of batches."""

    def __init__(self, model, data, steps, purpose: str):
        self.data = data
        self.steps = steps
        self.one_pass = isinstance(data, Iterator)
        self.iterator = None
        self.check = _BatchChecker(model, purpose, "generator")
        self.exhausted = False

    @property
    def num_batches(self):
        return self.steps

    def batches(self, rng=None):
        if self.iterator is None or (not self.one_pass and self.steps is None):
            self.iterator = iter(self.data)
        count = 0
        while self.steps is None or count < self.steps:
            try:
                item = next(self.iterator)
            except StopIteration:
                if self.steps is not None or count == 0:
                    self.exhausted = True  # the trainer stops, as Keras does
                return
            count += 1
            yield self.check(item, count)


class SequenceAdapter:
    """An object with ``__len__`` and ``__getitem__`` (one batch per index)."""

    def __init__(self, model, data, shuffle: bool, purpose: str, steps=None):
        self.data = data
        self.shuffle = shuffle
        length = len(data)
        if length < 1:
            raise ValueError(f"the sequence {type(data).__name__} has no batches (len 0)")
        self.steps = length if steps is None else min(int(steps), length)
        self.check = _BatchChecker(model, purpose, "sequence")
        self.exhausted = False

    @property
    def num_batches(self):
        return self.steps

    def batches(self, rng=None):
        length = len(self.data)
        order = rng.permutation(length) if self.shuffle and rng is not None else range(length)
        for count, index in enumerate(order[:self.steps], start=1):
            yield self.check(self.data[int(index)], count)
        if hasattr(self.data, "on_epoch_end"):
            self.data.on_epoch_end()


def is_sequence(data) -> bool:
    """A Keras-``Sequence``-like object (not an array, list, tuple or dict)."""
    return (hasattr(data, "__len__") and hasattr(data, "__getitem__")
            and not hasattr(data, "shape") and not isinstance(data, (list, tuple, dict, str)))


def is_generator(data) -> bool:
    return isinstance(data, Iterator) or (
        hasattr(data, "__iter__") and not hasattr(data, "__getitem__")
        and not isinstance(data, (list, tuple, dict, str)) and not hasattr(data, "shape"))


def get_adapter(model, x, y=None, sample_weight=None, class_weight=None, batch_size=None,
                shuffle=False, steps=None, purpose="fit", label=""):
    """The adapter for ``x`` (and ``y``, ``sample_weight``) for ``purpose`` ("fit",
    "evaluate" or "predict"); ``label`` prefixes the argument names in errors
    ("validation ")."""
    if x is None:
        raise ValueError("x is missing: give the inputs (arrays, a generator or a sequence)")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, (int, np.integer))
                              or steps < 1):
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if is_generator(x) or is_sequence(x):
        for name, value in (("y", y), ("sample_weight", sample_weight),
                            ("class_weight", class_weight)):
            if value is not None:
                raise ValueError(f"{name} cannot be given with a generator or sequence x: "
                                 "its batches carry it")
        if is_sequence(x):
            return SequenceAdapter(model, x, shuffle, purpose, steps)
        return GeneratorAdapter(model, x, steps, purpose)
    if isinstance(x, tuple) and y is None and purpose != "predict" and len(x) in (2, 3) \
            and not (len(model.inputs) == len(x)):
        x, y, sample_weight = x[0], x[1], (x[2] if len(x) == 3 else sample_weight)
    if steps is not None:
        raise ValueError("steps / steps_per_epoch are for generators and sequences; with "
                         "arrays, batch_size sets the steps")
    return ArrayAdapter(model, x, y, sample_weight, class_weight, batch_size, shuffle,
                        targets_needed=purpose != "predict", label=label)
