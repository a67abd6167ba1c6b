"""Issue #12's targets at the defaults: cnn and PyTorch with nothing set by the user.

No thread variable, no ``workers`` argument, no ``set_num_threads``: each framework as a
user gets it. Every repetition runs in a fresh subprocess (so that neither framework's
threads, nor cnn's worker processes, are left over from another measurement), the two
frameworks alternate, and the medians are reported:

* the seed network, one epoch of Fashion-MNIST at batch 32 and at batch 256;
* the LeNet-like network (``examples/fashion_mnist_convnet.py``), one epoch at batch 128;
* ``benchmarks/bench_lstm.py``'s LSTM(128) -> Dense(10) training step (batch 64), timed over
  an epoch of ``fit``;
* ``predict`` on the 10,000 test images (images/s: in each round the median of 5 warm calls
  after a first one, since single calls here vary by a third);
* no collapse: the seed network's batch-32 epoch again while a busy loop holds one core
  (a process pinned there with ``os.sched_setaffinity``);
* the README's main command (``python -m cnn train``) wall time, quiet and with the busy loop.

    PYTHONPATH=. python benchmarks/bench_defaults.py [--repeats 3] [--markdown]
    PYTHONPATH=. python benchmarks/bench_defaults.py --quick     # tiny data: a smoke test

``--markdown`` prints rows for ``benchmarks/RESULTS.md`` (date, load, machine, versions,
threads and processes each framework used); nothing is written to files. ``--workers W``
measures cnn with ``CNN_WORKERS=W`` instead of its default (e.g. ``--only seed-32
seed-32-busy --workers 2``: what two processes would give at batch 32, quiet and busy), and
says so in its output; PyTorch is unchanged.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import bench_lstm as lstm  # benchmarks/bench_lstm.py
import common  # benchmarks/common.py

ROOT = Path(__file__).resolve().parent.parent
# What the defaults must not inherit from the shell this script runs in.
CHOSEN = ("CNN_WORKERS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
# name: (what, unit, the target as "cnn / PyTorch" bound, higher_is_better)
TARGETS = {
    "seed-32": ("seed network, batch 32, one epoch", "s", 0.8, False),
    "seed-256": ("seed network, batch 256, one epoch", "s", 0.8, False),
    "lenet-128": ("LeNet-like network, batch 128, one epoch", "s", 1.0, False),
    "lstm": ("LSTM(128) -> Dense(10) step, batch 64", "ms", 1.0, False),
    "predict": ("predict on 10,000 images", "images/s", 1.2, True),
    "seed-32-busy": ("seed network, batch 32, one core busy", "s", None, False),
}
README_RUNS = {"readme": "README main command, quiet",
               "readme-busy": "README main command, one core busy"}


# -- one measurement, in a fresh process --------------------------------------------------------
def measure(name: str, framework: str, quick: bool, workers: int | None = None) -> dict:
    """Run one measurement here; ``{"value": ..., "processes": ..., "threads": ...}``.
    ``workers``: cnn's process count (``CNN_WORKERS``), None for its default."""
    if workers is not None and framework == "cnn":
        os.environ["CNN_WORKERS"] = str(workers)
    if name in README_RUNS:
        return _readme_command(quick, workers)
    if name == "lstm":
        return _lstm_step(framework, quick)
    (x, y), (x_test, _) = common.load_fashion_mnist()
    if quick:
        x, y, x_test = x[:512], y[:512], x_test[:512]
    network = "lenet" if name.startswith("lenet") else "seed"
    if name == "predict":
        return _predict(framework, network, x_test)
    batch_size = int(name.split("-")[1])
    if framework == "cnn":
        model = common.cnn_model(network)
        seen = []
        seconds = common.cnn_train_epoch(model, x, y, batch_size, workers=None,
                                         callbacks=[_threads_callback(seen)])
        return {"value": seconds, "processes": _cnn_processes(model), "threads": max(seen)}
    import torch

    pair = common.torch_model(network)
    seconds = common.torch_train_epoch(pair, torch.from_numpy(x), torch.from_numpy(y),
                                       batch_size)
    return {"value": seconds, "processes": 1, "threads": torch.get_num_threads()}


def _threads_callback(seen: list):
    import cnn
    from cnn.callbacks import Callback

    class Threads(Callback):  # once per epoch: asking threadpoolctl costs milliseconds
        def on_epoch_end(self, epoch, logs=None):
            seen.append(cnn.get_num_threads())

    return Threads()


