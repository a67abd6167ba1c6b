"""The FLOP floor: how close an epoch comes to the machine's float32 GEMM rate.

    PYTHONPATH=. python benchmarks/flop_floor.py --threads 1 [--epoch-seconds 5.1]

Measures NumPy's float32 GEMM rate (a 2048^3 product, and the GEMM shapes of the seed
network's layers at batch 32), counts the FLOPs of one training epoch of the seed network,
and prints ``floor = FLOPs / rate``; with ``--epoch-seconds`` (a measured epoch time, e.g.
from train_vs_torch.py) also the epoch time as a multiple of that floor.

FLOPs per training sample of Conv2D(20, 9x9) -> AvgPool(2) -> Dense(100) -> Output(10) on
1x28x28 (2 per multiply-add; element-wise work not counted):
conv forward 2*20*81*400 and kernel gradient the same (no input gradient for a first layer);
dense forward, kernel gradient and input gradient 2*2000*100 each; output 3 * 2*100*10.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import common  # benchmarks/common.py

import cnn

SECTION = "FLOP floor (seed network, float32 GEMM rate of this machine)"
HEADER = """| date | threads | GEMM 2048^3 GFLOP/s | seed-layer GEMMs GFLOP/s | FLOP/epoch | floor at 2048^3 rate | epoch s | epoch / floor | load |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"""


def seed_flops_per_sample() -> int:
    conv = 2 * 20 * 81 * 400
    dense = 2 * 2000 * 100
    output = 2 * 100 * 10
    return 2 * conv + 3 * dense + 3 * output


def gemm_rate(m, k, n, seconds=0.5) -> float:
    """Median GFLOP/s of ``a @ b`` with a (m, k), b (k, n), float32, output reused."""
    rng = np.random.default_rng(0)
    a = rng.random((m, k), dtype=np.float32)
    b = rng.random((k, n), dtype=np.float32)
    out = np.empty((m, n), dtype=np.float32)
    np.matmul(a, b, out=out)
    reps = max(1, int(seconds * 100e9 / (2 * m * k * n)))
    rates = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(reps):
            np.matmul(a, b, out=out)
        rates.append(2 * m * k * n * reps / (time.perf_counter() - start) / 1e9)
    return statistics.median(rates)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epoch-seconds", type=float, default=None)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    cnn.set_num_threads(args.threads)

    big = gemm_rate(2048, 2048, 2048)
    # The seed network's GEMMs at batch 32: conv forward and kernel gradient (per chunk of 8
    # samples), dense forward / kernel gradient / input gradient.
    shapes = [(3200, 81, 20), (81, 3200, 20), (32, 2000, 100), (100, 32, 2000), (32, 100, 2000)]
    flops = [2 * m * k * n for m, k, n in shapes]
    seconds = sum(f / (gemm_rate(*shape, seconds=0.2) * 1e9) for f, shape in zip(flops, shapes))
    layers = sum(flops) / seconds / 1e9
    per_epoch = seed_flops_per_sample() * 60000
    floor = per_epoch / (big * 1e9)
    print(f"{args.threads} thread(s): GEMM 2048^3 {big:.0f} GFLOP/s; the seed layers' GEMM "
          f"shapes {layers:.0f} GFLOP/s")
    print(f"seed network: {seed_flops_per_sample() / 1e6:.2f} MFLOP per training sample, "
          f"{per_epoch / 1e9:.0f} GFLOP per epoch; floor {floor:.2f} s at the 2048^3 rate, "
          f"{per_epoch / (layers * 1e9):.2f} s at the layers' rate")
    ratio = "" if args.epoch_seconds is None else f"{args.epoch_seconds / floor:.1f}x"
    if args.epoch_seconds is not None:
        print(f"an epoch of {args.epoch_seconds:.2f} s is {ratio} the floor")
    if not args.no_record:
        common.append_row(SECTION, HEADER, common.row(
            common.today(), args.threads, f"{big:.0f}", f"{layers:.0f}",
            f"{per_epoch / 1e9:.0f} G", f"{floor:.2f} s",
            "" if args.epoch_seconds is None else f"{args.epoch_seconds:.2f}", ratio,
            f"{common.load():.1f}"))


if __name__ == "__main__":
    main()
