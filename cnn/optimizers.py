"""Optimizers: update rules applied by the model to the parameters of all layers.

No layer updates its own weights (the seed's ``backward_propagate(error, lr)`` did, which tied
every layer to plain SGD). The model calls ``optimizer.apply_gradients(params, grads)`` with
the trainable arrays of all layers in a fixed order; the optimizer updates them in place and
keeps its state (momentum buffers, moments, step count) per position in that list.

Update rules (``g`` the gradient after clipping and L2 weight decay, ``t`` the step count
starting at 1, ``lr`` the current learning rate):

* ``SGD(learning_rate=0.01, momentum=0, nesterov=False, weight_decay=0)`` (PyTorch's form):
  ``g += wd * p``; ``b = momentum * b + g`` (``b`` starts at 0, so ``b = g`` at step 1);
  ``d = g + momentum * b`` if nesterov else ``b``; ``p -= lr * d``.
* ``Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, weight_decay=0)``:
  ``m = b1 m + (1 - b1) g``; ``v = b2 v + (1 - b2) g^2``;
  ``p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)``.
* ``AdamW(..., weight_decay=0.01)``: Adam without the L2 term, plus the decoupled decay
  ``p -= lr * wd * p`` before the Adam step (Loshchilov & Hutter).
* ``RMSprop(learning_rate=0.001, rho=0.9, momentum=0, epsilon=1e-7, centered=False)``:
  ``s = rho s + (1 - rho) g^2``; centered: ``c = rho c + (1 - rho) g``, ``den = sqrt(s - c^2)
  + eps``, else ``den = sqrt(s) + eps``; ``u = g / den``; with momentum ``b = momentum b + u``,
  ``p -= lr b``, else ``p -= lr u``.
* ``Adagrad(learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7)``:
  ``a += g^2``; ``p -= lr g / (sqrt(a) + eps)``.

Gradient clipping (every optimizer): ``clipvalue`` clips each element to ``[-c, c]``;
``clipnorm`` rescales each gradient array whose L2 norm exceeds ``c`` (Keras);
``global_clipnorm`` rescales all gradients together when their joint norm exceeds ``c``
(PyTorch's ``clip_grad_norm_``). Order: value, per-array norm, global norm.

The learning rate may be a float or a schedule: any callable ``schedule(step) -> lr`` called
with the number of steps taken so far. A schedule that can be saved has ``get_config()``
returning ``{"name": ..., **arguments}`` and is registered with ``register_schedule`` so that
``get(config)`` rebuilds it (``load_model`` relies on that).
"""

from __future__ import annotations

import importlib
import math

from cnn import backend
from cnn.backend import xp
from cnn.utils.naming import lookup


def _check_positive(name, value, allow_zero=False):
    if callable(value) and name == "learning_rate":
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return number


class Optimizer:
    """Base class: clipping, the learning rate, the step count and per-parameter state."""

    name = "optimizer"

    def __init__(self, learning_rate=0.01, clipnorm=None, clipvalue=None, global_clipnorm=None):
        self.learning_rate = _check_positive("learning_rate", learning_rate)
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
        for param, grad, slots in zip(params, grads, self._slots):
            self._update(param, grad, slots, lr)

    def current_learning_rate(self) -> float:
        """The learning rate for the next step (evaluates a schedule at ``iterations``)."""
        if callable(self.learning_rate):
            return float(self.learning_rate(self.iterations))
        return float(self.learning_rate)

    # -- for subclasses --------------------------------------------------------------------
    def _create_slots(self, param) -> dict:
        return {}

    def _update(self, param, grad, slots, lr) -> None:
        raise NotImplementedError

    # -- clipping --------------------------------------------------------------------------
    def _clip(self, grads):
        if self.clipvalue is not None:
            grads = [xp.clip(g, -self.clipvalue, self.clipvalue) for g in grads]
        if self.clipnorm is not None:
            grads = [_scale_to_norm(g, float(xp.linalg.norm(g.ravel())), self.clipnorm) for g in grads]
        if self.global_clipnorm is not None:
            total = math.sqrt(sum(float((g * g).sum()) for g in grads))
            grads = [_scale_to_norm(g, total, self.global_clipnorm) for g in grads]
        return grads

    # -- persistence -----------------------------------------------------------------------
    def get_config(self) -> dict:
        config = {"name": self.name}
        if not callable(self.learning_rate):
            config["learning_rate"] = self.learning_rate
        elif hasattr(self.learning_rate, "get_config"):
            config["learning_rate"] = self.learning_rate.get_config()
        for key in ("clipnorm", "clipvalue", "global_clipnorm"):
            if getattr(self, key) is not None:
                config[key] = getattr(self, key)
        return config

    def get_state(self) -> dict:
        """Step count and every slot array, keyed ``"<param index>/<slot name>"``."""
        state = {"iterations": self.iterations}
        for index, slots in enumerate(self._slots):
            for slot_name, value in slots.items():
                state[f"{index}/{slot_name}"] = backend.to_numpy(value)
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
            self._slots[index][slot_name] = backend.asarray(value, dtype=target.dtype)
        self.iterations = int(state.get("iterations", 0))

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"


