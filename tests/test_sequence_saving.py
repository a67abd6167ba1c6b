"""Models with the sequence layers are saved and loaded exactly (weights, configs, outputs)."""

from __future__ import annotations

import numpy as np

import cnn
from cnn.layers import (GRU, LSTM, Bidirectional, Dense, Embedding, Input, LayerNormalization,
                        Masking, RepeatVector, SimpleRNN)
from cnn.models import Model, load_model


def round_trip(model, x, tmp_path):
    model.save(tmp_path / "model.h5")
    loaded = load_model(tmp_path / "model.h5")
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert [layer.get_config() for layer in loaded.layers] == [
        layer.get_config() for layer in model.layers]
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    return loaded


def test_text_model_round_trip(tmp_path):
    cnn.set_seed(0)
    model = Model(Input((6,)), "text")
    model.add_layer(Embedding(20, 5, mask_zero=True))
    model.add_layer(Bidirectional(LSTM(4, return_sequences=True, recurrent_dropout=0.1),
                                  merge_mode="sum"))
    model.add_layer(LayerNormalization(epsilon=1e-4))
    model.add_layer(Bidirectional(GRU(3), backward_layer=SimpleRNN(3, go_backwards=True)))
    model.add_layer(Dense(2, activation="softmax"))
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    x = np.random.default_rng(1).integers(0, 20, (8, 6)).astype(np.float32)
    y = np.eye(2)[np.arange(8) % 2]
    model.train_on_batch(x, y)
    round_trip(model, x, tmp_path)


def test_seq2seq_model_round_trip(tmp_path):
    cnn.set_seed(0)
    model = Model(Input((5, 3)), "seq2seq")
    model.add_layer(Masking(mask_value=0.0))
    model.add_layer(LSTM(4))
    model.add_layer(RepeatVector(3))
    model.add_layer(LSTM(4, return_sequences=True))
    model.add_layer(Dense(3, activation="softmax"))
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    x = np.random.default_rng(2).standard_normal((6, 5, 3)).astype(np.float32)
    model.train_on_batch(x, np.eye(3)[np.arange(18).reshape(6, 3) % 3])
    round_trip(model, x, tmp_path)
