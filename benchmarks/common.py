"""Shared by the benchmark scripts: the networks in both frameworks, timing, machine facts,
and appending rows to ``benchmarks/RESULTS.md``.

PyTorch is a benchmark-only dependency (``pip install torch==2.13.0``, the CPU build); ``cnn``
never imports it. Run the scripts from the repository root as ``PYTHONPATH=. python
benchmarks/<script>.py`` so that this checkout's ``cnn`` is the one measured.
"""

from __future__ import annotations

import datetime
import importlib.util
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch_loops  # benchmarks/torch_loops.py

import cnn
from cnn.datasets import fashion_mnist
from cnn.layers import AveragePooling2D, Conv2D, Dense, Flatten, Input, Output
from cnn.models import Model
from cnn.optimizers import SGD

RESULTS = Path(__file__).with_name("RESULTS.md")
NETWORKS = ("seed", "lenet")


# -- data -------------------------------------------------------------------------------------
def load_fashion_mnist():
    """``(x_train, y_train), (x_test, y_test)``: float32 (N, 1, 28, 28) in [0, 1], int64 labels."""
    return fashion_mnist.load_data()


# -- the networks in cnn ----------------------------------------------------------------------
def cnn_model(network: str, seed: int = 0) -> Model:
    """``"seed"``: the seed's network with SGD(0.1); ``"lenet"``: the model of
    examples/fashion_mnist_convnet.py (two 3x3 'same' conv blocks of 32 and 64 filters with
    max pooling, dropout, Dense(128), Adam)."""
    if network not in NETWORKS:
        raise ValueError(f"unknown network {network!r}; choose from {NETWORKS}")
    cnn.set_seed(seed)
    if network == "lenet":
        return _example_convnet()
    model = Model(Input((1, 28, 28)), network)
    model.add(Conv2D(20, 9, activation="relu"))
    model.add(AveragePooling2D(2))
    model.add(Flatten())
    model.add(Dense(100, activation="relu"))
    model.add(Output(10))
    model.compile(optimizer=SGD(0.1), loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def cnn_train_epoch(model: Model, x, y, batch_size: int, workers: int | None = 1,
                    **fit_kwargs) -> float:
    """Seconds for one epoch of ``model.fit`` (shuffled, loss and accuracy logged per batch);
    with ``workers`` > 1 (or None, the default's choice) the worker processes outlive the
    call, as ``fit`` keeps them (the first call pays their start)."""
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, workers=workers, **fit_kwargs)
    return time.perf_counter() - start


