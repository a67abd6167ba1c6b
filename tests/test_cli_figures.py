"""Tests for cnn.cli.figures: ``cnn train``'s figures drawn in a process of their own."""

import multiprocessing
import os
import signal
import time

import matplotlib

matplotlib.use("Agg")

import matplotlib.image  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from cnn.cli import figures as figures_module  # noqa: E402
from cnn.cli.figures import (  # noqa: E402
    FigureError,
    FigureProcess,
    FigureProcesses,
    InlineFigures,
    start_figures,
)
from cnn.utils.fileio import HOST_TAG  # noqa: E402

LABELS = [str(digit) for digit in range(10)]
HISTORY = {"epoch": [1, 2, 3], "loss": [1.0, 0.6, 0.4], "accuracy": [0.5, 0.7, 0.8],
           "val_loss": [1.1, 0.7, 0.5], "val_accuracy": [0.4, 0.6, 0.7]}


def scored_images():
    """(images (40, 1, 8, 8), predicted ids, true ids) with 10 of them wrong."""
    rng = np.random.default_rng(0)
    true = np.arange(40) % 10
    predicted = np.where(np.arange(40) % 4 == 0, (true + 1) % 10, true)
    return rng.random((40, 1, 8, 8)).astype(np.float32), predicted, true


def draw_all(figures, folder):
    """Send the four figures of ``cnn train`` to ``figures``; return their paths."""
    images, predicted, true = scored_images()
    paths = [folder / name for name in ("accuracy.png", "loss.png", "confusion.png",
                                        "misclassified.png")]
    figures.draw("history_show", paths[:2], HISTORY, paths[0], paths[1], show=False)
    figures.draw("confusion_show", paths[2:3], LABELS, predicted, true,
                 confusion_file=paths[2], show=False)
    figures.draw("misclassified_show", paths[3:], images, predicted, true, LABELS,
                 file=paths[3], show=False)
    return paths


@pytest.mark.parametrize("kind", [FigureProcess, lambda: FigureProcesses(2)])
def test_the_processes_draw_the_pixels_this_process_draws(tmp_path, kind):
    with kind() as figures:
        elsewhere = draw_all(figures, tmp_path / "process")
        figures.wait()
    with InlineFigures() as figures:
        here = draw_all(figures, tmp_path / "inline")
        figures.wait()
    for theirs, ours in zip(elsewhere, here):
        np.testing.assert_array_equal(matplotlib.image.imread(theirs),
                                      matplotlib.image.imread(ours), err_msg=theirs.name)
    assert sorted(p.name for p in (tmp_path / "process").iterdir()) == sorted(
        p.name for p in elsewhere)  # no temporary file left


def test_the_process_ends_with_the_with_block_also_on_an_error(tmp_path):
    with pytest.raises(KeyError):
        with FigureProcess() as figures:
            draw_all(figures, tmp_path)  # pending: the process is ended without waiting
            raise KeyError("the command failed")
    assert not figures.process.is_alive() and figures.process.exitcode is not None
    start = time.perf_counter()
    with FigureProcess() as figures:
        pass  # an error before any figure (a bad --dataset) does not wait for matplotlib
    assert figures.process.exitcode is not None and time.perf_counter() - start < 0.5
    # (other tests' idle training workers may still be alive: only figure processes count)
    assert [p for p in multiprocessing.active_children() if p.name == "cnn-figures"] == []


def test_bad_values_fail_wait_with_the_drawings_own_error(tmp_path):
    with FigureProcess() as figures:
        figures.draw("history_show", [tmp_path / "a.png"], {"accuracy": [0.5]},
                     tmp_path / "a.png", show=False)
        with pytest.raises(ValueError, match="history has no 'loss' key") as caught:
            figures.wait()
        assert not figures.process.is_alive()
    assert any("in the figure process (history_show)" in note for note in caught.value.__notes__)
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_cannot_be_written_fails_with_an_oserror_naming_it(tmp_path):
    (tmp_path / "taken").write_text("a file, not a directory")
    target = tmp_path / "taken" / "confusion.png"
    images, predicted, true = scored_images()
    with FigureProcess() as figures:
        figures.draw("confusion_show", [target], LABELS, predicted, true,
                     confusion_file=target, show=False)
        with pytest.raises(OSError) as caught:
            figures.wait()
    assert "taken" in str(caught.value.filename)