def _cnn_processes(model) -> int:
    from cnn.training.strategy import idle_pool

    pool = idle_pool(model)
    return 1 if pool is None else pool.count + 1


PREDICT_CALLS = 5  # warm calls timed in each round; their median is the round's value


def _median_seconds(call) -> float:
    """The median wall time of ``PREDICT_CALLS`` calls of ``call()``."""
    seconds = []
    for _ in range(PREDICT_CALLS):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return common.median(seconds)


def _predict(framework, network, x_test) -> dict:
    if framework == "cnn":
        from cnn.training import defaults

        model = common.cnn_model(network)
        model.predict(x_test)  # the first call starts the worker processes (if any)
        seconds = _median_seconds(lambda: model.predict(x_test))
        processes = _cnn_processes(model)
        threads = defaults.threads_per_process(processes)
    else:
        import torch

        net, _ = common.torch_model(network)
        tensor = torch.from_numpy(x_test)
        common.torch_predict(net, tensor)
        seconds = _median_seconds(lambda: common.torch_predict(net, tensor))
        processes, threads = 1, torch.get_num_threads()
    return {"value": len(x_test) / seconds, "processes": processes, "threads": threads}


def _lstm_step(framework, quick) -> dict:
    """Milliseconds per training step of bench_lstm's network at the defaults: an epoch of
    ``fit`` (cnn) or the same steps of the usual loop (PyTorch), after a warm-up epoch (cnn)
    or step (PyTorch)."""
    steps = 3 if quick else 40  # 2,560 sequences: enough work for the default's processes
    rng = np.random.default_rng(1)
    x = rng.standard_normal((lstm.BATCH * steps, lstm.STEPS, lstm.FEATURES)).astype(np.float32)
    y = rng.standard_normal((len(x), lstm.OUTPUTS)).astype(np.float32)
    model = lstm.make_cnn(return_sequences=False)
    if framework == "cnn":
        seen = []
        model.fit(x, y, batch_size=lstm.BATCH, verbose=0)  # starts the workers (if any)
        start = time.perf_counter()
        model.fit(x, y, batch_size=lstm.BATCH, verbose=0, shuffle=False,
                  callbacks=[_threads_callback(seen)])
        seconds = time.perf_counter() - start
        return {"value": seconds / steps * 1e3, "processes": _cnn_processes(model),
                "threads": max(seen)}
    import torch

    layers = lstm.make_torch(model, torch)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    lstm.torch_step(torch, *layers, tx[:lstm.BATCH], ty[:lstm.BATCH], False)
    start = time.perf_counter()
    for begin in range(0, len(x), lstm.BATCH):
        lstm.torch_step(torch, *layers, tx[begin:begin + lstm.BATCH],
                        ty[begin:begin + lstm.BATCH], False)
    seconds = time.perf_counter() - start
    return {"value": seconds / steps * 1e3, "processes": 1, "threads": torch.get_num_threads()}


def _readme_command(quick, workers=None) -> dict:
    """Seconds of the README's main command, ``python -m cnn train``, as a user runs it
    (with ``--workers`` when ``workers`` is given)."""
    command = [sys.executable, "-m", "cnn", "train", "--verbose", "0"]
    if workers is not None:
        command += ["--workers", str(workers)]
    if quick:
        command += ["--epochs", "1", "--limit", "200"]
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        subprocess.run(command + ["--out", folder], check=True, cwd=folder, env=_clean_env(),
                       stdout=subprocess.DEVNULL)
        return {"value": time.perf_counter() - start, "processes": None, "threads": None}


