"""Which part of the global batch this process computes, for layers that must know.

Data-parallel training cuts every global batch into slices, one per process (MPI rank or
local worker). Most layers treat each sample on its own and never notice. Two kinds of layer
would give a different step if they looked only at their slice:

* layers drawing random numbers per sample (``Dropout``) draw for the whole global batch
  and keep their slice's rows, so that N processes use the masks one process would;
* layers with batch statistics (``BatchNormalization``) add their sums over all slices
  (``allreduce_sum``), so that the statistics are those of the global batch.

The strategy that slices the batch enters ``replica_slice(...)`` around the slice's forward
and backward passes; outside it, the slice is the whole batch and ``allreduce_sum`` is the
identity, which is what one process computing everything needs.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable


def _identity(buffer):
    return buffer


@dataclass(frozen=True)
class ReplicaSlice:
    """Rows ``start:start + n`` (``n`` is the slice's own batch size) of a global batch of
    ``global_size`` samples; ``allreduce_sum(buffer)`` sums a contiguous array over all
    slices in place and returns it. ``global_size`` None means "this batch is global"."""

    global_size: int | None = None
    start: int = 0
    allreduce_sum: Callable = _identity
    synchronized: bool = False  # True when allreduce_sum really reaches the other slices

    def rows(self, local_size: int) -> tuple[int, int]:
        """``(global size, start)`` for a slice of ``local_size`` samples."""
        return (local_size if self.global_size is None else self.global_size), self.start


_current: list[ReplicaSlice] = [ReplicaSlice()]


def current() -> ReplicaSlice:
    """The slice the running forward/backward pass computes (the whole batch by default)."""
    return _current[-1]


@contextlib.contextmanager
def replica_slice(global_size: int, start: int, allreduce_sum: Callable = _identity,
                  synchronized: bool = False):
    """Within the block, layers compute rows ``start:`` of a batch of ``global_size``."""
    _current.append(ReplicaSlice(int(global_size), int(start), allreduce_sum, synchronized))
    try:
        yield _current[-1]
    finally:
        _current.pop()
