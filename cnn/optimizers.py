"""Optimizers: update rules applied by the model to the parameters of all layers.

No layer updates its own weights (the seed's ``backward_propagate(error, lr)`` did, which tied
every layer to plain SGD). The model calls ``optimizer.apply_gradients(params, grads)`` with
the trainable arrays of all layers in a fixed order; the optimizer updates them in place and
keeps its state (momentum buffers, moments, step count) per position in that list.

The update rules are PyTorch's (``torch.optim``), with Keras's default hyper-parameters where
the two differ (Adam/RMSprop/Adagrad ``epsilon=1e-7``, RMSprop ``rho=0.9``, Adagrad
``learning_rate=0.001, initial_accumulator_value=0.1``). Keras puts ``epsilon`` inside the
square root in RMSprop and Adagrad and folds Adam's bias corrections into the step size; the
results differ only by terms of the order of ``epsilon``. ``g`` is the gradient after clipping
(and after the L2 term where ``weight_decay`` is one), ``t`` the step count starting at 1,
``lr`` the learning rate of this step:

* ``SGD(learning_rate=0.01, momentum=0, nesterov=False, weight_decay=0)`` (PyTorch's form):
  ``g += wd * p``; ``b = momentum * b + g`` (``b`` starts at 0, so ``b = g`` at step 1);
  ``d = g + momentum * b`` if nesterov else ``b``; ``p -= lr * d``.
* ``Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, weight_decay=0)``:
  ``m = b1 m + (1 - b1) g``; ``v = b2 v + (1 - b2) g^2``;
  ``p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)``.
* ``AdamW(..., weight_decay=0.004)``: Adam without the L2 term, plus the decoupled decay
  ``p -= lr * wd * p`` before the Adam step (Loshchilov & Hutter).
* ``RMSprop(learning_rate=0.001, rho=0.9, momentum=0, epsilon=1e-7, centered=False)``:
  ``s = rho s + (1 - rho) g^2``; centered: ``c = rho c + (1 - rho) g``,
  ``den = sqrt(max(s - c^2, 0)) + eps`` (the max guards against rounding), else
  ``den = sqrt(s) + eps``; ``u = g / den``; with momentum ``b = momentum b + u``,
  ``p -= lr b``, else ``p -= lr u``.
* ``Adagrad(learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7)``:
  ``a += g^2``; ``p -= lr g / (sqrt(a) + eps)``.
* ``Adadelta(learning_rate=0.001, rho=0.95, epsilon=1e-7, weight_decay=0)`` (Keras's
  defaults; ``torch.optim.Adadelta``'s are ``lr=1.0, rho=0.9, eps=1e-6``, and the rule is the
  same): ``s = rho s + (1 - rho) g^2``; ``d = sqrt(u + eps) / sqrt(s + eps) * g``;
  ``u = rho u + (1 - rho) d^2``; ``p -= lr d``.
* ``Nadam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, weight_decay=0,
  momentum_decay=1.0)``: Adam with Nesterov momentum (Dozat 2016), with the momentum schedule
  ``mu_t = beta_1 (1 - 0.5 * 0.96^(t * momentum_decay))`` and ``P_t = mu_1 ... mu_t``:
  ``p -= lr ((1 - mu_t) / (1 - P_t) g + mu_(t+1) / (1 - P_t mu_(t+1)) m) /
  (sqrt(v / (1 - b2^t)) + eps)``. Keras 3's Nadam uses ``0.96^t``, i.e.
  ``momentum_decay=1.0`` (our default, since the name is Keras's); ``torch.optim.NAdam``'s
  default ``momentum_decay=0.004`` (Keras 2's ``schedule_decay``) makes ``mu_t`` rise to
  ``beta_1`` hundreds of times more slowly. ``Nadam(momentum_decay=0.004)`` is PyTorch's
  default ``NAdam`` step for step.

Gradient clipping (every optimizer, at most one of the three, as in Keras): ``clipvalue``
clips each element to ``[-c, c]``; ``clipnorm`` rescales each gradient array whose L2 norm
exceeds ``c`` to norm ``c`` (Keras); ``global_clipnorm`` rescales all gradients together when
their joint norm exceeds ``c`` (PyTorch's ``clip_grad_norm_``).

The learning rate may be a float or a schedule: a ``cnn.schedules`` object (saved with the
model; user-written schedules are registered with ``cnn.schedules.register``) or any callable
``schedule(step) -> lr`` called with the number of steps taken so far (0 for the first step).
``optimizer.learning_rate = value`` replaces it (checked); ``current_learning_rate()`` is the
rate of the next step, ``last_learning_rate`` the rate of the last step taken (what ``fit``
logs as ``learning_rate``).
"""

