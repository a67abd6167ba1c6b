"""A Keras-style progress bar for training, evaluation and downloads.

In a terminal the bar redraws itself in place (carriage return) at most every ``interval``
seconds::

     120/1875 [=>............................] - ETA: 12s - loss: 0.3452 - accuracy: 0.9012

When the stream is not a terminal (a log file, a pipe, CI), nothing is redrawn: only the
final line of each bar is written, with no carriage returns. A line redrawn in place is kept
narrower than the terminal (a narrower bar, then a cut), since a wrapped line cannot be
redrawn. ``unit="B"`` counts bytes
(``4.2/26.4 MB [=====>....] - ETA: 3s``, and a transfer rate at the end); a target of
``None`` (size unknown) shows the count without a bar.
"""

from __future__ import annotations

import shutil
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


def format_bytes(count: float) -> str:
    """``1234567`` -> ``"1.2 MB"`` (decimal units, as download sizes are usually given)."""
    for unit in ("B", "kB", "MB"):
        if count < 1000:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} GB"


def format_value(value) -> str:
    value = float(value)
    return f"{value:.4e}" if value != 0 and not 1e-3 <= abs(value) < 1e6 else f"{value:.4f}"


def format_values(values: dict) -> str:
    """``{"loss": 0.5}`` -> ``" - loss: 0.5000"``."""
    return "".join(f" - {key}: {format_value(value)}" for key, value in values.items())


def is_terminal(stream) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class Progbar:
    """Progress of ``target`` steps (or bytes); call ``update(current, values)`` as it goes.

    Args:
        target: the number of steps (bytes with ``unit="B"``); ``None`` when unknown.
        width: characters of the bar between the brackets.
        stream: where to write (default ``sys.stdout``).
        interval: the least number of seconds between two redraws in a terminal.
        dynamic: redraw in place; by default, when ``stream`` is a terminal.
        unit: ``"step"`` or ``"B"`` (bytes).
    """

    def __init__(self, target: int | None, width: int = 30, stream=None, interval: float = 0.05,
                 dynamic: bool | None = None, unit: str = "step"):
        if unit not in ("step", "B"):
            raise ValueError(f"unit must be 'step' or 'B', got {unit!r}")
        self.target = None if target is None else int(target)
        self.width = width
        self.stream = stream or sys.stdout
        self.interval = interval
        self.dynamic = is_terminal(self.stream) if dynamic is None else dynamic
        self.unit = unit
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self._last_length = 0

    def update(self, current: int, values: dict | None = None, finalize: bool | None = None):
        """Show ``current`` steps done; ``finalize`` (default: ``current >= target``) ends the bar
        with the elapsed time and a newline."""
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        now = time.perf_counter()
        if not finalize and (not self.dynamic or now - self._last_draw < self.interval):
            return
        self._last_draw = now
        elapsed = now - self.start
        if finalize:
            tail = f" - {format_duration(elapsed)} {self._speed(current, elapsed)}"
        elif self.target is not None:
            tail = f" - ETA: {format_duration(elapsed / max(current, 1) * (self.target - current))}"
        else:
            tail = ""
        tail += format_values(values or {})
        line = self._count(current, self.width) + tail
        if self.dynamic and not finalize:
            line = self._fit_terminal(current, tail, line)
        if self.dynamic:
            padding = " " * max(self._last_length - len(line), 0)
            self.stream.write("\r" + line + padding)
            self._last_length = len(line)
        else:
            self.stream.write(line)
        if finalize:
            self.stream.write("\n")
        self.stream.flush()

    def _fit_terminal(self, current: int, tail: str, line: str) -> str:
        """A line that redraws in place must not wrap: narrow the bar, then cut the line."""
        limit = shutil.get_terminal_size().columns - 1
        if len(line) <= limit:
            return line
        width = max(self.width - (len(line) - limit), 10)
        return (self._count(current, width) + tail)[:limit]

    def _count(self, current: int, width: int) -> str:
        if self.unit == "B":
            done = format_bytes(current)
            count = done if self.target is None else f"{done}/{format_bytes(self.target)}"
        else:
            digits = len(str(self.target)) if self.target is not None else 0
            count = f"{current:>{digits}}" + ("" if self.target is None else f"/{self.target}")
        return count if self.target is None else f"{count} [{self._bar(current, width)}]"

    def _bar(self, current: int, width: int) -> str:
        fraction = min(current / self.target, 1.0) if self.target else 1.0
        filled = int(width * fraction)
        if filled >= width:
            return "=" * width
        return "=" * filled + (">" if current else ".") + "." * (width - filled - 1)

    def _speed(self, current: int, elapsed: float) -> str:
        if self.unit == "B":
            return f"{format_bytes(current / max(elapsed, 1e-9))}/s"
        return format_per_step(elapsed / max(current, 1))
