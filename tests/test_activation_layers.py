"""ReLU, LeakyReLU, ELU, Softmax and PReLU layers: values and gradients against PyTorch and
central differences, saving, errors."""

import numpy as np
import pytest

from cnn.backend import floatx_scope
from cnn.layers import (ELU, Dense, Input, LeakyReLU, PReLU, ReLU, Rescaling, Softmax, deserialize,
                        serialize)
from cnn.models import Sequential, load_model
from helpers import build_layer, check_layer_gradients


def away_from(x, points, gap=1e-3):
    """``x`` with every entry within ``gap`` of a kink moved off it (for finite differences)."""
    for p in points:
        close = np.abs(x - p) < gap
        x[close] = p + 2 * gap
    return x


def inputs(shape=(2, 3, 4, 5), seed=0, kinks=(0.0,)):
    return away_from(np.random.default_rng(seed).standard_normal(shape) * 4, kinks)


RELU_OPTIONS = [
    {}, {"max_value": 6.0}, {"negative_slope": 0.2}, {"threshold": 1.5},
    {"max_value": 3.0, "negative_slope": 0.1, "threshold": 0.5}, {"max_value": 0.0},
]


def relu_reference(x, max_value=None, negative_slope=0.0, threshold=0.0):
    """Keras's definition, written out in NumPy."""
    out = np.where(x > threshold, x, negative_slope * (x - threshold))
    return out if max_value is None else np.minimum(out, max_value)


@pytest.mark.parametrize("options", RELU_OPTIONS)
def test_relu_values_and_gradients(options):
    layer = build_layer(ReLU(**options), (3, 4, 5))
    kinks = [0.0, options.get("threshold", 0.0)]
    if options.get("max_value") is not None:
        kinks.append(options["max_value"])
    x = inputs(kinks=kinks)
    np.testing.assert_array_equal(layer.forward(x), relu_reference(x, **options))
    check_layer_gradients(layer, x)


@pytest.mark.parametrize("slope, kwargs", [(0.3, {}), (0.05, {"negative_slope": 0.05}),
                                           (0.2, {"alpha": 0.2})])
def test_leaky_relu_slope_default_and_keras2_alias(slope, kwargs):
    layer = build_layer(LeakyReLU(**kwargs), (6,))
    x = inputs((4, 6))
    np.testing.assert_allclose(layer.forward(x), np.where(x > 0, x, slope * x))
    assert layer.negative_slope == slope
    check_layer_gradients(layer, x)


@pytest.mark.parametrize("alpha", [1.0, 0.4])
def test_elu_values_and_gradients(alpha):
    layer = build_layer(ELU(alpha), (6,))
    x = inputs((4, 6))
    np.testing.assert_allclose(layer.forward(x), np.where(x > 0, x, alpha * np.expm1(x)))
    check_layer_gradients(layer, x)


@pytest.mark.parametrize("axis", [-1, 1, 2, -2, 3])
def test_softmax_over_any_axis(axis):
    layer = build_layer(Softmax(axis), (3, 4, 5))
    x = inputs()
    out = layer.forward(x)
    np.testing.assert_allclose(out.sum(axis=axis), 1.0)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    np.testing.assert_allclose(out, e / e.sum(axis=axis, keepdims=True))
    check_layer_gradients(layer, x)


@pytest.mark.parametrize("shared_axes, alpha_shape", [
    (None, (3, 4, 5)), ([2, 3], (3, 1, 1)), ([1, 2, 3], (1, 1, 1)), (1, (1, 4, 5)),
])
def test_prelu_slopes_and_gradients(shared_axes, alpha_shape):
    layer = build_layer(PReLU(alpha_initializer=0.25, shared_axes=shared_axes), (3, 4, 5))
    assert layer.params["alpha"].shape == alpha_shape
    layer.params["alpha"][...] = np.random.default_rng(1).uniform(0.1, 0.5, alpha_shape)
    x = inputs()
    alpha = layer.params["alpha"]
    np.testing.assert_allclose(layer.forward(x), np.where(x >= 0, x, alpha * x))
    check_layer_gradients(layer, x)


def test_prelu_default_slope_is_keras_zeros():
    layer = build_layer(PReLU(), (4,))
    np.testing.assert_array_equal(layer.params["alpha"], np.zeros(4))


# -- against PyTorch ----------------------------------------------------------------------------