from __future__ import annotations

import math

import numpy as np

from cnn import backend, schedules
from cnn.backend import xp
from cnn.utils import checks
from cnn.utils.config import from_config
from cnn.utils.naming import lookup


def _check_positive(name, value, allow_zero=False):
    """A hyper-parameter > 0 (>= 0 with ``allow_zero``); a callable learning rate passes."""
    if callable(value) and name == "learning_rate":
        return value
    return checks.positive(name, value, allow_zero)


class Optimizer:
    """Base class: clipping, the learning rate, the step count and per-parameter state."""

    name = "optimizer"

    def __init__(self, learning_rate=0.01, clipnorm=None, clipvalue=None, global_clipnorm=None):
        given = {"clipnorm": clipnorm, "clipvalue": clipvalue, "global_clipnorm": global_clipnorm}
        if sum(value is not None for value in given.values()) > 1:
            raise ValueError(
                "only one of clipnorm, clipvalue and global_clipnorm can be set, got "
                + ", ".join(f"{k}={v!r}" for k, v in given.items() if v is not None)
            )
        self.learning_rate = learning_rate
        self.last_learning_rate: float | None = None
        self.clipnorm = None if clipnorm is None else _check_positive("clipnorm", clipnorm)
        self.clipvalue = None if clipvalue is None else _check_positive("clipvalue", clipvalue)
        self.global_clipnorm = (
            None if global_clipnorm is None else _check_positive("global_clipnorm", global_clipnorm)
        )
        self.iterations = 0
        self._slots: list[dict] = []

    # -- the public step -------------------------------------------------------------------
    def apply_gradients(self, params: list, grads: list) -> None:
        """Update every array of ``params`` in place from the matching gradient."""
        if len(params) != len(grads):
            raise ValueError(f"{len(params)} parameters but {len(grads)} gradients")
        if not self._slots:
            self._slots = [self._create_slots(p) for p in params]
        elif len(self._slots) != len(params):
            raise ValueError(
                f"optimizer state is for {len(self._slots)} parameters, got {len(params)}: "
                "an optimizer instance belongs to one model"
            )
        grads = self._clip(grads)
        lr = self.current_learning_rate()
        self.iterations += 1
        self._begin_step()
        for param, grad, slots in zip(params, grads, self._slots):
            self._update(param, grad, slots, lr)
        self.last_learning_rate = lr

    @property
    def learning_rate(self):
        """A float, or a schedule ``f(step) -> lr``; assigning checks the value."""
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        self._learning_rate = _check_positive("learning_rate", value)

    def current_learning_rate(self) -> float:
        """The learning rate for the next step (evaluates a schedule at ``iterations``)."""
        if not callable(self.learning_rate):
            return float(self.learning_rate)
        lr = self.learning_rate(self.iterations)
        try:
            return checks.positive("learning_rate", lr, allow_zero=True)
        except ValueError:
            raise ValueError(
                f"the learning-rate schedule {self.learning_rate!r} returned {lr!r} at step "
                f"{self.iterations}; it must return a finite number >= 0"
            ) from None

    # -- for subclasses --------------------------------------------------------------------
    def _create_slots(self, param) -> dict:
        return {}

    def _begin_step(self) -> None:
        """Called once per step, after ``iterations`` counts it, before the updates."""

    def _update(self, param, grad, slots, lr) -> None:
        raise NotImplementedError

    # -- clipping --------------------------------------------------------------------------
    def _clip(self, grads):
        if self.clipvalue is not None:
            return [xp.clip(g, -self.clipvalue, self.clipvalue) for g in grads]
        if self.clipnorm is not None:
            return [_scale_to_norm(g, _norm(g), self.clipnorm) for g in grads]
        if self.global_clipnorm is not None:
            total = math.sqrt(sum(_norm(g) ** 2 for g in grads))
            return [_scale_to_norm(g, total, self.global_clipnorm) for g in grads]
        return grads

    # -- persistence -----------------------------------------------------------------------
    def get_config(self) -> dict:
        config = {"name": self.name, "learning_rate": schedules.serialize(self.learning_rate)}
        for key in ("clipnorm", "clipvalue", "global_clipnorm"):
            if getattr(self, key) is not None:
                config[key] = getattr(self, key)
        return config

    def get_state(self) -> dict:
        """Step count and a copy of every slot array, keyed ``"<param index>/<slot name>"``."""
        state = {"iterations": self.iterations}
        for index, slots in enumerate(self._slots):
            for slot_name, value in slots.items():
                state[f"{index}/{slot_name}"] = backend.to_numpy(value).copy()
        return state

    def set_state(self, state: dict, params: list) -> None:
        """Restore what ``get_state`` returned, for the parameters ``params`` (same order)."""
        self._slots = [self._create_slots(p) for p in params]
        for key, value in state.items():
            if key == "iterations":
                continue
            index, slot_name = key.split("/", 1)
            index = int(index)
            if index >= len(self._slots) or slot_name not in self._slots[index]:
                raise ValueError(f"optimizer state has an unknown entry {key!r}")
            target = self._slots[index][slot_name]
            if tuple(target.shape) != tuple(value.shape):
                raise ValueError(
                    f"optimizer state {key!r} has shape {tuple(value.shape)}, "
                    f"expected {tuple(target.shape)}"
                )
            target[...] = backend.asarray(value, dtype=target.dtype)  # a copy, never an alias
        self.iterations = int(state.get("iterations", 0))

    def __repr__(self):
        hyper = {k: v for k, v in vars(self).items()
                 if not k.startswith("_") and k not in ("iterations", "last_learning_rate")}
        args = ", ".join(f"{k}={v!r}" for k, v in {"learning_rate": self.learning_rate,
                                                    **hyper}.items() if v is not None)
        return f"{type(self).__name__}({args})"


