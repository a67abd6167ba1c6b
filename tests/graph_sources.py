"""Small trained graph models saved to a file: the sources that test_fuzz_model_files
corrupts and test_hostile_files edits (besides the stack of image layers each has)."""

import numpy as np

import cnn
from cnn.layers import LSTM, Add, Concatenate, Dense, Dropout, Embedding, Input
from cnn.models import Model


def functional_file(path):
    """Two branches of one input, joined by Add and by Concatenate, with Adam's state."""
    cnn.set_seed(0)
    x = Input((5,))
    left = Dense(4, activation="tanh", name="left")(x)
    right = Dense(4, activation="relu", name="right")(x)
    joined = Concatenate(name="joined")([Add(name="sum")([left, right]), x])
    y = Dense(3, activation="softmax", name="head")(Dropout(0.25, seed=3)(joined))
    model = Model(inputs=x, outputs=y, name="graph")
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(1)
    x_train = rng.random((8, 5)).astype(np.float32)
    model.fit(x_train, np.eye(3, dtype=np.float32)[rng.integers(0, 3, 8)], epochs=1, verbose=0)
    model.save(path)
    return path


def sequence_file(path):
    """Token ids through a masking Embedding into an LSTM, trained with RMSprop."""
    cnn.set_seed(0)
    model = Model(Input((6,)), "sequence")
    for layer in (Embedding(12, 4, mask_zero=True), LSTM(5), Dense(2, activation="softmax")):
        model.add_layer(layer)
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy")
    rng = np.random.default_rng(2)
    ids = rng.integers(0, 12, (8, 6)).astype(np.float32)
    model.fit(ids, np.eye(2, dtype=np.float32)[rng.integers(0, 2, 8)], epochs=1, verbose=0)
    model.save(path)
    return path
