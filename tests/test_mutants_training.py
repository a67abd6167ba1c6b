"""What mutation run 7 (docs/TESTING.md) found unchecked in cnn.ops.activations, cnn.losses and
cnn.optimizers."""

from __future__ import annotations

import inspect
import math
import re

import numpy as np
import pytest
from scipy import special

from cnn import losses, optimizers
from cnn.losses import CategoricalCrossentropy, SeedMeanSquaredError, SparseCategoricalCrossentropy
from cnn.ops import activations as act_ops
from cnn.utils.gradient_check import numerical_gradient, relative_error

# -- activations ------------------------------------------------------------------------------

KINKS = np.array([-1.0, -0.0, 0.0, 0.5, 1.0, 6.0, 7.0])


def torch_value_and_gradient(function, x, upstream):
    """PyTorch's ``function(x)`` and its input gradient for ``upstream``, as NumPy arrays."""
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle of this test")
    xt = torch.tensor(x, requires_grad=True)
    out = function(xt)
    out.backward(torch.tensor(upstream))
    return out.detach().numpy(), xt.grad.numpy()


def torch_oracles():
    """(name, ours forward, ours backward, torch's function) at inputs ON the kinks."""
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle of this test")
    functional = torch.nn.functional
    def ours(forward, backward, **options):
        return (lambda z: forward(z, **options),
                lambda grad, z, a: backward(grad, z, a, **options))
    relu_op = (act_ops.thresholded_relu, act_ops.thresholded_relu_backward)
    return [
        ("relu6", *ours(*relu_op, max_value=6.0), functional.relu6),
        ("threshold 1", *ours(*relu_op, threshold=1.0),
         lambda z: functional.threshold(z, 1.0, 0.0)),
        ("threshold 0.5", *ours(*relu_op, threshold=0.5),
         lambda z: functional.threshold(z, 0.5, 0.0)),
        ("leaky as relu", *ours(*relu_op, negative_slope=0.1),
         lambda z: functional.leaky_relu(z, 0.1)),
        ("leaky_relu", *ours(act_ops.leaky_relu, act_ops.leaky_relu_backward, alpha=0.1),
         lambda z: functional.leaky_relu(z, 0.1)),
        ("elu", *ours(act_ops.elu, act_ops.elu_backward, alpha=0.7),
         lambda z: functional.elu(z, 0.7)),
        ("prelu", lambda z: act_ops.prelu(z, 0.25),
         lambda grad, z, a: act_ops.prelu_backward(grad, z, 0.25)[0],
         lambda z: functional.prelu(z, torch.tensor([0.25], dtype=torch.float64))),
    ]


def test_on_their_kinks_the_relu_family_agrees_with_pytorch():
    """Exactly at 0, at the threshold and at max_value: the value and the branch of the
    gradient are PyTorch's (ReLU6, Threshold, LeakyReLU, ELU, PReLU). The other tests move
    their inputs off the kinks for finite differences, so nothing else looks there."""
    upstream = np.arange(1.0, 1.0 + KINKS.size)
    for name, forward, backward, theirs in torch_oracles():
        value, gradient = torch_value_and_gradient(theirs, KINKS.copy(), upstream)
        ours = forward(KINKS.copy())
        np.testing.assert_array_equal(ours, value, err_msg=name)
        np.testing.assert_array_equal(backward(upstream.copy(), KINKS.copy(), ours), gradient,
                                      err_msg=name)


def test_thresholded_relu_defaults_are_plain_relu():
    """Keras's ``relu(x, negative_slope=0.0, max_value=None, threshold=0.0)``."""
    z = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])
    upstream = np.full_like(z, 3.0)
    np.testing.assert_array_equal(act_ops.thresholded_relu(z), act_ops.relu(z))
    np.testing.assert_array_equal(act_ops.thresholded_relu_backward(upstream, z, None),
                                  act_ops.relu_backward(upstream, z, act_ops.relu(z)))


@pytest.mark.parametrize("ours, scipy_function", [(act_ops.softmax, special.softmax),
                                                   (act_ops.log_softmax, special.log_softmax)])
