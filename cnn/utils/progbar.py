"""A Keras-style progress bar for training and evaluation.

In a terminal the bar redraws itself in place (carriage return) at most every ``interval``
seconds::

     120/1875 [=>............................] - ETA: 12s - loss: 0.3452 - accuracy: 0.9012

When the stream is not a terminal (a log file, CI), nothing is redrawn: only the final line
of each bar is written, with no carriage returns.
"""

from __future__ import annotations

import sys
import time


def format_duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds >= 3600:
        return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"
    if seconds >= 60:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    return f"{seconds:.0f}s"


def format_per_step(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.1f}s/step"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/step"
    return f"{seconds * 1e6:.0f}us/step"


def format_value(value) -> str:
    value = float(value)
    return f"{value:.4e}" if value != 0 and abs(value) < 1e-3 else f"{value:.4f}"


class Progbar:
    """Progress of ``target`` steps; call ``update(step, values)`` after each step."""

    def __init__(self, target: int, width: int = 30, stream=None, interval: float = 0.05,
                 dynamic: bool | None = None):
        self.target = int(target)
        self.width = width
        self.stream = stream or sys.stdout
        self.interval = interval
        if dynamic is None:
            isatty = getattr(self.stream, "isatty", None)
            dynamic = bool(isatty and isatty())
        self.dynamic = dynamic
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self._last_length = 0

    def update(self, current: int, values: dict | None = None, finalize: bool | None = None):
        values = values or {}
        finalize = current >= self.target if finalize is None else finalize
        now = time.perf_counter()
        if not finalize and (not self.dynamic or now - self._last_draw < self.interval):
            return
        self._last_draw = now
        elapsed = now - self.start
        line = self._bar(current)
        if finalize:
            per_step = elapsed / max(current, 1)
            line += f" - {format_duration(elapsed)} {format_per_step(per_step)}"
        else:
            eta = elapsed / max(current, 1) * (self.target - current)
            line += f" - ETA: {format_duration(eta)}"
        line += "".join(f" - {key}: {format_value(value)}" for key, value in values.items())
        if self.dynamic:
            padding = " " * max(self._last_length - len(line), 0)
            self.stream.write("\r" + line + padding)
            self._last_length = len(line)
        else:
            self.stream.write(line)
        if finalize:
            self.stream.write("\n")
        self.stream.flush()

    def _bar(self, current: int) -> str:
        digits = len(str(self.target))
        fraction = min(current / self.target, 1.0) if self.target else 1.0
        filled = int(self.width * fraction)
        if filled < self.width:
            bar = "=" * filled + (">" if current else ".") + "." * (self.width - filled - 1)
        else:
            bar = "=" * self.width
        return f"{current:>{digits}}/{self.target} [{bar}]"
