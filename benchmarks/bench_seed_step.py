"""A/B of the seed network's one-process training step: this tree against other commits.

The seed network (Conv2D 20x9x9 relu -> AveragePooling2D 2 -> Dense 100 relu -> Dense 10
softmax, SGD 0.1), trained by ``fit(workers=1)`` on the first Fashion-MNIST images, one BLAS
thread, CPU time of this process (``time.process_time``, which another program on the other
core disturbs much less than wall time):

    PYTHONPATH=. python benchmarks/bench_seed_step.py --against COMMIT [--rounds 31]

Both versions of the whole ``cnn`` package live in this process: COMMIT's is extracted
(``git archive``) into a temporary directory and imported under the name ``cnn`` while this
tree's modules are set aside, and each version's modules are put back in ``sys.modules``
before it runs. Every round trains ``--steps`` batches with each version, the order
alternating from round to round; the medians of the per-step times are printed with their
ratio. Several commits may be given. All versions start from the same weights and see the
same batches; the script checks that one step leaves them the same weights (to float32
rounding), so that the A/B compares the same work. (Over tens of steps the early training
amplifies rounding: a pre-activation near 0 that rounds to the other side of ReLU moves
the weights by 1e-5, and 40 steps later by 1e-2.) On a shared machine the figures are
indicative only.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import threadpoolctl

ROOT = Path(__file__).resolve().parent.parent
BATCH = 32


def cnn_modules() -> dict:
    """This process's ``cnn`` modules, taken out of ``sys.modules``."""
    names = [name for name in sys.modules if name == "cnn" or name.startswith("cnn.")]
    return {name: sys.modules.pop(name) for name in names}


@contextlib.contextmanager
def version(modules: dict):
    """``modules`` (a ``cnn_modules()`` result) in ``sys.modules`` for the duration."""
    cnn_modules()
    sys.modules.update(modules)
    try:
        yield modules["cnn"]
    finally:
        cnn_modules()


def load_version(root: Path) -> dict:
    """The ``cnn`` package found under ``root``, imported afresh; its modules."""
    cnn_modules()
    sys.path.insert(0, str(root))
    try:
        import cnn  # noqa: F401  (the copy under root: sys.modules holds no other)
        import cnn.datasets.fashion_mnist  # noqa: F401
        import cnn.layers  # noqa: F401
        import cnn.models  # noqa: F401
        import cnn.optimizers  # noqa: F401
    finally:
        sys.path.remove(str(root))
    return cnn_modules()


def extract(commit: str, into: Path) -> Path:
    """``cnn/`` of ``commit`` under ``into``."""
    archive = subprocess.run(["git", "archive", commit, "cnn"], cwd=ROOT, check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def seed_model(cnn):
    """The seed network of ``cnn`` (a module), seeded, compiled."""
    layers = sys.modules["cnn.layers"]
    cnn.set_seed(0)
    model = sys.modules["cnn.models"].Model(layers.Input((1, 28, 28)), "seed")
    model.add(layers.Conv2D(20, 9, activation="relu"))
    model.add(layers.AveragePooling2D(2))
    model.add(layers.Flatten())
    model.add(layers.Dense(100, activation="relu"))
    model.add(layers.Output(10))
    model.compile(optimizer=sys.modules["cnn.optimizers"].SGD(0.1),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def train(model, x, y) -> float:
    """CPU seconds per step of one unshuffled epoch of ``fit(workers=1)`` on ``x``."""
    start = time.process_time()
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False, workers=1)
    return (time.process_time() - start) * BATCH / len(x)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", metavar="COMMIT", required=True, nargs="+")
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument("--steps", type=int, default=40, help="batches of 32 a round")
    args = parser.parse_args()
    threadpoolctl.threadpool_limits(1, user_api="blas")
    with tempfile.TemporaryDirectory() as folder:
        versions = {"this tree": load_version(ROOT)}
        for index, commit in enumerate(args.against):
            versions[commit] = load_version(extract(commit, Path(folder, str(index))))
        with version(versions["this tree"]) as cnn:
            (x, y), _ = sys.modules["cnn.datasets.fashion_mnist"].load_data()
        x, y = x[:args.steps * BATCH], y[:args.steps * BATCH]
        models = {}
        for name, modules in versions.items():
            with version(modules) as cnn:
                models[name] = seed_model(cnn)
                models[name].fit(x[:BATCH * 5], y[:BATCH * 5], batch_size=BATCH, verbose=0,
                                 workers=1)  # warm-up: buffers, caches
        first, *others = models.values()
        for other in others:
            other.set_weights(first.get_weights())
        for name, model in models.items():  # the same step, to float32 rounding
            with version(versions[name]):
                model.fit(x[:BATCH], y[:BATCH], batch_size=BATCH, verbose=0, workers=1)
        for other in others:
            for a, b in zip(first.get_weights(), other.get_weights()):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        times = {name: [] for name in versions}
        order = list(versions)
        for round_ in range(args.rounds):
            for name in order if round_ % 2 == 0 else order[::-1]:
                with version(versions[name]):
                    times[name].append(train(models[name], x, y))
        medians = {name: statistics.median(values) * 1e3 for name, values in times.items()}
    for name, ms in medians.items():
        print(f"{name:>14}: {ms:.3f} ms CPU per step (median of {args.rounds} rounds of "
              f"{args.steps} steps)")
    for commit in args.against:
        print(f"this tree / {commit}: {medians['this tree'] / medians[commit]:.3f}")


if __name__ == "__main__":
    main()
