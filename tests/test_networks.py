"""Tests for cnn.networks: the networks the command line knows by name."""

import numpy as np
import pytest

from cnn import networks, optimizers


@pytest.mark.parametrize("name, params", [("seed", 202750), ("lenet", 421642), ("mlp", 235146)])
def test_networks_build_for_mnist(name, params):
    model = networks.build(name)
    assert model.input.input_shape == (1, 28, 28) and model.cur_output_shape == (10,)
    assert model.count_params() == params


def test_lenet_layout():
    model = networks.build("lenet")
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten", "Dense", "Output"]
    assert [layer.filters for layer in model.layers if hasattr(layer, "filters")] == [32, 64]
    assert all(layer.padding == "same" for layer in model.layers if hasattr(layer, "filters"))


def test_networks_adapt_to_the_data():
    model = networks.build("lenet", input_shape=(3, 32, 32), num_classes=4)
    assert model.input.input_shape == (3, 32, 32) and model.cur_output_shape == (4,)
    model.compile(optimizer=networks.default_optimizer("lenet"), loss="categorical_crossentropy")
    x = np.random.default_rng(0).random((2, 3, 32, 32), dtype=np.float32)
    assert model.predict(x).shape == (2, 4)


def test_default_optimizers():
    seed = networks.default_optimizer("seed")
    assert isinstance(seed, optimizers.SGD) and seed.current_learning_rate() == pytest.approx(0.1)
    adam = networks.default_optimizer("lenet")
    assert isinstance(adam, optimizers.Adam) and adam.current_learning_rate() == pytest.approx(1e-3)
    # Another optimizer gets its own default rate, unless one is given.
    assert networks.default_optimizer("seed", "adam").current_learning_rate() == pytest.approx(1e-3)
    assert networks.default_optimizer("mlp", None, 0.01).current_learning_rate() == pytest.approx(0.01)


def test_unknown_network():
    with pytest.raises(ValueError, match="unknown network 'vgg'; known: seed, lenet, mlp"):
        networks.build("vgg")
