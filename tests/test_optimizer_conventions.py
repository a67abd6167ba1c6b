"""Optimizers' Keras defaults, argument errors and state checks: written to kill the mutants
that survived the first mutation run (docs/TESTING.md)."""

from __future__ import annotations

import numpy as np
import pytest

from cnn import optimizers
from cnn.optimizers import SGD, Adadelta, Adagrad, Adam, AdamW, Nadam, RMSprop

# Keras 3's documented defaults
KERAS_DEFAULTS = {
    RMSprop: {"learning_rate": 0.001, "rho": 0.9, "momentum": 0.0, "epsilon": 1e-7,
              "centered": False},
    Adagrad: {"learning_rate": 0.001, "initial_accumulator_value": 0.1, "epsilon": 1e-7},
    AdamW: {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7,
            "weight_decay": 0.004},
    Adam: {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
}


@pytest.mark.parametrize("cls", KERAS_DEFAULTS, ids=lambda c: c.__name__)
def test_keras_defaults(cls):
    optimizer = cls()
    for key, value in KERAS_DEFAULTS[cls].items():
        assert getattr(optimizer, key) == value, key


@pytest.mark.parametrize("cls", [RMSprop, Adagrad, AdamW, Adam, SGD, Adadelta, Nadam],
                         ids=lambda c: c.__name__)
def test_clipping_arguments_reach_the_base_class(cls):
    assert cls(clipnorm=1.5).clipnorm == 1.5
    assert cls(clipvalue=0.5).clipvalue == 0.5
    assert cls(global_clipnorm=2.0).global_clipnorm == 2.0


def test_sgd_step_is_the_clipped_gradient():
    param = np.zeros(3)
    SGD(learning_rate=0.1, clipvalue=0.5).apply_gradients([param], [np.array([10.0, -10.0, 0.1])])
    np.testing.assert_allclose(param, [-0.05, 0.05, -0.01])


def test_adagrad_clipnorm_changes_the_step():
    """Adagrad's first step depends on the gradient's scale, so clipping shows in it."""
    grad = np.array([3.0, 4.0])
    a, b = np.zeros(2), np.zeros(2)
    Adagrad(0.1, clipnorm=1.0).apply_gradients([a], [grad])
    Adagrad(0.1).apply_gradients([b], [grad])
    assert not np.allclose(a, b)


@pytest.mark.parametrize("make, name", [
    (lambda: RMSprop(rho=1.5), "rho"),
    (lambda: RMSprop(momentum=-1.0), "momentum"),
    (lambda: RMSprop(epsilon=0.0), "epsilon"),
    (lambda: Adagrad(initial_accumulator_value=-0.1), "initial_accumulator_value"),
    (lambda: Adagrad(epsilon=-1.0), "epsilon"),
    (lambda: Adam(beta_1=1.0), "beta_1"),
])
def test_bad_hyperparameters_are_named(make, name):
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        make()


def test_adagrad_accepts_a_zero_initial_accumulator():
    assert Adagrad(initial_accumulator_value=0.0).initial_accumulator_value == 0.0


def state_after_two_steps():
    optimizer = Adam(0.01)
    param = np.ones(3)
    for _ in range(2):
        optimizer.apply_gradients([param], [np.arange(3.0)])
    return optimizer.get_state(), param


def test_set_state_rejects_unknown_entries():
    state, param = state_after_two_steps()
    with pytest.raises(ValueError, match=r"unknown entry '0/bogus'"):
        Adam(0.01).set_state({**state, "0/bogus": np.zeros(3)}, [param])
    with pytest.raises(ValueError, match=r"unknown entry '1/m'"):
        Adam(0.01).set_state({**state, "1/m": np.zeros(3)}, [param])


def test_set_state_rejects_wrong_shapes():
    state, param = state_after_two_steps()
    key = next(k for k in state if k != "iterations")
    with pytest.raises(ValueError, match=r"has shape \(4,\), expected \(3,\)"):
        Adam(0.01).set_state({**state, key: np.zeros(4)}, [param])


def test_set_state_without_iterations_starts_at_zero():
    state, param = state_after_two_steps()
    del state["iterations"]
    restored = Adam(0.01)
    restored.set_state(state, [param])
    assert restored.iterations == 0


def test_repr_names_the_hyperparameters():
    optimizer = RMSprop(0.01, rho=0.8, centered=True, clipnorm=2.0)
    optimizer.apply_gradients([np.zeros(2)], [np.ones(2)])  # sets last_learning_rate
    text = repr(optimizer)
    assert text.startswith("RMSprop(learning_rate=0.01, clipnorm=2.0, rho=0.8, ")
    assert "last_learning_rate" not in text
    assert "rho=0.8" in text and "centered=True" in text and "clipnorm=2.0" in text
    assert "iterations" not in text and "_slots" not in text


def test_names_lists_every_optimizer():
    assert {"sgd", "adam", "adamw", "rmsprop", "adagrad"} <= set(optimizers.names())
