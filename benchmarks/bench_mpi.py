"""MPI scaling on this machine: the seed network on Fashion-MNIST, 1 or more ranks.

Run as ``mpiexec -n R python benchmarks/bench_mpi.py [--batch 256] [--steps 60]`` from the
repository root (``PYTHONPATH=.``). Every rank trains the same global batches, each its
slice; the script times whole steps and, separately, the step's one allreduce (the flat
buffer of gradients, losses and outputs), and prints one line on rank 0:

    ranks 2, batch 256: step 41.3 ms (compute 40.1 ms, allreduce 1.2 ms of 0.81 MB)

These are the inputs of the scaling model in docs/DISTRIBUTED.md.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import cnn
import cnn.distributed as dist
from benchmarks.common import cnn_model, load_fashion_mnist
from cnn.training.data_adapters import Batch
from cnn.training.ranks import MPIRanks
from cnn.training.trainer import train_step


class TimedWorld:
    """Wraps a world, timing its allreduce calls."""

    def __init__(self, world):
        self.world = world
        self.seconds: list[float] = []
        self.bytes = 0

    def allreduce_sum(self, buffer):
        start = time.perf_counter()
        self.world.allreduce_sum(buffer)
        self.seconds.append(time.perf_counter() - start)
        self.bytes = buffer.nbytes
        return buffer

    def __getattr__(self, name):
        return getattr(self.world, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--network", default="seed", choices=("seed", "lenet"))
    args = parser.parse_args()
    world = dist.init()
    cnn.set_num_threads(1)
    (x, y), _ = load_fashion_mnist()
    n = args.batch * args.steps
    model = cnn_model(args.network)
    timed = TimedWorld(world)
    strategy = MPIRanks(timed) if world.size > 1 else None
    step_seconds = []
    for rep in range(2):  # the first pass warms up (page faults, buffers)
        timed.seconds.clear()
        step_seconds.clear()
        for start in range(0, n, args.batch):
            xb, yb = x[start:start + args.batch], y[start:start + args.batch]
            world.barrier()
            begin = time.perf_counter()
            if strategy is None:
                model.train_on_batch(xb, yb)
            else:
                one_step(model, strategy, xb, yb)
            step_seconds.append(time.perf_counter() - begin)
    step = statistics.median(step_seconds)
    reduce = statistics.median(timed.seconds) if timed.seconds else 0.0
    if dist.is_chief():
        print(f"ranks {world.size}, batch {args.batch}, {args.network}: step {step * 1e3:.1f} ms"
              f" (compute {(step - reduce) * 1e3:.1f} ms, allreduce {reduce * 1e3:.2f} ms of "
              f"{timed.bytes / 2**20:.2f} MB)", flush=True)


def one_step(model, strategy, xb, yb) -> None:
    targets = np.eye(10, dtype=np.float32)[yb]
    train_step(model, strategy, Batch([xb.astype(np.float32)], [targets], None))


if __name__ == "__main__":
    main()
