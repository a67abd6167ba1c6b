"""Every update rule, step by step, against a hand computation of its published formula.

The expected values are written out in plain float64 NumPy from the formulas in the PyTorch
documentation (torch.optim.SGD/Adam/AdamW/RMSprop/Adagrad) and Keras's clipping rules,
independently of ``cnn.optimizers``.
"""

import math

import numpy as np
import pytest

from cnn import optimizers, schedules
from cnn.optimizers import SGD, Adadelta, Adagrad, Adam, AdamW, Nadam, RMSprop

P0 = np.array([[0.5, -1.0, 2.0], [0.0, 0.3, -0.7]])
GRADS = [
    np.array([[0.1, -0.2, 0.3], [0.4, 0.0, -0.5]]),
    np.array([[-0.3, 0.1, 0.2], [0.0, -0.6, 0.5]]),
    np.array([[0.2, 0.2, -0.1], [0.3, 0.1, 0.0]]),
    np.array([[0.05, -0.4, 0.3], [-0.2, 0.3, 0.1]]),
]


def run(optimizer, grads=GRADS, p0=P0):
    """Parameters after each step, applying ``grads`` one after another to a copy of ``p0``."""
    param = p0.copy()
    trajectory = []
    for g in grads:
        optimizer.apply_gradients([param], [g.copy()])
        trajectory.append(param.copy())
    return trajectory


def assert_trajectory(actual, expected):
    assert len(actual) == len(expected)
    for step, (a, e) in enumerate(zip(actual, expected), start=1):
        np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-14, err_msg=f"step {step}")


# -- SGD ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("momentum, nesterov, wd", [
    (0.0, False, 0.0), (0.9, False, 0.0), (0.9, True, 0.0), (0.0, False, 0.1), (0.8, True, 0.05),
])
def test_sgd_matches_pytorch_formula(momentum, nesterov, wd):
    lr = 0.1
    p, buf, expected = P0.copy(), None, []
    for g in GRADS:
        g = g + wd * p
        if momentum:
            buf = g if buf is None else momentum * buf + g
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g
        expected.append(p)
    assert_trajectory(run(SGD(lr, momentum=momentum, nesterov=nesterov, weight_decay=wd)), expected)


def test_sgd_nesterov_needs_momentum():
    with pytest.raises(ValueError, match="nesterov=True needs momentum"):
        SGD(0.1, nesterov=True)


# -- Adam and AdamW ------------------------------------------------------------------------------

def adam_reference(lr, b1, b2, eps, wd=0.0, decoupled=False):
    p, m, v, expected = P0.copy(), 0.0, 0.0, []
    for t, g in enumerate(GRADS, start=1):
        if decoupled:
            p = p - lr * wd * p
        else:
            g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
        expected.append(p)
    return expected


def test_adam_matches_published_formula():
    assert_trajectory(run(Adam(0.01, beta_1=0.8, beta_2=0.95, epsilon=1e-6)),
                      adam_reference(0.01, 0.8, 0.95, 1e-6))


def test_adam_defaults_are_keras_defaults():
    adam = Adam()
    assert (adam.learning_rate, adam.beta_1, adam.beta_2, adam.epsilon) == (0.001, 0.9, 0.999, 1e-7)
    assert_trajectory(run(adam), adam_reference(0.001, 0.9, 0.999, 1e-7))


def test_adam_weight_decay_is_an_l2_term_in_the_gradient():
    assert_trajectory(run(Adam(0.01, weight_decay=0.1)),
                      adam_reference(0.01, 0.9, 0.999, 1e-7, wd=0.1))


def test_adamw_decays_the_weights_directly():
    assert_trajectory(run(AdamW(0.01, weight_decay=0.1)),
                      adam_reference(0.01, 0.9, 0.999, 1e-7, wd=0.1, decoupled=True))
    assert AdamW().weight_decay == 0.004  # Keras's default (PyTorch's is 0.01)


def test_adamw_decay_differs_from_l2_decay():
    coupled = run(Adam(0.01, weight_decay=0.1))[-1]
    decoupled = run(AdamW(0.01, weight_decay=0.1))[-1]
    assert np.abs(coupled - decoupled).max() > 1e-4


# -- RMSprop -------------------------------------------------------------------------------------

