"""A small network and data for the tests of worker processes (``test_workers*.py``,
``test_defaults.py``)."""

import numpy as np

import cnn
from cnn.layers import (AveragePooling2D, BatchNormalization, Conv2D, Dense, Dropout, Flatten,
                        Input, Layer, Output)
from cnn.models import Model
from cnn.optimizers import SGD


def convnet(optimizer=None, dropout=False, seed=0, extra=(), batch_norm=False):
    """A small seed-like network on 1x10x10 images, 3 classes: ``extra`` layers after the
    Flatten, then a BatchNormalization and a Dropout(0.3) when asked."""
    cnn.set_seed(seed)
    model = Model(Input((1, 10, 10)), "small")
    model.add(Conv2D(4, 3, activation="relu"))
    model.add(AveragePooling2D(2))
    model.add(Flatten())
    for layer in extra:
        model.add(layer)
    if batch_norm:
        model.add(BatchNormalization())
    if dropout:
        model.add(Dropout(0.3))
    model.add(Dense(8, activation="relu"))
    model.add(Output(3))
    model.compile(optimizer=optimizer or SGD(0.1), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    return model


class BatchCentering(Layer):
    """Subtracts the batch's mean from every sample: it mixes the samples of a batch and
    does not sum its statistics over slices (``cnn.replica``), so worker processes refuse
    it for training."""

    def forward(self, x, training=False):
        return x - x.mean(axis=0, keepdims=True)

    def backward(self, grad):
        return grad - grad.mean(axis=0, keepdims=True)


def data(n=70, seed=1):
    """``n`` random 1x10x10 images and class ids (0-2) that depend on them."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, 1, 10, 10), dtype=np.float32)
    y = (x[:, 0, :5].mean(axis=(1, 2)) * 6).astype(int) % 3
    return x, y
