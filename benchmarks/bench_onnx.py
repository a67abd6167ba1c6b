"""Inference speed: onnxruntime on our exported seed network and LeNet against model.predict.

For each network (``benchmarks/common.py``'s ``seed`` and ``lenet``), the untrained model is
exported with ``cnn.onnx.export``, onnxruntime's outputs are checked against ``predict``
(1e-4 relative, 1e-5 absolute), then both classify the same ``--images`` images in batches
of ``--batch-size``, alternating, ``--repeats`` rounds; the medians are reported as images
per second. Both get ``--threads`` threads (BLAS for cnn, intra-op for onnxruntime).

    pip install -e ".[onnx]"
    PYTHONPATH=. python benchmarks/bench_onnx.py [--threads 1] [--repeats 5] [--append]
    PYTHONPATH=. python benchmarks/bench_onnx.py --quick    # a smoke run: does it work?

``--append`` adds the rows to benchmarks/RESULTS.md (section "ONNX inference"); run it on a
quiet machine only (the 1-minute load average is printed with every round).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime

import cnn
import cnn.onnx
from common import (NETWORKS, alternate, append_row, cnn_model, load, machine_line, median,
                    row, today)

SECTION = "ONNX inference"
HEADER = ("| date | network | batch | threads | cnn predict (img/s) | onnxruntime (img/s) | "
          "ratio | load | machine |\n|---|---|---|---|---|---|---|---|---|")


def session_for(model, directory: Path, threads: int):
    path = directory / f"{model.name}.onnx"
    cnn.onnx.export(model, path)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_predict(session, x, batch_size):
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: x[start:start + batch_size]})[0]
                           for start in range(0, len(x), batch_size)])


def timed(function):
    def run():
        start = time.perf_counter()
        function()
        return time.perf_counter() - start
    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--append", action="store_true", help="add the rows to RESULTS.md")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run (128 images, batches of 32, one round); prints "
                             "numbers that mean nothing and never appends them")
    args = parser.parse_args()
    if args.quick:
        if args.append:
            parser.error("--quick runs are not benchmarks: they cannot --append")
        args.images, args.batch_size, args.repeats = 128, 32, 1
    cnn.set_num_threads(args.threads)
    x = np.random.default_rng(0).random((args.images, 1, 28, 28), dtype=np.float32)
    print(machine_line())
    with tempfile.TemporaryDirectory() as directory:
        for network in NETWORKS:
            model = cnn_model(network)
            session = session_for(model, Path(directory), args.threads)
            np.testing.assert_allclose(onnx_predict(session, x[:64], args.batch_size),
                                       model.predict(x[:64]), rtol=1e-4, atol=1e-5)
            runs = {f"{network} cnn predict": timed(lambda: model.predict(
                        x, batch_size=args.batch_size)),
                    f"{network} onnxruntime": timed(lambda: onnx_predict(
                        session, x, args.batch_size))}
            for run in runs.values():  # warm-up
                run()
            times = alternate(runs, args.repeats)
            ours, theirs = (args.images / median(t) for t in times.values())
            print(f"{network}: cnn {ours:,.0f} img/s, onnxruntime {theirs:,.0f} img/s "
                  f"({theirs / ours:.2f}x)")
            if args.append:
                append_row(SECTION, HEADER, row(today(), network, args.batch_size, args.threads,
                                                f"{ours:,.0f}", f"{theirs:,.0f}",
                                                f"{theirs / ours:.2f}x", f"{load():.2f}",
                                                machine_line()))


if __name__ == "__main__":
    main()
