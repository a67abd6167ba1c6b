"""Weight regularisers: penalties on a layer's weights, added to the loss (Keras's names).

==========================  =====================================  ==========================
regulariser                 penalty                                gradient
==========================  =====================================  ==========================
``L1(l1=0.01)``             ``l1 * sum(|w|)``                      ``l1 * sign(w)``
``L2(l2=0.01)``             ``l2 * sum(w ** 2)`` (no 1/2, Keras)   ``2 * l2 * w``
``L1L2(l1=0.0, l2=0.0)``    the sum of both                        the sum of both
==========================  =====================================  ==========================

By name: ``"l1"`` = ``L1(0.01)``, ``"l2"`` = ``L2(0.01)``, ``"l1_l2"`` = ``L1L2(0.01, 0.01)``
(the defaults of Keras's ``l1``/``l2``/``l1_l2`` shortcuts). ``sign(0) = 0``.

Layers take them as ``kernel_regularizer=`` (and ``bias_regularizer=``) and keep them in the
attribute of that name; the convention "parameter ``key`` is penalised by the attribute
``key + "_regularizer"``" is all the model needs. ``fit`` adds ``penalty(layer)`` of every
layer to the loss it reports and optimises (also to ``evaluate``'s loss, as Keras does), and
``add_gradients(layer)`` adds the penalty's gradient to the layer's gradients before the
optimizer step. Only trainable parameters are penalised.
"""

from __future__ import annotations

from cnn.backend import xp
from cnn.utils import checks
from cnn.utils.config import Configurable, from_config
from cnn.utils.naming import lookup


class Regularizer(Configurable):
    """Base class: ``__call__(w) -> float`` penalty and ``gradient(w) -> array`` (shape of w)."""

    name = "regularizer"

    def __call__(self, weights) -> float:
        raise NotImplementedError

    def gradient(self, weights):
        raise NotImplementedError


class L1L2(Regularizer):
    """``l1 * sum(|w|) + l2 * sum(w ** 2)``."""

    name = "l1_l2"
    arguments = ("l1", "l2")

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = checks.positive("l1", l1, allow_zero=True)
        self.l2 = checks.positive("l2", l2, allow_zero=True)

    def __call__(self, weights) -> float:
        penalty = 0.0
        if self.l1:
            penalty += self.l1 * float(xp.abs(weights).sum(dtype=xp.float64))
        if self.l2:
            penalty += self.l2 * float((weights.astype(xp.float64) ** 2).sum())
        return penalty

    def gradient(self, weights):
        grad = xp.zeros_like(weights)
        if self.l1:
            grad += xp.sign(weights) * weights.dtype.type(self.l1)
        if self.l2:
            grad += weights * weights.dtype.type(2 * self.l2)
        return grad

    def get_config(self):
        return {"name": self.name, **{key: getattr(self, key) for key in self.arguments}}


class L1(L1L2):
    """``l1 * sum(|w|)``."""

    name = "l1"
    arguments = ("l1",)

    def __init__(self, l1=0.01):
        super().__init__(l1=l1)


class L2(L1L2):
    """``l2 * sum(w ** 2)``."""

    name = "l2"
    arguments = ("l2",)

    def __init__(self, l2=0.01):
        super().__init__(l2=l2)


def _l1_l2_shortcut(l1=0.01, l2=0.01):
    return L1L2(l1, l2)


_BY_NAME = {"l1": L1, "l2": L2, "l1_l2": _l1_l2_shortcut, "l1l2": _l1_l2_shortcut}
_BY_CONFIG = {"l1": L1, "l2": L2, "l1_l2": L1L2}


def get(identifier) -> Regularizer | None:
    """Resolve ``None``, a name (``"l1"``, ``"l2"``, ``"l1_l2"``), a config dict or an instance."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, dict):
        return from_config("regularizer", identifier, _BY_CONFIG)
    return lookup("regularizer", identifier, _BY_NAME)()


def serialize(regularizer: Regularizer | None) -> dict | None:
    return None if regularizer is None else regularizer.get_config()


def regularized_params(layer) -> list[tuple[str, Regularizer]]:
    """``(parameter key, regularizer)`` for every trainable parameter of ``layer`` that has one."""
    pairs = []
    for key, _ in layer.trainable_params():
        regularizer = getattr(layer, f"{key}_regularizer", None)
        if regularizer is not None:
            pairs.append((key, regularizer))
    return pairs


def penalty(layer) -> float:
    """The sum of ``layer``'s weight penalties."""
    return sum(reg(layer.params[key]) for key, reg in regularized_params(layer))


def add_gradients(layer) -> None:
    """Add the penalties' gradients to ``layer.grads`` (after its backward pass)."""
    for key, reg in regularized_params(layer):
        layer.grads[key] = layer.grads[key] + reg.gradient(layer.params[key])