def test_softmax_shifts_each_row_by_its_own_maximum(ours, scipy_function):
    """Rows a thousand apart: a shift by the maximum of the whole array would make the lower
    row's exponentials all 0 (0 / 0, or log 0)."""
    z = np.array([[1000.0, 999.0, 998.0], [-1000.0, -1001.0, -1002.0]])
    for rows in (z, z[::-1]):
        np.testing.assert_allclose(ours(rows), scipy_function(rows, axis=-1), rtol=1e-12)


# -- losses -----------------------------------------------------------------------------------

def torch_sequence_cross_entropy(logits, target, smoothing):
    """PyTorch's per-sample loss of (N, T, K) logits, the mean over the T steps (Keras's rule),
    and the gradient of its sum over the batch."""
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle of this test")
    z = torch.tensor(logits, requires_grad=True)
    per_step = torch.nn.functional.cross_entropy(  # classes on axis 1 for torch
        z.transpose(1, 2), torch.tensor(target).transpose(1, 2), reduction="none",
        label_smoothing=smoothing)
    per_sample = per_step.mean(dim=1)
    per_sample.sum().backward()
    return per_sample.detach().numpy(), z.grad.numpy()


@pytest.mark.parametrize("steps, classes", [(2, 4), (5, 3)])
def test_sequence_cross_entropy_smooths_over_the_classes_and_averages_the_steps(steps, classes):
    """(N, T, K) targets: label smoothing spreads over the K classes (not T), and each step's
    gradient is divided by T (two steps included, a case no other test has)."""
    rng = np.random.default_rng(11)
    logits = rng.standard_normal((3, steps, classes)) * 2
    target = np.eye(classes)[rng.integers(0, classes, (3, steps))]
    loss = CategoricalCrossentropy(from_logits=True, label_smoothing=0.2)
    expected, expected_gradient = torch_sequence_cross_entropy(logits, target, 0.2)
    np.testing.assert_allclose(loss.per_sample(logits, target), expected, rtol=1e-12)
    np.testing.assert_allclose(loss.gradient(logits, target), expected_gradient, rtol=1e-10,
                               atol=1e-15)
    probabilities = act_ops.softmax(logits)
    np.testing.assert_allclose(CategoricalCrossentropy(label_smoothing=0.2).per_sample(
        probabilities, target), expected, rtol=1e-10)


@pytest.mark.parametrize("name", ["categorical_crossentropy", "MSE"])
def test_summed_losses_on_two_step_sequences_match_central_differences(name):
    rng = np.random.default_rng(12)
    output = act_ops.softmax(rng.standard_normal((3, 2, 4)))
    target = np.eye(4)[rng.integers(0, 4, (3, 2))]
    loss = losses.get(name)
    numeric = numerical_gradient(lambda: float(loss.per_sample(output, target).sum()), output)
    assert relative_error(loss.gradient(output, target), numeric) < 1e-6


def test_cross_entropy_from_logits_is_exact_for_targets_that_do_not_sum_to_one():
    """``d/dz -sum y log softmax(z) = softmax(z) sum(y) - y`` for any targets, not only those
    summing to 1 (soft labels, or the weights a user puts in them)."""
    rng = np.random.default_rng(13)
    z = rng.standard_normal((4, 3)) * 2
    target = rng.random((4, 3))
    loss = CategoricalCrossentropy(from_logits=True)
    numeric = numerical_gradient(lambda: float(loss.per_sample(z, target).sum()), z)
    assert relative_error(loss.gradient(z, target), numeric) < 1e-7


@pytest.mark.parametrize("name", ["binary_crossentropy", "mse", "mae", "huber"])
def test_outputs_of_one_axis_are_samples_of_one_output(name):
    """(N,) outputs and targets (Keras accepts them): the losses and gradients of (N, 1)."""
    rng = np.random.default_rng(15)
    output, target = act_ops.sigmoid(rng.standard_normal(5)), (rng.random(5) > 0.5) * 1.0
    loss = losses.get(name)
    column = (output[:, None], target[:, None])
    np.testing.assert_array_equal(loss.per_sample(output, target), loss.per_sample(*column))
    np.testing.assert_array_equal(loss.gradient(output, target), loss.gradient(*column)[:, 0])


