"""The epoch iterator: the one batching path of ``fit``, ``evaluate``, ``predict`` and
validation. It walks a data adapter (``cnn.training.data_adapters``) one epoch at a time."""

from __future__ import annotations


class EpochIterator:
    """``enumerate_epoch(rng)`` yields ``(step, Batch)`` for one epoch of ``adapter``;
    ``num_batches`` is the steps per epoch (None when a generator decides);
    ``exhausted`` says whether a generator ran out before its steps."""

    def __init__(self, adapter):
        self.adapter = adapter

    @property
    def num_batches(self):
        return self.adapter.num_batches

    @property
    def exhausted(self) -> bool:
        return bool(getattr(self.adapter, "exhausted", False))

    def enumerate_epoch(self, rng):
        """``rng``: the epoch's generator (shuffles when the adapter shuffles)."""
        yield from enumerate(self.adapter.batches(rng))
