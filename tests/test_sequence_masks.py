"""Masks and recurrent dropout through SimpleRNN / LSTM / GRU: the fast kernels against the
slow reference, numerical gradients, PyTorch (pack_padded_sequence)."""

from __future__ import annotations

import numpy as np
import pytest

import cnn
from cnn.backend import floatx_scope
from cnn.layers import GRU, LSTM, SimpleRNN
from cnn.ops.reference_sequence import masked_rnn_reference
from tests.helpers import build_layer
from tests.sequence_helpers import check_gradients

N, T, F, U = 4, 5, 3, 4
KINDS = {"SimpleRNN": SimpleRNN, "LSTM": LSTM, "GRU": GRU}


def random(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def padded_mask(lengths, steps=T, left=False):
    """(N, T) bool: True on the first (or, ``left``, the last) ``lengths[i]`` steps."""
    positions = np.arange(steps)[None, :]
    lengths = np.asarray(lengths)[:, None]
    return positions >= steps - lengths if left else positions < lengths


MASKS = {
    "right-padded": padded_mask([5, 3, 1, 4]),
    "left-padded": padded_mask([5, 3, 1, 4], left=True),
    "holes": np.array([[1, 0, 1, 1, 0], [0, 0, 1, 0, 1], [1, 1, 1, 1, 1], [0, 1, 0, 0, 0]],
                      dtype=bool),
}


def built(kind, seed=1, **kwargs):
    cnn.set_seed(seed)
    layer = build_layer(KINDS[kind](U, **kwargs), (T, F))
    for key in layer.params:  # non-zero biases so that they are checked too
        layer.params[key] = layer.params[key] + 0.1 * random(layer.params[key].shape, seed + 7)
    return layer


def reference(layer, x, mask=None, recurrent_mask=None):
    kind = type(layer).__name__
    params = layer.params
    return masked_rnn_reference(kind, x, params["kernel"], params["recurrent_kernel"],
                                params["bias"], U, mask, recurrent_mask,
                                params.get("recurrent_bias"), getattr(layer, "reset_after", True),
                                layer.go_backwards)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mask_name", MASKS)
@pytest.mark.parametrize("go_backwards", [False, True])
def test_masked_forward_matches_reference(kind, mask_name, go_backwards):
    layer = built(kind, return_sequences=True, go_backwards=go_backwards)
    x, mask = random((N, T, F)), MASKS[mask_name]
    outputs = layer.forward(x, mask=mask)
    expected, h, c = reference(layer, x, mask)
    np.testing.assert_allclose(outputs, expected, atol=1e-12)
    np.testing.assert_allclose(layer.states[0], h, atol=1e-12)
    if c is not None:
        np.testing.assert_allclose(layer.states[1], c, atol=1e-12)
    assert layer.compute_mask(x, mask) is mask


def test_masked_steps_keep_state_and_repeat_output():
    layer = built("LSTM", return_sequences=True)
    x, mask = random((N, T, F)), MASKS["holes"]
    out = layer.forward(x, mask=mask)
    last = built("LSTM").forward(x, mask=mask)
    for n in range(N):
        for t in range(1, T):
            if not mask[n, t]:
                np.testing.assert_array_equal(out[n, t], out[n, t - 1])
        if not mask[n, 0]:
            np.testing.assert_array_equal(out[n, 0], 0)
    np.testing.assert_allclose(last, out[:, -1])


def test_zero_output_for_mask():
    layer = built("GRU", return_sequences=True, zero_output_for_mask=True)
    x, mask = random((N, T, F)), MASKS["holes"]
    out = layer.forward(x, mask=mask)
    expected, _, _ = reference(layer, x, mask)
    np.testing.assert_allclose(out, expected * mask[:, :, None], atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_masked_gradients(kind, return_sequences, go_backwards):
    layer = built(kind, return_sequences=return_sequences, go_backwards=go_backwards)
    mask = MASKS["holes"]
    check_gradients(layer, random((N, T, F), 3), lambda x: layer.forward(x, mask=mask))


@pytest.mark.parametrize("kind", KINDS)
def test_gru_without_reset_after_and_masks(kind):
    kwargs = {"reset_after": False} if kind == "GRU" else {}
    layer = built(kind, return_sequences=True, zero_output_for_mask=True, **kwargs)
    mask = MASKS["left-padded"]
    check_gradients(layer, random((N, T, F), 4), lambda x: layer.forward(x, mask=mask))


def test_mask_shape_error_names_layer_and_shapes():
    layer = built("LSTM")
    layer.name = "encoder"
    with pytest.raises(ValueError, match=r'"encoder".*\(4, 5\).*\(4, 5, 3\).*\(4, 3\)'):
        layer.forward(random((N, T, F)), mask=np.ones((N, 3), dtype=bool))


# -- recurrent dropout ------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_recurrent_dropout_only_in_training_and_same_mask_over_time(kind):
    layer = built(kind, return_sequences=True, recurrent_dropout=0.5)
    plain = built(kind, return_sequences=True)
    x = random((N, T, F))
    np.testing.assert_array_equal(layer.forward(x, training=False), plain.forward(x))
    assert layer.recurrent_dropout_mask is None
    cnn.set_seed(5)
    out = layer.forward(x, training=True)
    drop = layer.recurrent_dropout_mask
    assert drop.shape == (N, U) and set(np.unique(drop)) <= {0.0, 2.0}
    expected, _, _ = reference(layer, x, None, drop)
    np.testing.assert_allclose(out, expected, atol=1e-12)
    assert not np.allclose(out, plain.forward(x))


def test_recurrent_dropout_rate_and_seeding():
    layer = built("SimpleRNN", recurrent_dropout=0.25)
    x = random((400, T, F))
    cnn.set_seed(9)
    layer.forward(x, training=True)
    first = layer.recurrent_dropout_mask.copy()
    cnn.set_seed(9)
    layer.forward(x, training=True)
    np.testing.assert_array_equal(first, layer.recurrent_dropout_mask)
    assert abs((first == 0).mean() - 0.25) < 0.03
    with pytest.raises(ValueError, match="recurrent_dropout"):
        LSTM(3, recurrent_dropout=1.0)


@pytest.mark.parametrize("kind,kwargs", [("SimpleRNN", {}), ("LSTM", {}), ("GRU", {}),
                                         ("GRU", {"reset_after": False})])
@pytest.mark.parametrize("masked", [False, True])
def test_recurrent_dropout_gradients_with_a_fixed_mask(kind, kwargs, masked):
    layer = built(kind, return_sequences=True, recurrent_dropout=0.4, **kwargs)
    mask = MASKS["holes"] if masked else None
    check_gradients(layer, random((N, T, F), 6),
                    lambda x: layer.forward(x, training=True, mask=mask), reseed=11)


def test_config_round_trip_keeps_new_arguments():
    layer = LSTM(3, recurrent_dropout=0.2, zero_output_for_mask=True, return_sequences=True)
    config = layer.get_config()
    assert config["recurrent_dropout"] == 0.2 and config["zero_output_for_mask"] is True
    assert LSTM.from_config(config).get_config() == config


# -- PyTorch ------------------------------------------------------------------------------------

TORCH_GATE_ORDER = {"SimpleRNN": [0], "LSTM": [0, 1, 2, 3], "GRU": [1, 0, 2]}  # torch GRU: r, z, n


def to_torch_blocks(weight, kind):
    blocks = np.split(weight, len(TORCH_GATE_ORDER[kind]), axis=0)
    return np.concatenate([blocks[k] for k in TORCH_GATE_ORDER[kind]], axis=0)


def from_torch_blocks(weight, kind):
    order = TORCH_GATE_ORDER[kind]
    blocks = np.split(weight, len(order), axis=0)
    result = [None] * len(order)
    for position, k in enumerate(order):
        result[k] = blocks[position]
    return np.concatenate(result, axis=0)


@pytest.mark.parametrize("kind", KINDS)
def test_right_padded_masks_match_pytorch_packed_sequences(kind):
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle of this test")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    lengths = [5, 3, 1, 4]
    mask = padded_mask(lengths)
    layer = built(kind, return_sequences=True)
    p = layer.params
    module = {"SimpleRNN": torch.nn.RNN, "LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU}[kind](
        F, U, batch_first=True).double()
    recurrent_bias = p.get("recurrent_bias", np.zeros_like(p["bias"]))
    with torch.no_grad():
        module.weight_ih_l0.copy_(torch.tensor(to_torch_blocks(p["kernel"], kind)))
        module.weight_hh_l0.copy_(torch.tensor(to_torch_blocks(p["recurrent_kernel"], kind)))
        module.bias_ih_l0.copy_(torch.tensor(to_torch_blocks(p["bias"], kind)))
        module.bias_hh_l0.copy_(torch.tensor(to_torch_blocks(recurrent_bias, kind)))
    x = random((N, T, F), 8)
    r_seq, r_last = random((N, T, U), 9) * mask[:, :, None], random((N, U), 10)

    out = layer.forward(x, mask=mask)
    dx = layer.backward(r_seq)
    grads = {k: v.copy() for k, v in layer.grads.items()}
    # the layer's final state comes through layer.states; check its gradient on its own layer
    last_layer = built(kind)
    last_out = last_layer.forward(x, mask=mask)
    dx_last = last_layer.backward(r_last)

    xt = torch.tensor(x, requires_grad=True)
    packed = pack_padded_sequence(xt, torch.tensor(lengths), batch_first=True,
                                  enforce_sorted=False)
    packed_out, final = module(packed)
    h_n = final[0] if kind == "LSTM" else final
    padded, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=T)
    np.testing.assert_allclose(out * mask[:, :, None], padded.detach().numpy(), atol=1e-10)
    np.testing.assert_allclose(last_out, h_n[0].detach().numpy(), atol=1e-10)
    (padded * torch.tensor(r_seq)).sum().backward()
    np.testing.assert_allclose(dx, xt.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(grads["kernel"], from_torch_blocks(
        module.weight_ih_l0.grad.numpy(), kind), atol=1e-10)
    np.testing.assert_allclose(grads["recurrent_kernel"], from_torch_blocks(
        module.weight_hh_l0.grad.numpy(), kind), atol=1e-10)
    xt.grad = None
    module.zero_grad()
    packed_out, final = module(pack_padded_sequence(xt, torch.tensor(lengths), batch_first=True,
                                                    enforce_sorted=False))
    h_n = final[0] if kind == "LSTM" else final
    (h_n[0] * torch.tensor(r_last)).sum().backward()
    np.testing.assert_allclose(dx_last, xt.grad.numpy(), atol=1e-10)


def test_float32_masked_forward_is_close_to_float64():
    x, mask = random((N, T, F)), MASKS["holes"]
    layer64 = built("LSTM", return_sequences=True)
    with floatx_scope("float32"):
        layer32 = LSTM(U, return_sequences=True)
        layer32.build((T, F))
    layer32.set_weights(layer64.get_weights())
    np.testing.assert_allclose(layer32.forward(x.astype(np.float32), mask=mask),
                               layer64.forward(x, mask=mask), atol=1e-5)
