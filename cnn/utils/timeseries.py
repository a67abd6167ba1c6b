"""Windows of a time series, the inputs and targets of sequence models.

``sliding_windows(series, length)`` turns a series (S, F) into every window of ``length``
consecutive steps (S - length - horizon + 1, length, F) and the value ``horizon`` steps after
each window's last step (S - length - horizon + 1, F)::

    x[j] = series[j : j + length]          y[j] = series[j + length + horizon - 1]
"""

from __future__ import annotations

import numpy as np

from cnn.utils import checks


def sliding_windows(series, length: int, horizon: int = 1):
    """Windows and their targets (copies, in the series' dtype).

    Args:
        series: (S, F) array, or (S,) for one feature (treated as (S, 1)).
        length: time steps per window.
        horizon: how many steps after the window's last step the target lies (1: the next).
    Returns:
        ``(x, y)``: (M, length, F) and (M, F) with M = S - length - horizon + 1.
    Raises:
        ValueError: the series is not 1-D or 2-D numbers, ``length`` or ``horizon`` is not a
            positive int, or the series is too short for one window and its target.
    """
    series = np.asarray(series)
    if series.ndim == 1:
        series = series[:, None]
    if series.ndim != 2 or not np.issubdtype(series.dtype, np.number):
        raise ValueError(
            f"series must be a (time steps, features) array of numbers, got shape "
            f"{series.shape} and dtype {series.dtype}"
        )
    length = checks.count("length", length, minimum=1)
    horizon = checks.count("horizon", horizon, minimum=1)
    count = series.shape[0] - length - horizon + 1
    if count < 1:
        raise ValueError(
            f"windows of {length} steps with targets {horizon} step(s) ahead need a series of "
            f"at least {length + horizon} steps, but it has {series.shape[0]}"
        )
    windows = np.lib.stride_tricks.sliding_window_view(series, length, axis=0)  # (., F, length)
    x = np.ascontiguousarray(windows[:count].transpose(0, 2, 1))
    y = series[length + horizon - 1:].copy()
    return x, y
