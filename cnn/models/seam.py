"""The seam between the graph and the packages built on it.

``Model.fit`` / ``evaluate`` / ``predict`` / ``save`` stay methods (the seed's and Keras's
API), yet ``cnn.models`` imports neither the training loop nor saving: those packages import
``cnn.models`` and register themselves here when they are imported, and ``cnn/__init__.py``
imports both, so they are registered before any user code runs.

* ``register_loop(loop)``: an object with ``fit(model, ...)``, ``evaluate(model, ...)``,
  ``predict(model, ...)``, ``train_on_batch``, ``test_on_batch``, ``predict_on_batch`` and
  ``close_workers(model)`` (``cnn.training.trainer``);
* ``register_saving(save_model, load_model)`` and ``register_weights_io(save_weights,
  load_weights)`` (``cnn.saving``);
* ``register_export(name, value)``: a name that ``cnn.models`` offers to users
  (``from cnn.models import load_model``, ``NonFiniteLossError``) but does not define.
"""

from __future__ import annotations

_services: dict = {}
_exports: dict = {}


def register_loop(loop) -> None:
    _services["loop"] = loop


def register_saving(save_model, load_model) -> None:
    _services["save_model"] = save_model
    _services["load_model"] = load_model


def register_weights_io(save_weights, load_weights) -> None:
    """``Model.save_weights`` / ``load_weights`` (``cnn.saving.weights_file``)."""
    _services["weights_io"] = (save_weights, load_weights)


def register_export(name: str, value) -> None:
    _exports[name] = value


def loop():
    """The training loop registered by ``cnn.training``."""
    return _service("loop", "cnn.training")


def save_model():
    return _service("save_model", "cnn.saving")


def weights_io():
    """``(save_weights, load_weights)`` registered by ``cnn.saving``."""
    return _service("weights_io", "cnn.saving")


def exported(name: str):
    """A name registered with ``register_export``; AttributeError if none."""
    try:
        return _exports[name]
    except KeyError:
        raise AttributeError(f"module 'cnn.models' has no attribute {name!r}") from None


def _service(key: str, package: str):
    try:
        return _services[key]
    except KeyError:
        raise RuntimeError(f"{package} is not loaded; import cnn (which loads it) before "
                           "using models") from None