@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_rmsprop_matches_pytorch_formula(centered, momentum):
    lr, rho, eps = 0.01, 0.9, 1e-7
    p, s, c, buf, expected = P0.copy(), 0.0, 0.0, 0.0, []
    for g in GRADS:
        s = rho * s + (1 - rho) * g * g
        denominator = s
        if centered:
            c = rho * c + (1 - rho) * g
            denominator = s - c * c
        update = g / (np.sqrt(denominator) + eps)
        if momentum:
            buf = momentum * buf + update
            update = buf
        p = p - lr * update
        expected.append(p)
    assert_trajectory(run(RMSprop(lr, rho=rho, momentum=momentum, centered=centered)), expected)


def test_centered_rmsprop_never_takes_the_root_of_a_negative_number():
    # With a constant gradient s - c^2 is zero in exact arithmetic; rounding can make it < 0.
    grads = [np.full((50,), 0.1 + 1e-9 * i, dtype=np.float32) for i in range(30)]
    trajectory = run(RMSprop(0.01, centered=True), grads, np.zeros(50, dtype=np.float32))
    assert np.all(np.isfinite(trajectory[-1]))


# -- Adagrad -------------------------------------------------------------------------------------

def test_adagrad_matches_published_formula():
    lr, init, eps = 0.1, 0.1, 1e-7
    p, acc, expected = P0.copy(), np.full_like(P0, init), []
    for g in GRADS:
        acc = acc + g * g
        p = p - lr * g / (np.sqrt(acc) + eps)
        expected.append(p)
    assert_trajectory(run(Adagrad(lr, initial_accumulator_value=init)), expected)


# -- clipping ------------------------------------------------------------------------------------

def test_clipvalue_clips_each_element():
    g = np.array([[0.5, -3.0], [0.2, 4.0]])
    (p,) = run(SGD(1.0, clipvalue=1.0), [g], np.zeros((2, 2)))
    np.testing.assert_allclose(p, -np.clip(g, -1.0, 1.0))


def test_clipnorm_rescales_each_array_separately():
    big, small = np.array([3.0, 4.0]), np.array([0.3, 0.4])  # norms 5 and 0.5
    params = [np.zeros(2), np.zeros(2)]
    SGD(1.0, clipnorm=1.0).apply_gradients(params, [big, small])
    np.testing.assert_allclose(params[0], -big / 5.0)
    np.testing.assert_allclose(params[1], -small)


def test_global_clipnorm_rescales_all_arrays_together():
    a, b = np.array([3.0, 0.0]), np.array([0.0, 4.0])  # joint norm 5
    params = [np.zeros(2), np.zeros(2)]
    SGD(1.0, global_clipnorm=2.5).apply_gradients(params, [a, b])
    np.testing.assert_allclose(params[0], -a / 2.0)
    np.testing.assert_allclose(params[1], -b / 2.0)


def test_clipping_leaves_small_gradients_alone_and_does_not_touch_the_caller_arrays():
    g = np.array([0.3, -0.4])
    params = [np.zeros(2)]
    SGD(1.0, global_clipnorm=1.0).apply_gradients(params, [g])
    np.testing.assert_allclose(params[0], -g)
    big = np.array([30.0, -40.0])
    SGD(1.0, clipnorm=1.0).apply_gradients([np.zeros(2)], [big])
    np.testing.assert_array_equal(big, [30.0, -40.0])


def test_only_one_clipping_option():
    with pytest.raises(ValueError, match="only one of clipnorm, clipvalue and global_clipnorm"):
        Adam(clipnorm=1.0, clipvalue=0.5)


# -- learning rates and schedules ----------------------------------------------------------------

def test_a_schedule_is_called_with_the_number_of_steps_taken():
    calls = []

    def schedule(step):
        calls.append(step)
        return 0.1 / (1 + step)

    optimizer = SGD(schedule)
    expected, p = [], P0.copy()
    for step, g in enumerate(GRADS):
        p = p - 0.1 / (1 + step) * g
        expected.append(p)
    assert_trajectory(run(optimizer), expected)
    assert calls == [0, 1, 2, 3]
    assert optimizer.last_learning_rate == pytest.approx(0.1 / 4)
    assert optimizer.current_learning_rate() == pytest.approx(0.1 / 5)


def test_cosine_schedule_drives_adam():
    schedule = schedules.CosineDecay(0.01, decay_steps=3)
    lrs = [schedule(t) for t in range(4)]
    p, m, v, expected = P0.copy(), 0.0, 0.0, []
    for t, (g, lr) in enumerate(zip(GRADS, lrs), start=1):
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        p = p - lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-7)
        expected.append(p)
    assert_trajectory(run(Adam(schedule)), expected)