def _norm(g) -> float:
    return float(xp.sqrt((g.astype(xp.float64) ** 2).sum()))


def _scale_to_norm(g, norm, max_norm):
    """``g`` scaled by ``max_norm / norm`` when ``norm`` exceeds ``max_norm``."""
    if norm > max_norm:
        return g * g.dtype.type(max_norm / norm)
    return g


class SGD(Optimizer):
    name = "sgd"

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=0.0, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.momentum = _check_positive("momentum", momentum, allow_zero=True)
        self.nesterov = bool(nesterov)
        self.weight_decay = _check_positive("weight_decay", weight_decay, allow_zero=True)
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")

    def _create_slots(self, param):
        return {"momentum": xp.zeros_like(param)} if self.momentum else {}

    def _update(self, param, grad, slots, lr):
        if self.weight_decay:
            grad = grad + param * param.dtype.type(self.weight_decay)
        if self.momentum:
            buf = slots["momentum"]
            buf *= self.momentum
            buf += grad
            grad = grad + buf * buf.dtype.type(self.momentum) if self.nesterov else buf
        param -= grad * param.dtype.type(lr)

    def get_config(self):
        return {
            **super().get_config(),
            "momentum": self.momentum,
            "nesterov": self.nesterov,
            "weight_decay": self.weight_decay,
        }


