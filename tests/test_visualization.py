"""Tests for cnn.utils.visualization: history curves, confusion matrix, misclassified images."""

import os
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.image  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

import cnn.utils.visualization as visualization  # noqa: E402

from cnn.utils.visualization import (  # noqa: E402
    confusion_matrix,
    confusion_show,
    history_show,
    misclassified_show,
    save_figure,
)
from helpers import package_env  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_valid_png(path):
    path = Path(path)
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def curves(figure):
    (axes,) = figure.axes
    lines = [line for line in axes.get_lines() if isinstance(line, Line2D)]
    legend = [text.get_text() for text in axes.get_legend().get_texts()]
    return lines, legend


# ---------------------------------------------------------------- history_show


def test_history_show_writes_two_pngs(tmp_path):
    history = {"accuracy": [0.5, 0.7, 0.8], "loss": [1.0, 0.6, 0.4]}
    accuracy_file = tmp_path / "plots" / "accuracy.png"
    loss_file = tmp_path / "plots" / "deeper" / "loss.png"
    metric_figure, loss_figure = history_show(history, accuracy_file, loss_file, show=False)
    assert_valid_png(accuracy_file)
    assert_valid_png(loss_file)

    lines, legend = curves(metric_figure)
    assert len(lines) == 1 and legend == ["train"]
    assert lines[0].get_ydata().tolist() == [0.5, 0.7, 0.8]
    assert lines[0].get_xdata().tolist() == [1, 2, 3]
    assert metric_figure.axes[0].get_title() == "model accuracy"
    lines, legend = curves(loss_figure)
    assert len(lines) == 1 and lines[0].get_ydata().tolist() == [1.0, 0.6, 0.4]
    assert loss_figure.axes[0].get_title() == "model loss"


def test_history_show_draws_validation_curves(tmp_path):
    history = {"loss": [1.0, 0.5], "accuracy": [0.4, 0.8],
               "val_loss": [1.1, 0.7], "val_accuracy": np.array([0.3, 0.6])}
    metric_figure, loss_figure = history_show(history, show=False)
    for figure, validation in ((metric_figure, [0.3, 0.6]), (loss_figure, [1.1, 0.7])):
        lines, legend = curves(figure)
        assert len(lines) == 2 and legend == ["train", "validation"]
        assert lines[1].get_ydata().tolist() == validation


@pytest.mark.parametrize("metric", ["MAE", "mae"])
def test_history_show_regression_metric(tmp_path, metric):
    history = {"loss": [3.0, 2.0], metric: [1.5, 1.0], "val_" + metric: [1.6, 1.2]}
    metric_figure, _ = history_show(history, accuracy_file=tmp_path / "metric.png", show=False)
    assert_valid_png(tmp_path / "metric.png")
    lines, legend = curves(metric_figure)
    assert len(lines) == 2 and legend == ["train", "validation"]
    assert metric_figure.axes[0].get_ylabel() == metric


def test_history_show_accepts_an_object_with_a_history_dict():
    class History:
        history = {"loss": [1.0], "accuracy": [0.5], "lr": [0.01]}

    metric_figure, _ = history_show(History(), show=False)
    lines, _ = curves(metric_figure)
    assert len(lines) == 1  # "lr" is bookkeeping, not a metric


def test_history_show_without_a_metric():
    metric_figure, loss_figure = history_show({"loss": [1.0, 0.5]}, show=False)
    assert metric_figure is None and len(curves(loss_figure)[0]) == 1


def test_history_show_rejects_bad_histories(tmp_path):
    with pytest.raises(ValueError, match="no 'loss'"):
        history_show({"accuracy": [0.5]}, show=False)
    with pytest.raises(ValueError, match="history\\['accuracy'\\]"):
        history_show({"loss": [1.0], "accuracy": 0.5}, show=False)
    with pytest.raises(ValueError, match="no metric"):
        history_show({"loss": [1.0]}, accuracy_file=tmp_path / "a.png", show=False)
    with pytest.raises(ValueError, match="dict"):
        history_show([1.0, 2.0], show=False)


