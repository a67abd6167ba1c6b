"""Plots of a training run: history curves, the confusion matrix, misclassified images.

Every function works without a display. Figures are drawn with matplotlib's object API
(``matplotlib.figure.Figure`` on an Agg canvas, no pyplot state) unless they are to be shown.
``show=None`` (the default) shows them only when the active matplotlib backend is
interactive, so a script that calls ``history_show(history)`` plots in a window on a desktop
and does nothing, silently, on a headless server. ``show=True`` always calls
``pyplot.show()``; ``show=False`` never does. Shown figures are closed afterwards (unless
pyplot's interactive mode is on), so repeated calls do not pile up open figures.

A file argument saves the figure there, in the format its suffix names (``.png``, ``.pdf``,
``.svg``, ...; no suffix means ``.png`` is appended, as ``pyplot.savefig`` does). Parent
directories are created and the file is replaced atomically.
"""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Mapping
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from cnn.backend import to_numpy
from cnn.utils.confusion import class_ids, confusion_matrix  # noqa: F401 (public here too)
from cnn.utils.fileio import atomic_write

# History keys that are bookkeeping, not curves to plot.
_BOOKKEEPING_KEYS = ("lr", "learning_rate", "epoch", "epochs")
_NON_INTERACTIVE_BACKENDS = ("agg", "cairo", "pdf", "pgf", "ps", "svg", "template")


# --------------------------------------------------------------------------- history


def history_show(history, accuracy_file=None, loss_file=None, show=None):
    """Plot the metric and the loss per epoch, as two figures.

    Args:
        history: a dict (or an object with a ``.history`` dict, as Keras returns) mapping
            "loss" and the metric names ("accuracy" for classifiers; "MAE", "mae", ... for
            regression) to one value per epoch (lists or 1-D arrays). "val_<name>" keys,
            when present, are drawn as a second curve (legend "train" / "validation").
            Every key besides "loss", "val_*" and bookkeeping keys ("lr", "epoch") is a
            metric; several metrics share the first figure.
        accuracy_file: where to save the metric figure (optional).
        loss_file: where to save the loss figure (optional).
        show: see the module docstring.
    Returns:
        ``(metric_figure, loss_figure)``; ``metric_figure`` is None when the history has no
        metric (then ``accuracy_file`` must be None).
    Raises:
        ValueError: "loss" is missing, a value is not a sequence of numbers, or
            ``accuracy_file`` is given for a history without a metric.
    """
    series = _history_series(history)
    if "loss" not in series:
        raise ValueError(f"history has no 'loss' key; it has {', '.join(series) or 'no keys'}")
    metrics = [name for name in series if name != "loss" and not name.startswith("val_")]
    metrics.sort(key=lambda name: name != "accuracy")  # accuracy first, the rest in given order
    if not metrics and accuracy_file is not None:
        raise ValueError(f"accuracy_file={str(accuracy_file)!r} given, but the history has "
                         f"no metric to plot; it has {', '.join(series)}")

    show = _resolve_show(show)
    metric_figure = None
    if metrics:
        metric_figure = _new_figure(show)
        _draw_curves(metric_figure, series, metrics, title="model " + ", ".join(metrics))
    loss_figure = _new_figure(show)
    _draw_curves(loss_figure, series, ["loss"], title="model loss")

    _finish([(metric_figure, accuracy_file), (loss_figure, loss_file)], show)
    return metric_figure, loss_figure


def _history_series(history) -> dict[str, np.ndarray]:
    if not isinstance(history, Mapping) and isinstance(getattr(history, "history", None), Mapping):
        history = history.history
    if not isinstance(history, Mapping):
        raise ValueError(f"history must be a dict of per-epoch values, "
                         f"got {type(history).__name__}")
    series = {}
    for name, values in history.items():
        if name in _BOOKKEEPING_KEYS:
            continue
        try:
            series[name] = np.array([float(value) for value in values], dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"history[{name!r}] must be a sequence of numbers, one per epoch, "
                             f"got {values!r:.80}") from None
    return series


def _draw_curves(figure, series, names, title):
    axes = figure.add_subplot()
    several = len(names) > 1
    for name in names:
        for key, role in ((name, "train"), ("val_" + name, "validation")):
            if key in series:
                values = series[key]
                label = f"{role} {name}" if several else role
                axes.plot(np.arange(1, len(values) + 1), values, marker="o", markersize=3,
                          label=label)
    axes.set_title(title)
    axes.set_xlabel("epoch")
    axes.set_ylabel(names[0] if not several else "value")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend(loc="best")
    axes.grid(alpha=0.3)


# --------------------------------------------------------------------------- confusion matrix


