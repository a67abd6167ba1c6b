"""BatchNormalization: gradients in both modes, statistics against their definitions, configs."""

import numpy as np
import pytest

import cnn
from cnn.backend import floatx_scope
from cnn.layers import BatchNormalization, Conv2D, Dense, Flatten, Input, Output, deserialize, serialize
from cnn.models import Model, load_model
from helpers import build_layer, check_layer_gradients, check_model_gradients

CASES = [
    # input shape without batch, batch shape, axis, per-channel reduction axes
    ((5,), (6, 5), None, (0,)),
    ((3, 4, 4), (4, 3, 4, 4), None, (0, 2, 3)),
    ((3, 4, 2), (4, 3, 4, 2), -1, (0, 1, 2)),
    ((2, 3), (5, 2, 3), 1, (0, 2)),
]


def random(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def random_layer(input_shape, seed=1, **kwargs):
    """A float64 layer whose gamma, beta and moving statistics are not their initial values."""
    layer = build_layer(BatchNormalization(**kwargs), input_shape)
    rng = np.random.default_rng(seed)
    for store in (layer.params, layer.buffers):
        for key, value in store.items():
            value[...] = rng.uniform(0.5, 1.5, value.shape) if key != "moving_mean" else rng.normal(size=value.shape)
    return layer


@pytest.mark.parametrize("input_shape, batch_shape, axis, _", CASES)
@pytest.mark.parametrize("training", [True, False])
def test_gradients_in_training_and_inference_mode(input_shape, batch_shape, axis, _, training):
    layer = random_layer(input_shape, axis=axis)
    # (seed 5: the helper draws its output weights with seed 0, which must differ from x)
    check_layer_gradients(layer, random(batch_shape, seed=5) * 2 + 1, training=training)


@pytest.mark.parametrize("center, scale", [(False, True), (True, False), (False, False)])
def test_gradients_without_beta_or_gamma(center, scale):
    layer = random_layer((3, 2, 2), center=center, scale=scale)
    assert set(layer.params) == {k for k, on in (("beta", center), ("gamma", scale)) if on}
    check_layer_gradients(layer, random((4, 3, 2, 2), seed=5), training=True)


@pytest.mark.parametrize("input_shape, batch_shape, axis, reduce", CASES)
def test_training_output_is_normalised_per_channel(input_shape, batch_shape, axis, reduce):
    layer = random_layer(input_shape, axis=axis)
    x = random(batch_shape) * 3 + 2
    y = layer.forward(x, training=True)
    x_hat = (y - _per_channel(layer.params["beta"], reduce, x.ndim)) / _per_channel(
        layer.params["gamma"], reduce, x.ndim)
    np.testing.assert_allclose(x_hat.mean(axis=reduce), 0, atol=1e-12)
    variance = x.var(axis=reduce)  # biased, as in the layer
    np.testing.assert_allclose(x_hat.var(axis=reduce), variance / (variance + 1e-3), rtol=1e-10)


def _per_channel(values, reduce, ndim):
    return values.reshape([1 if i in reduce else -1 for i in range(ndim)])


@pytest.mark.parametrize("input_shape, batch_shape, axis, reduce", CASES)
def test_moving_statistics_follow_the_keras_update(input_shape, batch_shape, axis, reduce):
    layer = random_layer(input_shape, axis=axis, momentum=0.9)
    mean0, var0 = layer.buffers["moving_mean"].copy(), layer.buffers["moving_variance"].copy()
    x = random(batch_shape, seed=3) * 2 + 1
    layer.forward(x, training=True)
    np.testing.assert_allclose(layer.buffers["moving_mean"], 0.9 * mean0 + 0.1 * x.mean(axis=reduce))
    np.testing.assert_allclose(layer.buffers["moving_variance"],
                               0.9 * var0 + 0.1 * x.var(axis=reduce, ddof=0))


def test_a_batch_with_infinite_values_leaves_the_moving_statistics_alone():
    layer = random_layer((3,))
    before = [w.copy() for w in layer.get_weights()]
    x = random((5, 3))
    x[2, 1] = np.inf
    with np.errstate(invalid="ignore"):
        layer.forward(x, training=True)
    for old, new in zip(before, layer.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_inference_is_the_affine_map_of_the_moving_statistics_and_changes_nothing():
    layer = random_layer((3,))
    x = random((5, 3))
    before = [w.copy() for w in layer.get_weights()]
    y = layer.forward(x, training=False)
    mean, var = layer.buffers["moving_mean"], layer.buffers["moving_variance"]
    expected = layer.params["gamma"] * (x - mean) / np.sqrt(var + 1e-3) + layer.params["beta"]
    np.testing.assert_allclose(y, expected)
    for old, new in zip(before, layer.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_a_frozen_layer_uses_the_moving_statistics_even_in_training():
    layer = random_layer((3,), trainable=False)
    x = random((5, 3))
    np.testing.assert_array_equal(layer.forward(x, training=True), layer.forward(x, training=False))
    assert layer.trainable_params() == []


def test_defaults_and_weights_are_keras():
    layer = build_layer(BatchNormalization(), (4, 5, 5))
    assert (layer.momentum, layer.epsilon) == (0.99, 1e-3)
    assert layer.weight_names() == ["gamma", "beta", "moving_mean", "moving_variance"]
    np.testing.assert_array_equal(layer.params["gamma"], np.ones(4))
    np.testing.assert_array_equal(layer.buffers["moving_variance"], np.ones(4))
    assert [name for name, _ in layer.trainable_params()] == ["gamma", "beta"]
    assert layer.output_shape == (None, 4, 5, 5)


def test_config_round_trip():
    layer = BatchNormalization(axis=-1, momentum=0.9, epsilon=1e-5, center=False,
                               gamma_initializer="zeros", name="bn")
    rebuilt = deserialize(serialize(layer))
    assert rebuilt.get_config() == layer.get_config()


@pytest.mark.parametrize("kwargs, shape, match", [
    ({"axis": 0}, (3,), "axis must be a non-zero int"),
    ({"axis": 3}, (3, 4), r"axis 3 is out of range for input of shape \(None, 3, 4\)"),
    ({"momentum": 1.5}, (3,), r"momentum must be in \[0, 1\]"),
    ({"epsilon": 0}, (3,), "epsilon must be a finite number > 0"),
    ({"gamma_initializer": "twos"}, (3,), "unknown initializer 'twos'"),
])
def test_bad_arguments_are_named(kwargs, shape, match):
    with pytest.raises(ValueError, match=match):
        build_layer(BatchNormalization(**kwargs), shape)


def test_in_a_model_float32_gradients_summary_and_save(tmp_path, capsys):
    cnn.set_seed(0)
    model = Model(Input((1, 6, 6)))
    model.add(Conv2D(3, 3, use_bias=False))
    model.add(BatchNormalization())
    model.add(Flatten())
    model.add(Dense(4, use_bias=False))
    model.add(BatchNormalization())
    model.add(Output(2))
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    x = random((12, 1, 6, 6)).astype(np.float32)
    y = (x.mean(axis=(1, 2, 3)) > 0).astype(np.int64)
    model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    assert model.predict(x).dtype == np.float32
    assert model.layers[1].buffers["moving_mean"].dtype == np.float32
    model.summary()
    assert "Non-trainable params: 14" in capsys.readouterr().out  # 2 x (3 + 4) moving statistics
    model.save(tmp_path / "bn.h5")
    restored = load_model(tmp_path / "bn.h5")
    np.testing.assert_array_equal(restored.predict(x), model.predict(x))


def test_model_gradients_through_batch_normalization():
    with floatx_scope("float64"):
        cnn.set_seed(0)
        model = Model(Input((2, 4, 4)))
        model.add(Conv2D(3, 3, activation="tanh"))
        model.add(BatchNormalization())
        model.add(Flatten())
        model.add(Dense(5, activation="relu"))
        model.add(BatchNormalization())
        model.add(Output(3))
        model.compile(optimizer="sgd", loss="categorical_crossentropy")
        check_model_gradients(model, random((6, 2, 4, 4)), np.eye(3)[[0, 1, 2, 0, 1, 2]])