def test_history_show_does_not_leave_pyplot_figures_open():
    import matplotlib.pyplot as plt

    before = len(plt.get_fignums())
    for _ in range(3):
        history_show({"accuracy": [0.5, 0.7], "loss": [1.0, 0.6]})  # show=None under Agg
    assert len(plt.get_fignums()) == before


@pytest.mark.filterwarnings("ignore:.*non-interactive:UserWarning")
def test_show_true_calls_pyplot_show_once_and_closes_the_figures(monkeypatch):
    import matplotlib.pyplot as plt

    calls = []
    monkeypatch.setattr(plt, "show", lambda *args, **kwargs: calls.append(plt.get_fignums()))
    before = set(plt.get_fignums())
    history_show({"accuracy": [0.5, 0.7], "loss": [1.0, 0.6]}, show=True)
    assert len(calls) == 1 and len(set(calls[0]) - before) == 2  # both figures were open to be shown
    confusion_show(["a", "b"], [0, 1], [0, 0], show=True)
    assert len(calls) == 2
    assert set(plt.get_fignums()) == before


def test_seed_style_call_is_silent_without_a_display():
    environment = package_env({key: value for key, value in os.environ.items()
                               if key not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")})
    snippet = ("from cnn.utils.visualization import history_show\n"
               "history_show({'accuracy': [0.5, 0.7], 'loss': [1.0, 0.6]})\n")
    result = subprocess.run([sys.executable, "-W", "default", "-c", snippet], env=environment,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""


# ---------------------------------------------------------------- confusion matrix


def test_confusion_matrix_equals_a_hand_count():
    y_true = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 2, 2, 2, 0, 2])
    expected = np.array([[1, 1, 0],
                         [0, 2, 1],
                         [1, 0, 3]])
    matrix = confusion_matrix(y_pred, y_true, 3)
    assert matrix.dtype == np.int64 and np.array_equal(matrix, expected)


def test_confusion_matrix_matches_a_loop_on_random_data():
    rng = np.random.default_rng(3)
    y_true, y_pred = rng.integers(0, 7, 500), rng.integers(0, 7, 500)
    expected = np.zeros((7, 7), dtype=np.int64)
    for true, predicted in zip(y_true, y_pred):
        expected[true, predicted] += 1
    assert np.array_equal(confusion_matrix(y_pred, y_true, 7), expected)


def test_confusion_matrix_accepts_column_vectors_and_whole_floats():
    matrix = confusion_matrix(np.array([[1.0], [0.0]]), np.array([1, 1]), 2)
    assert matrix.tolist() == [[0, 0], [1, 1]]


@pytest.mark.parametrize(
    "y_pred, y_true, message",
    [
        ([0, 1], [0, 1, 1], "differ in length"),
        ([0, 1.5], [0, 1], "integer"),
        ([0, 3], [0, 1], "outside range\\(3\\)"),
        ([0, 1], [-1, 1], "y_true holds class ids outside"),
        (np.eye(3)[:2], [0, 1], "argmax"),
        (["a", "b"], [0, 1], "integer"),
    ],
    ids=["length", "fraction", "too-large", "negative", "one-hot", "strings"],
)
def test_confusion_inputs_are_validated(y_pred, y_true, message):
    with pytest.raises(ValueError, match=message):
        confusion_matrix(np.asarray(y_pred), np.asarray(y_true), 3)
    with pytest.raises(ValueError, match=message):
        confusion_show(["a", "b", "c"], np.asarray(y_pred), np.asarray(y_true), show=False)


def test_confusion_matrix_rejects_a_bad_class_count():
    with pytest.raises(ValueError, match="num_classes"):
        confusion_matrix([0], [0], 0)


def test_confusion_show_counts_and_writes_png(tmp_path):
    labels = ["cat", "dog", "bird"]
    y_true = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 2, 2, 2, 0, 2])
    file = tmp_path / "out" / "confusion.png"
    matrix = confusion_show(labels, y_pred, y_true, confusion_file=file, show=False)
    assert np.array_equal(matrix, confusion_matrix(y_pred, y_true, 3))
    assert_valid_png(file)