def torch_pair(layer, module, x, seed=5):
    """Outputs and input gradients of a cnn layer and a torch module for the same x and
    upstream gradient; returns them as (ours, theirs) pairs, plus the torch input tensor."""
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle of this test")
    upstream = np.random.default_rng(seed).standard_normal(x.shape)
    ours_out = layer.forward(x)
    ours_grad = layer.backward(upstream.copy())
    xt = torch.tensor(x, requires_grad=True)
    theirs_out = module(xt)
    theirs_out.backward(torch.tensor(upstream))
    np.testing.assert_allclose(ours_out, theirs_out.detach().numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ours_grad, xt.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_activation_layers_match_pytorch():
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle of this test")
    nn = torch.nn
    cases = [
        (ReLU(), nn.ReLU(), [0.0]),
        (ReLU(max_value=6.0), nn.ReLU6(), [0.0, 6.0]),
        (ReLU(negative_slope=0.1), nn.LeakyReLU(0.1), [0.0]),
        (ReLU(threshold=1.0), nn.Threshold(1.0, 0.0), [1.0]),
        (LeakyReLU(0.3), nn.LeakyReLU(0.3), [0.0]),
        (ELU(0.7), nn.ELU(0.7), [0.0]),
        (Softmax(), nn.Softmax(dim=-1), []),
        (Softmax(axis=1), nn.Softmax(dim=1), []),
    ]
    for layer, module, kinks in cases:
        build_layer(layer, (3, 4, 5))
        torch_pair(layer, module, inputs(kinks=kinks))


def test_prelu_matches_pytorch_per_channel():
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle of this test")
    layer = build_layer(PReLU(alpha_initializer=0.25, shared_axes=[2, 3]), (3, 4, 5))
    module = torch.nn.PReLU(num_parameters=3, init=0.25).double()
    slopes = np.array([0.1, 0.25, 0.4])
    layer.params["alpha"][...] = slopes.reshape(3, 1, 1)
    with torch.no_grad():
        module.weight.copy_(torch.tensor(slopes))
    torch_pair(layer, module, inputs())
    np.testing.assert_allclose(layer.grads["alpha"].reshape(3), module.weight.grad.numpy(),
                               rtol=1e-4, atol=1e-4)


# -- saving and errors --------------------------------------------------------------------------

LAYERS = [
    lambda: ReLU(max_value=6.0, negative_slope=0.1, threshold=0.5),
    lambda: LeakyReLU(alpha=0.2),
    lambda: ELU(0.5),
    lambda: Softmax(axis=1),
    lambda: PReLU(alpha_initializer=0.1, alpha_regularizer="l2", shared_axes=[1]),
]


@pytest.mark.parametrize("make", LAYERS)
def test_saved_and_loaded_exactly(make, tmp_path):
    rng = np.random.default_rng(2)
    with floatx_scope("float64"):
        model = Sequential([Input((4, 5)), Dense(5), make()])
    layer = model.layers[-1]
    if "alpha" in layer.params:
        layer.params["alpha"][...] = rng.uniform(0.05, 0.5, layer.params["alpha"].shape)
    model.compile(optimizer="adam", loss="mse")
    x, y = rng.standard_normal((8, 4, 5)), rng.standard_normal((8, 4, 5))
    model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    model.save(tmp_path / "m.h5")
    loaded = load_model(tmp_path / "m.h5")
    assert serialize(loaded.layers[-1]) == serialize(layer)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    loaded.fit(x, y, epochs=1, batch_size=4, verbose=0)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    again = deserialize(serialize(layer))
    assert again.get_config() == layer.get_config()


def test_prelu_trains_its_slopes():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3))
    y = np.where(x >= 0, x, 0.5 * x)  # the target is a PReLU with slope 0.5
    model = Sequential([Input((3,)), PReLU()])
    model.compile(optimizer="sgd", loss="mse", learning_rate=0.5)
    model.fit(x, y, epochs=60, batch_size=64, verbose=0)
    np.testing.assert_allclose(model.layers[0].params["alpha"], 0.5, atol=1e-3)


@pytest.mark.parametrize("make, shape, match", [
    (lambda: ReLU(max_value=-1), None, "ReLU: max_value must be a finite number >= 0"),
    (lambda: ReLU(negative_slope=-0.1), None, "ReLU: negative_slope must be"),
    (lambda: ReLU(threshold="high"), None, "ReLU: threshold must be a number"),
    (lambda: LeakyReLU(0.1, alpha=0.2), None, "same argument"),
    (lambda: ELU(-1.0), None, "ELU: alpha must be"),
    (lambda: Softmax(axis=1.5), None, "Softmax axis must be an int"),
    (lambda: Softmax(axis=3), (4, 5), r"axis 3 is not an axis of a sample of shape \(4, 5\)"),
    (lambda: Softmax(axis=0), (4, 5), "axis 0 is the batch"),
    (lambda: PReLU(shared_axes=[3]), (4, 5), r"shared_axes \[3\] name an axis beyond"),
    (lambda: PReLU(alpha_initializer="nonsense"), None, "unknown initializer"),
])
def test_bad_arguments_are_named(make, shape, match):
    with pytest.raises(ValueError, match=match):
        layer = make()
        build_layer(layer, shape)


def test_masks_pass_through_activation_and_preprocessing_layers():
    for layer in (ReLU(), LeakyReLU(), ELU(), Softmax(), PReLU(), Rescaling(2.0)):
        mask = np.array([[True, False, True]])
        assert layer.compute_mask(np.zeros((1, 3, 2)), mask) is mask
