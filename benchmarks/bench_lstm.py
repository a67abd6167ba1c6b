"""LSTM training speed: cnn against PyTorch on the CPU, in the same process.

One training step = forward + backward + SGD update of LSTM(128) -> Dense(10) with a mean
squared error, on a batch of 64 sequences of 50 steps with 32 features (``--sequences`` also
times the variant where every step's output is used, ``return_sequences=True``). Before
timing, the two implementations are given the same weights and checked to agree on the
outputs and gradients. Steps alternate between the libraries; the medians are reported.

    pip install torch==2.13.0          # CPU build; for this benchmark only
    python benchmarks/bench_lstm.py [--threads 1 2] [--repeats 30]

Two tools for work on the kernels (cnn only, one BLAS thread, CPU time; no PyTorch needed):

    python benchmarks/bench_lstm.py --profile            # cProfile of cnn's training steps
    python benchmarks/bench_lstm.py --against COMMIT     # A/B: this tree's LSTM against the
                                                         # LSTM of COMMIT, alternating steps

Both run at ``--batch 32 64`` by default: 32 rows is what each of the two worker processes
computes of a batch of 64 at the defaults on two cores, where the per-call cost of NumPy's
many small element-wise operations weighs most.

``--against`` loads ``cnn/ops/rnn.py`` and ``cnn/layers/rnn.py`` of COMMIT (``git show``) as
separate modules, so both versions train the same network in one process.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import os
import platform
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

import cnn
from cnn.layers import LSTM, Dense, Input
from cnn.models import Model
from cnn.optimizers import SGD

BATCH, STEPS, FEATURES, UNITS, OUTPUTS = 64, 50, 32, 128, 10


def make_cnn(return_sequences, lstm_class=LSTM):
    cnn.set_seed(0)
    model = Model(Input((STEPS, FEATURES)), "bench_lstm")
    model.add_layer(lstm_class(UNITS, return_sequences=return_sequences))
    model.add_layer(Dense(OUTPUTS))
    model.compile(optimizer=SGD(0.01), loss="mse", metrics=[])
    return model


def make_torch(model, torch):
    """torch.nn.LSTM + Linear holding the cnn model's weights (same layouts, gates i, f, g, o)."""
    lstm = torch.nn.LSTM(FEATURES, UNITS, batch_first=True)
    linear = torch.nn.Linear(UNITS, OUTPUTS)
    p_lstm, p_dense = model.layers[0].params, model.layers[1].params
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.from_numpy(p_lstm["kernel"]))
        lstm.weight_hh_l0.copy_(torch.from_numpy(p_lstm["recurrent_kernel"]))
        lstm.bias_ih_l0.copy_(torch.from_numpy(p_lstm["bias"]))
        lstm.bias_hh_l0.zero_()
        linear.weight.copy_(torch.from_numpy(p_dense["kernel"]))
        linear.bias.copy_(torch.from_numpy(p_dense["bias"]))
    optimizer = torch.optim.SGD([*lstm.parameters(), *linear.parameters()], lr=0.01)
    return lstm, linear, optimizer


def torch_step(torch, lstm, linear, optimizer, x, y, return_sequences):
    optimizer.zero_grad()
    out, _ = lstm(x)
    prediction = linear(out if return_sequences else out[:, -1])
    loss = torch.nn.functional.mse_loss(prediction, y)
    loss.backward()
    optimizer.step()
    return prediction, loss


def check_agreement(torch, return_sequences, x, y):
    """Same weights -> same outputs, loss and gradients (float32 tolerance)."""
    model = make_cnn(return_sequences)
    lstm, linear, _ = make_torch(model, torch)
    result = model.compute_gradients(x, y)
    output, loss = result.outputs[0], result.loss
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    out, _ = lstm(tx)
    prediction = linear(out if return_sequences else out[:, -1])
    torch_loss = torch.nn.functional.mse_loss(prediction, ty)
    torch_loss.backward()
    np.testing.assert_allclose(output, prediction.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(float(loss), torch_loss.item(), rtol=1e-4)
    lstm_grads = model.layers[0].grads
    pairs = [(lstm_grads["kernel"], lstm.weight_ih_l0.grad), (lstm_grads["recurrent_kernel"],
             lstm.weight_hh_l0.grad), (lstm_grads["bias"], lstm.bias_ih_l0.grad)]
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-3, atol=1e-6)


def time_pair(torch, return_sequences, threads, repeats):
    x, y = batch_data(return_sequences)
    check_agreement(torch, return_sequences, x, y)
    model = make_cnn(return_sequences)
    lstm, linear, optimizer = make_torch(model, torch)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    torch.set_num_threads(threads)
    steps = {"cnn": lambda: model.train_on_batch(x, y),
             "torch": lambda: torch_step(torch, lstm, linear, optimizer, tx, ty, return_sequences)}
    wall = {name: [] for name in steps}
    cpu = {name: [] for name in steps}
    with threadpool_limits(threads):
        for step in steps.values():  # warm-up
            for _ in range(3):
                step()
        for _ in range(repeats):
            for name, step in steps.items():
                start, cpu_start = time.perf_counter(), time.process_time()
                step()
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - cpu_start)
    return {name: (np.median(wall[name]) * 1e3, np.median(cpu[name]) * 1e3) for name in steps}