def test_confusion_show_normalizes_each_row(tmp_path):
    y_true = np.array([0, 0, 0, 0, 1, 1])
    y_pred = np.array([0, 0, 0, 1, 1, 0])
    matrix = confusion_show(["0", "1", "2"], y_pred, y_true, normalize=True,
                            confusion_file=tmp_path / "normalized.png", show=False)
    assert matrix.dtype == np.float64
    np.testing.assert_allclose(matrix, [[0.75, 0.25, 0.0],
                                        [0.5, 0.5, 0.0],
                                        [0.0, 0.0, 0.0]])  # class 2 has no samples: stays 0
    assert_valid_png(tmp_path / "normalized.png")


def test_confusion_show_cell_text_and_colours(monkeypatch):
    drawn = []
    original = visualization._draw_confusion

    def spy(figure, matrix, labels, normalize):
        original(figure, matrix, labels, normalize)
        drawn.append(figure)

    monkeypatch.setattr(visualization, "_draw_confusion", spy)
    confusion_show(["a", "b"], np.array([0, 0, 0, 0, 1]), np.array([0, 0, 0, 1, 1]), show=False)
    (axes, _colorbar) = drawn[0].axes
    cells = {text.get_text(): text.get_color() for text in axes.texts}
    assert cells == {"3": "white", "1": "black", "0": "black"}
    assert [label.get_text() for label in axes.get_xticklabels()] == ["a", "b"]
    assert axes.get_ylabel() == "True label" and axes.get_xlabel() == "Predicted label"


def test_confusion_show_with_fashion_mnist_names_fits_every_label(monkeypatch):
    from cnn.datasets.fashion_mnist import CLASS_NAMES

    drawn = []
    original = visualization._draw_confusion
    monkeypatch.setattr(visualization, "_draw_confusion",
                        lambda figure, *args: (original(figure, *args), drawn.append(figure)))
    y_true = np.repeat(np.arange(10), 3)
    confusion_show(CLASS_NAMES, np.roll(y_true, 1), y_true, show=False)
    figure = drawn[0]
    axes = figure.axes[0]
    assert [label.get_text() for label in axes.get_xticklabels()] == list(CLASS_NAMES)
    assert [label.get_text() for label in axes.get_yticklabels()] == list(CLASS_NAMES)
    renderer = figure.canvas.get_renderer()
    canvas = figure.bbox
    for label in axes.get_xticklabels() + axes.get_yticklabels():
        box = label.get_window_extent(renderer)
        assert box.x0 >= canvas.x0 and box.y0 >= canvas.y0 and box.x1 <= canvas.x1, label.get_text()


# ---------------------------------------------------------------- misclassified images


def test_misclassified_show_grid(tmp_path):
    rng = np.random.default_rng(4)
    images = rng.random((30, 1, 8, 8)).astype(np.float32)
    y_true = np.arange(30) % 10
    y_pred = y_true.copy()
    y_pred[[2, 5, 7]] = [9, 0, 1]
    figure = misclassified_show(images, y_pred, y_true, [str(d) for d in range(10)],
                                file=tmp_path / "wrong.png", show=False)
    assert_valid_png(tmp_path / "wrong.png")
    (mosaic,) = figure.axes  # one axes for all images: 25 axes took 3x as long to draw
    assert [text.get_text() for text in mosaic.texts] == ["true: 2\npred: 9", "true: 5\npred: 0",
                                                          "true: 7\npred: 1"]
    assert [image.get_array().tolist() for image in mosaic.images] == [
        images[index, 0].tolist() for index in (2, 5, 7)]


