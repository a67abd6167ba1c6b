"""Keras's loss classes, from_logits and label smoothing: values and gradients against
PyTorch, Keras's formulas and central differences; compile, fusing, saving, errors."""

import numpy as np
import pytest
from scipy.special import expit, log_softmax, softmax

import cnn
from cnn import losses
from cnn.backend import floatx_scope
from cnn.layers import Dense, Input, Output, Softmax, TimeDistributed
from cnn.losses import (BinaryCrossentropy, CategoricalCrossentropy, Huber, MeanAbsoluteError,
                        MeanSquaredError, SparseCategoricalCrossentropy)
from cnn.models import Sequential, load_model
from cnn.optimizers import Adam
from cnn.utils.gradient_check import numerical_gradient, relative_error
from helpers import check_model_gradients

RNG = np.random.default_rng(7)
LOGITS = RNG.standard_normal((6, 4)) * 3
IDS = np.array([0, 3, 1, 2, 2, 1])
ONE_HOT = np.eye(4)[IDS]
BINARY = (RNG.random((6, 4)) > 0.5).astype(float)


def value_and_gradient(loss, output, target):
    """The mean loss and its gradient with respect to ``output`` (as the model scales it)."""
    return loss(target, output), loss.gradient(output, target) / output.shape[0]


def torch_value_and_gradient(fn, output, *args, **kwargs):
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle of this test")
    tensor = torch.tensor(output, requires_grad=True)
    value = fn(tensor, *args, **kwargs)
    value.backward()
    return float(value.detach()), tensor.grad.numpy()


def assert_matches(ours, theirs):
    assert ours[0] == pytest.approx(theirs[0], rel=1e-4, abs=1e-6)
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-4, atol=1e-6)


def keras_smoothed(one_hot, s):
    """Keras's documented label smoothing: ``y * (1 - s) + s / num_classes``."""
    return one_hot * (1 - s) + s / one_hot.shape[-1]


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_categorical_from_logits_matches_torch_cross_entropy(smoothing):
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle of this test")
    F = torch.nn.functional
    ours = value_and_gradient(CategoricalCrossentropy(from_logits=True, label_smoothing=smoothing),
                              LOGITS, ONE_HOT)
    # torch smooths as Keras does: (1 - s) y + s / K
    assert_matches(ours, torch_value_and_gradient(F.cross_entropy, LOGITS, torch.tensor(IDS),
                                                  label_smoothing=smoothing))
    # and Keras's formula with the smoothed targets given as probabilities
    smoothed = torch.tensor(keras_smoothed(ONE_HOT, smoothing))
    assert_matches(ours, torch_value_and_gradient(F.cross_entropy, LOGITS, smoothed))


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_categorical_on_probabilities_applies_keras_smoothing(smoothing):
    p = softmax(LOGITS, axis=1)
    loss = CategoricalCrossentropy(label_smoothing=smoothing)
    expected = -(keras_smoothed(ONE_HOT, smoothing) * np.log(p)).sum(axis=1).mean()
    assert loss(ONE_HOT, p) == pytest.approx(expected)
    assert loss(ONE_HOT, p) == pytest.approx(
        CategoricalCrossentropy(from_logits=True, label_smoothing=smoothing)(ONE_HOT, LOGITS))


def test_sparse_categorical_takes_class_ids_like_keras():
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle of this test")
    loss = SparseCategoricalCrossentropy(from_logits=True)
    expected = torch.nn.functional.cross_entropy(torch.tensor(LOGITS), torch.tensor(IDS))
    assert loss(IDS, LOGITS) == pytest.approx(float(expected), rel=1e-6)
    assert loss(IDS.reshape(-1, 1), LOGITS) == pytest.approx(float(expected), rel=1e-6)
    probabilities = SparseCategoricalCrossentropy()(IDS, softmax(LOGITS, axis=1))
    assert probabilities == pytest.approx(float(expected), rel=1e-6)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_binary_from_logits_matches_torch(smoothing):
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle of this test")
    F = torch.nn.functional
    ours = value_and_gradient(BinaryCrossentropy(from_logits=True, label_smoothing=smoothing),
                              LOGITS, BINARY)
    # Keras: y * (1 - s) + 0.5 * s; torch has no smoothing, so it gets the smoothed targets
    smoothed = torch.tensor(BINARY * (1 - smoothing) + 0.5 * smoothing)
    assert_matches(ours, torch_value_and_gradient(F.binary_cross_entropy_with_logits, LOGITS,
                                                  smoothed))
    on_probabilities = BinaryCrossentropy(label_smoothing=smoothing)(BINARY, expit(LOGITS))
    assert on_probabilities == pytest.approx(ours[0], rel=1e-6)


