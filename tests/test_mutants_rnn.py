"""What the mutation run of 2026-12-01 found unchecked in cnn.ops.rnn (docs/TESTING.md).

The recurrent kernels keep their large buffers in a ``workspace`` dict between batches, so
that a long sequence does not map (and fault in) hundreds of megabytes afresh every step of
training. A mutant that dropped the workspace gave the same numbers and survived: this test
holds the kernels to the reuse (not to the names of the buffers, which only have to differ).
"""

from __future__ import annotations

import numpy as np
import pytest

from cnn import activations
from cnn.ops import rnn as rnn_ops

T, N, U = 4, 3, 2
TANH, SIGMOID = activations.get("tanh"), activations.get("sigmoid")


def run(cell, workspace, rng):
    """Forward and backward of ``cell`` once; returns the backward's ``dxw``."""
    blocks = {"simple_rnn": 1, "lstm": 4, "gru": 3}[cell]
    xw = rng.standard_normal((T, N, blocks * U))
    h0 = rng.standard_normal((N, U))
    kernel = rng.standard_normal((blocks * U, U))
    if cell == "simple_rnn":
        _, _, cache = rnn_ops.simple_rnn_forward(xw, h0, kernel, TANH, workspace)
        backward = rnn_ops.simple_rnn_backward
    elif cell == "lstm":
        x = rng.standard_normal((T, N, 3))
        _, _, cache = rnn_ops.lstm_forward(x, h0, h0.copy(), rng.standard_normal((4 * U, 3)),
                                           kernel, rng.standard_normal(4 * U), TANH, SIGMOID,
                                           workspace)
        backward = rnn_ops.lstm_backward
    else:
        _, _, cache = rnn_ops.gru_forward(xw, h0, kernel, rng.standard_normal(3 * U), TANH,
                                          SIGMOID, True, workspace)
        backward = rnn_ops.gru_backward
    dxw, _, _ = backward(cache, rng.standard_normal((T, N, U)), [None] * (1 + (cell == "lstm")))
    return dxw


def owner(array):
    """The buffer ``array`` is (the LSTM returns a transposed view of its buffer)."""
    return array if array.base is None else array.base


@pytest.mark.parametrize("cell", ["simple_rnn", "lstm", "gru"])
def test_backward_reuses_its_workspace_buffer(cell):
    rng = np.random.default_rng(0)
    workspace = {}
    first = run(cell, workspace, rng)
    assert any(kept is owner(first) for kept in workspace.values())
    kept = list(workspace.values())
    assert len({id(array) for array in kept}) == len(kept)  # no buffer kept under two names
    second = run(cell, workspace, rng)
    assert owner(second) is owner(first)  # the same buffer, not a new one of the same shape
    assert second.shape == (T, N, {"simple_rnn": 1, "lstm": 4, "gru": 3}[cell] * U)
