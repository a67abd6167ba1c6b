"""The gradient checker itself, on gradients known to be right and known to be wrong.

Everything the suite verifies only numerically (BatchNormalization, the recurrent layers, the
losses) rests on these functions, so each must fail on a wrong gradient of every common shape
of mistake: off by a factor, a sign, a transposition, one wrong element, the gradient with
respect to the other argument, and pass on the right one.
"""

from __future__ import annotations

import numpy as np
import pytest

from cnn.layers import BatchNormalization, Dense, LSTM
from cnn.utils.gradient_check import (GradientCheckError, check_directional, check_gradients,
                                      directional_derivative, gradient_error, numerical_gradient,
                                      random_directions, relative_error)
from helpers import build_layer, check_layer_gradients

RNG = np.random.default_rng(1234)
A = RNG.standard_normal((4, 3))
B = RNG.standard_normal((3, 4))
C = RNG.standard_normal((4, 4))


def problem():
    """f(X, Y) = sum(sin(X) * A) + sum((X @ Y) * C) + sum(Y ** 3 * B); X (4, 3), Y (3, 4)."""
    rng = np.random.default_rng(7)
    arrays = {"X": rng.standard_normal((4, 3)), "Y": rng.standard_normal((3, 4))}

    def f():
        x, y = arrays["X"], arrays["Y"]
        return float((np.sin(x) * A).sum() + ((x @ y) * C).sum() + (y ** 3 * B).sum())

    def right():
        x, y = arrays["X"], arrays["Y"]
        return {"X": np.cos(x) * A + C @ y.T, "Y": x.T @ C + 3 * y ** 2 * B}

    return f, arrays, right()


def square_problem():
    """f(X) = sum((X @ M) * X) for a non-symmetric M; gradient X @ M.T + X @ M, which differs
    from its transpose because X is not symmetric."""
    rng = np.random.default_rng(3)
    m = rng.standard_normal((5, 5))
    arrays = {"X": rng.standard_normal((5, 5))}

    def f():
        x = arrays["X"]
        return float(((x @ m) * x).sum())

    x = arrays["X"]
    return f, arrays, {"X": x @ m.T + x @ m}


def one_element_wrong(grads, name, delta=1e-2):
    wrong = {k: v.copy() for k, v in grads.items()}
    wrong[name].flat[5] += delta
    return wrong


def wrong_gradients():
    f, arrays, right = problem()
    yield "factor 2", f, arrays, {k: 2 * v for k, v in right.items()}
    yield "factor 1.001", f, arrays, {"X": right["X"] * 1.001, "Y": right["Y"]}
    yield "sign", f, arrays, {"X": -right["X"], "Y": right["Y"]}
    yield "one element", f, arrays, one_element_wrong(right, "Y")
    # the gradient of the wrong argument, in the shape of the right one
    yield "wrong argument", f, arrays, {"X": right["Y"].T, "Y": right["Y"]}
    yield "zero", f, arrays, {"X": np.zeros_like(right["X"]), "Y": right["Y"]}
    f, arrays, right = square_problem()
    yield "transposed", f, arrays, {"X": right["X"].T.copy()}


WRONG = list(wrong_gradients())


# -- relative_error and gradient_error ----------------------------------------------------

def test_relative_error_values():
    assert relative_error([1.0], [2.0]) == pytest.approx(1 / 3)
    assert relative_error([3.0, 4.0], [3.0, 4.0]) == 0.0
    assert relative_error([3.0, 4.0], [0.0, 0.0]) == 1.0
    assert relative_error([1.0, 0.0], [0.0, 1.0]) == pytest.approx(np.sqrt(2) / 2)
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error([1.0], [-1.0]) == 1.0
    # symmetric, scale-free
    a, b = RNG.standard_normal(7), RNG.standard_normal(7)
    assert relative_error(a, b) == pytest.approx(relative_error(b, a))
    assert relative_error(1e-8 * a, 1e-8 * b) == pytest.approx(relative_error(a, b))


def test_relative_error_compares_both_arguments():
    """The planted bug of issue 17 compared an argument with itself: it must be visible."""
    a = np.arange(6.0).reshape(2, 3)
    assert relative_error(a, a + 1) > 0.1
    assert relative_error(a + 1, a) > 0.1


def test_relative_error_rejects_different_shapes():
    with pytest.raises(ValueError, match=r"shapes differ: \(2, 3\) vs \(3, 2\)"):
        relative_error(np.zeros((2, 3)), np.zeros((3, 2)))


def test_relative_error_propagates_nan():
    assert not relative_error([np.nan], [1.0]) < 1e-6