def test_learning_rate_assignment_is_checked():
    optimizer = SGD(0.1)
    optimizer.learning_rate = 0.05
    assert optimizer.current_learning_rate() == 0.05
    for bad in (0, -1.0, float("nan"), "fast", None, True):
        with pytest.raises(ValueError, match="learning_rate"):
            optimizer.learning_rate = bad


def test_a_schedule_returning_nonsense_is_reported():
    optimizer = SGD(lambda step: float("nan"))
    with pytest.raises(ValueError, match="returned nan at step 0"):
        optimizer.apply_gradients([np.zeros(2)], [np.ones(2)])


@pytest.mark.parametrize("kwargs, match", [
    ({"beta_1": 1.0}, r"beta_1 must be in \[0, 1\)"),
    ({"beta_2": -0.1}, r"beta_2 must be in \[0, 1\)"),
    ({"epsilon": 0}, "epsilon must be a finite number > 0"),
    ({"weight_decay": -1}, "weight_decay must be a finite number >= 0"),
    ({"beta_1": "high"}, "beta_1 must be a number"),
])
def test_bad_hyper_parameters_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Adam(**kwargs)


# -- float32, state, configs ---------------------------------------------------------------------

@pytest.mark.parametrize("cls", [SGD, Adam, AdamW, RMSprop, Adagrad, Adadelta, Nadam])
def test_float32_parameters_stay_float32_and_close_to_float64(cls):
    p32 = P0.astype(np.float32)
    grads32 = [g.astype(np.float32) for g in GRADS]
    trajectory = run(cls(0.01), grads32, p32)
    assert trajectory[-1].dtype == np.float32
    np.testing.assert_allclose(trajectory[-1], run(cls(0.01))[-1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make_optimizer", [
    lambda: SGD(0.1, momentum=0.9, nesterov=True), lambda: Adam(0.01), lambda: AdamW(0.01),
    lambda: RMSprop(0.01, momentum=0.5, centered=True), lambda: Adagrad(0.1),
    lambda: Adadelta(1.0, weight_decay=0.01), lambda: Nadam(0.01),
    lambda: Nadam(0.01, momentum_decay=0.004),
], ids=["sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta", "nadam", "nadam-decay"])
def test_state_round_trip_continues_exactly(make_optimizer):
    optimizer = make_optimizer()  # a fresh one each run: the test must not depend on order
    param = P0.copy()
    for g in GRADS[:2]:
        optimizer.apply_gradients([param], [g])
    restored = optimizers.get(optimizer.get_config())
    restored.set_state(optimizer.get_state(), [param])
    twin = param.copy()
    for g in GRADS[2:]:
        optimizer.apply_gradients([param], [g])
        restored.apply_gradients([twin], [g])
    np.testing.assert_array_equal(param, twin)
    assert restored.iterations == optimizer.iterations == 4


def test_config_round_trip_keeps_a_schedule():
    adam = Adam(schedules.CosineDecay(1e-3, 100, warmup_target=2e-3, warmup_steps=10), clipnorm=1.0)
    restored = optimizers.get(adam.get_config())
    assert isinstance(restored.learning_rate, schedules.CosineDecay)
    assert restored.get_config() == adam.get_config()
    assert restored.learning_rate(50) == adam.learning_rate(50)


def test_a_plain_function_learning_rate_cannot_be_saved():
    with pytest.raises(ValueError, match="cannot be saved"):
        SGD(lambda step: 0.1).get_config()


def test_get_by_name_instance_and_unknown_name():
    assert isinstance(optimizers.get("Adam"), Adam)
    assert optimizers.get("rmsprop", learning_rate=0.5).learning_rate == 0.5
    sgd = SGD(0.1)
    assert optimizers.get(sgd) is sgd
    with pytest.raises(ValueError, match="unknown optimizer 'adamax'; valid optimizer names: "
                                         "adadelta, adagrad, adam, adamw, nadam, rmsprop, sgd"):
        optimizers.get("adamax")
    with pytest.raises(ValueError, match="bad config for optimizer 'adam'"):
        optimizers.get({"name": "adam", "momentum": 0.9})


def test_one_optimizer_instance_belongs_to_one_parameter_list():
    optimizer = SGD(0.1)
    optimizer.apply_gradients([np.zeros(2)], [np.ones(2)])
    with pytest.raises(ValueError, match="belongs to one model"):
        optimizer.apply_gradients([np.zeros(2), np.zeros(3)], [np.ones(2), np.ones(3)])


def test_repr_names_the_hyper_parameters():
    text = repr(RMSprop(0.01, centered=True))
    assert text.startswith("RMSprop(learning_rate=0.01") and "centered=True" in text
    assert math.isfinite(Adam().current_learning_rate())
