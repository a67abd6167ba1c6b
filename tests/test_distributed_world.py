"""cnn.distributed's world: ranks, collective operations, and failing ranks ending the job."""

import contextlib
import os
import re
import signal
import time

import numpy as np
import pytest

import cnn.distributed as dist
from mpi_helpers import run_ranks


def test_outside_mpiexec_the_world_is_one_process():
    world = dist.init()
    assert (dist.rank(), dist.size(), dist.is_chief()) == (0, 1, True)
    buffer = np.arange(4.0)
    assert world.allreduce_sum(buffer) is buffer and buffer.tolist() == [0, 1, 2, 3]
    assert world.allgather_object({"a": 1}) == [{"a": 1}]


def test_flat_buffer_packs_arrays_and_scalars_back_to_back():
    flat = dist.FlatBuffer([(2, 3), (4,)], np.float32, extra=2)
    buffer = flat.pack([np.ones((2, 3)), np.arange(4)], [5, 6])
    assert buffer.tolist() == [1] * 6 + [0, 1, 2, 3, 5, 6]
    out = [np.zeros((2, 3)), np.zeros(4)]
    flat.unpack(out)
    assert out[1].tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match=r"shape \(3,\) does not fit the slot of shape \(4,\)"):
        flat.pack([np.ones((2, 3)), np.ones(3)], [0, 0])
    with pytest.raises(ValueError, match="expected 2 scalars, got 1"):
        flat.pack([np.ones((2, 3)), np.ones(4)], [0])


@pytest.mark.parametrize("n", [2, 3])
def test_ranks_sum_and_broadcast(tmp_path, n):
    result = run_ranks(n, """
        import numpy as np
        import cnn.distributed as dist
        world = dist.init()
        assert dist.size() == %d, dist.size()
        grads = np.full(5, dist.rank() + 1.0, dtype=np.float32)
        world.allreduce_sum(grads)
        weights = np.full(3, float(dist.rank()))
        world.broadcast(weights)
        seed = world.broadcast_object(1234 if dist.is_chief() else None)
        ranks = world.allgather_object(dist.rank())
        with open(f"rank{dist.rank()}.txt", "w") as f:   # ranks' prints could interleave
            f.write(f"{grads.tolist()} {weights.tolist()} {seed} {ranks}")
    """ % n, tmp_path)
    assert result.returncode == 0, result.stderr
    total = float(sum(range(1, n + 1)))
    for r in range(n):
        assert (tmp_path / f"rank{r}.txt").read_text() == \
            f"{[total] * 5} [0.0, 0.0, 0.0] 1234 {list(range(n))}"


@pytest.mark.parametrize("launcher", [("python",), ("python", "-m", "mpi4py")])
def test_an_exception_on_one_rank_ends_every_rank_quickly(tmp_path, launcher):
    start = time.monotonic()
    result = run_ranks(2, """
        import numpy as np
        import cnn.distributed as dist
        world = dist.init()
        if dist.rank() == 1:
            raise ValueError("bad batch on this rank")
        world.allreduce_sum(np.zeros(3))   # rank 0 would wait here forever without the hook
    """, tmp_path, timeout=60, launcher=launcher)
    assert time.monotonic() - start < 30
    assert result.returncode != 0
    assert "ValueError: bad batch on this rank" in result.stderr
    if launcher == ("python",):   # our hook names the rank (mpi4py's own one runs otherwise)
        assert "rank 1 of 2 failed" in result.stderr


def test_a_killed_rank_ends_every_rank(tmp_path):
    start = time.monotonic()
    result = run_ranks(2, """
        import os, signal, time
        import numpy as np
        import cnn.distributed as dist
        world = dist.init()
        if dist.rank() == 1:
            time.sleep(0.5)
            os.kill(os.getpid(), signal.SIGKILL)
        world.allreduce_sum(np.zeros(3))
    """, tmp_path, timeout=60)
    assert time.monotonic() - start < 30
    assert result.returncode != 0


# Rank 1 stops itself (SIGSTOP, as a debugger or a swapped-out node would) at its fourth
# training step; rank 0 reaches the step's allreduce and waits for it. Every rank writes its
# pid first, so that the test can kill a stopped process MPI could not end.
FROZEN_RANK = """
    import os, signal, sys
    import numpy as np
    import cnn
    import cnn.distributed as dist
    from cnn.callbacks import Callback
    from cnn.layers import Dense, Input
    from cnn.models import Sequential

    world = dist.init(timeout=float(sys.argv[1]))
    with open(f"pid{dist.rank()}", "w") as f:
        f.write(str(os.getpid()))

    class StopOnce(Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if dist.rank() == 1 and batch == 3:
                os.kill(os.getpid(), signal.SIGSTOP)

    cnn.set_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    model = Sequential([Input((4,)), Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(x, np.arange(64) % 3, batch_size=8, epochs=2, verbose=0, callbacks=[StopOnce()])
    print("rank", dist.rank(), "finished, which it should not have", flush=True)
"""


def kill_leftover_ranks(directory) -> None:
    """SIGKILL the ranks whose pid files are in ``directory`` that still run (a stopped
    process ignores everything else)."""
    for pid_file in directory.glob("pid*"):
        with contextlib.suppress(ProcessLookupError, ValueError, PermissionError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_a_stopped_rank_ends_every_rank_after_the_timeout_naming_it(tmp_path):
    timeout = 3.0
    start = time.monotonic()
    try:
        result = run_ranks(2, FROZEN_RANK, tmp_path, timeout=120, args=[timeout])
        elapsed = time.monotonic() - start
    finally:
        kill_leftover_ranks(tmp_path)
    assert result.returncode != 0
    assert "finished" not in result.stdout
    assert re.search(r"rank 0 of 2 waited 3 s in collective operation #\d+ \(allreduce_sum\) "
                     r"for rank\(s\) 1, which did not arrive", result.stderr), result.stderr
    assert elapsed < 60  # start-up of two ranks on a loaded machine, plus 3 s and the answers


def test_the_collective_timeout_is_checked():
    assert dist.collective_timeout(None) > 0
    with pytest.raises(ValueError, match="timeout must be a finite number > 0, got -1"):
        dist.collective_timeout(-1)