def test_gradient_error_is_absolute_near_zero():
    assert gradient_error(np.full(3, 1e-9), np.zeros(3)) == pytest.approx(np.sqrt(3) * 1e-9)
    assert gradient_error(np.ones(3), 2 * np.ones(3)) == pytest.approx(1 / 3)
    # one of the two large: relative error, so a zero analytic gradient is caught
    assert gradient_error(np.zeros(3), np.ones(3)) == 1.0


# -- numerical_gradient -------------------------------------------------------------------

def test_numerical_gradient_of_known_function():
    f, arrays, right = problem()
    for name in arrays:
        numeric = numerical_gradient(f, arrays[name])
        assert numeric.shape == arrays[name].shape
        np.testing.assert_allclose(numeric, right[name], rtol=1e-7, atol=1e-8)


def test_numerical_gradient_restores_the_array():
    f, arrays, _ = problem()
    before = arrays["X"].copy()
    numerical_gradient(f, arrays["X"])
    np.testing.assert_array_equal(arrays["X"], before)


def test_numerical_gradient_needs_float64():
    with pytest.raises(TypeError, match="float64"):
        numerical_gradient(lambda: 0.0, np.zeros(3, dtype=np.float32))


def test_numerical_gradient_is_central():
    """A one-sided difference of x**3 at 1 with eps 1e-3 is off by 3e-3; central by 1e-6."""
    x = np.array([1.0])
    numeric = numerical_gradient(lambda: float(x[0] ** 3), x, eps=1e-3)
    assert abs(numeric[0] - 3.0) < 2e-6


def test_numerical_gradient_names_itself_and_the_dtype():
    with pytest.raises(TypeError,
                       match=r"^numerical_gradient needs a float64 array, got float32$"):
        numerical_gradient(lambda: 0.0, np.zeros(3, dtype=np.float32))


@pytest.mark.parametrize("view", ["transposed", "strided", "scalar"])
def test_numerical_gradient_perturbs_a_view_where_f_reads_it(view):
    """A transposed or strided view is perturbed in place (its flat copy was, and the
    gradient came out all zero), and a 0-d array has one element."""
    rng = np.random.default_rng(5)
    base = rng.standard_normal((4, 6))
    weights = rng.standard_normal((4, 6))
    pick = {"transposed": lambda a: a.T, "strided": lambda a: a[::2, 1::2],
            "scalar": lambda a: a[1, 2, ...]}[view]
    x, right = pick(base), pick(weights)
    before = base.copy()
    numeric = numerical_gradient(lambda: float((np.sin(base) * weights).sum()), x)
    assert numeric.shape == x.shape
    np.testing.assert_allclose(numeric, np.cos(x) * right, rtol=1e-7, atol=1e-9)
    np.testing.assert_array_equal(base, before)


# -- the full check -----------------------------------------------------------------------

def test_full_check_passes_right_gradients():
    f, arrays, right = problem()
    errors = check_gradients(f, arrays, right)
    assert set(errors) == {"X", "Y"} and max(errors.values()) < 1e-8
    f, arrays, right = square_problem()
    assert check_gradients(f, arrays, right)["X"] < 1e-8


@pytest.mark.parametrize("case", WRONG, ids=[w[0] for w in WRONG])
def test_full_check_fails_wrong_gradients(case):
    _, f, arrays, wrong = case
    with pytest.raises(GradientCheckError, match="relative error"):
        check_gradients(f, arrays, wrong)


def test_full_check_rejects_wrong_shapes_and_names():
    f, arrays, right = problem()
    with pytest.raises(GradientCheckError, match="shape"):
        check_gradients(f, arrays, {"X": right["X"].T, "Y": right["Y"]})
    with pytest.raises(ValueError, match="differ"):
        check_gradients(f, arrays, {"X": right["X"]})


def test_full_check_fails_on_nan():
    f, arrays, right = problem()
    right["X"][0, 0] = np.nan
    with pytest.raises(GradientCheckError):
        check_gradients(f, arrays, right)


# -- the random-direction check -----------------------------------------------------------

def test_random_directions_are_unit_and_random():
    arrays = [np.zeros((3, 2)), np.zeros(5)]
    a = random_directions(arrays, np.random.default_rng(0))
    b = random_directions(arrays, np.random.default_rng(1))
    assert [v.shape for v in a] == [(3, 2), (5,)]
    assert sum(float((v * v).sum()) for v in a) == pytest.approx(1.0)
    assert not np.allclose(a[0], b[0])


def test_directional_derivative_of_known_function():
    f, arrays, right = problem()
    vs = random_directions(arrays.values(), np.random.default_rng(5))
    expected = sum(float((g * v).sum()) for g, v in zip(right.values(), vs))
    before = {k: v.copy() for k, v in arrays.items()}
    assert directional_derivative(f, arrays.values(), vs) == pytest.approx(expected, rel=1e-8)
    for name in arrays:  # restored exactly
        np.testing.assert_array_equal(arrays[name], before[name])


