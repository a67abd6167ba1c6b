"""Bidirectional: merge modes, masks, gradients, PyTorch's bidirectional LSTM, configs."""

from __future__ import annotations

import numpy as np
import pytest

import cnn
from cnn.layers import GRU, LSTM, Bidirectional, SimpleRNN, deserialize, serialize
from helpers import build_layer
from sequence_helpers import check_gradients
from test_sequence_masks import MASKS, padded_mask

N, T, F, U = 4, 5, 3, 4


def random(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def built(merge_mode="concat", kind=LSTM, seed=1, **kwargs):
    cnn.set_seed(seed)
    layer = build_layer(Bidirectional(kind(U, **kwargs), merge_mode=merge_mode), (T, F))
    for key in layer.params:
        layer.params[key] = layer.params[key] + 0.1 * random(layer.params[key].shape, seed + 3)
    return layer


def directions(layer, x, mask=None):
    """The two directions run as separate layers, the backward outputs in time order."""
    y_forward = layer.forward_layer.forward(x, mask=mask)
    y_backward = layer.backward_layer.forward(x, mask=mask)
    return y_forward, (y_backward[:, ::-1] if layer.return_sequences else y_backward)


@pytest.mark.parametrize("merge_mode,merge", [
    ("concat", lambda a, b: np.concatenate([a, b], -1)), ("sum", lambda a, b: a + b),
    ("mul", lambda a, b: a * b), ("ave", lambda a, b: (a + b) / 2)])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_merge_modes(merge_mode, merge, return_sequences):
    layer = built(merge_mode, return_sequences=return_sequences)
    x = random((N, T, F))
    out = layer.forward(x)
    np.testing.assert_allclose(out, merge(*directions(layer, x)), atol=1e-12)
    assert out.shape[1:] == layer.output_shape[1:]
    assert layer.backward_layer.go_backwards and not layer.forward_layer.go_backwards


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave"])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_gradients(merge_mode, return_sequences, masked):
    layer = built(merge_mode, kind=GRU, return_sequences=return_sequences)
    mask = MASKS["holes"] if masked else None
    check_gradients(layer, random((N, T, F), 2), lambda x: layer.forward(x, mask=mask))


def test_merge_mode_none_returns_both_directions():
    layer = built(None, return_sequences=True)
    x = random((N, T, F))
    y_forward, y_backward = layer.forward(x)
    expected = directions(layer, x)
    np.testing.assert_allclose(y_forward, expected[0])
    np.testing.assert_allclose(y_backward, expected[1])
    g = [random(y_forward.shape, 1), random(y_backward.shape, 2)]
    dx = layer.backward(g)
    concat = built("concat", return_sequences=True)
    concat.forward(x)
    np.testing.assert_allclose(dx, concat.backward(np.concatenate(g, -1)), atol=1e-12)


def test_masked_sequence_outputs_are_zero_and_mask_passes():
    layer = built("concat", kind=SimpleRNN, return_sequences=True)
    x, mask = random((N, T, F)), MASKS["holes"]
    out = layer.forward(x, mask=mask)
    np.testing.assert_array_equal(out[~mask], 0)
    assert layer.compute_mask(x, mask) is mask
    assert built("sum").compute_mask(x, mask) is None


def test_inner_layers_are_named_and_errors_say_which():
    layer = built("concat")
    assert (layer.forward_layer.name, layer.backward_layer.name) == ("forward_lstm",
                                                                     "backward_lstm")
    with pytest.raises(ValueError, match=r'"forward_lstm".*3 features.*\(4, 5, 2\)'):
        layer.forward(random((N, T, 2)))
    copy = deserialize(serialize(layer))
    build_layer(copy, (T, F))
    assert copy.backward_layer.name == "backward_lstm"


def test_custom_backward_layer_and_checks():
    cnn.set_seed(0)
    layer = Bidirectional(LSTM(3, name="fw"), backward_layer=GRU(3, go_backwards=True, name="bw"))
    build_layer(layer, (T, F))
    assert isinstance(layer.backward_layer, GRU)
    assert any(k.startswith("backward_recurrent_bias") for k in layer.params)
    copy = deserialize(serialize(layer))
    assert copy.get_config() == layer.get_config()
    with pytest.raises(ValueError, match="go_backwards"):
        Bidirectional(LSTM(3), backward_layer=LSTM(3))
    with pytest.raises(ValueError, match="return_sequences"):
        Bidirectional(LSTM(3), backward_layer=LSTM(3, go_backwards=True, return_sequences=True))
    with pytest.raises(ValueError, match="merge_mode"):
        Bidirectional(LSTM(3), merge_mode="max")
    with pytest.raises(ValueError, match="SimpleRNN, LSTM or GRU"):
        Bidirectional(cnn.layers.Dense(3))


@pytest.mark.parametrize("return_sequences", [False, True])
def test_backward_layer_of_other_units_concatenates_both_widths(return_sequences):
    cnn.set_seed(0)
    layer = Bidirectional(LSTM(3, return_sequences=return_sequences),
                          backward_layer=GRU(2, go_backwards=True,
                                             return_sequences=return_sequences))
    build_layer(layer, (T, F))
    y = layer.forward(np.random.default_rng(0).random((2, T, F)), training=False)
    assert (None, *y.shape[1:]) == tuple(layer.output_shape)
    assert y.shape[1:] == ((T, 5) if return_sequences else (5,))
    with pytest.raises(ValueError, match="merge_mode='sum'.*\\(3,\\).*\\(2,\\)"):
        build_layer(Bidirectional(LSTM(3), merge_mode="sum",
                                  backward_layer=GRU(2, go_backwards=True)), (T, F))


def test_weights_are_the_inner_layers_and_set_weights_reaches_them():
    layer = built("concat")
    weights = layer.get_weights()
    assert len(weights) == 6 and list(layer.params)[0] == "forward_kernel"
    new = [w + 1 for w in weights]
    layer.set_weights(new)
    np.testing.assert_array_equal(layer.forward_layer.params["kernel"], new[0])
    np.testing.assert_array_equal(layer.backward_layer.params["bias"], new[5])
    expected = layer.forward_layer.params["bias"] + 1
    layer.params["forward_bias"] += 1  # an optimizer's in-place update
    np.testing.assert_array_equal(layer.forward_layer.params["bias"], expected)


def test_return_state_gives_both_directions_states():
    layer = built("concat", return_state=True)
    layer.forward(random((N, T, F)))
    assert len(layer.states) == 4 and layer.states[0].shape == (N, U)


def test_matches_pytorch_bidirectional_lstm_with_padding():
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle of this test")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    lengths = [5, 2, 4, 3]
    mask = padded_mask(lengths)
    layer = built("concat", return_sequences=True)
    module = torch.nn.LSTM(F, U, batch_first=True, bidirectional=True).double()
    with torch.no_grad():
        for suffix, inner in (("", layer.forward_layer), ("_reverse", layer.backward_layer)):
            getattr(module, f"weight_ih_l0{suffix}").copy_(torch.tensor(inner.params["kernel"]))
            getattr(module, f"weight_hh_l0{suffix}").copy_(
                torch.tensor(inner.params["recurrent_kernel"]))
            getattr(module, f"bias_ih_l0{suffix}").copy_(torch.tensor(inner.params["bias"]))
            getattr(module, f"bias_hh_l0{suffix}").zero_()
    x, grad = random((N, T, F), 5), random((N, T, 2 * U), 6)
    xt = torch.tensor(x, requires_grad=True)
    packed, _ = module(pack_padded_sequence(xt, torch.tensor(lengths), batch_first=True,
                                            enforce_sorted=False))
    expected, _ = pad_packed_sequence(packed, batch_first=True, total_length=T)
    (expected * torch.tensor(grad)).sum().backward()
    np.testing.assert_allclose(layer.forward(x, mask=mask), expected.detach().numpy(), atol=1e-10)
    np.testing.assert_allclose(layer.backward(grad), xt.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(layer.grads["forward_kernel"], module.weight_ih_l0.grad.numpy(),
                               atol=1e-10)
    np.testing.assert_allclose(layer.grads["backward_recurrent_kernel"],
                               module.weight_hh_l0_reverse.grad.numpy(), atol=1e-10)