@pytest.mark.parametrize("make, torch_name, kwargs", [
    (MeanSquaredError, "mse_loss", {}),
    (MeanAbsoluteError, "l1_loss", {}),
    (Huber, "huber_loss", {}),
    (lambda: Huber(delta=2.5), "huber_loss", {"delta": 2.5}),
])
def test_regression_losses_match_torch(make, torch_name, kwargs):
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle of this test")
    target = RNG.standard_normal(LOGITS.shape)
    fn = getattr(torch.nn.functional, torch_name)
    assert_matches(value_and_gradient(make(), LOGITS, target),
                   torch_value_and_gradient(fn, LOGITS, torch.tensor(target), **kwargs))


def test_huber_is_keras_formula():
    d = np.array([[0.5, -2.0, 3.0]])
    expected = np.mean([0.5 * 0.25, 1.5 * (2.0 - 0.75), 1.5 * (3.0 - 0.75)])
    assert Huber(delta=1.5)(np.zeros((1, 3)), d) == pytest.approx(expected)


LOSS_OPTIONS = [
    (lambda: CategoricalCrossentropy(from_logits=True), LOGITS, ONE_HOT),
    (lambda: CategoricalCrossentropy(from_logits=True, label_smoothing=0.2), LOGITS, ONE_HOT),
    (lambda: CategoricalCrossentropy(label_smoothing=0.2), softmax(LOGITS, axis=1), ONE_HOT),
    (lambda: SparseCategoricalCrossentropy(from_logits=True), LOGITS, ONE_HOT),
    (lambda: BinaryCrossentropy(from_logits=True), LOGITS, BINARY),
    (lambda: BinaryCrossentropy(from_logits=True, label_smoothing=0.3), LOGITS, BINARY),
    (lambda: BinaryCrossentropy(label_smoothing=0.3), expit(LOGITS), BINARY),
    (lambda: Huber(delta=0.7), LOGITS, RNG.standard_normal(LOGITS.shape)),
]


@pytest.mark.parametrize("make, output, target", LOSS_OPTIONS)
def test_gradients_match_central_differences(make, output, target):
    loss, output = make(), output.copy()
    analytic = loss.gradient(output, target) / output.shape[0]
    numeric = numerical_gradient(lambda: float(loss.per_sample(output, target).mean()), output)
    assert relative_error(analytic, numeric) < 1e-6


# -- in a model -------------------------------------------------------------------------------

def classifier(last, loss):
    with floatx_scope("float64"):
        model = Sequential([Input((5,)), Dense(8, activation="tanh"), last])
    model.compile(optimizer="adam", loss=loss)
    return model


def output_gradient(model, x, y):
    output = model.forward(x, training=True)
    _, grad = model._loss_and_output_grad(0, output, y, None)
    return grad


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_from_logits_with_a_linear_output_gives_exactly_p_minus_y(smoothing):
    x = RNG.standard_normal((6, 5))
    model = classifier(Dense(4), CategoricalCrossentropy(from_logits=True,
                                                         label_smoothing=smoothing))
    logits = model.forward(x)
    expected = (softmax(logits, axis=1) - keras_smoothed(ONE_HOT, smoothing)) / 6
    np.testing.assert_allclose(output_gradient(model, x, ONE_HOT), expected, rtol=1e-12,
                               atol=1e-15)
    check_model_gradients(model, x, ONE_HOT)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_softmax_output_stays_fused_and_equals_the_logits_model(smoothing):
    x = RNG.standard_normal((6, 5))
    fused = classifier(Output(4), CategoricalCrossentropy(label_smoothing=smoothing))
    logits = classifier(Dense(4), CategoricalCrossentropy(from_logits=True,
                                                          label_smoothing=smoothing))
    assert fused.fused_outputs == (0,) and logits.fused_outputs == ()
    logits.set_weights(fused.get_weights())
    np.testing.assert_array_equal(output_gradient(fused, x, ONE_HOT),
                                  output_gradient(logits, x, ONE_HOT))
    check_model_gradients(fused, x, ONE_HOT)


def test_a_softmax_layer_after_the_output_fuses_like_a_softmax_activation():
    x = RNG.standard_normal((6, 5))
    activation = classifier(Output(4), "categorical_crossentropy")
    with floatx_scope("float64"):
        layer = Sequential([Input((5,)), Dense(8, activation="tanh"), Dense(4), Softmax()])
    layer.compile(optimizer="adam", loss="categorical_crossentropy")
    layer.set_weights(activation.get_weights())
    assert layer.fused_outputs == (0,)
    np.testing.assert_array_equal(layer.predict(x), activation.predict(x))
    np.testing.assert_array_equal(output_gradient(layer, x, ONE_HOT),
                                  output_gradient(activation, x, ONE_HOT))
    check_model_gradients(layer, x, ONE_HOT)


def test_binary_from_logits_with_a_linear_output():
    x = RNG.standard_normal((6, 5))
    model = classifier(Dense(4), BinaryCrossentropy(from_logits=True))
    expected = (expit(model.forward(x)) - BINARY) / (6 * 4)
    np.testing.assert_allclose(output_gradient(model, x, BINARY), expected, rtol=1e-12)
    check_model_gradients(model, x, BINARY)


