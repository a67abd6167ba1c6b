"""Learning-rate schedules: callables ``schedule(step) -> learning rate``.

Give one to an optimizer as its learning rate; the optimizer calls it before every update
with the number of updates done so far (0 before the first)::

    steps = epochs * math.ceil(len(x_train) / batch_size)
    Adam(learning_rate=CosineDecay(1e-3, decay_steps=steps))

The same objects work per epoch with ``cnn.callbacks.LearningRateScheduler``, which calls
its schedule with the epoch index: ``LearningRateScheduler(StepDecay(0.1, 10, 0.5))`` halves
the rate every 10 epochs.

=====================================================  ========================================
``StepDecay(initial_learning_rate, decay_steps,        ``lr0 * decay_rate ** floor(step /
decay_rate=0.1)``                                      decay_steps)`` (PyTorch's ``StepLR``)
``ExponentialDecay(initial_learning_rate,              ``lr0 * decay_rate ** (step /
decay_steps, decay_rate, staircase=False)``            decay_steps)``; staircase floors the
                                                       exponent (Keras)
``CosineDecay(initial_learning_rate, decay_steps,      ``lr0 * ((1 - alpha) * 0.5 * (1 + cos(pi
alpha=0.0, warmup_target=None, warmup_steps=0)``       * s / decay_steps)) + alpha)`` with
                                                       ``s = min(step, decay_steps)`` (Keras);
                                                       with a warmup, the rate first rises
                                                       linearly from ``lr0`` to
                                                       ``warmup_target`` over ``warmup_steps``
                                                       and the cosine then starts from
                                                       ``warmup_target``
``CosineDecayRestarts(initial_learning_rate,           cosine cycles (SGDR, Loshchilov & Hutter
first_decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0)``  2017): cycle ``i`` lasts
                                                       ``first_decay_steps * t_mul ** i`` steps
                                                       and starts at ``lr0 * m_mul ** i``
                                                       (Keras); its first cycle is
                                                       ``CosineDecay(lr0, first_decay_steps,
                                                       alpha)`` exactly
=====================================================  ========================================

Every schedule has ``get_config()`` (``{"name": ..., arguments...}``); ``get(config)``
rebuilds it, so a model saved with a scheduled optimizer restores the schedule.
"""

from __future__ import annotations

import math

from cnn.utils import checks
from cnn.utils.config import Configurable, from_config


class Schedule(Configurable):
    """Base class: ``__call__(step) -> float`` and ``get_config``."""

    name = "schedule"

    def __call__(self, step) -> float:
        step = float(step)
        if not step >= 0:
            raise ValueError(f"a schedule's step must be >= 0, got {step!r}")
        return self.learning_rate_at(step)

    def learning_rate_at(self, step: float) -> float:
        raise NotImplementedError


class ExponentialDecay(Schedule):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)`` (floored with staircase)."""

    name = "exponential_decay"

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False):
        self.initial_learning_rate = checks.positive("initial_learning_rate", initial_learning_rate)
        self.decay_steps = checks.positive("decay_steps", decay_steps)
        self.decay_rate = checks.positive("decay_rate", decay_rate)
        self.staircase = bool(staircase)

    def learning_rate_at(self, step):
        exponent = step / self.decay_steps
        if self.staircase:
            exponent = math.floor(exponent)
        return self.initial_learning_rate * self.decay_rate**exponent

    def get_config(self):
        return {
            "name": self.name,
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
        }


class StepDecay(ExponentialDecay):
    """Multiply the rate by ``decay_rate`` every ``decay_steps`` steps (PyTorch's ``StepLR``)."""

    name = "step_decay"

    def __init__(self, initial_learning_rate, decay_steps, decay_rate=0.1):
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase=True)

    def get_config(self):
        config = super().get_config()
        del config["staircase"]
        return config


class CosineDecay(Schedule):
    """Cosine decay from the initial (or warm-up target) rate to ``alpha`` times it, with an
    optional linear warm-up first (Keras's ``CosineDecay``; see the module docstring)."""

    name = "cosine_decay"

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, warmup_target=None,
                 warmup_steps=0):
        self.initial_learning_rate = checks.positive("initial_learning_rate", initial_learning_rate,
                                               allow_zero=warmup_target is not None)
        self.decay_steps = checks.positive("decay_steps", decay_steps)
        self.alpha = checks.fraction("alpha", alpha, upper_inclusive=True)
        self.warmup_target = None if warmup_target is None else checks.positive("warmup_target",
                                                                          warmup_target)
        self.warmup_steps = checks.count("warmup_steps", warmup_steps)
        if self.warmup_steps and self.warmup_target is None:
            raise ValueError("warmup_steps > 0 needs warmup_target, the rate reached after warm-up")

    def learning_rate_at(self, step):
        if step < self.warmup_steps:
            fraction = step / self.warmup_steps
            return self.initial_learning_rate + fraction * (self.warmup_target - self.initial_learning_rate)
        peak = self.initial_learning_rate if self.warmup_target is None else self.warmup_target
        progress = min(step - self.warmup_steps, self.decay_steps) / self.decay_steps
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return peak * ((1.0 - self.alpha) * cosine + self.alpha)

    def get_config(self):
        return {
            "name": self.name,
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "alpha": self.alpha,
            "warmup_target": self.warmup_target,
            "warmup_steps": self.warmup_steps,
        }