def _example_convnet() -> Model:
    examples = Path(__file__).resolve().parent.parent / "examples"
    if str(examples) not in sys.path:
        sys.path.insert(0, str(examples))  # the example imports its neighbour fashion_common
    spec = importlib.util.spec_from_file_location("fashion_mnist_convnet",
                                                  examples / "fashion_mnist_convnet.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    return example.build_model(steps=5 * 938)  # its schedule: 5 epochs of batch 64


# -- the same networks in PyTorch -------------------------------------------------------------
def torch_model(network: str, seed: int = 0):
    """The PyTorch twin of ``cnn_model(network)`` and its optimizer."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    if network == "seed":
        net = nn.Sequential(
            nn.Conv2d(1, 20, 9), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
            nn.Linear(2000, 100), nn.ReLU(), nn.Linear(100, 10),
        )
        return net, torch.optim.SGD(net.parameters(), lr=0.1)
    if network == "lenet":
        net = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding="same"), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding="same"), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Dropout(0.3), nn.Linear(3136, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 10),
        )
        return net, torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)
    raise ValueError(f"unknown network {network!r}; choose from {NETWORKS}")


def torch_train_epoch(net_and_optimizer, x_tensor, y_tensor, batch_size: int) -> float:
    """Seconds for one epoch of the usual PyTorch loop, logging loss and accuracy like fit."""
    net, optimizer = net_and_optimizer
    start = time.perf_counter()
    torch_loops.train_epoch(net, optimizer, x_tensor, y_tensor, batch_size)
    return time.perf_counter() - start


def torch_predict(net, x_tensor, batch_size: int = 256):
    """Outputs (softmax probabilities, like ``Model.predict``) in inference mode."""
    import torch

    net.eval()
    outputs = []
    with torch.inference_mode():
        for begin in range(0, x_tensor.shape[0], batch_size):
            outputs.append(torch.softmax(net(x_tensor[begin:begin + batch_size]), dim=1))
    return torch.cat(outputs).numpy()


def set_threads(threads: int, workers: int = 1) -> None:
    """``threads`` threads for PyTorch, and as many cores for cnn: ``workers`` processes
    (``fit(workers=...)``), each with ``threads // workers`` BLAS threads."""
    import torch

    if workers < 1 or threads % workers:
        raise ValueError(f"--threads ({threads}) must be a multiple of --workers ({workers})")
    cnn.set_num_threads(threads // workers)
    torch.set_num_threads(threads)


# -- measuring --------------------------------------------------------------------------------
def alternate(runs: dict, repeats: int) -> dict:
    """Call each ``runs[name]()`` in turn, ``repeats`` rounds; returns ``{name: [seconds]}``."""
    times = {name: [] for name in runs}
    for round_index in range(repeats):
        for name, run in runs.items():
            seconds = run()
            times[name].append(seconds)
            print(f"  round {round_index + 1}: {name:<28} {seconds:8.3f} s  (load {load():.2f})",
                  flush=True)
    return times


def median(values) -> float:
    return statistics.median(values)


def load() -> float:
    """The 1-minute load average (other users of the machine disturb timings)."""
    return os.getloadavg()[0]


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (VmHWM), in MiB."""
    return _status_mb("VmHWM")


def reset_peak_rss() -> None:
    """Make VmHWM start again from the current resident memory (Linux: clear_refs 5)."""
    Path("/proc/self/clear_refs").write_text("5")


def current_rss_mb() -> float:
    """Resident memory of this process now (VmRSS), in MiB."""
    return _status_mb("VmRSS")


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


# -- describing the machine and appending results ---------------------------------------------
def machine_facts() -> dict:
    """CPU, cores, NumPy/BLAS, PyTorch versions; what a result row needs to be comparable."""
    import threadpoolctl

    cpu = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    blas = [f"{info['internal_api']} {info['version']} ({info.get('architecture', '?')})"
            for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = "not installed"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": ", ".join(blas) or "unknown",
        "torch": torch_version,
    }


def machine_line() -> str:
    facts = machine_facts()
    return (f"{facts['cpu']}, {facts['cores']} cores; Python {facts['python']}, NumPy "
            f"{facts['numpy']} with {facts['blas']}; PyTorch {facts['torch']}; cnn at "
            f"{commit()}")


def commit() -> str:
    """The checkout's short commit id, with ``+changes`` when files differ from it."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, check=True,
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+changes" if dirty else "")


def append_row(section: str, header: str, row: str) -> None:
    """Append ``row`` to the table under ``## section`` in RESULTS.md (created if missing).

    ``header`` is the table's header and separator lines, written when the section is new.
    Other sections (e.g. the LSTM one) are left untouched.
    """
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    marker = f"## {section}\n"
    if marker not in text:
        text = text.rstrip("\n") + f"\n\n{marker}\n{header.rstrip()}\n"
    start = text.index(marker) + len(marker)
    next_section = text.find("\n## ", start)
    end = len(text) if next_section == -1 else next_section + 1
    body = text[start:end].rstrip("\n") + "\n" + row.rstrip("\n") + "\n"
    text = text[:start] + body + ("\n" + text[end:] if next_section != -1 else "")
    RESULTS.write_text(text)


def row(*cells) -> str:
    """A Markdown table row: ``row("a", 1.5)`` -> ``"| a | 1.5 |"``."""
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def today() -> str:
    return datetime.date.today().isoformat()
