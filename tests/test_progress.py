"""Tests for the progress output: cnn.utils.progbar and the ProgbarLogger that fit uses."""

import io
import re

import numpy as np
import pytest

import cnn
from cnn.callbacks import ProgbarLogger
from cnn.layers import Flatten, Input, Output
from cnn.models import Model
from cnn.utils.progbar import Progbar, format_bytes, format_duration


class TerminalStream(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self):
        return True


def tiny_model():
    cnn.set_seed(0)
    model = Model(Input((1, 3, 3)))
    model.add_layer(Flatten())
    model.add_layer(Output(3))
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    return model


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.random((40, 1, 3, 3), dtype=np.float32), rng.integers(0, 3, 40)


FINAL_LINE = re.compile(r"^4/4 \[={30}\] - \d+s \d+(us|ms)/step - loss: \d\.\d{4} - accuracy: \d\.\d{4}"
                        r" - val_loss: \d\.\d{4} - val_accuracy: \d\.\d{4}$")


# ---------------------------------------------------------------- fit's output


def test_verbose_1_on_a_non_terminal_prints_plain_lines(capsys, data):
    x, y = data
    tiny_model().fit(x, y, batch_size=10, epochs=2, verbose=1, validation_data=(x[:8], y[:8]))
    out = capsys.readouterr().out
    assert "\r" not in out and "ETA" not in out
    lines = out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and len(lines) == 4
    assert FINAL_LINE.match(lines[1]) and FINAL_LINE.match(lines[3]), lines


def test_verbose_1_in_a_terminal_redraws_a_live_bar(data, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    x, y = data
    stream = TerminalStream()
    tiny_model().fit(x, y, batch_size=10, epochs=1, verbose=0, validation_data=(x[:8], y[:8]),
                     callbacks=[ProgbarLogger(1, stream=stream, interval=0)])
    out = stream.getvalue()
    assert out.startswith("Epoch 1/1\n\r1/4 [=======>......................] - ETA: ")
    redraws = out.split("\r")[1:]
    # One redraw per batch, then the final line once validation is done.
    assert [r.split(" ")[0] for r in redraws] == ["1/4", "2/4", "3/4", "4/4", "4/4"]
    assert all("ETA: " in r and " - loss: " in r and "val_" not in r for r in redraws[:4])
    final = redraws[-1]
    assert final.endswith("\n") and FINAL_LINE.match(final.rstrip("\n").rstrip())


def test_verbose_2_prints_one_line_per_epoch(capsys, data):
    x, y = data
    tiny_model().fit(x, y, batch_size=10, epochs=3, verbose=2, validation_split=0.25)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    for epoch, line in enumerate(lines, start=1):
        assert re.match(rf"^Epoch {epoch}/3 - \d+s - loss: \d\.\d{{4}} - accuracy: \d\.\d{{4}} - "
                        r"val_loss: \d\.\d{4} - val_accuracy: \d\.\d{4}$", line), line


def test_verbose_0_prints_nothing(capsys, data):
    x, y = data
    tiny_model().fit(x, y, batch_size=10, epochs=2, verbose=0)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_epoch_numbers_continue_when_training_resumes(capsys, data):
    x, y = data
    model = tiny_model()
    model.fit(x, y, epochs=1, verbose=2)
    model.fit(x, y, epochs=2, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" - ")[0] for line in lines] == ["Epoch 1/1", "Epoch 2/3", "Epoch 3/3"]


def test_progbar_logger_rejects_a_bad_verbose():
    with pytest.raises(ValueError, match="verbose"):
        ProgbarLogger(3)


# ---------------------------------------------------------------- Progbar


def test_progbar_redraws_never_wrap_in_a_narrow_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    stream = TerminalStream()
    bar = Progbar(125, stream=stream, interval=0)
    values = {"loss": 0.25, "accuracy": 0.9}
    bar.update(57, values)
    bar.update(125, values, finalize=True)
    redraw, final = stream.getvalue().split("\r")[1:]
    assert len(redraw) == 59 and redraw.startswith(" 57/125 [====>.....] - ETA: ")  # bar narrowed to 10
    assert final.startswith("125/125 [" + "=" * 30 + "] - ") and final.endswith("accuracy: 0.9000\n")


def test_progbar_terminal_pads_over_a_longer_previous_line(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    stream = TerminalStream()
    bar = Progbar(10, width=10, stream=stream, interval=0)
    bar.update(1, {"loss": 123.456789})
    bar.update(2, {})
    first, second = stream.getvalue().split("\r")[1:]
    assert len(second) == len(first) and second.rstrip().startswith(" 2/10 [==>.......] - ETA: ")


def test_progbar_non_terminal_writes_only_the_final_line():
    stream = io.StringIO()
    bar = Progbar(3, width=6, stream=stream, interval=0)
    for step in (1, 2, 3):
        bar.update(step, {"loss": 0.5})
    assert re.fullmatch(r"3/3 \[======\] - \d+s \d+us/step - loss: 0\.5000\n", stream.getvalue())


def test_progbar_counts_bytes_and_unknown_targets():
    stream = io.StringIO()
    Progbar(2_500_000, width=4, stream=stream, unit="B").update(2_500_000)
    assert re.fullmatch(r"2\.5 MB/2\.5 MB \[====\] - \d+s [\d.]+ [kMG]?B/s\n", stream.getvalue())
    stream = io.StringIO()
    Progbar(None, stream=stream, unit="B").update(1500, finalize=True)
    assert re.fullmatch(r"1\.5 kB - \d+s [\d.]+ [kMG]?B/s\n", stream.getvalue())
    with pytest.raises(ValueError, match="unit"):
        Progbar(3, unit="files")


@pytest.mark.parametrize("count, text", [(0, "0 B"), (999, "999 B"), (1000, "1.0 kB"),
                                         (9_912_422, "9.9 MB"), (3e9, "3.0 GB")])
def test_format_bytes(count, text):
    assert format_bytes(count) == text


@pytest.mark.parametrize("seconds, text", [(0.4, "0s"), (59, "59s"), (61, "1:01"), (3725, "1:02:05")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_learning_rate_is_shown_only_when_it_varies(capsys, data):
    from cnn.optimizers import Adam
    from cnn.schedules import ExponentialDecay

    x, y = data
    model = tiny_model()
    model.fit(x, y, batch_size=10, epochs=2, verbose=2)
    assert "learning_rate" not in capsys.readouterr().out
    model.compile(optimizer=Adam(ExponentialDecay(0.01, 4, 0.5)), loss="categorical_crossentropy")
    model.fit(x, y, batch_size=10, epochs=2, verbose=2)
    lines = capsys.readouterr().out.strip().splitlines()
    assert all("learning_rate: " in line for line in lines)
