"""What the importer knows about each tensor of the graph while it walks it.

* ``Const``: a known array (initializers, ``Constant`` nodes, and what small shape
  arithmetic on them gives).
* ``ShapeValue``: a 1-D (or 0-d) int64 vector whose entries are ints or ``BATCH`` (the
  dynamic batch size): what ``Shape`` of an activation and the ``Gather``/``Concat``/
  ``Unsqueeze`` plumbing around it compute.
* ``Broadcast``: an array broadcast to a shape that contains ``BATCH`` (``ConstantOfShape``,
  ``Expand``): the initial states of recurrent ops.
* ``Data``: an activation, i.e. a tensor of the cnn model being assembled, seen through an
  axis mapping (``Transpose``/``Squeeze`` change the view, not the model): ``axes[k]`` is the
  cnn axis (batch = 0) of ONNX axis ``k``, or None for an inserted axis of size 1;
  ``reversed_axis`` is a cnn axis read backwards (a ``Slice`` with step -1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BATCH = "batch"


@dataclass(frozen=True)
class Const:
    array: np.ndarray


@dataclass(frozen=True)
class ShapeValue:
    entries: tuple  # ints and BATCH
    scalar: bool = False


@dataclass(frozen=True)
class Broadcast:
    array: np.ndarray  # broadcastable to shape
    shape: tuple  # ints and BATCH


@dataclass(frozen=True)
class Data:
    tensor: int  # index into the assembly's tensors
    axes: tuple  # ONNX axis -> cnn axis (0 = batch) or None
    reversed_axis: int | None = None

    def with_axes(self, axes) -> "Data":
        return Data(self.tensor, tuple(axes), self.reversed_axis)


def plain_axes(rank: int) -> tuple:
    """The identity view of a cnn tensor of ``rank`` axes (batch included)."""
    return tuple(range(rank))
