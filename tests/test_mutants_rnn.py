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


def test_gru_backward_keeps_both_of_its_large_buffers():
    """``dxw`` and the gradient of the memo (both (T, N, 3U) with ``reset_after``) live in the
    workspace, and the next batch gets the same two arrays (run of 2026-12-01 17:30)."""
    rng = np.random.default_rng(0)
    workspace = {}
    xw = rng.standard_normal((T, N, 3 * U))
    h0 = rng.standard_normal((N, U))
    kernel = rng.standard_normal((3 * U, U))
    _, _, cache = rnn_ops.gru_forward(xw, h0, kernel, rng.standard_normal(3 * U), TANH,
                                      SIGMOID, True, workspace)
    forward_buffers = {id(array) for array in workspace.values()}
    rnn_ops.gru_backward(cache, rng.standard_normal((T, N, U)), [None])
    backward_buffers = {id(array) for array in workspace.values()} - forward_buffers
    assert len(backward_buffers) == 2
    assert all(workspace_array.shape == (T, N, 3 * U) for workspace_array in workspace.values()
               if id(workspace_array) in backward_buffers)
    rnn_ops.gru_backward(cache, rng.standard_normal((T, N, U)), [None])
    assert {id(array) for array in workspace.values()} - forward_buffers == backward_buffers


def test_gru_forward_defaults_to_reset_after_as_keras():
    """Keras's GRU (and PyTorch's) applies the reset gate after the recurrent product; the
    kernel's default must agree with the layer's (run of 2026-12-01 17:30)."""
    rng = np.random.default_rng(1)
    xw = rng.standard_normal((T, N, 3 * U))
    h0 = rng.standard_normal((N, U))
    kernel = rng.standard_normal((3 * U, U))
    bias = rng.standard_normal(3 * U)
    default, _, _ = rnn_ops.gru_forward(xw, h0, kernel, bias, TANH, SIGMOID)
    after, _, _ = rnn_ops.gru_forward(xw, h0, kernel, bias, TANH, SIGMOID, True)
    before, _, _ = rnn_ops.gru_forward(xw, h0, kernel, None, TANH, SIGMOID, False)
    np.testing.assert_array_equal(default, after)
    assert not np.allclose(default, before)


def test_gru_forward_keeps_its_gate_buffer():
    """The activated gates (T, N, 3U) of every step, the states and the memo are kept in the
    workspace, and the next batch gets the same arrays."""
    rng = np.random.default_rng(2)
    workspace = {}
    xw = rng.standard_normal((T, N, 3 * U))
    args = (rng.standard_normal((N, U)), rng.standard_normal((3 * U, U)),
            rng.standard_normal(3 * U), TANH, SIGMOID, True, workspace)
    first = rnn_ops.gru_forward(xw, *args)[2][0]
    kept = {id(array) for array in workspace.values()}
    assert len(kept) == 3  # the gates, the states h and the memo h R.T + b
    second = rnn_ops.gru_forward(xw + 1, *args)[2][0]
    assert second is first and first.shape == (T, N, 3 * U)
    assert any(kept is first for kept in workspace.values())
    assert {id(array) for array in workspace.values()} == kept


@pytest.mark.parametrize("activation, keeps", [("tanh", False), ("gelu", True)])
def test_gru_forward_keeps_pre_activations_only_for_an_activation_that_reads_them(activation,
                                                                                  keeps):
    """tanh's and sigmoid's derivatives come from their outputs: no (T, N, 3U) copy of the
    pre-activations; gelu's needs its input, kept in the workspace between batches."""
    rng = np.random.default_rng(3)
    workspace = {}
    xw = rng.standard_normal((T, N, 3 * U))
    args = (rng.standard_normal((N, U)), rng.standard_normal((3 * U, U)),
            rng.standard_normal(3 * U), activations.get(activation), SIGMOID, True, workspace)
    first = rnn_ops.gru_forward(xw, *args)[2][1]
    assert (first is not None) == keeps
    if keeps:
        assert rnn_ops.gru_forward(xw + 1, *args)[2][1] is first
        assert any(kept is first for kept in workspace.values())
