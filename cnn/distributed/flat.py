"""Many arrays as one flat buffer, so that a step needs one collective call, not one per
weight (a message costs far more in latency than in bytes at these sizes)."""

from __future__ import annotations

import numpy as np


class FlatBuffer:
    """One contiguous 1-D buffer holding arrays of the given ``shapes`` back to back, then
    ``extra`` scalars (loss and metric sums travel with the gradients)."""

    def __init__(self, shapes, dtype, extra: int = 0):
        self.shapes = [tuple(int(d) for d in shape) for shape in shapes]
        self.sizes = [int(np.prod(shape, dtype=np.int64)) for shape in self.shapes]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes, dtype=np.int64)]).tolist()
        self.extra = int(extra)
        self.buffer = np.zeros(self.offsets[-1] + self.extra, dtype=dtype)

    def views(self) -> list[np.ndarray]:
        """The arrays, as views into the buffer (writing them writes the buffer)."""
        return [self.buffer[a:b].reshape(shape)
                for a, b, shape in zip(self.offsets[:-1], self.offsets[1:], self.shapes)]

    @property
    def scalars(self) -> np.ndarray:
        """The ``extra`` scalars at the end, a view."""
        return self.buffer[self.offsets[-1]:]

    def pack(self, arrays, scalars=()) -> np.ndarray:
        """Copy ``arrays`` (and ``scalars``) into the buffer; returns the buffer."""
        arrays = list(arrays)
        if len(arrays) != len(self.shapes):
            raise ValueError(f"expected {len(self.shapes)} arrays, got {len(arrays)}")
        for view, array in zip(self.views(), arrays):
            if tuple(np.shape(array)) != view.shape:
                raise ValueError(f"array of shape {tuple(np.shape(array))} does not fit the "
                                 f"slot of shape {view.shape}")
            view[...] = array
        scalars = np.asarray(scalars, dtype=self.buffer.dtype).ravel()
        if scalars.size != self.extra:
            raise ValueError(f"expected {self.extra} scalars, got {scalars.size}")
        self.scalars[...] = scalars
        return self.buffer

    def unpack(self, arrays) -> None:
        """Copy the buffer's arrays back into ``arrays`` (in place)."""
        for array, view in zip(arrays, self.views()):
            array[...] = view