def confusion_show(labels, y_pred, y_true, normalize=False, confusion_file=None, show=None):
    """Draw the confusion matrix: true class i in row i, predicted class j in column j.

    Args:
        labels: class names, ``labels[i]`` for class i; their number sets the class count.
        y_pred, y_true: (m,) integer class ids (see ``cnn.utils.confusion``).
        normalize: divide each row by its sum, so entry [i, j] is the fraction of true
            class i predicted as j (rows sum to 1; a class with no samples stays all 0).
            The seed divided by the largest count instead, which mixes classes of different
            sizes; this is the usual per-class (recall) normalisation.
        confusion_file: where to save the figure (optional).
        show: see the module docstring.
    Returns:
        The matrix as drawn: (n, n) int64 counts, or float64 row fractions when ``normalize``.
    """
    labels = [str(label) for label in labels]
    matrix = confusion_matrix(y_pred, y_true, len(labels))
    if normalize:
        matrix = _normalize_rows(matrix)

    show = _resolve_show(show)
    figure = _new_figure(show, figsize=_confusion_figsize(len(labels)))
    _draw_confusion(figure, matrix, labels, normalize)
    _finish([(figure, confusion_file)], show)
    return matrix


def _normalize_rows(matrix) -> np.ndarray:
    row_sums = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, row_sums, out=np.zeros(matrix.shape, dtype=np.float64),
                     where=row_sums > 0)


def _confusion_figsize(num_classes):
    side = max(6.4, 0.55 * num_classes + 2.5)
    return (side, side * 0.85)


def _draw_confusion(figure, matrix, labels, normalize):
    axes = figure.add_subplot()
    image = axes.imshow(matrix, interpolation="nearest", cmap="Blues", vmin=0)
    figure.colorbar(image, ax=axes)
    classes = range(len(labels))
    axes.set_xticks(classes, labels, rotation=45)
    axes.set_yticks(classes, labels)
    axes.set_title("confusion matrix" + (" (each row sums to 1)" if normalize else ""))
    axes.set_xlabel("Predicted label")
    axes.set_ylabel("True label")

    fmt = ".2f" if normalize else "d"
    threshold = matrix.max() / 2
    for i, j in itertools.product(classes, classes):
        axes.text(j, i, format(matrix[i, j], fmt), ha="center", va="center",
                  color="white" if matrix[i, j] > threshold else "black")
    figure.tight_layout()


# --------------------------------------------------------------------------- misclassified images


def misclassified_show(images, y_pred, y_true, labels, file=None, max_images=25, show=None):
    """Draw a grid of the first ``max_images`` misclassified images, each titled with its true
    and its predicted class ("true: 7" over "pred: 1").

    Args:
        images: (N, 1, H, W), (N, 3, H, W) or (N, H, W) images.
        y_pred, y_true: (N,) integer class ids (see ``confusion_matrix``).
        labels: class names, ``labels[i]`` for class i.
        file: where to save the figure (optional).
        max_images: at most this many images are drawn, in sample order.
        show: see the module docstring.
    Returns:
        The figure. With no misclassified image it holds only a line of text saying so.
    """
    labels = [str(label) for label in labels]
    if (isinstance(max_images, bool) or not isinstance(max_images, (int, np.integer))
            or max_images < 1):
        raise ValueError(f"max_images must be a positive integer, got {max_images!r}")
    images = _displayable_images(images)
    predicted = class_ids("y_pred", y_pred, len(labels))
    true = class_ids("y_true", y_true, len(labels))
    if not len(images) == len(predicted) == len(true):
        raise ValueError(f"images, y_pred and y_true differ in length: "
                         f"{len(images)}, {len(predicted)}, {len(true)}")

    wrong = np.flatnonzero(predicted != true)
    shown = wrong[:max_images]
    columns = max(1, math.ceil(math.sqrt(len(shown))))
    rows = max(1, math.ceil(len(shown) / columns))
    show = _resolve_show(show)
    figure = _new_figure(show, figsize=(1.6 * columns + 0.4, 1.9 * rows + 0.6))
    if len(shown) == 0:
        figure.text(0.5, 0.5, f"no misclassified images among {len(images)}", ha="center",
                    va="center")
    else:
        figure.suptitle(f"misclassified: {len(wrong)} of {len(images)}"
                        + (f", first {len(shown)} shown" if len(shown) < len(wrong) else ""))
        titles = [f"true: {labels[true[index]]}\npred: {labels[predicted[index]]}"
                  for index in shown]
        _draw_mosaic(figure, images[shown], titles, columns)
    _finish([(figure, file)], show)
    return figure


