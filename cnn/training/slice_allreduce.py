"""A deterministic in-place sum over the processes of one machine that compute the slices of
a step: the caller (slice 0) and its worker processes (slices 1 ... k-1).

Layers with batch statistics (``BatchNormalization``) call ``allreduce_sum(buffer)`` through
``cnn.replica`` during a slice's forward and backward; every slice calls it the same number
of times in the same order (all run the same layers). One call in participant ``p``:

1. copy ``buffer`` into its slot ``p`` of the bank of this call (two banks, alternating by
   call: a slot is rewritten only after everybody has read it);
2. ring every other participant's doorbell (a semaphore) once, then wait for the k-1 rings
   of the others, i.e. until everybody has written this call's slot;
3. sum the slots in slice order, 0, 1, ..., k-1, into ``buffer``.

Every participant therefore gets bit-identical sums, whatever the timing, run to run.

Faults: a waiting participant polls every ``POLL_SECONDS`` its ``watch(missing, waited)``
(the caller's checks that its workers live and answer in time, a worker's that its caller
lives), which raises to give up. A participant that leaves a step with an error calls
``abort()``: the others' waits then raise :class:`StepAborted` at once, and the caller clears
the rings (``reset()``) before the next step.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

# Seconds between two looks at the watch while a participant waits for the others.
POLL_SECONDS = 0.05


class StepAborted(RuntimeError):
    """Another participant left the step with an error (which it reports itself)."""


class SharedSlots:
    """The shared state of ``parties`` participants: two banks of one ``slot``-element row
    of ``dtype`` per participant, an arrival count per participant, an abort flag and a
    doorbell per participant. Made before the workers start (``context``: a
    ``multiprocessing`` context); each process then takes its ``participant(index)``."""

    def __init__(self, parties: int, slot: int, dtype, context):
        self.parties, self.slot, self.dtype = int(parties), int(slot), np.dtype(dtype).str
        nbytes = 2 * self.parties * self.slot * np.dtype(dtype).itemsize
        self.raw_banks = context.RawArray("b", max(nbytes, 1))
        self.raw_counts = context.RawArray("q", self.parties + 1)  # arrivals, abort flag
        self.doorbells = [context.Semaphore(0) for _ in range(self.parties)]

    def participant(self, index: int, watch: Callable) -> "Participant":
        return Participant(self, index, watch)


class Participant:
    """Participant ``index`` (its slice's number) of ``shared``; ``watch(missing, waited)``
    is called while it waits (``missing``: the participants that have not arrived,
    ``waited``: the seconds since the wait began) and raises to give up."""

    def __init__(self, shared: SharedSlots, index: int, watch: Callable):
        self.shared, self.index, self.watch = shared, int(index), watch
        dtype = np.dtype(shared.dtype)
        count = 2 * shared.parties * shared.slot
        self.banks = np.frombuffer(shared.raw_banks, dtype, count).reshape(
            2, shared.parties, shared.slot)
        self.counts = np.frombuffer(shared.raw_counts, np.int64)
        self.calls = 0

    def begin_step(self) -> None:
        """A new step: its calls are counted from 0."""
        self.calls = 0

    def allreduce_sum(self, buffer):
        """``buffer`` (a contiguous array) summed over all participants in slice order, in
        place; returns it."""
        shared = self.shared
        if buffer.dtype != self.banks.dtype or buffer.size > shared.slot:
            raise ValueError(
                f"allreduce_sum takes at most {shared.slot} values of {self.banks.dtype} "
                f"between the worker processes, got {buffer.size} of {buffer.dtype}")
        call = self.calls
        self.calls += 1
        bank = self.banks[call % 2]
        flat = buffer.reshape(-1)
        bank[self.index, :flat.size] = flat
        self.counts[self.index] = call + 1
        for other, doorbell in enumerate(shared.doorbells):
            if other != self.index:
                doorbell.release()
        self._wait(call)
        np.copyto(flat, bank[0, :flat.size])
        for other in range(1, shared.parties):
            flat += bank[other, :flat.size]
        return buffer

    def _wait(self, call: int) -> None:
        """Until the other participants have all written call ``call``'s slots."""
        doorbell = self.shared.doorbells[self.index]
        started = time.monotonic()
        rings = 0
        while rings < self.shared.parties - 1:
            if doorbell.acquire(True, POLL_SECONDS):
                rings += 1
            elif not self.counts[-1]:
                missing = [p for p in range(self.shared.parties)
                           if p != self.index and self.counts[p] <= call]
                self.watch(missing, time.monotonic() - started)
            if self.counts[-1]:
                raise StepAborted("another process of the step failed")

    def abort(self) -> None:
        """Leave the step with an error: every other participant's wait raises
        :class:`StepAborted`."""
        self.counts[-1] = 1
        for other, doorbell in enumerate(self.shared.doorbells):
            if other != self.index:
                for _ in range(self.shared.parties):
                    doorbell.release()

    def reset(self) -> None:
        """Before a step, with every other participant idle: no rings, no arrivals, no
        abort left from the last step."""
        if self.counts[-1]:
            for doorbell in self.shared.doorbells:
                while doorbell.acquire(False):
                    pass
        self.counts[:] = 0
        self.calls = 0