class Adam(Optimizer):
    name = "adam"
    _decoupled = False

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 weight_decay=0.0, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1 = checks.fraction("beta_1", beta_1)
        self.beta_2 = checks.fraction("beta_2", beta_2)
        self.epsilon = _check_positive("epsilon", epsilon)
        self.weight_decay = _check_positive("weight_decay", weight_decay, allow_zero=True)

    def _create_slots(self, param):
        return {"m": xp.zeros_like(param), "v": xp.zeros_like(param)}

    def _update(self, param, grad, slots, lr):
        dtype = param.dtype.type
        if self.weight_decay and self._decoupled:
            param -= param * dtype(lr * self.weight_decay)
        elif self.weight_decay:
            grad = grad + param * dtype(self.weight_decay)
        m, v = self._moments(grad, slots)
        t = self.iterations
        m_hat_scale = 1 / (1 - self.beta_1**t)
        v_hat_scale = 1 / (1 - self.beta_2**t)
        denominator = xp.sqrt(v * dtype(v_hat_scale)) + dtype(self.epsilon)
        param -= dtype(lr * m_hat_scale) * m / denominator

    def _moments(self, grad, slots):
        """Update and return the moment estimates ``m`` and ``v`` of one parameter."""
        dtype = grad.dtype.type
        m, v = slots["m"], slots["v"]
        m *= self.beta_1
        m += grad * dtype(1 - self.beta_1)
        v *= self.beta_2
        v += grad * grad * dtype(1 - self.beta_2)
        return m, v

    def get_config(self):
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
            "weight_decay": self.weight_decay,
        }


class AdamW(Adam):
    name = "adamw"
    _decoupled = True

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 weight_decay=0.004, **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, weight_decay, **kwargs)


class RMSprop(Optimizer):
    name = "rmsprop"

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                 centered=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho = checks.fraction("rho", rho)
        self.momentum = _check_positive("momentum", momentum, allow_zero=True)
        self.epsilon = _check_positive("epsilon", epsilon)
        self.centered = bool(centered)

    def _create_slots(self, param):
        slots = {"square_avg": xp.zeros_like(param)}
        if self.centered:
            slots["grad_avg"] = xp.zeros_like(param)
        if self.momentum:
            slots["momentum"] = xp.zeros_like(param)
        return slots

    def _update(self, param, grad, slots, lr):
        dtype = param.dtype.type
        s = slots["square_avg"]
        s *= self.rho
        s += grad * grad * dtype(1 - self.rho)
        if self.centered:
            c = slots["grad_avg"]
            c *= self.rho
            c += grad * dtype(1 - self.rho)
            denominator = xp.sqrt(xp.maximum(s - c * c, 0)) + dtype(self.epsilon)
        else:
            denominator = xp.sqrt(s) + dtype(self.epsilon)
        step = grad / denominator
        if self.momentum:
            buf = slots["momentum"]
            buf *= self.momentum
            buf += step
            step = buf
        param -= step * dtype(lr)

    def get_config(self):
        return {
            **super().get_config(),
            "rho": self.rho,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "centered": self.centered,
        }


class Adagrad(Optimizer):
    name = "adagrad"

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.initial_accumulator_value = _check_positive(
            "initial_accumulator_value", initial_accumulator_value, allow_zero=True
        )
        self.epsilon = _check_positive("epsilon", epsilon)

    def _create_slots(self, param):
        return {"accumulator": xp.full_like(param, self.initial_accumulator_value)}

    def _update(self, param, grad, slots, lr):
        dtype = param.dtype.type
        acc = slots["accumulator"]
        acc += grad * grad
        param -= dtype(lr) * grad / (xp.sqrt(acc) + dtype(self.epsilon))

    def get_config(self):
        return {
            **super().get_config(),
            "initial_accumulator_value": self.initial_accumulator_value,
            "epsilon": self.epsilon,
        }


def _l2(grad, param, weight_decay):
    """PyTorch's ``weight_decay``: the L2 term ``wd * p`` added to the gradient."""
    return grad + param * param.dtype.type(weight_decay) if weight_decay else grad