def _scale_to_norm(g, norm, max_norm):
    if norm > max_norm:
        return g * g.dtype.type(max_norm / (norm + 1e-12))
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
        for key, value in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0 <= float(value) < 1:
                raise ValueError(f"{key} must be in [0, 1), got {value!r}")
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
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
        m, v = slots["m"], slots["v"]
        m *= self.beta_1
        m += grad * dtype(1 - self.beta_1)
        v *= self.beta_2
        v += grad * grad * dtype(1 - self.beta_2)
        t = self.iterations
        m_hat_scale = 1 / (1 - self.beta_1**t)
        v_hat_scale = 1 / (1 - self.beta_2**t)
        param -= dtype(lr * m_hat_scale) * m / (xp.sqrt(v * dtype(v_hat_scale)) + dtype(self.epsilon))

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
                 weight_decay=0.01, **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, weight_decay, **kwargs)


class RMSprop(Optimizer):
    name = "rmsprop"

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                 centered=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        if not 0 <= float(rho) < 1:
            raise ValueError(f"rho must be in [0, 1), got {rho!r}")
        self.rho = float(rho)
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
            denominator = xp.sqrt(s - c * c) + dtype(self.epsilon)
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


_OPTIMIZERS = {
    "sgd": SGD,
    "adam": Adam,
    "adamw": AdamW,
    "rmsprop": RMSprop,
    "adagrad": Adagrad,
}


_SCHEDULES: dict[str, type] = {}


def register_schedule(cls):
    """Let ``get(config)`` rebuild the learning-rate schedule class ``cls`` from its config.

    ``cls.name`` (or the class name) is the key its ``get_config()["name"]`` must hold; the
    rest of the config is passed to ``cls.from_config`` if it has one, else to ``cls``.
    Usable as a class decorator.
    """
    _SCHEDULES[getattr(cls, "name", cls.__name__).lower()] = cls
    return cls


def schedule_from_config(config: dict):
    """Build a registered schedule from ``{"name": ..., **args}`` or Keras's
    ``{"class_name": ..., "config": {...}}``."""
    config = dict(config)
    if "class_name" in config:
        name, arguments = config["class_name"], dict(config.get("config", {}))
    else:
        name, arguments = config.pop("name", None), config
    if not isinstance(name, str) or name.lower() not in _SCHEDULES:
        _import_schedules()
    cls = lookup("learning rate schedule", name, _SCHEDULES)
    try:
        return cls.from_config(arguments) if hasattr(cls, "from_config") else cls(**arguments)
    except TypeError as exc:
        raise ValueError(f"bad config for learning rate schedule {name!r}: {exc}") from None


def _import_schedules() -> None:
    """Import ``cnn.schedules`` (if this version has it) so that its classes register."""
    try:
        importlib.import_module("cnn.schedules")
    except ModuleNotFoundError as exc:
        if exc.name != "cnn.schedules":
            raise


def get(identifier, learning_rate=None) -> Optimizer:
    """Resolve an optimizer given by name (optionally with a learning rate), config or instance."""
    if isinstance(identifier, Optimizer):
        if learning_rate is not None:
            raise ValueError("give the learning rate to the optimizer instance, not to compile()")
        return identifier
    if isinstance(identifier, dict):
        config = dict(identifier)
        cls = lookup("optimizer", config.pop("name", None), _OPTIMIZERS)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedule_from_config(config["learning_rate"])
        try:
            return cls(**config)
        except TypeError as exc:
            raise ValueError(f"bad config for optimizer {cls.name!r}: {exc}") from None
    cls = lookup("optimizer", identifier, _OPTIMIZERS)
    return cls() if learning_rate is None else cls(learning_rate=learning_rate)


def names() -> list[str]:
    return sorted(_OPTIMIZERS)
