"""The seed's POI trajectory (``SquPOI`` in ``POI.mat``) and the plots both POI examples draw.

Data as the seed prepares it: the (3, 2427) matrix transposed to (2427, 3), the mean of each
coordinate subtracted; the test targets are ``d[601:]`` (1826 steps).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy.io import loadmat

TRAIN_END = 600  # the seed trains on d[:600] -> d[1:601]
PLOT_STEPS = 100
_CANDIDATES = ("../shared/seed/data/POI.mat", "data/POI.mat", "tests/fixtures/seed/data/POI.mat")


def default_data_path() -> str | None:
    """``$CNN_POI``, else ``../shared/seed/data/POI.mat``, ``data/POI.mat`` or the copy in
    ``tests/fixtures/seed/data/`` (paths relative to the repository)."""
    if os.environ.get("CNN_POI"):
        return os.environ["CNN_POI"]
    root = Path(__file__).resolve().parents[1]
    for candidate in _CANDIDATES:
        if (root / candidate).exists():
            return str(root / candidate)
    return None


def load_poi(path):
    """``(series (2427, 3) float64 with zero-mean columns, the subtracted mean (3,))``."""
    if path is None:
        raise SystemExit("POI.mat not found: pass --data PATH (or set CNN_POI)")
    series = loadmat(path)["SquPOI"].T.astype(np.float64)
    mean = series.mean(axis=0)
    return series - mean, mean


def seed_mae(prediction, truth) -> float:
    """The seed's metric: the sum over the 3 coordinates of each one's mean absolute error."""
    return float(np.abs(prediction - truth).mean(axis=0).sum())


def plot_against_truth(prediction, truth, mean, title, path) -> None:
    """Three panels (x, y, z) of the first ``PLOT_STEPS`` steps, in the original units."""
    steps = np.arange(1, PLOT_STEPS + 1)
    figure = Figure(figsize=(8, 6.5), dpi=90)
    FigureCanvasAgg(figure)
    figure.suptitle(title)
    axes = figure.subplots(3, 1, sharex=True)
    for k, (ax, name) in enumerate(zip(axes, "xyz")):
        ax.plot(steps, truth[:PLOT_STEPS, k] + mean[k], label=f"true {name}", color="0.3")
        ax.plot(steps, prediction[:PLOT_STEPS, k] + mean[k], label=f"predicted {name}",
                color="tab:red", linestyle="--")
        ax.set_ylabel(name)
        ax.legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("test step")
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    print(f"wrote {path}")
