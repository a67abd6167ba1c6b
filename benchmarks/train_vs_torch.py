"""Training and inference speed of cnn against PyTorch on the CPU, side by side.

    PYTHONPATH=. python benchmarks/train_vs_torch.py --network seed --batch-size 32 --threads 1
    PYTHONPATH=. python benchmarks/train_vs_torch.py --network lenet --batch-size 128 --threads 1
    PYTHONPATH=. python benchmarks/train_vs_torch.py --network seed --threads 2 --workers 2

Both frameworks train the same network on the same in-memory Fashion-MNIST training set
(60,000 images, float32), one epoch at a time, alternating cnn and PyTorch for ``--repeats``
rounds, with the same number of threads (``cnn.set_num_threads`` and
``torch.set_num_threads``); with ``--workers W`` cnn spreads its threads over W processes
(``fit(workers=W)``, ``threads / W`` BLAS threads each). Each epoch's wall time is printed
as it comes, with the load average: the machine is shared, so read the medians. ``--predict`` also times inference on
the 10,000 test images (``Model.predict`` against PyTorch in inference mode). A dated row is
appended to ``benchmarks/RESULTS.md`` unless ``--no-record``.
"""

from __future__ import annotations

import argparse
import time

import common  # benchmarks/common.py

TRAIN_SECTION = "Training speed against PyTorch (one epoch of Fashion-MNIST)"
TRAIN_HEADER = """| date | network | batch | threads | cnn s/epoch (median) | PyTorch s/epoch (median) | ratio cnn/PyTorch | rounds | load | machine |
| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"""
PREDICT_SECTION = "Inference speed against PyTorch (predict on the 10,000 test images)"
PREDICT_HEADER = """| date | network | batch | threads | cnn images/s (median) | PyTorch images/s (median) | ratio cnn/PyTorch | rounds | load | machine |
| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", choices=common.NETWORKS, default="seed")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1,
                        help="cnn training processes sharing the threads (fit(workers=...))")
    parser.add_argument("--repeats", type=int, default=3, help="epochs per framework")
    parser.add_argument("--samples", type=int, default=60000, help="train on the first N")
    parser.add_argument("--predict", action="store_true", help="also time inference")
    parser.add_argument("--no-record", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args()

    import torch

    common.set_threads(args.threads, args.workers)
    (x_train, y_train), (x_test, y_test) = common.load_fashion_mnist()
    x_train, y_train = x_train[: args.samples], y_train[: args.samples]
    x_torch = torch.from_numpy(x_train)
    y_torch = torch.from_numpy(y_train.astype("int64"))
    ours = common.cnn_model(args.network)
    theirs = common.torch_model(args.network)
    threads = (f"{args.threads}" if args.workers == 1 else
               f"{args.threads} ({args.workers} processes x {args.threads // args.workers})")
    print(f"{args.network} network, batch {args.batch_size}, {threads} thread(s), "
          f"{len(x_train)} images; {common.machine_line()}")

    times = common.alternate({
        "cnn": lambda: common.cnn_train_epoch(ours, x_train, y_train, args.batch_size,
                                              args.workers),
        "pytorch": lambda: common.torch_train_epoch(theirs, x_torch, y_torch, args.batch_size),
    }, args.repeats)
    ours_s, theirs_s = common.median(times["cnn"]), common.median(times["pytorch"])
    per_60k = 60000 / len(x_train)
    print(f"median epoch: cnn {ours_s * per_60k:.2f} s, PyTorch {theirs_s * per_60k:.2f} s, "
          f"ratio {ours_s / theirs_s:.2f}")
    accuracy, _ = ours.evaluate(x_test, y_test)
    print(f"cnn test accuracy after {args.repeats} epochs: {accuracy:.4f}")
    if not args.no_record:
        common.append_row(TRAIN_SECTION, TRAIN_HEADER, common.row(
            common.today(), args.network, args.batch_size, threads,
            f"{ours_s * per_60k:.2f}", f"{theirs_s * per_60k:.2f}",
            f"**{ours_s / theirs_s:.2f}**", args.repeats, f"{common.load():.1f}",
            common.machine_line()))

    if args.predict:
        x_test_torch = torch.from_numpy(x_test)

        def time_it(run):
            start = time.perf_counter()
            run()
            return time.perf_counter() - start

        times = common.alternate({
            "cnn predict": lambda: time_it(lambda: ours.predict(x_test, batch_size=256)),
            "pytorch predict": lambda: time_it(lambda: common.torch_predict(theirs[0], x_test_torch)),
        }, max(args.repeats, 5))
        ours_rate = len(x_test) / common.median(times["cnn predict"])
        theirs_rate = len(x_test) / common.median(times["pytorch predict"])
        print(f"inference: cnn {ours_rate:.0f} images/s, PyTorch {theirs_rate:.0f} images/s, "
              f"ratio {ours_rate / theirs_rate:.2f}")
        if not args.no_record:
            common.append_row(PREDICT_SECTION, PREDICT_HEADER, common.row(
                common.today(), args.network, 256, args.threads, f"{ours_rate:.0f}",
                f"{theirs_rate:.0f}", f"**{ours_rate / theirs_rate:.2f}**",
                max(args.repeats, 5), f"{common.load():.1f}", common.machine_line()))


if __name__ == "__main__":
    main()
