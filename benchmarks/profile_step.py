"""Where a training step spends its time: per layer (forward, backward), loss, optimizer, and
the top NumPy-level kernels (cProfile's own time per function).

    PYTHONPATH=. python benchmarks/profile_step.py --network seed --batch-size 32 --threads 1

Times are CPU time of this process (``time.process_time``), which a busy shared machine
disturbs much less than wall time; with one BLAS thread they are the time the step would take
alone. Each is the median over ``--steps`` steps after a warm-up; the kernel table is from a
separate cProfile run of the same steps (cProfile adds overhead, so read it for proportions).
``--markdown`` prints the tables ready for RESULTS.md.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import time
from collections import defaultdict

import threadpoolctl

import common  # benchmarks/common.py
from cnn.training import trainer


class StepTimer:
    """Wraps layer methods, the loss and the optimizer with perf_counter timers."""

    def __init__(self, model):
        self.model = model
        self.samples = defaultdict(list)
        self.current = defaultdict(float)
        last = model.layers[-1]
        for layer in model.layers:
            self._wrap(layer, "forward", f"{layer.name} forward")
            self._wrap(layer, "backward", f"{layer.name} backward")
        self._wrap(last, "backward_linear", f"{last.name} backward")
        self._wrap(model, "_loss_and_output_grad", "loss + its gradient")
        self._wrap(model.optimizer, "apply_gradients", "optimizer")
        self._wrap(trainer, "train_step", "whole step")

    def _wrap(self, owner, method, label):
        inner = getattr(owner, method)

        def timed(*args, **kwargs):
            start = time.process_time()
            try:
                return inner(*args, **kwargs)
            finally:
                self.current[label] += time.process_time() - start
                if label == "whole step":
                    self._end_step()

        setattr(owner, method, timed)

    def _end_step(self):
        step = self.current.pop("whole step")
        for key, value in self.current.items():
            self.samples[key].append(value)
        self.samples["whole step"].append(step)
        self.samples["other (metrics, checks, batching)"].append(step - sum(self.current.values()))
        self.current.clear()

    def table(self):
        """Rows ``(label, median ms per step, share of the step)``, in network order."""
        step = statistics.median(self.samples["whole step"])
        rows = []
        for label, values in self.samples.items():
            ms = statistics.median(values) * 1e3
            rows.append((label, ms, ms / (step * 1e3)))
        return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", choices=common.NETWORKS, default="seed")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--kernels", type=int, default=15, help="rows of the kernel table")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()

    # threadpoolctl directly (what cnn.set_num_threads uses), so that the script also
    # profiles older checkouts of cnn for a before/after comparison.
    threadpoolctl.threadpool_limits(args.threads, user_api="blas")
    (x, y), _ = common.load_fashion_mnist()
    n = args.steps * args.batch_size
    x, y = x[:n], y[:n]
    model = common.cnn_model(args.network)
    model.fit(x[:20 * args.batch_size], y[:20 * args.batch_size], batch_size=args.batch_size,
              verbose=0)  # warm-up

    timer = StepTimer(model)
    model.fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0)
    rows = timer.table()

    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    model.fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0)
    profiler.disable()
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    total = sum(entry[2] for entry in stats.stats.values())  # tottime of everything
    kernels = sorted(stats.stats.items(), key=lambda item: -item[1][2])[: args.kernels]

    title = (f"{args.network} network, batch {args.batch_size}, {args.threads} BLAS thread(s), "
             f"{args.steps} steps, load {common.load():.2f}")
    print(f"\n{title}\n")
    if args.markdown:
        print("| part of the step | ms / step | share |\n| --- | ---: | ---: |")
        for label, ms, share in rows:
            print(f"| {label} | {ms:.3f} | {share:.0%} |")
        print("\n| kernel (cProfile own time) | calls / step | share |\n| --- | ---: | ---: |")
    else:
        for label, ms, share in rows:
            print(f"  {label:<36} {ms:8.3f} ms  {share:6.1%}")
        print("\n  kernel (cProfile own time)             calls/step   share")
    for (filename, line, name), (_, calls, tottime, _, _) in kernels:
        where = name if filename == "~" else f"{filename.split('cnn/')[-1]}:{line}({name})"
        if args.markdown:
            print(f"| `{where}` | {calls / args.steps:.1f} | {tottime / total:.1%} |")
        else:
            print(f"  {where:<56} {calls / args.steps:6.1f}  {tottime / total:6.1%}")


if __name__ == "__main__":
    main()