# The grid of misclassified images, in inches: each cell is CELL_WIDTH x CELL_HEIGHT, the
# image TILE on its longer side, its title in the TITLE_BAND above it; MARGINS around the grid.
CELL_WIDTH, CELL_HEIGHT, TILE, TITLE_BAND = 1.6, 1.9, 1.5, 0.32
LEFT_MARGIN, TOP_MARGIN = 0.2, 0.42


def _draw_mosaic(figure, images, titles, columns):
    """Draw ``images`` ((n, H, W) grey or (n, H, W, 3) RGB) in a grid of ``columns``, each
    under its title, on ONE axes spanning the figure whose data units are inches from its top
    left corner: 25 images on one axes draw in a fraction of the time of 25 axes."""
    width, height = figure.get_size_inches()
    axes = figure.add_axes((0, 0, 1, 1))
    axes.set_axis_off()
    low, high = images.min(), images.max()  # one grey scale for all images
    scale = TILE / max(images.shape[1:3])  # inches per image pixel
    tile_height, tile_width = images.shape[1] * scale, images.shape[2] * scale
    for position, (image, title) in enumerate(zip(images, titles)):
        row, column = divmod(position, columns)
        left = LEFT_MARGIN + column * CELL_WIDTH + (CELL_WIDTH - tile_width) / 2
        top = TOP_MARGIN + row * CELL_HEIGHT + TITLE_BAND
        axes.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=low, vmax=high,
                    extent=(left, left + tile_width, top + tile_height, top), aspect="auto",
                    interpolation="nearest")
        axes.text(left + tile_width / 2, top - 0.04, title, ha="center", va="bottom",
                  fontsize=8)
    axes.set_xlim(0, width)
    axes.set_ylim(height, 0)


def _displayable_images(images) -> np.ndarray:
    """(N, 1, H, W) or (N, H, W) -> (N, H, W); (N, 3, H, W) -> (N, H, W, 3)."""
    images = np.asarray(to_numpy(images))
    if images.ndim == 4 and images.shape[1] == 1:
        return images[:, 0]
    if images.ndim == 4 and images.shape[1] == 3:
        return images.transpose(0, 2, 3, 1)
    if images.ndim == 3:
        return images
    raise ValueError(f"images must be (N, 1, H, W), (N, 3, H, W) or (N, H, W), "
                     f"got shape {images.shape}")


# ----------------------------------------------------------------------- figures, files, display


def _resolve_show(show) -> bool:
    if show is None:
        return _backend_is_interactive()
    return bool(show)


def _backend_is_interactive() -> bool:
    backend = matplotlib.get_backend().lower()
    try:
        from matplotlib.backends import BackendFilter, backend_registry
    except ImportError:  # matplotlib < 3.9
        return backend not in _NON_INTERACTIVE_BACKENDS
    return backend not in backend_registry.list_builtin(BackendFilter.NON_INTERACTIVE)


def _new_figure(show, **figure_options):
    """A pyplot figure when it is to be shown, otherwise a free-standing one on Agg."""
    if show:
        import matplotlib.pyplot as plt

        return plt.figure(**figure_options)
    figure = Figure(**figure_options)
    FigureCanvasAgg(figure)
    return figure


def _finish(figures_and_files, show):
    """Save each figure whose file is given, then show (and close) them when asked."""
    for figure, file in figures_and_files:
        if figure is not None and file is not None:
            save_figure(figure, file)
    if show:
        import matplotlib.pyplot as plt

        plt.show()
        if not plt.isinteractive():
            for figure, _ in figures_and_files:
                if figure is not None:
                    plt.close(figure)


def warm_up() -> None:
    """Draw a small figure with a line, an image and text into memory: this loads what the
    first figure of a process would otherwise wait for (fonts, the Agg renderer, the PNG
    writer)."""
    figure = _new_figure(False, figsize=(1, 1))
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], marker="o")
    axes.imshow([[0.0, 1.0]], cmap="gray")
    axes.set_title("true: 0\npred: 1", fontsize=8)
    figure.savefig(io.BytesIO(), format="png")


def save_figure(figure, path) -> Path:
    """Save ``figure`` to ``path`` atomically, creating parent directories; return the path.

    The format comes from the suffix (no suffix: ``.png`` is appended).
    """
    path = Path(path)
    if not path.suffix:
        path = path.with_name(path.name + ".png")
    file_format = path.suffix[1:].lower()
    supported = figure.canvas.get_supported_filetypes()
    if file_format not in supported:
        raise ValueError(f"{path}: cannot save a figure as {file_format!r}; "
                         f"supported suffixes: {', '.join(sorted(supported))}")
    with atomic_write(path) as stream:
        figure.savefig(stream, format=file_format)
    return path