@pytest.mark.parametrize("make", [lambda: CategoricalCrossentropy(),
                                  lambda: losses.get("binary_crossentropy"),
                                  lambda: losses.get("mse")])
def test_a_float32_loss_is_computed_in_float32_whatever_the_targets_dtype(make):
    """Called with float64 (or integer) targets and float32 outputs, the loss converts the
    targets to the outputs' dtype: the same value, bit for bit, as with float32 targets."""
    rng = np.random.default_rng(14)
    output = act_ops.softmax(rng.standard_normal((64, 10))).astype(np.float32)
    target = np.eye(10)[rng.integers(0, 10, 64)]
    loss = make()
    in_float32 = float(loss.per_sample(output, target.astype(np.float32)).mean())
    assert loss.per_sample(output, target).dtype == np.float64  # as a check that it matters
    for given in (target, target.astype(np.int64), target.astype(np.float32)):
        assert loss(given, output) == in_float32


@pytest.mark.parametrize("from_logits", [False, True])
def test_sparse_cross_entropy_takes_the_class_ids_of_a_sequence(from_logits):
    """Ids (N, T) or (N, T, 1) for outputs (N, T, K): the categorical loss of their one-hot
    encoding over the K classes."""
    rng = np.random.default_rng(16)
    logits = rng.standard_normal((3, 5, 4))
    output = logits if from_logits else act_ops.softmax(logits)
    ids = rng.integers(0, 4, (3, 5))
    expected = CategoricalCrossentropy(from_logits=from_logits)(np.eye(4)[ids], output)
    sparse = SparseCategoricalCrossentropy(from_logits=from_logits)
    assert sparse(ids, output) == pytest.approx(expected, rel=1e-12)
    assert sparse(ids[..., None], output) == pytest.approx(expected, rel=1e-12)


def test_a_loss_config_resolves_names_as_the_string_does():
    """``{"name": "MSE"}`` is the seed's loss, as ``"MSE"`` is (exact spelling first);
    an unknown name in a config is refused naming the kind and the valid names."""
    assert type(losses.get({"name": "MSE"})) is SeedMeanSquaredError
    assert type(losses.get({"name": "mse"})) is losses.MeanSquaredError
    with pytest.raises(ValueError, match=r"unknown loss 'msq'; valid loss names: .*\bMSE\b"):
        losses.get({"name": "msq"})
    with pytest.raises(ValueError, match=r"^loss must be given by name \(a string\) or as an "
                                         r"object, got None$"):
        losses.get({"from_logits": True})


def test_loss_names_are_listed_case_insensitively_and_all_resolve():
    names = losses.names()
    assert names == sorted(names, key=str.lower) and len(set(names)) == len(names)
    assert {"MSE", "mse", "huber", "cross_tropy", "sparse_categorical_crossentropy"} <= set(names)
    for name in names:
        assert isinstance(losses.get(name), losses.Loss), name
    assert type(losses.get("MSE")) is SeedMeanSquaredError


def test_losses_show_their_arguments():
    assert repr(losses.MeanSquaredError()) == "MeanSquaredError()"
    assert repr(CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)) == (
        "CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)")
    assert repr(losses.BinaryCrossentropy()) == (
        "BinaryCrossentropy(from_logits=False, label_smoothing=0.0)")


# -- optimizers -------------------------------------------------------------------------------

@pytest.mark.parametrize("given", [{"clipnorm": 1.0, "clipvalue": 0.5},
                                   {"clipnorm": 2.0, "global_clipnorm": 3.0},
                                   {"clipvalue": 0.5, "global_clipnorm": 3.0}])
def test_two_clipping_options_are_refused_naming_both(given):
    shown = ", ".join(f"{key}={value!r}" for key, value in given.items())
    with pytest.raises(ValueError, match=re.escape(
            f"only one of clipnorm, clipvalue and global_clipnorm can be set, got {shown}")):
        optimizers.SGD(**given)


OPTIMIZERS = [optimizers.SGD, optimizers.Adam, optimizers.AdamW, optimizers.RMSprop,
              optimizers.Adagrad, optimizers.Adadelta, optimizers.Nadam]
