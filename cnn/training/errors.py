"""Errors of the training loop."""

from __future__ import annotations

import math


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss or gradient; the weights were not updated.

    ``loss`` is the non-finite loss, or NaN when the loss was finite but a gradient was not.
    """

    def __init__(self, message, loss=math.nan):
        super().__init__(message)
        self.loss = loss
