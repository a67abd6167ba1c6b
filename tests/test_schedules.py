"""Learning-rate schedules against their formulas, configs and errors."""

import math

import pytest

from cnn import schedules
from cnn.schedules import CosineDecay, CosineDecayRestarts, ExponentialDecay, StepDecay


def test_step_decay_multiplies_every_decay_steps():
    schedule = StepDecay(0.1, decay_steps=3, decay_rate=0.5)
    assert [schedule(t) for t in range(8)] == pytest.approx(
        [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025])


def test_exponential_decay_continuous_and_staircase():
    smooth = ExponentialDecay(0.2, decay_steps=10, decay_rate=0.9)
    stairs = ExponentialDecay(0.2, decay_steps=10, decay_rate=0.9, staircase=True)
    for step in (0, 5, 10, 15, 37):
        assert smooth(step) == pytest.approx(0.2 * 0.9 ** (step / 10))
        assert stairs(step) == pytest.approx(0.2 * 0.9 ** (step // 10))


def test_cosine_decay_follows_half_a_cosine_then_stays_at_alpha():
    schedule = CosineDecay(1.0, decay_steps=100, alpha=0.1)
    for step in (0, 25, 50, 75, 100, 150):
        progress = min(step, 100) / 100
        expected = 0.9 * 0.5 * (1 + math.cos(math.pi * progress)) + 0.1
        assert schedule(step) == pytest.approx(expected)
    assert schedule(0) == pytest.approx(1.0) and schedule(100) == pytest.approx(0.1)


def test_cosine_decay_with_linear_warmup():
    schedule = CosineDecay(0.0, decay_steps=10, warmup_target=1.0, warmup_steps=4)
    assert [schedule(t) for t in range(5)] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    assert schedule(4 + 5) == pytest.approx(0.5)  # half-way through the cosine
    assert schedule(4 + 10) == pytest.approx(0.0)


def restarts_by_walking_cycles(lr0, first, t_mul, m_mul, alpha, step):
    """The warm-restart rate found by walking the cycles one by one (the obvious way)."""
    start, length, peak = 0.0, float(first), 1.0
    while step >= start + length:
        start, length, peak = start + length, length * t_mul, peak * m_mul
    cosine = 0.5 * peak * (1 + math.cos(math.pi * (step - start) / length))
    return lr0 * ((1 - alpha) * cosine + alpha)


@pytest.mark.parametrize("t_mul, m_mul, alpha", [(1.0, 1.0, 0.0), (1.0, 0.5, 0.0), (2.0, 1.0, 0.0),
                                                 (2.0, 0.7, 0.1), (1.5, 0.9, 0.05), (0.5, 1.0, 0.0)])
def test_cosine_decay_restarts_against_walking_the_cycles(t_mul, m_mul, alpha):
    schedule = CosineDecayRestarts(0.3, 10, t_mul=t_mul, m_mul=m_mul, alpha=alpha)
    steps = range(19) if t_mul < 1 else range(200)  # t_mul < 1: cycles shrink to nothing
    for step in steps:
        assert schedule(step) == pytest.approx(
            restarts_by_walking_cycles(0.3, 10, t_mul, m_mul, alpha, step), rel=1e-9, abs=1e-12)


def test_cosine_decay_restarts_jumps_back_at_each_cycle_boundary():
    schedule = CosineDecayRestarts(1.0, 10)  # Keras's defaults: t_mul 2, m_mul 1
    assert [schedule(step) for step in (0, 10, 30, 70, 150)] == pytest.approx([1.0] * 5)
    assert [schedule(step) for step in (5, 20, 50)] == pytest.approx([0.5] * 3)  # mid-cycle
    assert schedule(29.999) < 1e-6 and schedule(69.999) < 1e-6  # each cycle decays to alpha


def test_first_cycle_of_restarts_is_cosine_decay_step_for_step():
    """Exactly equal, so that a finished CosineDecay run can be continued into more cycles."""
    plain, cycles = CosineDecay(3e-3, 4690), CosineDecayRestarts(3e-3, 4690, t_mul=1.0, m_mul=0.5)
    assert all(plain(step) == cycles(step) for step in range(4690))
    assert cycles(4690) == 1.5e-3 and cycles(2 * 4690) == 0.75e-3


@pytest.mark.parametrize("schedule", [
    StepDecay(0.1, 5), ExponentialDecay(0.1, 5, 0.5, staircase=True),
    CosineDecay(0.1, 50, alpha=0.2, warmup_target=0.3, warmup_steps=5),
    CosineDecayRestarts(0.1, 7, t_mul=1.5, m_mul=0.8, alpha=0.1),
])
def test_config_round_trip(schedule):
    rebuilt = schedules.get(schedule.get_config())
    assert type(rebuilt) is type(schedule)
    assert rebuilt.get_config() == schedule.get_config()
    assert [rebuilt(t) for t in range(0, 60, 7)] == [schedule(t) for t in range(0, 60, 7)]


@pytest.mark.parametrize("make, match", [
    (lambda: StepDecay(0.1, 0), "decay_steps must be a finite number > 0"),
    (lambda: ExponentialDecay(-0.1, 10, 0.5), "initial_learning_rate must be"),
    (lambda: CosineDecay(0.1, 10, alpha=1.5), r"alpha must be in \[0, 1\]"),
    (lambda: CosineDecay(0.1, 10, warmup_steps=5), "warmup_steps > 0 needs warmup_target"),
    (lambda: CosineDecay(0.1, 10, warmup_target=0.2, warmup_steps=2.5), "warmup_steps must be an int"),
    (lambda: StepDecay(0.1, 5)(-1), "step must be >= 0"),
    (lambda: CosineDecayRestarts(0.1, 0), "first_decay_steps must be a finite number > 0"),
    (lambda: CosineDecayRestarts(0.1, 10, t_mul=0), "t_mul must be a finite number > 0"),
    (lambda: CosineDecayRestarts(0.1, 10, m_mul=-1), "m_mul must be a finite number >= 0"),
    (lambda: CosineDecayRestarts(0.1, 10, t_mul=0.5)(20), "cycles shrink and end after 20 steps"),
    (lambda: schedules.get({"name": "linear_decay"}), "unknown schedule 'linear_decay'; valid "
                                                      "schedule names: cosine_decay, "
                                                      "cosine_decay_restarts, "
                                                      "exponential_decay, step_decay"),
    (lambda: schedules.get({"name": "step_decay", "steps": 3}), "bad config for schedule"),
    (lambda: schedules.get("cosine_decay"), "a schedule is given as"),
])
def test_bad_arguments_are_named(make, match):
    with pytest.raises(ValueError, match=match):
        make()