def test_sparse_loss_class_trains_on_class_ids_and_is_saved(tmp_path):
    cnn.set_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 5))
    ids = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0).astype(int)
    model = Sequential([Input((5,)), Dense(16, activation="relu"), Dense(3)])
    model.compile(optimizer=Adam(0.02), loss=SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x, ids, epochs=30, batch_size=32, verbose=0)
    _, accuracy = model.evaluate(x, ids)  # Keras's order: loss, then the metrics
    assert accuracy > 0.9
    model.save(tmp_path / "m.h5")
    loaded = load_model(tmp_path / "m.h5")
    assert isinstance(loaded.loss, SparseCategoricalCrossentropy) and loaded.loss.from_logits
    assert loaded.evaluate(x, ids) == model.evaluate(x, ids)


@pytest.mark.parametrize("id_shape", [(8, 3), (8, 3, 1)])
def test_sparse_loss_takes_class_ids_per_time_step(id_shape):
    rng = np.random.default_rng(1)
    x, ids = rng.standard_normal((8, 3, 5)), rng.integers(0, 4, (8, 3))
    with floatx_scope("float64"):
        model = Sequential([Input((3, 5)), TimeDistributed(Dense(4))])
    model.compile(optimizer="sgd", loss=SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    logits = model.predict(x)
    expected = -np.take_along_axis(log_softmax(logits, axis=-1), ids[..., None], -1).mean()
    loss, accuracy = model.evaluate(x, ids.reshape(id_shape))
    assert loss == pytest.approx(expected, rel=1e-12)
    assert accuracy == pytest.approx((logits.argmax(-1) == ids).mean())
    with pytest.raises(ValueError, match=r"y has shape \(8, 2\), expected \(8, 3, 4\)"):
        model.evaluate(x, ids[:, :2])


@pytest.mark.parametrize("loss", [
    CategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
    BinaryCrossentropy(label_smoothing=0.05), Huber(delta=0.5), MeanAbsoluteError(),
    SparseCategoricalCrossentropy(),
])
def test_loss_objects_are_saved_in_the_compile_config(loss, tmp_path):
    model = Sequential([Input((3,)), Dense(2, activation="sigmoid")])
    model.compile(optimizer="sgd", loss=loss)
    model.save(tmp_path / "m.h5")
    loaded = load_model(tmp_path / "m.h5")
    assert type(loaded.loss) is type(loss)
    assert loaded.loss.get_config() == loss.get_config()


@pytest.mark.parametrize("name, cls", [
    ("SparseCategoricalCrossentropy", SparseCategoricalCrossentropy),
    ("sparse_categorical_crossentropy", SparseCategoricalCrossentropy),
    ("CategoricalCrossentropy", CategoricalCrossentropy), ("Huber", Huber),
    ("MeanSquaredError", MeanSquaredError), ("huber", Huber),
])
def test_names_and_keras_class_names_resolve(name, cls):
    assert type(losses.get(name)) is cls
    assert type(losses.get(cls)) is cls


@pytest.mark.parametrize("make, match", [
    (lambda: CategoricalCrossentropy(label_smoothing=1.5), r"label_smoothing must be in \[0, 1\]"),
    (lambda: BinaryCrossentropy(from_logits="yes"), "from_logits must be True or False"),
    (lambda: Huber(delta=0), "delta must be a finite number > 0"),
    (lambda: losses.get({"name": "huber", "alpha": 1}), "bad config for loss 'huber'"),
    (lambda: SparseCategoricalCrossentropy()(ONE_HOT, LOGITS),
     r"takes class ids of shape \(6,\).*got y_true of shape \(6, 4\)"),
    (lambda: SparseCategoricalCrossentropy()(IDS.reshape(2, 3), LOGITS),
     r"takes class ids of shape \(6,\) .*got y_true of shape \(2, 3\)"),
    (lambda: SparseCategoricalCrossentropy()(IDS + 1, LOGITS),
     r"sparse_categorical_crossentropy: to_categorical: class id 4 is out of range for "
     r"num_classes=4"),
    (lambda: SparseCategoricalCrossentropy()(IDS + 0.5, LOGITS), "not whole numbers"),
    (lambda: MeanSquaredError()(ONE_HOT[:, :3], LOGITS), r"y_true has shape \(6, 3\)"),
    (lambda: MeanSquaredError()(ONE_HOT[:0], LOGITS[:0]),
     r"mean_squared_error: y_pred has shape \(0, 4\); a loss needs a batch of at least one"),
    (lambda: SparseCategoricalCrossentropy()(IDS[:0], LOGITS[:0]),
     r"sparse_categorical_crossentropy: y_pred has shape \(0, 4\)"),
    (lambda: BinaryCrossentropy()(0.0, 0.5), r"binary_crossentropy: y_pred has shape \(\)"),
])
def test_bad_arguments_are_named(make, match):
    with pytest.raises(ValueError, match=match):
        make()