class CosineDecayRestarts(Schedule):
    """Cosine decay with warm restarts (Keras's ``CosineDecayRestarts``).

    Cycle ``i`` (from 0) lasts ``first_decay_steps * t_mul ** i`` steps; within it the rate
    falls along half a cosine from ``initial_learning_rate * m_mul ** i`` towards
    ``alpha * initial_learning_rate``, then jumps back up for the next cycle.
    """

    name = "cosine_decay_restarts"

    def __init__(self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0):
        self.initial_learning_rate = checks.positive("initial_learning_rate", initial_learning_rate)
        self.first_decay_steps = checks.positive("first_decay_steps", first_decay_steps)
        self.t_mul = checks.positive("t_mul", t_mul)
        self.m_mul = checks.positive("m_mul", m_mul, allow_zero=True)
        self.alpha = checks.fraction("alpha", alpha, upper_inclusive=True)

    def cycle_at(self, step: float) -> tuple[int, float]:
        """``(cycle, fraction)``: which cycle ``step`` falls in and how far through it (0-1)."""
        completed = step / self.first_decay_steps
        if self.t_mul == 1.0:
            cycle = math.floor(completed)
            return cycle, completed - cycle
        if self.t_mul < 1.0 and completed * (1.0 - self.t_mul) >= 1.0:
            raise ValueError(
                f"CosineDecayRestarts: with t_mul={self.t_mul} < 1 the cycles shrink and end "
                f"after {self.first_decay_steps / (1.0 - self.t_mul):g} steps; step {step:g} "
                "is past them")
        # Cycles 0..k-1 span (1 - t_mul ** k) / (1 - t_mul) first cycles; solve for k.
        cycle = math.floor(math.log(1.0 - completed * (1.0 - self.t_mul)) / math.log(self.t_mul))
        fraction = self._fraction_of(cycle, completed)
        if not 0.0 <= fraction < 1.0:  # the logarithm landed a rounding error off a boundary
            cycle += 1 if fraction >= 1.0 else -1
            fraction = self._fraction_of(cycle, completed)
        return cycle, fraction

    def _fraction_of(self, cycle: int, completed: float) -> float:
        """How far through ``cycle`` a step ``completed`` first cycles in lies."""
        done = (1.0 - self.t_mul ** cycle) / (1.0 - self.t_mul)
        return (completed - done) / self.t_mul ** cycle

    def learning_rate_at(self, step):
        cycle, fraction = self.cycle_at(step)
        cosine = 0.5 * self.m_mul ** cycle * (1.0 + math.cos(math.pi * fraction))
        return self.initial_learning_rate * ((1.0 - self.alpha) * cosine + self.alpha)

    def get_config(self):
        return {
            "name": self.name,
            "initial_learning_rate": self.initial_learning_rate,
            "first_decay_steps": self.first_decay_steps,
            "t_mul": self.t_mul,
            "m_mul": self.m_mul,
            "alpha": self.alpha,
        }


_SCHEDULES = {
    "step_decay": StepDecay,
    "exponential_decay": ExponentialDecay,
    "cosine_decay": CosineDecay,
    "cosine_decay_restarts": CosineDecayRestarts,
}


def register(cls):
    """Make a user-written schedule class savable: ``get`` rebuilds it from its config.

    ``cls.name`` is the key its ``get_config()["name"]`` holds; the other config entries are
    passed to the constructor. Usable as a class decorator.
    """
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"schedule class {cls.__name__} needs a string attribute 'name'")
    if not callable(cls) or not hasattr(cls, "get_config"):
        raise ValueError(f"schedule class {cls.__name__} needs __call__(step) and get_config()")
    _SCHEDULES[name.lower()] = cls
    return cls


def get(identifier) -> Schedule:
    """Rebuild a schedule from its config (``{"name": "cosine_decay", ...}``) or pass one through."""
    if isinstance(identifier, Schedule) or type(identifier) in _SCHEDULES.values():
        return identifier
    if not isinstance(identifier, dict):
        raise ValueError(
            f"a schedule is given as a cnn.schedules object or its config dict, got {identifier!r}"
        )
    return from_config("schedule", identifier, _SCHEDULES)


def serialize(learning_rate):
    """A float learning rate as itself, a schedule as its config.

    Raises:
        ValueError: for a plain function, which cannot be written to a file.
    """
    if isinstance(learning_rate, Schedule) or type(learning_rate) in _SCHEDULES.values():
        return learning_rate.get_config()
    if callable(learning_rate) and hasattr(learning_rate, "get_config"):
        name = learning_rate.get_config().get("name")
        raise ValueError(
            f"the learning-rate schedule {name!r} ({type(learning_rate).__name__}) is not "
            "registered, so it could not be rebuilt from a file; register its class with "
            "cnn.schedules.register"
        )
    if callable(learning_rate):
        raise ValueError(
            f"the learning rate {learning_rate!r} is a plain function, which cannot be saved in "
            "a config; use a cnn.schedules schedule (StepDecay, ExponentialDecay, CosineDecay, CosineDecayRestarts)"
        )
    return float(learning_rate)


def names() -> list[str]:
    return sorted(_SCHEDULES)
