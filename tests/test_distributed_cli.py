"""``cnn train`` under ``mpiexec``: it joins the ranks itself, prints and writes on rank 0,
and trains the model one process trains."""

import re

from mpi_helpers import require_mpi, run_ranks

TRAIN = """
    import sys
    from cnn.cli import main
    sys.exit(main(sys.argv[1:]))
"""


def _train(tmp_path, ranks):
    out = tmp_path / f"out{ranks}"
    result = run_ranks(ranks, TRAIN, tmp_path, timeout=300,
                       args=["train", "--epochs", "1", "--limit", "600", "--verbose", "2",
                             "--out", out])
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout, out


def test_cnn_train_on_two_ranks_trains_what_one_process_trains(tmp_path):
    require_mpi()
    one, _ = _train(tmp_path, 1)
    two, out = _train(tmp_path, 2)
    assert two.count("trained 1 epoch(s)") == 1   # rank 0 alone prints
    assert (out / "model.h5").is_file() and (out / "history.json").is_file()
    score = re.compile(r"accuracy (\d\.\d{4}), loss (\d\.\d{4})")
    (acc1, loss1), (acc2, loss2) = score.findall(one)[-1], score.findall(two)[-1]
    assert abs(float(acc1) - float(acc2)) <= 0.001 and abs(float(loss1) - float(loss2)) <= 2e-4