class UnprintableLabel:
    def __str__(self):
        raise RuntimeError("this label has no name")


def test_any_other_failure_is_a_figure_error_naming_the_drawing(tmp_path):
    images, predicted, true = scored_images()
    labels = LABELS[:9] + [UnprintableLabel()]
    with FigureProcess() as figures:
        figures.draw("misclassified_show", [tmp_path / "m.png"], images, predicted, true, labels,
                     file=tmp_path / "m.png", show=False)
        with pytest.raises(FigureError, match="misclassified_show failed in the figure process: "
                                              "RuntimeError: this label has no name"):
            figures.wait()


def test_a_killed_process_fails_wait_and_its_temporary_file_is_removed(tmp_path):
    with FigureProcess() as figures:
        os.kill(figures.process.pid, signal.SIGKILL)
        figures.process.join()
        # what a write cut short by the kill leaves: atomic_write's temporary file
        leftover = tmp_path / f".loss.png.{HOST_TAG}.{figures.process.pid}.0123abcd.tmp"
        leftover.write_bytes(b"\x89PNG half")
        figures.draw("history_show", [tmp_path / "accuracy.png", tmp_path / "loss.png"],
                     HISTORY, tmp_path / "accuracy.png", tmp_path / "loss.png", show=False)
        with pytest.raises(FigureError, match=r"the figure process died \(exit code -9\) while "
                                              r"drawing accuracy.png, loss.png"):
            figures.wait()
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_drawing_is_refused_in_both_kinds(tmp_path):
    for kind in (FigureProcess, InlineFigures):
        with kind() as figures:
            with pytest.raises(ValueError, match="unknown figure 'save_figure'; expected one of "
                                                 "history_show, confusion_show"):
                figures.draw("save_figure", [tmp_path / "x.png"], None, tmp_path / "x.png")


def test_an_mpi_rank_draws_in_its_own_process(tmp_path, monkeypatch):
    monkeypatch.setenv("PMI_SIZE", "1")
    with start_figures() as figures:
        assert isinstance(figures, InlineFigures) and not isinstance(figures, FigureProcess)
        paths = draw_all(figures, tmp_path)
        assert all(path.is_file() for path in paths)  # drawn when asked, before wait()
    monkeypatch.delenv("PMI_SIZE")
    monkeypatch.setattr(figures_module, "usable_cores", lambda: 1)
    with start_figures() as figures:
        assert isinstance(figures, FigureProcesses) and len(figures.processes) == 1
    monkeypatch.setattr(figures_module, "usable_cores", lambda: 16)
    with start_figures() as figures:
        assert len(figures.processes) == figures_module.MAX_PROCESSES == 2


def test_a_pool_sends_each_figure_to_an_idle_process_and_reports_any_failure(tmp_path):
    images, predicted, true = scored_images()
    with FigureProcesses(2) as figures:
        first, second = figures.processes
        figures.draw("confusion_show", [tmp_path / "c.png"], LABELS, predicted, true,
                     confusion_file=tmp_path / "c.png", show=False)
        figures.draw("history_show", [tmp_path / "l.png"], {"accuracy": [0.5]}, None,
                     tmp_path / "l.png", show=False)  # no loss: fails
        assert len(first.pending) == len(second.pending) == 1  # drawn at the same time
        with pytest.raises(ValueError, match="history has no 'loss' key"):
            figures.wait()
    assert not first.process.is_alive() and not second.process.is_alive()
    assert (tmp_path / "c.png").is_file() and not (tmp_path / "l.png").exists()


def test_the_process_yields_to_training():
    expected = min(19, os.getpriority(os.PRIO_PROCESS, 0) + figures_module.NICENESS)
    with FigureProcess() as figures:
        deadline = time.monotonic() + 20  # the process lowers its own priority once started
        while (os.getpriority(os.PRIO_PROCESS, figures.process.pid) != expected
               and time.monotonic() < deadline):
            time.sleep(0.01)
        assert os.getpriority(os.PRIO_PROCESS, figures.process.pid) == expected
