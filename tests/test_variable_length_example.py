"""The bucketed text classifier example (examples/bucketed_text_classifier.py) on tiny
settings: its data, its Sequence's batches of different lengths, and a run end to end."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_reviews_and_buckets(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    import bucketed_text_classifier as example

    reviews, labels = example.make_reviews(200, 12, np.random.default_rng(0))
    phrase = [[r[i:i + 2] == [example.NOT, example.BAD] for i in range(len(r) - 1)]
              for r in reviews]
    assert [int(any(p)) for p in phrase] == list(labels) and labels.mean() == 0.5
    data = example.Bucketed(reviews, labels, 16)
    shapes = [data[i][0].shape for i in range(len(data))]
    assert len({steps for _, steps in shapes}) > 3 and sum(n for n, _ in shapes) == 200
    for i, rows in enumerate(data.batches):
        ids, _ = data[i]
        assert ids.shape[1] == max(len(reviews[j]) for j in rows)
        for row, j in zip(ids, rows):  # each review, then padding (id 0) to the batch's end
            length = len(reviews[j])
            assert list(row[:length]) == list(reviews[j]) and not row[length:].any()
    bucketed, longest = data.padded_share()
    assert 0 <= bucketed < longest < 1


def test_run(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.setattr(sys, "argv", ["bucketed_text_classifier.py", "--samples", "80",
                                      "--epochs", "1", "--units", "4", "--embedding", "4"])
    runpy.run_path(str(EXAMPLES / "bucketed_text_classifier.py"), run_name="__main__")
    lines = capsys.readouterr().out.strip().splitlines()
    assert "training batches of lengths" in lines[0]
    assert any("(None, None, 4)" in line for line in lines)
    assert lines[-1].startswith("held-out accuracy: ") and lines[-1].endswith("on 16 reviews")
