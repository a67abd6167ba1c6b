"""What waiting for collectives with a deadline costs per step (cnn.distributed.MPIWorld).

Run as ``mpiexec -n 2 python benchmarks/bench_mpi_wait.py [--batch 256] [--steps 40]`` from
the repository root (``PYTHONPATH=.``). The seed network trains on Fashion-MNIST; steps
alternate between the world's allreduce (non-blocking ``Iallreduce``, tested until done or
the deadline) and MPI's blocking ``Allreduce`` on the same buffer, so that both see the
same load. Rank 0 prints one line:

    ranks 2, batch 256: step 41.3 ms with the deadline, 41.1 ms blocking (median of 40 each)
"""

from __future__ import annotations

import argparse
import statistics
import time

from mpi4py import MPI

import cnn
import cnn.distributed as dist
from benchmarks.bench_mpi import TimedWorld, one_step
from benchmarks.common import cnn_model, load_fashion_mnist
from cnn.training.ranks import MPIRanks


class BlockingWorld(TimedWorld):
    """The world, with the blocking allreduce MPIWorld used before it had a deadline."""

    def allreduce_sum(self, buffer):
        self.world.comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
        return buffer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    world = dist.init()
    cnn.set_num_threads(1)
    (x, y), _ = load_fashion_mnist()
    model = cnn_model("seed")
    strategies = {"deadline": MPIRanks(world), "blocking": MPIRanks(BlockingWorld(world))}
    seconds = {name: [] for name in strategies}
    for step in range(2 * args.steps + 4):  # the first four warm up
        start = (step % 40) * args.batch
        xb, yb = x[start:start + args.batch], y[start:start + args.batch]
        name = "deadline" if step % 2 == 0 else "blocking"
        world.barrier()
        begin = time.perf_counter()
        one_step(model, strategies[name], xb, yb)
        if step >= 4:
            seconds[name].append(time.perf_counter() - begin)
    if dist.is_chief():
        deadline, blocking = (statistics.median(seconds[k]) for k in ("deadline", "blocking"))
        print(f"ranks {world.size}, batch {args.batch}: step {deadline * 1e3:.1f} ms with the "
              f"deadline, {blocking * 1e3:.1f} ms blocking (median of {args.steps} each)",
              flush=True)


if __name__ == "__main__":
    main()
