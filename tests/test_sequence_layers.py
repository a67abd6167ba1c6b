"""Embedding, Masking, RepeatVector, LayerNormalization, pad_sequences: values, gradients,
PyTorch, configs, errors."""

from __future__ import annotations

import numpy as np
import pytest

import cnn
from cnn.layers import (Embedding, LayerNormalization, Masking, PositionEmbedding, RepeatVector,
                        deserialize, serialize)
from cnn.ops.reference_sequence import layer_normalization_reference
from cnn.utils import pad_sequences
from tests.helpers import build_layer, check_layer_gradients
from tests.sequence_helpers import check_gradients


def random(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def round_trip(layer):
    copy = deserialize(serialize(layer))
    assert copy.get_config() == layer.get_config()
    return copy


# -- Embedding --------------------------------------------------------------------------------

def test_embedding_looks_up_rows_and_masks_zero():
    cnn.set_seed(0)
    layer = build_layer(Embedding(10, 4, mask_zero=True), (5,))
    ids = np.array([[1, 2, 0, 0, 0], [9, 9, 3, 0, 1]])
    out = layer.forward(ids)
    assert out.shape == (2, 5, 4)
    np.testing.assert_array_equal(out[1, 0], layer.params["embeddings"][9])
    np.testing.assert_array_equal(layer.compute_mask(ids), ids != 0)
    assert Embedding(10, 4).compute_mask(ids) is None
    table = layer.params["embeddings"]
    assert table.min() >= -0.05 and table.max() <= 0.05  # Keras's "uniform"


def test_embedding_gradient_sums_repeated_ids():
    layer = build_layer(Embedding(6, 3), (4,))
    ids = np.array([[1, 1, 2, 5], [5, 0, 1, 1]], dtype=np.float64)  # floats holding ids
    grad = random((2, 4, 3), 1)
    layer.forward(ids)
    assert layer.backward(grad) is None
    expected = np.zeros((6, 3))
    for n in range(2):
        for t in range(4):
            expected[int(ids[n, t])] += grad[n, t]
    np.testing.assert_allclose(layer.grads["embeddings"], expected)
    check_gradients(layer, [], lambda _: layer.forward(ids))  # numerical check of the table


def test_embedding_matches_pytorch():
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle of this test")
    layer = build_layer(Embedding(7, 3), (5,))
    module = torch.nn.Embedding(7, 3).double()
    with torch.no_grad():
        module.weight.copy_(torch.tensor(layer.params["embeddings"]))
    ids = np.random.default_rng(2).integers(0, 7, (3, 5))
    grad = random((3, 5, 3), 3)
    out = module(torch.tensor(ids))
    (out * torch.tensor(grad)).sum().backward()
    np.testing.assert_allclose(layer.forward(ids), out.detach().numpy(), atol=1e-12)
    layer.backward(grad)
    np.testing.assert_allclose(layer.grads["embeddings"], module.weight.grad.numpy(), atol=1e-12)


def test_embedding_errors_name_the_layer():
    layer = build_layer(Embedding(5, 2, name="words"), (3,))
    with pytest.raises(ValueError, match=r'"words".*id 5.*\[0, 5\)'):
        layer.forward(np.array([[1, 5, 0]]))
    with pytest.raises(ValueError, match=r'"words".*id -1'):
        layer.forward(np.array([[1, -1, 0]]))
    with pytest.raises(ValueError, match=r'"words".*whole numbers'):
        layer.forward(np.array([[1.5, 1, 0]]))
    with pytest.raises(ValueError, match=r'"words".*\(None, 3\).*\(1, 4\)'):
        layer.forward(np.array([[1, 1, 0, 0]]))
    with pytest.raises(ValueError, match="input_dim"):
        Embedding(0, 3)


def test_embedding_config_round_trip():
    layer = Embedding(30, 8, "glorot_uniform", mask_zero=True, name="emb")
    copy = round_trip(layer)
    assert copy.mask_zero and copy.embeddings_initializer == "glorot_uniform"


def test_position_embedding_broadcasts_rows_and_gradients():
    layer = build_layer(PositionEmbedding(6), (4, 3))
    x = random((2, 4, 3))
    out = layer.forward(x)
    np.testing.assert_array_equal(out[1], layer.params["embeddings"][:4])
    errors = check_gradients(layer, x, lambda a: layer.forward(a))
    assert errors["input 0"] < 1e-9  # the output does not depend on the input's values
    assert round_trip(layer).sequence_length == 6
    with pytest.raises(ValueError, match=r"PositionEmbedding.*steps <= 6.*\(None, 7, 3\)"):
        build_layer(PositionEmbedding(6), (7, 3))


# -- Masking ----------------------------------------------------------------------------------

def test_masking_mask_zeroes_and_gradient():
    layer = build_layer(Masking(mask_value=-1.0), (4, 2))
    x = random((3, 4, 2))
    x[0, 1] = -1.0
    x[2, 3] = -1.0
    x[1, 0, 0] = -1.0  # one feature only: not masked
    mask = layer.compute_mask(x)
    expected = np.ones((3, 4), dtype=bool)
    expected[0, 1] = expected[2, 3] = False
    np.testing.assert_array_equal(mask, expected)
    out = layer.forward(x)
    np.testing.assert_array_equal(out, x * expected[:, :, None])
    grad = random((3, 4, 2), 5)
    np.testing.assert_array_equal(layer.backward(grad), grad * expected[:, :, None])
    # central differences jump at a masked step (a nudge unmasks it): check the other steps
    check_layer_gradients(layer, random((3, 4, 2), 6))
    assert round_trip(layer).mask_value == -1.0


def test_masking_feeds_an_lstm_like_the_matching_mask():
    from cnn.layers import LSTM

    cnn.set_seed(0)
    lstm = build_layer(LSTM(3), (4, 2))
    masking = build_layer(Masking(), (4, 2))
    x = random((2, 4, 2))
    x[0, 2:] = 0.0
    out = lstm.forward(masking.forward(x), mask=masking.compute_mask(x))
    short = build_layer(LSTM(3), (2, 2))
    short.set_weights(lstm.get_weights())
    np.testing.assert_allclose(out[0], short.forward(x[:1, :2])[0], atol=1e-12)


def test_masking_needs_sequences():
    with pytest.raises(ValueError, match="Masking.*time steps"):
        build_layer(Masking(), (4,))


# -- RepeatVector -----------------------------------------------------------------------------

def test_repeat_vector_values_gradients_and_errors():
    layer = build_layer(RepeatVector(3), (4,))
    x = random((2, 4))
    out = layer.forward(x)
    assert out.shape == (2, 3, 4) and layer.output_shape == (None, 3, 4)
    for t in range(3):
        np.testing.assert_array_equal(out[:, t], x)
    check_layer_gradients(layer, x)
    assert round_trip(layer).n == 3
    with pytest.raises(ValueError, match=r"RepeatVector.*\(batch, features\).*\(4, 2\)"):
        build_layer(RepeatVector(2), (4, 2))


# -- LayerNormalization -----------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [{}, {"center": False}, {"scale": False},
                                    {"center": False, "scale": False}, {"epsilon": 1e-5}])
