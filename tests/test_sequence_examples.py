"""The sequence examples run end to end on tiny settings (their full runs are in README)."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(script, args, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.setattr(sys, "argv", [script, *args])
    runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    return capsys.readouterr().out.strip().splitlines()


def test_addition_rnn_data_and_run(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    import addition_rnn

    questions, answers = addition_rnn.make_questions(50, np.random.default_rng(0))
    for question, answer in zip(questions, answers):
        a, b = question.strip().split("+")
        assert int(answer) == int(a) + int(b) and len(question) == 7 and len(answer) == 4
    assert len({tuple(sorted(q.strip().split("+"))) for q in questions}) == 50
    encoded = addition_rnn.one_hot(answers, 4)
    assert addition_rnn.decode(encoded) == answers
    lines = run_example("addition_rnn.py", ["--samples", "200", "--epochs", "1", "--units", "8"],
                        monkeypatch, capsys)
    assert lines[-1].startswith("held-out exact answers: ") and "of 20 3-digit sums" in lines[-1]


def test_transformer_encoder_data_and_run(monkeypatch, capsys):
    pytest.importorskip("cnn.layers.merge", reason="needs the functional API (the engine branch)")
    monkeypatch.syspath_prepend(str(EXAMPLES))
    import transformer_encoder

    tokens, counts = transformer_encoder.make_data(4, 5, 3, np.random.default_rng(0))
    for row, target in zip(tokens, counts.argmax(-1)):
        assert [list(row).count(t) for t in row] == list(target)
    lines = run_example("transformer_encoder.py", ["--train", "64", "--test", "16", "--epochs",
                                                   "1", "--dim", "8", "--hidden", "8"],
                        monkeypatch, capsys)
    assert lines[-1].startswith("held-out accuracy: ") and "of 16 sequences" in lines[-1]
