"""Rescaling and Normalization (with adapt): values as Keras defines them, gradients,
saving with their statistics, errors."""

import numpy as np
import pytest

from cnn.backend import floatx_scope
from cnn.layers import Dense, Flatten, Input, Normalization, Rescaling, deserialize, serialize
from cnn.models import Sequential, load_model
from helpers import build_layer, check_layer_gradients

RNG = np.random.default_rng(4)
IMAGES = RNG.uniform(0, 255, (10, 3, 4, 5))


@pytest.mark.parametrize("scale, offset", [(1 / 255, 0.0), (1 / 127.5, -1.0),
                                           (np.array([1.0, 2.0, 3.0]).reshape(3, 1, 1), 0.5)])
def test_rescaling_is_x_times_scale_plus_offset(scale, offset):
    layer = build_layer(Rescaling(scale, offset), (3, 4, 5))
    np.testing.assert_allclose(layer.forward(IMAGES), IMAGES * scale + offset)
    check_layer_gradients(layer, IMAGES.copy())


@pytest.mark.parametrize("axis, kept", [(-1, (2,)), (1, (0,)), ((1, 3), (0, 2)), (None, ()),
                                        ((-3, -2), (0, 1))])
def test_adapt_learns_the_mean_and_variance_over_the_other_axes(axis, kept):
    layer = Normalization(axis=axis)
    layer.adapt(IMAGES)
    build_layer(layer, (3, 4, 5))
    reduced = tuple(i + 1 for i in range(3) if i not in kept)
    mean = IMAGES.mean(axis=(0, *reduced), keepdims=True)
    std = IMAGES.std(axis=(0, *reduced), keepdims=True)
    np.testing.assert_allclose(layer.forward(IMAGES), (IMAGES - mean) / std)
    np.testing.assert_allclose(layer.buffers["mean"], mean[0])
    check_layer_gradients(layer, IMAGES.copy())


def test_given_statistics_and_invert():
    mean, variance = [1.0, 2.0, 3.0], [4.0, 1.0, 0.25]
    forward = build_layer(Normalization(axis=1, mean=mean, variance=variance), (3, 4, 5))
    inverse = build_layer(Normalization(axis=1, mean=mean, variance=variance, invert=True),
                          (3, 4, 5))
    m, s = np.reshape(mean, (3, 1, 1)), np.sqrt(np.reshape(variance, (3, 1, 1)))
    np.testing.assert_allclose(forward.forward(IMAGES), (IMAGES - m) / s)
    np.testing.assert_allclose(inverse.forward(forward.forward(IMAGES)), IMAGES)
    check_layer_gradients(inverse, IMAGES.copy())
    scalar = build_layer(Normalization(axis=None, mean=2.0, variance=9.0), (3,))
    np.testing.assert_allclose(scalar.forward(np.array([[5.0, 2.0, -1.0]])), [[1.0, 0.0, -1.0]])


def test_a_constant_feature_is_divided_by_the_floor_not_by_zero():
    layer = Normalization()
    layer.adapt(np.ones((4, 2)))
    build_layer(layer, (2,))
    out = layer.forward(np.full((1, 2), 1.5))
    np.testing.assert_allclose(out, 0.5 / 1e-7)


def adapted_model(adapt_before_build):
    with floatx_scope("float64"):
        normalization = Normalization(axis=1)
        if adapt_before_build:
            normalization.adapt(IMAGES)
        model = Sequential([Input((3, 4, 5)), Rescaling(0.5, 1.0), normalization, Flatten(),
                            Dense(2)])
        if not adapt_before_build:
            normalization.adapt(IMAGES * 0.5 + 1.0)
    return model


@pytest.mark.parametrize("adapt_before_build", [True, False])
def test_saved_and_loaded_with_their_statistics(adapt_before_build, tmp_path):
    model = adapted_model(adapt_before_build)
    model.compile(optimizer="adam", loss="mse")
    y = RNG.standard_normal((10, 2))
    model.fit(IMAGES, y, epochs=2, batch_size=5, verbose=0)
    model.save(tmp_path / "m.h5")
    loaded = load_model(tmp_path / "m.h5")
    np.testing.assert_array_equal(loaded.predict(IMAGES), model.predict(IMAGES))
    np.testing.assert_array_equal(loaded.layers[1].buffers["variance"],
                                  model.layers[1].buffers["variance"])
    assert loaded.layers[1].trainable_params() == []  # the statistics are not trained
    for layer in model.layers[:2]:
        assert deserialize(serialize(layer)).get_config() == layer.get_config()


def test_statistics_do_not_change_in_training():
    model = adapted_model(True)
    before = model.layers[1].get_weights()
    model.compile(optimizer="adam", loss="mse")
    model.fit(IMAGES, RNG.standard_normal((10, 2)), epochs=1, verbose=0)
    for a, b in zip(before, model.layers[1].get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("make, shape, match", [
    (lambda: Rescaling("half"), None, "Rescaling: scale must be a number"),
    (lambda: Rescaling(np.nan), None, "Rescaling: scale must be finite"),
    (lambda: Rescaling([1.0, 2.0]), (3, 4, 5), r"scale of shape \(2,\) does not broadcast"),
    (lambda: Normalization(mean=1.0), None, "give both mean and variance"),
    (lambda: Normalization(mean=0.0, variance=-1.0), None, "variance must be >= 0"),
    (lambda: Normalization(axis=1.5), None, "axis must be an int"),
    (lambda: Normalization(axis=4), (3, 4, 5), r"axis 4 is not a feature axis"),
    (lambda: Normalization(axis=0), (3, 4, 5), "axis 0 is the batch"),
    (lambda: Normalization(axis=1, mean=[1.0, 2.0], variance=[1.0, 1.0]), (3, 4, 5),
     r"mean has shape \(2,\), expected a number, \(3,\)"),
])
def test_bad_arguments_are_named(make, shape, match):
    with pytest.raises(ValueError, match=match):
        build_layer(make(), shape)


def test_adapt_and_use_errors():
    layer = build_layer(Normalization(), (5,))
    with pytest.raises(ValueError, match=r"has no statistics: call adapt\(data\) first"):
        layer.forward(np.ones((2, 5)))
    with pytest.raises(ValueError, match=r"takes samples of shape \(5,\), but adapt got data "
                                         r"of shape \(2, 4\)"):
        layer.adapt(np.ones((2, 4)))
    with pytest.raises(ValueError, match="NaN or infinity"):
        layer.adapt(np.array([[np.nan] * 5]))
    with pytest.raises(ValueError, match="at least one sample"):
        layer.adapt(np.ones((0, 5)))
    early = Normalization(axis=1)
    early.adapt(IMAGES)
    with pytest.raises(ValueError, match=r"was adapted to samples whose statistics have shape "
                                         r"\(3, 1, 1\)"):
        build_layer(early, (4, 4, 5))
