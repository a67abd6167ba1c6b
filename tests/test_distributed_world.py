"""cnn.distributed's world: ranks, collective operations, and failing ranks ending the job."""

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