def test_directional_derivative_counts_two_calls():
    calls = []
    x = np.ones(100)
    directional_derivative(lambda: calls.append(1) or float(x.sum()), [x], [np.ones(100)])
    assert len(calls) == 2


@pytest.mark.parametrize("seed", range(5))
def test_directional_check_passes_right_gradients(seed):
    f, arrays, right = problem()
    pairs = check_directional(f, arrays, right, seed=seed, directions=3)
    assert len(pairs) == 3
    for predicted, measured in pairs:
        assert abs(predicted) > 1e-3  # a real comparison, not 0 against 0
        assert predicted == pytest.approx(measured, rel=1e-7)


@pytest.mark.parametrize("case", WRONG, ids=[w[0] for w in WRONG])
def test_directional_check_fails_wrong_gradients(case):
    _, f, arrays, wrong = case
    with pytest.raises(GradientCheckError, match="directional derivative"):
        check_directional(f, arrays, wrong, directions=3)


def test_directional_check_needs_float64():
    with pytest.raises(TypeError, match="float64"):
        check_directional(lambda: 0.0, {"x": np.zeros(2, np.float32)}, {"x": np.zeros(2)})


# -- the layer helper the suite uses, on a deliberately wrong backward ----------------------

def perturbed_backward(cls, factor=None, flip_param=None):
    class Wrong(cls):
        def backward(self, grad, *args, **kwargs):
            dx = super().backward(grad, *args, **kwargs)
            if flip_param is not None:
                self.grads[flip_param] = -self.grads[flip_param]
            return dx if factor is None else dx * factor
    return Wrong


@pytest.mark.parametrize("cls, shape, kwargs", [
    (Dense, (4,), {"units": 3}),
    (BatchNormalization, (4,), {}),
    (LSTM, (3, 2), {"units": 2}),
])
def test_layer_check_catches_wrong_backward(cls, shape, kwargs):
    x = np.random.default_rng(0).standard_normal((5, *shape))
    layer = build_layer(cls(**kwargs), shape)
    check_layer_gradients(layer, x, training=True)  # the right one passes
    wrong = build_layer(perturbed_backward(cls, factor=1.01)(**kwargs), shape)
    with pytest.raises(AssertionError, match="input"):
        check_layer_gradients(wrong, x, training=True)
    param = next(iter(layer.params))
    wrong = build_layer(perturbed_backward(cls, flip_param=param)(**kwargs), shape)
    with pytest.raises(AssertionError, match=param):
        check_layer_gradients(wrong, x, training=True)


# -- what the mutation run of 2026-12-01 found unchecked (docs/TESTING.md) -----------------

def test_directional_check_defaults_are_one_direction_of_seed_0():
    f, arrays, right = problem()
    calls = []

    def counted():
        calls.append(1)
        return f()

    pairs = check_directional(counted, arrays, right)
    assert len(pairs) == 1 and len(calls) == 2
    assert pairs == check_directional(f, arrays, right, seed=0, directions=1)


def test_directional_check_is_seeded():
    f, arrays, right = problem()
    first = check_directional(f, arrays, right, seed=3, directions=2)
    assert check_directional(f, arrays, right, seed=3, directions=2) == first
    assert check_directional(f, arrays, right, seed=4, directions=2) != first


def test_directional_check_uses_its_eps():
    """f = sum(x ** 3): the central difference along a unit v is exactly
    ``<3 x ** 2, v> + eps ** 2 * sum(v ** 3)``, so a large eps shows in what is measured."""
    x = np.random.default_rng(2).standard_normal(6)
    f = lambda: float((x ** 3).sum())  # noqa: E731
    eps = 0.1
    [(predicted, measured)] = check_directional(f, {"x": x}, {"x": 3 * x ** 2}, seed=1,
                                                eps=eps, tolerance=1e-2, atol=1e-2)
    [v] = random_directions([x], np.random.default_rng(1))
    assert predicted == pytest.approx(float(3 * x ** 2 @ v), rel=1e-12)
    assert measured == pytest.approx(predicted + eps ** 2 * float((v ** 3).sum()), rel=1e-9)
    assert abs(measured - predicted) > 1e-5  # eps = 1e-6 would measure within 1e-9


def test_directional_check_passes_at_exact_equality():
    """``|a - n| <= atol + tolerance (|a| + |n|)``: a constant function with a zero gradient
    passes even with no tolerance at all (0 <= 0)."""
    x = np.ones(3)
    assert check_directional(lambda: 1.0, {"x": x}, {"x": np.zeros(3)}, tolerance=0.0,
                             atol=0.0) == [(0.0, 0.0)]


