"""Random draws made once for the whole global batch, whatever pieces it is computed in.

A layer drawing per sample (Dropout's masks, an augmentation's transformations) calls
``rows_of(layer, draw, n)``: ``draw(size)`` makes the draws of ``size`` samples, and the
layer keeps the rows of the piece it computes. The pieces are the slices of processes that
share a batch (``cnn.replica``) and the parts a model runs a large batch in
(``Model.parts``): within ``shared_over_parts()`` each draw is made once, for the global
batch, at the first part, and the later parts take their rows of it. So one process, several
parts and several processes all use the same masks.
"""

from __future__ import annotations

import contextlib

from cnn import replica

# While a batch runs in parts: {(id(layer), call index): draws}, and the calls per layer in
# the current part (a layer called twice in a graph draws twice).
_state: dict = {"draws": None, "calls": {}}


def rows_of(owner, draw, n: int):
    """The ``n`` rows that this piece computes of ``draw(global batch size)``."""
    global_size, start = replica.current().rows(n)
    shared = _state["draws"]
    if shared is None:
        draws = draw(global_size)
    else:
        calls = _state["calls"]
        index = calls.get(id(owner), 0)
        calls[id(owner)] = index + 1
        key = (id(owner), index)
        if key not in shared:
            shared[key] = draw(global_size)
        draws = shared[key]
    return draws if global_size == n else draws[start:start + n]


@contextlib.contextmanager
def shared_over_parts(split: bool = True):
    """Within the block a batch runs in parts (``part``): each draw is made once. With
    ``split`` False (the batch runs whole) the block changes nothing."""
    if not split:
        yield
        return
    previous = _state["draws"], _state["calls"]
    _state["draws"], _state["calls"] = {}, {}
    try:
        yield
    finally:
        _state["draws"], _state["calls"] = previous


@contextlib.contextmanager
def part(global_size: int, start: int, split: bool = True):
    """Within the block, rows ``start:`` of a global batch of ``global_size`` are computed
    (inside ``shared_over_parts``); with ``split`` False it changes nothing."""
    if not split:
        yield
        return
    outer = replica.current()
    _state["calls"] = {}
    with replica.replica_slice(global_size, start, outer.allreduce_sum, outer.synchronized):
        yield