def test_layer_norm_matches_reference_and_gradients(kwargs):
    layer = build_layer(LayerNormalization(**kwargs), (3, 5))
    for key in layer.params:
        layer.params[key] = layer.params[key] + 0.3 * random(layer.params[key].shape, 4)
    x = random((4, 3, 5), 1) * 3 + 1
    expected = layer_normalization_reference(x, layer.params.get("gamma"),
                                             layer.params.get("beta"), layer.epsilon)
    np.testing.assert_allclose(layer.forward(x), expected, atol=1e-12)
    check_layer_gradients(layer, x)


def test_layer_norm_over_several_axes_gradients():
    layer = build_layer(LayerNormalization(axis=[-2, -1]), (3, 4))
    assert layer.params["gamma"].shape == (3, 4)
    layer.params["gamma"] = layer.params["gamma"] + 0.3 * random((3, 4), 2)
    x = random((2, 3, 4))
    out = layer.forward(x)
    expected = layer_normalization_reference(x.reshape(2, 12), layer.params["gamma"].reshape(12),
                                             layer.params["beta"].reshape(12), layer.epsilon)
    np.testing.assert_allclose(out, expected.reshape(2, 3, 4), atol=1e-12)
    check_layer_gradients(layer, x)


def test_layer_norm_matches_pytorch():
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle of this test")
    layer = build_layer(LayerNormalization(epsilon=1e-5), (6,))
    layer.params["gamma"] = layer.params["gamma"] + 0.3 * random(6, 5)
    layer.params["beta"] = layer.params["beta"] + 0.3 * random(6, 6)
    module = torch.nn.LayerNorm(6, eps=1e-5).double()
    with torch.no_grad():
        module.weight.copy_(torch.tensor(layer.params["gamma"]))
        module.bias.copy_(torch.tensor(layer.params["beta"]))
    x, grad = random((5, 6), 7) * 2, random((5, 6), 8)
    xt = torch.tensor(x, requires_grad=True)
    out = module(xt)
    (out * torch.tensor(grad)).sum().backward()
    np.testing.assert_allclose(layer.forward(x), out.detach().numpy(), atol=1e-10)
    np.testing.assert_allclose(layer.backward(grad), xt.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(layer.grads["gamma"], module.weight.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(layer.grads["beta"], module.bias.grad.numpy(), atol=1e-10)


def test_layer_norm_errors_and_config():
    with pytest.raises(ValueError, match="axis"):
        LayerNormalization(axis=0)
    with pytest.raises(ValueError, match=r'"ln".*axis 3.*\(None, 4, 2\)'):
        build_layer(LayerNormalization(axis=3, name="ln"), (4, 2))
    layer = build_layer(LayerNormalization(name="ln"), (4,))
    with pytest.raises(ValueError, match=r'"ln".*\(None, 4\).*\(2, 5\)'):
        layer.forward(random((2, 5)))
    copy = round_trip(LayerNormalization(axis=[1, 2], epsilon=1e-4, center=False))
    assert copy.axis == [1, 2] and copy.epsilon == 1e-4


# -- pad_sequences ----------------------------------------------------------------------------

def test_pad_sequences_follows_keras():
    seqs = [[1, 2, 3], [4], [5, 6, 7, 8, 9]]
    np.testing.assert_array_equal(pad_sequences(seqs),
                                  [[0, 0, 1, 2, 3], [0, 0, 0, 0, 4], [5, 6, 7, 8, 9]])
    np.testing.assert_array_equal(pad_sequences(seqs, maxlen=2, padding="post", truncating="post",
                                                value=-1), [[1, 2], [4, -1], [5, 6]])
    np.testing.assert_array_equal(pad_sequences(seqs, maxlen=2), [[2, 3], [0, 4], [8, 9]])
    assert pad_sequences(seqs).dtype == np.int32
    steps = pad_sequences([np.ones((2, 3)), np.ones((1, 3))], dtype="float32", value=0.5)
    assert steps.shape == (2, 2, 3) and steps[1, 0, 0] == 0.5 and steps[1, 1, 0] == 1
    assert pad_sequences([[], [1]]).tolist() == [[0], [1]]
    assert cnn.utils.pad_sequences is pad_sequences


def test_pad_sequences_errors():
    with pytest.raises(ValueError, match="padding"):
        pad_sequences([[1]], padding="middle")
    with pytest.raises(ValueError, match="truncating"):
        pad_sequences([[1]], truncating="both")
    with pytest.raises(ValueError, match="maxlen"):
        pad_sequences([[1]], maxlen=-1)
    with pytest.raises(ValueError, match="sequence 1"):
        pad_sequences([[1], 2])
    with pytest.raises(ValueError, match="sequence 1 have shape"):
        pad_sequences([np.ones((2, 3)), np.ones((2, 4))])