# -- the driver -------------------------------------------------------------------------------
def _clean_env() -> dict:
    """This environment without anything that chooses threads or processes, with this
    checkout first on the path."""
    env = {key: value for key, value in os.environ.items() if key not in CHOSEN}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def run_child(name, framework, quick, workers=None) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", name, framework]
    if quick:
        command.append("--quick")
    if workers is not None:
        command += ["--workers", str(workers)]
    result = subprocess.run(command, check=True, capture_output=True, text=True,
                            env=_clean_env(), cwd=ROOT)
    return json.loads(result.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def busy_core():
    """A busy loop pinned to the last core this process may use, for the block."""
    core = max(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    code = ("import os, sys\n"
            "core = int(sys.argv[1])\n"
            "if core >= 0: os.sched_setaffinity(0, {core})\n"
            "while True: pass\n")
    process = subprocess.Popen([sys.executable, "-c", code, str(-1 if core is None else core)])
    try:
        time.sleep(0.2)  # let it take the core
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)


def run_all(repeats, quick, names, workers=None) -> dict:
    """``{name: {"cnn": [result...], "torch": [...]}}``, the frameworks alternating."""
    results = {}
    for name in names:
        frameworks = ("cnn",) if name in README_RUNS else ("cnn", "torch")
        results[name] = {framework: [] for framework in frameworks}
        busy = busy_core() if name.endswith("busy") else contextlib.nullcontext()
        with busy:
            for round_index in range(repeats):
                for framework in frameworks:
                    result = run_child(name, framework, quick, workers)
                    results[name][framework].append(result)
                    print(f"  {name:<14} round {round_index + 1} {framework:<5} "
                          f"{result['value']:10.3f}  (load {os.getloadavg()[0]:.2f})",
                          file=sys.stderr, flush=True)
    return results


def summary(results) -> list[dict]:
    rows = []
    for name, by_framework in results.items():
        medians = {framework: float(np.median([r["value"] for r in runs]))
                   for framework, runs in by_framework.items()}
        setup = {framework: (runs[-1]["processes"], runs[-1]["threads"])
                 for framework, runs in by_framework.items()}
        what, unit, bound, higher = TARGETS.get(name, (README_RUNS.get(name), "s", None,
                                                      False))
        ratio = medians["cnn"] / medians["torch"] if medians.get("torch") else None
        rows.append({"name": name, "what": what, "unit": unit, "medians": medians,
                     "ratio": ratio, "bound": bound, "higher": higher, "setup": setup})
    return rows


def _verdict(row) -> str:
    if row["ratio"] is None or row["bound"] is None:
        return ""
    met = row["ratio"] >= row["bound"] if row["higher"] else row["ratio"] <= row["bound"]
    return f"{'met' if met else 'missed'} ({'>=' if row['higher'] else '<='} {row['bound']})"


def _setup(pair) -> str:
    processes, threads = pair
    return "" if processes is None else f"{processes} x {threads}"


def print_markdown(rows, repeats, workers=None) -> None:
    chosen = ("nothing set by the user" if workers is None else
              f"cnn with CNN_WORKERS={workers}, PyTorch at its defaults")
    print(f"{common.today()}, load {os.getloadavg()[0]:.2f}, medians of {repeats}, "
          f"{chosen}; {common.machine_line()}")
    print()
    print("| target | cnn | PyTorch | cnn / PyTorch | target | cnn processes x BLAS threads "
          "| PyTorch threads |")
    print("| --- | ---: | ---: | ---: | --- | --- | --- |")
    for row in rows:
        cnn_value, torch_value = row["medians"]["cnn"], row["medians"].get("torch")
        print(common.row(row["what"], f"{cnn_value:.3g} {row['unit']}",
                         "" if torch_value is None else f"{torch_value:.3g} {row['unit']}",
                         "" if row["ratio"] is None else f"{row['ratio']:.2f}",
                         _verdict(row), _setup(row["setup"]["cnn"]),
                         "" if "torch" not in row["setup"] else row["setup"]["torch"][1]))


def print_plain(rows) -> None:
    for row in rows:
        ratio = "" if row["ratio"] is None else f"  cnn/PyTorch {row['ratio']:.2f} {_verdict(row)}"
        values = "  ".join(f"{framework} {value:.4g} {row['unit']}"
                           for framework, value in row["medians"].items())
        print(f"{row['what']}: {values}{ratio}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="rounds (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="tiny data, for a smoke test")
    parser.add_argument("--markdown", action="store_true", help="print rows for RESULTS.md")
    parser.add_argument("--only", nargs="+", choices=[*TARGETS, *README_RUNS],
                        help="measure only these")
    parser.add_argument("--workers", type=int, default=None,
                        help="cnn's processes (CNN_WORKERS) instead of its default")
    parser.add_argument("--child", nargs=2, metavar=("NAME", "FRAMEWORK"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(*args.child, args.quick, args.workers)))
        return 0
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be >= 1")
    rows = summary(run_all(args.repeats, args.quick, args.only or [*TARGETS, *README_RUNS],
                           args.workers))
    if args.markdown:
        print_markdown(rows, args.repeats, args.workers)
    else:
        if args.workers is not None:
            print(f"cnn with CNN_WORKERS={args.workers} (not its default)")
        print_plain(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
