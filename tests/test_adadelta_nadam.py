"""Adadelta and Nadam: step by step against their published formulas and torch.optim,
saved and resumed exactly in a model, errors (state round trips and float32: test_optimizers)."""

import numpy as np
import pytest

from cnn import optimizers
from cnn.layers import Dense, Input
from cnn.models import Sequential, load_model
from cnn.optimizers import Adadelta, Nadam
from test_optimizers import GRADS, P0, assert_trajectory, run


def adadelta_reference(lr, rho, eps, wd=0.0):
    p, s, u, expected = P0.copy(), 0.0, 0.0, []
    for g in GRADS:
        g = g + wd * p
        s = rho * s + (1 - rho) * g * g
        d = np.sqrt(u + eps) / np.sqrt(s + eps) * g
        u = rho * u + (1 - rho) * d * d
        p = p - lr * d
        expected.append(p)
    return expected


def nadam_reference(lr, b1, b2, eps, psi, wd=0.0):
    """Dozat's Nadam with the momentum schedule mu_t = b1 (1 - 0.5 * 0.96^(t psi))."""
    def mu(t):
        return b1 * (1 - 0.5 * 0.96 ** (t * psi))

    p, m, v, product, expected = P0.copy(), 0.0, 0.0, 1.0, []
    for t, g in enumerate(GRADS, start=1):
        g = g + wd * p
        product *= mu(t)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        v_hat = v / (1 - b2**t)
        m_bar = (1 - mu(t)) * g / (1 - product) + mu(t + 1) * m / (1 - product * mu(t + 1))
        p = p - lr * m_bar / (np.sqrt(v_hat) + eps)
        expected.append(p)
    return expected


def test_adadelta_matches_published_formula():
    assert_trajectory(run(Adadelta(1.0, rho=0.9, epsilon=1e-6)),
                      adadelta_reference(1.0, 0.9, 1e-6))
    assert_trajectory(run(Adadelta(0.5, weight_decay=0.1)),
                      adadelta_reference(0.5, 0.95, 1e-7, wd=0.1))


def test_adadelta_defaults_are_keras_defaults():
    opt = Adadelta()
    assert (opt.learning_rate, opt.rho, opt.epsilon) == (0.001, 0.95, 1e-7)


@pytest.mark.parametrize("psi", [1.0, 0.004])
def test_nadam_matches_published_formula(psi):
    assert_trajectory(run(Nadam(0.01, momentum_decay=psi)),
                      nadam_reference(0.01, 0.9, 0.999, 1e-7, psi))
    assert_trajectory(run(Nadam(0.01, beta_1=0.8, beta_2=0.95, epsilon=1e-6, weight_decay=0.1,
                                momentum_decay=psi)),
                      nadam_reference(0.01, 0.8, 0.95, 1e-6, psi, wd=0.1))


def test_nadam_defaults_follow_keras_3():
    opt = Nadam()
    assert (opt.learning_rate, opt.beta_1, opt.beta_2, opt.epsilon) == (0.001, 0.9, 0.999, 1e-7)
    # Keras 3: u_t = beta_1 * (1 - 0.5 * 0.96 ** t)
    assert opt.momentum(3) == pytest.approx(0.9 * (1 - 0.5 * 0.96**3), rel=1e-15)


def torch_trajectory(make, steps=30, seed=0):
    """(ours, theirs) parameters after every step, for float64 parameters and gradients."""
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle of this test")
    rng = np.random.default_rng(seed)
    shapes = [(4, 3), (5,)]
    ours = [rng.standard_normal(s) for s in shapes]
    theirs = [torch.tensor(p.copy(), dtype=torch.float64, requires_grad=True) for p in ours]
    optimizer, reference = make(torch, theirs)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # torch keeps NAdam's mu_product in this dtype
    try:
        steps_compared(optimizer, reference, ours, theirs, rng, shapes, steps, torch)
    finally:
        torch.set_default_dtype(default)


def steps_compared(optimizer, reference, ours, theirs, rng, shapes, steps, torch):
    for _ in range(steps):
        grads = [rng.standard_normal(s) for s in shapes]
        optimizer.apply_gradients(ours, [g.copy() for g in grads])
        for tensor, g in zip(theirs, grads):
            tensor.grad = torch.tensor(g)
        reference.step()
        for mine, tensor in zip(ours, theirs):
            np.testing.assert_allclose(mine, tensor.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("make", [
    lambda torch, p: (Adadelta(1.0, rho=0.9, epsilon=1e-6), torch.optim.Adadelta(p)),
    lambda torch, p: (Adadelta(0.1, rho=0.95, epsilon=1e-7, weight_decay=0.01),
                      torch.optim.Adadelta(p, lr=0.1, rho=0.95, eps=1e-7, weight_decay=0.01)),
    # torch's default NAdam (momentum_decay=0.004)
    lambda torch, p: (Nadam(0.002, epsilon=1e-8, momentum_decay=0.004),
                      torch.optim.NAdam(p, lr=0.002)),
    # Keras 3's schedule (0.96^t) is torch's NAdam with momentum_decay=1
    lambda torch, p: (Nadam(0.01), torch.optim.NAdam(p, lr=0.01, eps=1e-7, momentum_decay=1.0)),
    lambda torch, p: (Nadam(0.01, weight_decay=0.05),
                      torch.optim.NAdam(p, lr=0.01, eps=1e-7, momentum_decay=1.0,
                                        weight_decay=0.05)),
])
def test_step_by_step_equal_to_torch(make):
    torch_trajectory(make)


@pytest.mark.parametrize("name", ["adadelta", "nadam"])
def test_saved_model_resumes_training_exactly(name, tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 4)), rng.standard_normal((32, 2))
    model = Sequential([Input((4,)), Dense(3, activation="tanh"), Dense(2)])
    model.compile(optimizer=optimizers.get(name, learning_rate=0.05), loss="mse")
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    model.save(tmp_path / "m.h5")
    loaded = load_model(tmp_path / "m.h5")
    assert type(loaded.optimizer) is type(model.optimizer)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False)
    loaded.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("make, match", [
    (lambda: Adadelta(rho=1.0), r"rho must be in \[0, 1\)"),
    (lambda: Adadelta(epsilon=0), "epsilon must be a finite number > 0"),
    (lambda: Nadam(momentum_decay=0), "momentum_decay must be a finite number > 0"),
    (lambda: Nadam(beta_1=-0.5), r"beta_1 must be in \[0, 1\)"),
])
def test_bad_hyper_parameters_are_named(make, match):
    with pytest.raises(ValueError, match=match):
        make()
