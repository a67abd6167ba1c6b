"""Peak resident memory while training one epoch from a numpy.memmap of >= 4 GB.

    python benchmarks/memmap_rss.py [--gigabytes 4.2] [--dir /tmp]

Writes a float32 .npy file of random images (1, 28, 28) in ``--dir``, opens it with
``np.load(..., mmap_mode="r")``, trains a small network for one epoch (shuffled, batch 256)
and prints the peak resident set size (``VmHWM`` of /proc/self/status) before and after,
then deletes the file. Memory does not depend on how busy the machine is; time does.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cnn  # noqa: E402
from cnn.layers import Dense, Flatten, Input, Output  # noqa: E402
from cnn.models import Sequential  # noqa: E402

SAMPLE = (1, 28, 28)


def peak_rss_mb() -> float:
    """``VmHWM`` (peak resident set size) of this process, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def reset_peak_rss() -> bool:
    """Start ``VmHWM`` afresh (Linux: writing 5 to /proc/self/clear_refs), so that the peak
    measured is the training's, not the file writing's. False where that is refused."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def write_data(path: Path, rows: int, chunk: int = 20_000) -> None:
    """A .npy of ``rows`` random images, written in chunks with plain file writes (a
    writable memmap would count its pages in this process's resident memory)."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
              "fortran_order": False, "shape": (rows, *SAMPLE)}
    rng = np.random.default_rng(0)
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        for start in range(0, rows, chunk):
            stop = min(start + chunk, rows)
            f.write(rng.random((stop - start, *SAMPLE), dtype=np.float32).tobytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=4.2)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    rows = int(args.gigabytes * 2**30) // (int(np.prod(SAMPLE)) * 4)
    path = Path(args.dir) / f"cnn-memmap-{os.getpid()}.npy"
    try:
        start = time.perf_counter()
        write_data(path, rows)
        size = path.stat().st_size / 2**30
        print(f"wrote {path}: {rows} samples, {size:.2f} GiB in {time.perf_counter() - start:.0f} s")
        x = np.load(path, mmap_mode="r")
        y = (np.arange(rows) % 10).astype(np.int64)
        cnn.set_seed(0)
        model = Sequential([Input(SAMPLE), Flatten(), Dense(32, activation="relu"), Output(10)])
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
        reset = reset_peak_rss()
        before = current_rss_mb()
        start = time.perf_counter()
        model.fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0, shuffle=True)
        seconds = time.perf_counter() - start
        after = peak_rss_mb()
        batch_mb = args.batch_size * int(np.prod(SAMPLE)) * 4 / 2**20
        print(f"resident {before:.0f} MB before fit; peak RSS (VmHWM"
              f"{', reset before fit' if reset else ', since start'}) {after:.0f} MB after one shuffled "
              f"epoch over {size:.2f} GiB (one batch of inputs: {batch_mb:.1f} MB; the labels "
              f"and their one-hot copy: {rows * 8 / 2**20 + rows * 40 / 2**20:.0f} MB); "
              f"epoch time {seconds:.0f} s")
    finally:
        path.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