def test_directional_check_tolerance_is_relative():
    """A right gradient of magnitude 1e4 passes (its rounding error is absolute ~1e-6), and
    a wrong one of magnitude 1e-3, off by 1%, fails: the bound scales with the magnitudes."""
    x = np.random.default_rng(4).standard_normal(8)
    big = lambda: float(1e4 * (x ** 2).sum())  # noqa: E731
    pairs = check_directional(big, {"x": x}, {"x": 2e4 * x}, directions=3)
    assert min(abs(p) for p, _ in pairs) > 1e2
    small = lambda: float(1e-3 * (x ** 2).sum())  # noqa: E731
    with pytest.raises(GradientCheckError):
        check_directional(small, {"x": x}, {"x": 2e-3 * x * 1.01}, atol=0.0)


def test_checker_errors_name_what_is_wrong():
    x, y = np.zeros(2), np.zeros(3)
    with pytest.raises(ValueError, match=r"arrays \['a', 'b'\] and gradients \['a', 'c'\]"):
        check_directional(lambda: 0.0, {"a": x, "b": y}, {"a": x, "c": y})
    with pytest.raises(GradientCheckError,
                       match=r"gradient of 'b' has shape \(2,\), the array \(3,\)"):
        check_directional(lambda: 0.0, {"a": x, "b": y}, {"a": x, "b": x})
    with pytest.raises(GradientCheckError, match=r"\(arrays a, b\)"):
        check_directional(lambda: float(x.sum()), {"a": x, "b": y}, {"a": x + 2, "b": y})
    with pytest.raises(TypeError, match="^directional_derivative needs a float64 array"):
        directional_derivative(lambda: 0.0, [np.zeros(2, np.float32)], [np.zeros(2)])


def test_gradient_error_is_relative_unless_both_are_below_zero_norm():
    """Absolute only when *both* norms are strictly below ``zero_norm`` (default 1e-7)."""
    small, half = np.array([1e-3]), np.array([5e-4])
    assert gradient_error(small, half) == relative_error(small, half)  # 1e-3 is not zero
    quarter, half = np.array([0.25]), np.array([0.5])
    assert gradient_error(half, quarter, zero_norm=0.5) == relative_error(half, quarter)
    assert gradient_error(quarter, half, zero_norm=0.5) == relative_error(quarter, half)
    assert gradient_error(quarter, half, zero_norm=0.51) == 0.25  # both below: absolute
    tiny = np.full(3, 1e-9)
    assert gradient_error(tiny, tiny) == 0.0  # the absolute error is of the difference
    assert gradient_error(tiny, -tiny) == pytest.approx(2 * np.sqrt(3) * 1e-9)


def test_full_check_uses_its_eps():
    """For sum(x ** 3) the central difference is ``3 x ** 2 + eps ** 2``: with eps = 0.1 the
    error against the exact gradient is that of the 0.01 shift."""
    x = np.random.default_rng(2).standard_normal(5)
    f = lambda: float((x ** 3).sum())  # noqa: E731
    errors = check_gradients(f, {"x": x}, {"x": 3 * x ** 2}, tolerance=1.0, eps=0.1)
    shifted = 3 * x ** 2 + 0.01
    assert errors["x"] == pytest.approx(relative_error(3 * x ** 2, shifted), rel=1e-6)
    assert errors["x"] > 1e-4


def test_full_check_fails_at_exactly_its_tolerance():
    """The check passes when the error is below the tolerance, not equal to it."""
    f, arrays, right = problem()
    wrong = {"X": 1.001 * right["X"], "Y": right["Y"]}
    errors = check_gradients(f, arrays, wrong, tolerance=1.0)
    with pytest.raises(GradientCheckError,
                       match=r"gradient of 'X'.*\(all: X [\d.e+-]+, Y [\d.e+-]+\)"):
        check_gradients(f, arrays, wrong, tolerance=errors["X"])


def test_directional_derivative_names_a_misshapen_direction():
    with pytest.raises(ValueError,
                       match=r"direction of shape \(3,\) for an array of shape \(2,\)"):
        directional_derivative(lambda: 0.0, [np.zeros(2)], [np.zeros(3)])


def test_relative_error_is_computed_in_float64():
    """float32 arguments are compared in float64: the squares of 3e19 overflow float32, which
    would give nan (a false failure) or, for ``b`` alone, a zero error (a false pass)."""
    big32, half32 = np.full(2, 3e19, np.float32), np.full(2, 1.5e19, np.float32)
    assert relative_error(big32, half32) == pytest.approx(1 / 3)
    assert relative_error(np.full(2, 3e19), half32) == pytest.approx(1 / 3)
    assert relative_error(half32, np.full(2, 3e19)) == pytest.approx(1 / 3)
