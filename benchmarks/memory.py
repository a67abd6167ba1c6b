"""Peak memory of predict and evaluate on 60,000 images, and whether training memory grows.

    PYTHONPATH=. python benchmarks/memory.py [--network seed] [--epochs 3]

Each measurement runs in a fresh subprocess (so that one does not inherit the other's peak):
peak resident memory (VmHWM) after loading the data, after ``predict`` / ``evaluate`` on the
60,000 training images, and the resident memory (VmRSS) after each training epoch. "Beyond
the data" subtracts the resident memory once the data is loaded and the model built (the
peak is reset there, so that the loader's own transient peak does not hide anything). Memory
the process already holds is reused, so the peak of the arrays allocated during predict or
evaluate (tracemalloc, to which NumPy reports) is given too: the memory they need at most.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import common  # benchmarks/common.py

SECTION = "Memory (peak resident memory beyond the loaded data)"
HEADER = """| date | network | data + model (MiB) | predict 60k, beyond (MiB) | evaluate 60k, beyond (MiB) | arrays allocated at once, predict / evaluate (MiB) | RSS after each training epoch (MiB) | machine |
| --- | --- | ---: | ---: | ---: | ---: | --- | --- |"""

CHILD = r"""
import json, sys, tracemalloc
sys.path[:0] = [{root!r}, {bench!r}]
import common
(x, y), _ = common.load_fashion_mnist()
model = common.cnn_model({network!r})
common.reset_peak_rss()  # forget the loader's transient peak
base = common.peak_rss_mb()
if {what!r} in ("predict", "evaluate"):
    tracemalloc.start()  # NumPy reports its array allocations to tracemalloc
    model.predict(x) if {what!r} == "predict" else model.evaluate(x, y)
    allocated = tracemalloc.get_traced_memory()[1] / 2**20
    print(json.dumps({{"beyond": common.peak_rss_mb() - base, "base": base,
                      "allocated": allocated}}))
else:
    rss = []
    for _ in range({epochs}):
        model.fit(x, y, batch_size=32, epochs=1, verbose=0)
        rss.append(common.current_rss_mb())
    print(json.dumps({{"epochs": rss, "base": base}}))
"""


def run_child(what: str, network: str, epochs: int) -> dict:
    bench = Path(__file__).resolve().parent
    code = CHILD.format(root=str(bench.parent), bench=str(bench), network=network, what=what,
                        epochs=epochs)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", choices=common.NETWORKS, default="seed")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()

    predict = run_child("predict", args.network, args.epochs)
    evaluate = run_child("evaluate", args.network, args.epochs)
    train = run_child("train", args.network, args.epochs)
    epochs = ", ".join(f"{value:.0f}" for value in train["epochs"])
    print(f"data + model: {predict['base']:.0f} MiB resident")
    print(f"predict on 60k: {predict['beyond']:.0f} MiB beyond that; evaluate: "
          f"{evaluate['beyond']:.0f} MiB (peak of the arrays allocated meanwhile: "
          f"{predict['allocated']:.0f} and {evaluate['allocated']:.0f} MiB)")
    print(f"resident memory after each training epoch (batch 32): {epochs} MiB")
    if not args.no_record:
        common.append_row(SECTION, HEADER, common.row(
            common.today(), args.network, f"{predict['base']:.0f}", f"{predict['beyond']:.0f}",
            f"{evaluate['beyond']:.0f}",
            f"{predict['allocated']:.0f} / {evaluate['allocated']:.0f}", epochs,
            common.machine_line()))


if __name__ == "__main__":
    main()
