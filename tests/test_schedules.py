"""Learning-rate schedules against their formulas, configs and errors."""

import math

import pytest

from cnn import schedules
from cnn.schedules import CosineDecay, ExponentialDecay, StepDecay


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


@pytest.mark.parametrize("schedule", [
    StepDecay(0.1, 5), ExponentialDecay(0.1, 5, 0.5, staircase=True),
    CosineDecay(0.1, 50, alpha=0.2, warmup_target=0.3, warmup_steps=5),
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
    (lambda: schedules.get({"name": "linear_decay"}), "unknown schedule 'linear_decay'; valid "
                                                      "schedule names: cosine_decay, "
                                                      "exponential_decay, step_decay"),
    (lambda: schedules.get({"name": "step_decay", "steps": 3}), "bad config for schedule"),
    (lambda: schedules.get("cosine_decay"), "a schedule is given as"),
])
def test_bad_arguments_are_named(make, match):
    with pytest.raises(ValueError, match=match):
        make()