class Adadelta(Optimizer):
    name = "adadelta"

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, weight_decay=0.0, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho = checks.fraction("rho", rho)
        self.epsilon = _check_positive("epsilon", epsilon)
        self.weight_decay = _check_positive("weight_decay", weight_decay, allow_zero=True)

    def _create_slots(self, param):
        return {"square_avg": xp.zeros_like(param), "acc_delta": xp.zeros_like(param)}

    def _update(self, param, grad, slots, lr):
        dtype = param.dtype.type
        grad = _l2(grad, param, self.weight_decay)
        square_avg, acc_delta = slots["square_avg"], slots["acc_delta"]
        square_avg *= self.rho
        square_avg += grad * grad * dtype(1 - self.rho)
        eps = dtype(self.epsilon)
        delta = xp.sqrt(acc_delta + eps) / xp.sqrt(square_avg + eps) * grad
        acc_delta *= self.rho
        acc_delta += delta * delta * dtype(1 - self.rho)
        param -= delta * dtype(lr)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon,
                "weight_decay": self.weight_decay}


class Nadam(Adam):
    name = "nadam"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 weight_decay=0.0, momentum_decay=1.0, **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, weight_decay, **kwargs)
        self.momentum_decay = _check_positive("momentum_decay", momentum_decay)
        self._mu_product = 1.0  # mu_1 * ... * mu_t, a float64 product over the steps taken

    def momentum(self, step: int) -> float:
        """``mu_step = beta_1 (1 - 0.5 * 0.96^(step * momentum_decay))``."""
        return self.beta_1 * (1.0 - 0.5 * 0.96 ** (step * self.momentum_decay))

    def _begin_step(self):
        self._mu_product *= self.momentum(self.iterations)

    def _update(self, param, grad, slots, lr):
        dtype = param.dtype.type
        grad = _l2(grad, param, self.weight_decay)
        m, v = self._moments(grad, slots)
        t = self.iterations
        mu, mu_next = self.momentum(t), self.momentum(t + 1)
        denominator = xp.sqrt(v * dtype(1 / (1 - self.beta_2**t))) + dtype(self.epsilon)
        param -= grad * dtype(lr * (1 - mu) / (1 - self._mu_product)) / denominator
        param -= m * dtype(lr * mu_next / (1 - self._mu_product * mu_next)) / denominator

    def set_state(self, state, params):
        super().set_state(state, params)
        self._mu_product = 1.0
        for step in range(1, self.iterations + 1):  # the same products as the steps took
            self._mu_product *= self.momentum(step)

    def get_config(self):
        return {**super().get_config(), "momentum_decay": self.momentum_decay}


_OPTIMIZERS = {
    "sgd": SGD,
    "adam": Adam,
    "adamw": AdamW,
    "rmsprop": RMSprop,
    "adagrad": Adagrad,
    "adadelta": Adadelta,
    "nadam": Nadam,
}


def check_trainable(dtype) -> None:
    """Refuse to train weights of ``dtype`` float16 (``fit`` and ``train_on_batch`` check
    this first).

    In float16 the gradients of a real network underflow to zero and overflow to infinity
    within a few steps, and the optimizers' moment estimates (``g^2``, ``epsilon=1e-7``)
    vanish; training correctly would need loss scaling and float32 master weights, which cnn
    does not implement. Inference in float16 (``predict``, ``evaluate``) is allowed.
    """
    if np.dtype(dtype) == np.float16:
        raise ValueError(
            "cannot train a float16 model: without loss scaling its gradients underflow and "
            "overflow (NaN within a few steps). Train it in float32 (cnn.set_floatx('float32') "
            "before building it, or load_model(path, dtype='float32')), then run inference in "
            "float16 with load_model(path, dtype='float16')")


def get(identifier, learning_rate=None) -> Optimizer:
    """Resolve an optimizer given by name (optionally with a learning rate), config or instance."""
    if isinstance(identifier, Optimizer):
        if learning_rate is not None:
            raise ValueError("give the learning rate to the optimizer instance, not to compile()")
        return identifier
    if isinstance(identifier, dict):
        config = dict(identifier)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.get(config["learning_rate"])
        return from_config("optimizer", config, _OPTIMIZERS)
    cls = lookup("optimizer", identifier, _OPTIMIZERS)
    return cls() if learning_rate is None else cls(learning_rate=learning_rate)


def names() -> list[str]:
    return sorted(_OPTIMIZERS)
