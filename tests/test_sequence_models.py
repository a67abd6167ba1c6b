"""The sequence layers inside functional models: masks flowing from Embedding / Masking
through the recurrent layers, Bidirectional, MultiHeadAttention with graph and causal masks,
gradients through the graph, save and load."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import cnn
from cnn.backend import floatx_scope
from cnn.layers import (LSTM, Bidirectional, Dense, Embedding, Input, LayerNormalization,
                        Masking, MultiHeadAttention, PositionEmbedding, TimeDistributed)
from cnn.models import Model, load_model
from cnn.utils.gradient_check import numerical_gradient
from helpers import gradient_error

Add = pytest.importorskip("cnn.layers.merge",
                          reason="needs the functional API (the engine branch)").Add

T, V = 6, 9


def ids(seed=0, n=5):
    """Token ids (n, T), right-padded with zeros to different lengths."""
    rng = np.random.default_rng(seed)
    x = rng.integers(1, V, size=(n, T))
    for i, length in enumerate(rng.integers(1, T + 1, size=n)):
        x[i, length:] = 0
    return x.astype(np.float64)


def text_model(mask_zero=True, steps=T):
    tokens = Input((steps,))
    x = Embedding(V, 4, mask_zero=mask_zero)(tokens)
    x = Bidirectional(LSTM(3, return_sequences=True))(x)
    x = LSTM(3)(x)
    return Model(inputs=tokens, outputs=Dense(2, activation="softmax")(x))


def test_embedding_mask_reaches_the_recurrent_layers():
    """A padded sequence gives what the same weights give on the sequence without padding."""
    cnn.set_seed(0)
    model = text_model()
    x = ids()
    out = model.predict(x)
    for i in range(len(x)):
        length = int((x[i] != 0).sum())
        short = text_model(steps=length)
        short.set_weights(model.get_weights())
        np.testing.assert_allclose(short.predict(x[i:i + 1, :length]), out[i:i + 1], atol=1e-6)
    unmasked = text_model(mask_zero=False)
    unmasked.set_weights(model.get_weights())
    assert not np.allclose(unmasked.predict(x), out, atol=1e-4)


def check_model_gradients(model, x, y):
    """Every trainable weight's gradient against central differences of the loss."""
    analytic = [g.copy() for g in model.compute_gradients(x, y).gradients]
    for weight, grad in zip(model.trainable_weights, analytic):
        numeric = numerical_gradient(lambda: model.compute_gradients(x, y).loss, weight)
        assert gradient_error(grad, numeric) < 1e-6


@pytest.mark.parametrize("build", ["text", "transformer"])
def test_masked_models_gradients_through_the_graph(build):
    with floatx_scope("float64"):
        cnn.set_seed(1)
        model = text_model() if build == "text" else transformer(causal=True, mask_zero=True)
        model.compile(optimizer="sgd", loss="categorical_crossentropy")
    x = ids(2, 3)
    y = np.eye(2)[[0, 1, 1]] if build == "text" else np.eye(3)[np.arange(3 * T).reshape(3, T) % 3]
    check_model_gradients(model, x, y)


def test_masking_layer_in_a_model_matches_the_trimmed_sequence():
    cnn.set_seed(2)
    inputs = Input((T, 2))
    model = Model(inputs=inputs, outputs=LSTM(3)(Masking()(inputs)))
    x = np.random.default_rng(3).standard_normal((1, T, 2))
    x[0, 4:] = 0
    short = LSTM(3)
    short.build((4, 2))
    short.set_weights(model.get_weights())
    np.testing.assert_allclose(model.predict(x), short.forward(x[:, :4]), atol=1e-6)


def test_time_distributed_passes_the_mask_on_as_keras_3():
    cnn.set_seed(8)
    tokens = Input((T,))
    embedding, dense, lstm = Embedding(V, 4, mask_zero=True), Dense(3), LSTM(2)
    model = Model(tokens, lstm(TimeDistributed(dense)(embedding(tokens))))
    x = ids(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no mask is dropped
        out = model.predict(x)
    expected = lstm.forward(dense.forward(embedding.forward(x)), mask=x != 0)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-7)


def transformer(causal=False, mask_zero=False):
    tokens = Input((T,))
    x = Embedding(V, 8, mask_zero=mask_zero)(tokens)
    x = Add()([x, PositionEmbedding(T)(x)])
    attended = MultiHeadAttention(2, 4, use_causal_mask=causal)(x, x)
    x = LayerNormalization()(Add()([x, attended]))
    return Model(inputs=tokens, outputs=Dense(3, activation="softmax")(x))


@pytest.mark.parametrize("causal,mask_zero", [(False, False), (True, False), (False, True)])
def test_transformer_round_trip(tmp_path, causal, mask_zero):
    cnn.set_seed(4)
    model = transformer(causal, mask_zero)
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    x = ids(5)
    y = np.eye(3)[np.random.default_rng(6).integers(0, 3, (5, T))]
    model.train_on_batch(x, y)
    model.save(tmp_path / "t.h5")
    loaded = load_model(tmp_path / "t.h5")
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_causal_model_output_ignores_later_tokens():
    cnn.set_seed(7)
    model = transformer(causal=True)
    x = ids(8)
    changed = x.copy()
    changed[:, -1] = (changed[:, -1] % (V - 1)) + 1
    a, b = model.predict(x), model.predict(changed)
    np.testing.assert_allclose(a[:, :-1], b[:, :-1], atol=1e-6)
    assert not np.allclose(a[:, -1], b[:, -1])


def test_attention_mask_as_a_model_input():
    cnn.set_seed(9)
    query, mask = Input((T, 4)), Input((T, T))
    out = MultiHeadAttention(2, 2)(query, query, attention_mask=mask)
    model = Model(inputs=[query, mask], outputs=out)
    x = np.random.default_rng(10).standard_normal((2, T, 4))
    allowed = np.tril(np.ones((2, T, T)))
    layer = model.layers[-1]
    np.testing.assert_allclose(model.predict([x, allowed]),
                               layer.forward([x, x, allowed]), atol=1e-6)