BOOLEANS = {"nesterov", "centered"}
ZERO_ALLOWED = {"momentum", "weight_decay", "initial_accumulator_value", "beta_1", "beta_2",
                "rho"}
FRACTIONS = {"beta_1", "beta_2", "rho"}
CLIPPING = ("clipnorm", "clipvalue", "global_clipnorm")


def hyper_parameters(cls):
    """The numeric arguments of ``cls``: its own and the clipping options of the base class."""
    own = [name for name in inspect.signature(cls).parameters
           if name not in BOOLEANS and name != "kwargs"]
    return own + list(CLIPPING)


@pytest.mark.parametrize("cls", OPTIMIZERS, ids=lambda c: c.__name__)
def test_every_bad_hyper_parameter_is_refused_naming_it_and_its_bound(cls):
    for name in hyper_parameters(cls):
        if name in FRACTIONS:
            bound = r"in \[0, 1\)"
        else:
            bound = "a finite number " + (">= 0" if name in ZERO_ALLOWED else "> 0")
        for bad in (-1.0, math.nan, 1.0 if name in FRACTIONS else -math.inf):
            with pytest.raises(ValueError, match=rf"^{name} must be {bound}, got {bad!r}$"):
                cls(**{name: bad})


@pytest.mark.parametrize("cls", OPTIMIZERS, ids=lambda c: c.__name__)
def test_zero_is_accepted_exactly_where_keras_accepts_it(cls):
    for name in hyper_parameters(cls):
        if name in ZERO_ALLOWED:
            assert getattr(cls(**{name: 0.0}), name) == 0.0, name
        else:
            with pytest.raises(ValueError, match=rf"^{name} must be"):
                cls(**{name: 0.0})


def test_last_learning_rate_is_none_until_the_first_step():
    optimizer = optimizers.SGD(learning_rate=0.5)
    assert optimizer.last_learning_rate is None
    optimizer.apply_gradients([np.zeros(2)], [np.ones(2)])
    assert optimizer.last_learning_rate == 0.5


def test_sgd_defaults_are_keras_defaults():
    optimizer = optimizers.SGD()
    assert (optimizer.learning_rate, optimizer.momentum, optimizer.nesterov,
            optimizer.weight_decay) == (0.01, 0.0, False, 0.0)


def test_sgd_without_momentum_keeps_no_state():
    """Keras's SGD has no momentum variables when momentum is 0: nothing to save."""
    optimizer = optimizers.SGD(0.1)
    optimizer.apply_gradients([np.zeros(3)], [np.ones(3)])
    assert optimizer.get_state() == {"iterations": 1}


def test_the_optimizers_errors_say_what_is_wrong():
    optimizer = optimizers.SGD(0.1)
    with pytest.raises(ValueError, match=r"^2 parameters but 1 gradients$"):
        optimizer.apply_gradients([np.zeros(2), np.zeros(3)], [np.ones(2)])
    optimizer.apply_gradients([np.zeros(2)], [np.ones(2)])
    with pytest.raises(ValueError, match=r"^optimizer state is for 1 parameters, got 2: an "
                                         r"optimizer instance belongs to one model$"):
        optimizer.apply_gradients([np.zeros(2), np.zeros(3)], [np.ones(2), np.ones(3)])
    with pytest.raises(ValueError, match=r"^nesterov=True needs momentum > 0$"):
        optimizers.SGD(0.1, nesterov=True)
    with pytest.raises(ValueError, match=r"^give the learning rate to the optimizer instance, "
                                         r"not to compile\(\)$"):
        optimizers.get(optimizers.Adam(), learning_rate=0.1)


def test_training_float16_is_refused_saying_why_and_what_to_do():
    optimizers.check_trainable(np.float32)
    with pytest.raises(ValueError, match=re.escape(
            "cannot train a float16 model: without loss scaling its gradients underflow and "
            "overflow (NaN within a few steps). Train it in float32 (cnn.set_floatx('float32') "
            "before building it, or load_model(path, dtype='float32')), then run inference in "
            "float16 with load_model(path, dtype='float16')")):
        optimizers.check_trainable("float16")