def batch_data(return_sequences, batch=BATCH):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((batch, STEPS, FEATURES)).astype(np.float32)
    target_shape = (batch, STEPS, OUTPUTS) if return_sequences else (batch, OUTPUTS)
    return x, rng.standard_normal(target_shape).astype(np.float32)


def profile_steps(return_sequences, batch, steps=20):
    """cProfile (CPU time) of ``steps`` training steps of cnn at one BLAS thread."""
    model = make_cnn(return_sequences)
    x, y = batch_data(return_sequences, batch)
    with threadpool_limits(1):
        for _ in range(3):
            model.train_on_batch(x, y)
        profile = cProfile.Profile(time.process_time)
        profile.enable()
        for _ in range(steps):
            model.train_on_batch(x, y)
        profile.disable()
    print(f"cProfile of {steps} training steps at batch {batch} (CPU time, one BLAS thread):")
    pstats.Stats(profile).sort_stats("tottime").print_stats(15)


def lstm_class_at(commit):
    """The LSTM layer class of ``commit``: its cnn/ops/rnn.py and cnn/layers/rnn.py loaded as
    modules of their own (the rest of cnn is this tree's)."""
    root = Path(__file__).resolve().parent.parent
    folder = Path(tempfile.mkdtemp(prefix="bench_lstm_"))
    names = {"cnn/ops/rnn.py": "against_rnn_ops", "cnn/layers/rnn.py": "against_rnn_layers"}
    for path, name in names.items():
        source = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=root, check=True,
                                capture_output=True, text=True).stdout
        source = source.replace("from cnn.ops import rnn as rnn_ops",
                                "import against_rnn_ops as rnn_ops")
        (folder / f"{name}.py").write_text(source)
    modules = {}
    for name in names.values():
        spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
        modules[name] = sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(modules[name])
    return modules["against_rnn_layers"].LSTM


def ab_steps(commit, return_sequences, repeats, batch):
    """Medians of CPU time per training step, this tree's LSTM and COMMIT's, alternating."""
    models = {"this tree": make_cnn(return_sequences),
              commit: make_cnn(return_sequences, lstm_class_at(commit))}
    x, y = batch_data(return_sequences, batch)
    cpu = {name: [] for name in models}
    with threadpool_limits(1):
        for model in models.values():
            for _ in range(3):
                model.train_on_batch(x, y)
        for _ in range(repeats):
            for name, model in models.items():
                start = time.process_time()
                model.train_on_batch(x, y)
                cpu[name].append(time.process_time() - start)
    ours, theirs = (np.median(cpu[name]) * 1e3 for name in models)
    print(f"batch {batch}, {'every step' if return_sequences else 'last step'}: this tree "
          f"{ours:.2f} ms, {commit} {theirs:.2f} ms CPU time per step (medians of {repeats} "
          f"alternating steps, one BLAS thread): {ours / theirs:.3f}x")


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--sequences", action="store_true",
                        help="also time return_sequences=True (a loss on every step)")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile cnn's training steps (one BLAS thread) and stop")
    parser.add_argument("--against", metavar="COMMIT",
                        help="A/B this tree's LSTM against COMMIT's (cnn only) and stop")
    parser.add_argument("--batch", type=int, nargs="+", default=[32, BATCH],
                        help="batch sizes of --profile and --against (default %(default)s)")
    args = parser.parse_args()
    variants = [False, True] if args.sequences else [False]
    if args.profile or args.against:
        for return_sequences in variants:
            for batch in args.batch:
                if args.profile:
                    profile_steps(return_sequences, batch)
                if args.against:
                    ab_steps(args.against, return_sequences, args.repeats, batch)
        return
    import torch

    blas = ", ".join(f"{i['internal_api']} {i['version']}" for i in threadpool_info()
                     if i["user_api"] == "blas")
    print(f"machine: {cpu_name()}, {os.cpu_count()} logical CPUs, load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"python {platform.python_version()}, numpy {np.__version__} ({blas}), "
          f"torch {torch.__version__}")
    print(f"LSTM({UNITS}) -> Dense({OUTPUTS}), MSE, SGD; batch {BATCH}, {STEPS} steps, "
          f"{FEATURES} features; medians of {args.repeats} alternating steps, wall clock and "
          f"(in brackets) CPU time of the process\n")
    print("| outputs used | threads | cnn ms/step | torch ms/step | cnn / torch |")
    print("|---|---|---|---|---|")
    for return_sequences in variants:
        for threads in args.threads:
            times = time_pair(torch, return_sequences, threads, args.repeats)
            (ours, ours_cpu), (theirs, theirs_cpu) = times["cnn"], times["torch"]
            label = "every step" if return_sequences else "last step"
            print(f"| {label} | {threads} | {ours:.1f} ({ours_cpu:.1f}) | {theirs:.1f} "
                  f"({theirs_cpu:.1f}) | {ours / theirs:.2f} ({ours_cpu / theirs_cpu:.2f}) |")


if __name__ == "__main__":
    main()
