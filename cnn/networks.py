"""Networks known by name, for the command line and quick starts.

    model = networks.build("lenet", input_shape=(1, 28, 28), num_classes=10)
    model.compile(optimizer=networks.default_optimizer("lenet"), loss="categorical_crossentropy")

- ``seed``: the seed's MNIST network: Conv2D(20, 9x9, ReLU) -> AveragePooling2D(2) ->
  Flatten -> Dense(100, ReLU) -> Output (softmax). Default optimizer: SGD, learning rate 0.1.
- ``lenet``: LeNet-like: two blocks of Conv2D(3x3, same padding, ReLU) + MaxPooling2D(2)
  with 32 and 64 filters -> Flatten -> Dense(128, ReLU) -> Output. Default: Adam, 0.001.
- ``mlp``: Flatten -> Dense(256, ReLU) -> Dropout(0.2) -> Dense(128, ReLU) -> Output.
  Default: Adam, 0.001.

Every network takes images (C, H, W) and ends in an ``Output`` of ``num_classes`` units.
"""

from __future__ import annotations

from cnn import optimizers
from cnn.layers import AveragePooling2D, Conv2D, Dense, Dropout, Flatten, Input, MaxPooling2D, Output
from cnn.models import Model


def seed(input_shape=(1, 28, 28), num_classes=10) -> Model:
    """The seed's MNIST network (named "MNIST_cnn", as in the seed's example)."""
    model = Model(Input(input_shape), "MNIST_cnn")
    for layer in (Conv2D(20, 9, activation="relu"), AveragePooling2D(2), Flatten(),
                  Dense(100, activation="relu"), Output(num_classes)):
        model.add_layer(layer)
    return model


def lenet(input_shape=(1, 28, 28), num_classes=10) -> Model:
    """Two 3x3 conv blocks (32, 64 filters) with max pooling, Dense(128), Output."""
    model = Model(Input(input_shape), "lenet")
    for layer in (Conv2D(32, 3, padding="same", activation="relu"), MaxPooling2D(2),
                  Conv2D(64, 3, padding="same", activation="relu"), MaxPooling2D(2),
                  Flatten(), Dense(128, activation="relu"), Output(num_classes)):
        model.add_layer(layer)
    return model


def mlp(input_shape=(1, 28, 28), num_classes=10) -> Model:
    """A multi-layer perceptron: Dense(256) -> Dropout(0.2) -> Dense(128) -> Output."""
    model = Model(Input(input_shape), "mlp")
    for layer in (Flatten(), Dense(256, activation="relu"), Dropout(0.2),
                  Dense(128, activation="relu"), Output(num_classes)):
        model.add_layer(layer)
    return model


_NETWORKS = {"seed": (seed, "sgd", 0.1), "lenet": (lenet, "adam", 1e-3), "mlp": (mlp, "adam", 1e-3)}
NAMES = tuple(_NETWORKS)


def build(name: str, input_shape=(1, 28, 28), num_classes: int = 10) -> Model:
    """A new, uncompiled network ``name`` for images ``input_shape`` (C, H, W)."""
    return _lookup(name)[0](tuple(input_shape), int(num_classes))


def default_optimizer(name: str, optimizer: str | None = None, learning_rate: float | None = None):
    """The optimizer network ``name`` trains with by default; ``optimizer`` and
    ``learning_rate`` override its choices (a named optimizer gets its own default rate)."""
    _, default_name, default_rate = _lookup(name)
    if optimizer is None:
        optimizer = default_name
    if learning_rate is None and optimizer == default_name:
        learning_rate = default_rate
    return optimizers.get(optimizer, learning_rate)


def _lookup(name):
    if name not in _NETWORKS:
        raise ValueError(f"unknown network {name!r}; known: {', '.join(NAMES)}")
    return _NETWORKS[name]