def test_misclassified_mosaic_shows_each_image_in_its_cell_under_its_title():
    # Rendered pixels: each image's pixel centres, in the grid cell of its position, hold its
    # grey level on the grid's shared scale, and its title sits above it, centred.
    rng = np.random.default_rng(5)
    images = rng.random((9, 1, 4, 6))
    y_true = np.zeros(9, dtype=int)
    y_pred = np.array([1, 0, 1, 1, 0, 1, 1, 1, 0])  # six wrong: a 3 x 2 grid
    figure = misclassified_show(images, y_pred, y_true, ["a", "b"], show=False)
    figure.canvas.draw()
    pixels = np.asarray(figure.canvas.buffer_rgba())[..., 0].astype(float)
    dpi = figure.dpi
    wrong = np.flatnonzero(y_pred != y_true)
    low, high = images[wrong].min(), images[wrong].max()
    scale = visualization.TILE / 6  # inches per image pixel: the width is the longer side
    (mosaic,) = figure.axes
    for position, index in enumerate(wrong):
        row, column = divmod(position, 3)
        left = (visualization.LEFT_MARGIN + column * visualization.CELL_WIDTH
                + (visualization.CELL_WIDTH - 6 * scale) / 2)
        top = visualization.TOP_MARGIN + row * visualization.CELL_HEIGHT + visualization.TITLE_BAND
        rows, columns = np.meshgrid(np.arange(4), np.arange(6), indexing="ij")
        at_y = ((top + (rows + 0.5) * scale) * dpi).astype(int)
        at_x = ((left + (columns + 0.5) * scale) * dpi).astype(int)
        expected = (images[index, 0] - low) / (high - low) * 255
        np.testing.assert_allclose(pixels[at_y, at_x], expected, atol=2)  # 256-level LUT
        title = mosaic.texts[position]
        box = title.get_window_extent()
        height = figure.get_size_inches()[1] * dpi
        assert title.get_text() == "true: a\npred: b"
        assert box.x0 < (left + 3 * scale) * dpi < box.x1  # centred over its image
        assert 0 < top * dpi - (height - box.y0) < 0.1 * dpi  # just above it


def test_misclassified_show_limits_the_number_of_images():
    images = np.zeros((40, 6, 6))
    y_true = np.zeros(40, dtype=int)
    figure = misclassified_show(images, np.ones(40, dtype=int), y_true, ["a", "b"], max_images=7,
                                show=False)
    assert len(figure.axes[0].images) == 7 and len(figure.axes[0].texts) == 7


def test_misclassified_show_with_no_mistakes(tmp_path):
    labels = ["a", "b"]
    figure = misclassified_show(np.zeros((3, 1, 4, 4)), [0, 1, 0], [0, 1, 0], labels,
                                file=tmp_path / "none.png", show=False)
    assert figure.axes == [] and "no misclassified" in figure.texts[0].get_text()
    assert_valid_png(tmp_path / "none.png")


def test_misclassified_show_validates_inputs():
    with pytest.raises(ValueError, match="differ in length"):
        misclassified_show(np.zeros((3, 4, 4)), [0, 1], [0, 1], ["a", "b"], show=False)
    with pytest.raises(ValueError, match="images must be"):
        misclassified_show(np.zeros((3, 2, 4, 4)), [0, 1, 0], [0, 1, 1], ["a", "b"], show=False)
    with pytest.raises(ValueError, match="max_images"):
        misclassified_show(np.zeros((3, 4, 4)), [0, 1, 0], [0, 1, 1], ["a", "b"], max_images=0, show=False)


# ---------------------------------------------------------------- saving


def test_save_figure_formats_and_errors(tmp_path):
    figure, _ = history_show({"loss": [1.0, 0.5], "accuracy": [0.1, 0.2]}, show=False)
    assert save_figure(figure, tmp_path / "plain").name == "plain.png"
    assert_valid_png(tmp_path / "plain.png")
    assert save_figure(figure, tmp_path / "curve.svg").read_text().lstrip().startswith("<?xml")
    with pytest.raises(ValueError, match="curve.xyz"):
        save_figure(figure, tmp_path / "curve.xyz")
    assert not (tmp_path / "curve.xyz").exists()
