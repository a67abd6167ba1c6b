"""The README's main command, ``python -m cnn train``, against a PyTorch script doing its job.

Wall time from start to exit of each, as a user sees it, in a fresh process each time, the
two alternating (which one goes first alternates too), medians reported:

* cnn: ``python -m cnn train --out DIR`` at its defaults (the seed network, 5 epochs at batch
  32, SGD lr 0.1, on the bundled 3,600 MNIST digits with 400 held out to validate on after
  each epoch; then the 1,000 test digits scored; model, history and four PNGs written);
* PyTorch: ``torch_main`` below, run as ``python bench_main_command.py --torch-run DIR``: the
  same network (Conv 20x9x9 -> ReLU -> AvgPool 2 -> Dense 100 -> ReLU -> Dense 10), the same
  digits read from cnn's bundled ``mnist_sample.npz`` with NumPy, the same held-out 400
  (the same permutation of ``default_rng(seed)``), 5 shuffled epochs at batch 32 of SGD lr
  0.1 with validation after each, the test digits scored, the weights (``model.pt``), the
  history (``history.json``, ``history.csv``) and the same four PNGs drawn with matplotlib
  (accuracy and loss curves, the confusion matrix, a 5 x 5 grid of misclassified digits),
  written the way a PyTorch user's script usually does (pyplot on the Agg backend).

Both run at their defaults: the variables that choose threads or processes are removed from
the environment (PyTorch then uses its own thread count, cnn its own plan). PyTorch is only
this benchmark's oracle; cnn never imports it.

    PYTHONPATH=. python benchmarks/bench_main_command.py [--repeats 5]
    PYTHONPATH=. python benchmarks/bench_main_command.py --quick   # 1 epoch: a smoke test

Timings on a shared machine are noisy: run it on a quiet one, and read the ratio.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch_loops  # benchmarks/torch_loops.py

ROOT = Path(__file__).resolve().parent.parent
DATA_FILE = ROOT / "cnn" / "datasets" / "data" / "mnist_sample.npz"
# What the defaults must not inherit from the shell this script runs in.
CHOSEN = ("CNN_WORKERS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
EPOCHS, BATCH_SIZE, LEARNING_RATE, VALIDATION_SPLIT, SEED = 5, 32, 0.1, 0.1, 0


def clean_env() -> dict:
    """This environment without anything that chooses threads or processes, with this
    checkout first on the path."""
    env = {key: value for key, value in os.environ.items() if key not in CHOSEN}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["MPLBACKEND"] = "Agg"
    return env


def command(framework: str, out: str, quick: bool) -> list:
    if framework == "cnn":
        extra = ["--epochs", "1"] if quick else []
        return [sys.executable, "-m", "cnn", "train", "--out", out] + extra
    extra = ["--quick"] if quick else []
    return [sys.executable, str(Path(__file__).resolve()), "--torch-run", out] + extra


def time_once(framework: str, quick: bool) -> float:
    """Wall seconds of one run of ``framework``'s command, from start to exit; checks that it
    wrote its four PNGs."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = subprocess.run(command(framework, out, quick), cwd=out, env=clean_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        seconds = time.perf_counter() - start
        if result.returncode != 0:
            raise RuntimeError(f"{framework} failed (exit status {result.returncode}):\n"
                               f"{result.stderr}")
        missing = [name for name in ("accuracy.png", "loss.png", "confusion.png",
                                     "misclassified.png") if not (Path(out) / name).is_file()]
        if missing:
            raise RuntimeError(f"{framework} wrote no {', '.join(missing)}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs of each (default: 5)")
    parser.add_argument("--quick", action="store_true", help="1 epoch: a smoke test")
    parser.add_argument("--torch-run", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_run:
        torch_main(Path(args.torch_run), epochs=1 if args.quick else EPOCHS)
        return
    times = {"cnn": [], "torch": []}
    for repeat in range(args.repeats):
        order = ("cnn", "torch") if repeat % 2 == 0 else ("torch", "cnn")
        for framework in order:
            times[framework].append(time_once(framework, args.quick))
            print(f"repeat {repeat + 1}: {framework:>5} {times[framework][-1]:.2f} s", flush=True)
    load = os.getloadavg()[0]
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"\nREADME main command ({'1 epoch' if args.quick else f'{EPOCHS} epochs'}), "
          f"wall time, median of {args.repeats} (load average before the end: {load:.2f}):")
    for name, median in medians.items():
        runs = " ".join(f"{value:.2f}" for value in times[name])
        print(f"  {name:>5}: {median:.2f} s   (runs: {runs})")
    print(f"  cnn / PyTorch: {medians['cnn'] / medians['torch']:.2f}x")


# -- the PyTorch script (run in its own process by --torch-run) ------------------------------
def torch_main(out: Path, epochs: int) -> None:
    """Train, score and draw as ``cnn train`` does, in PyTorch and matplotlib."""
    import torch
    from torch import nn

    torch.manual_seed(SEED)
    with np.load(DATA_FILE, allow_pickle=False) as archive:
        x = archive["x_train"][:, None].astype(np.float32) / 255
        y = archive["y_train"].astype(np.int64)
        x_test = archive["x_test"][:, None].astype(np.float32) / 255
        y_test = archive["y_test"].astype(np.int64)
    order = np.random.default_rng(SEED).permutation(len(x))
    count = int(round(VALIDATION_SPLIT * len(x)))
    held_out, kept = np.sort(order[:count]), np.sort(order[count:])
    x_train, y_train = torch.from_numpy(x[kept]), torch.from_numpy(y[kept])
    x_val, y_val = torch.from_numpy(x[held_out]), torch.from_numpy(y[held_out])

    net = nn.Sequential(nn.Conv2d(1, 20, 9), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                        nn.Linear(2000, 100), nn.ReLU(), nn.Linear(100, 10))
    optimizer = torch.optim.SGD(net.parameters(), lr=LEARNING_RATE)
    loss_fn = nn.CrossEntropyLoss()
    history = {"epoch": [], "loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        loss, accuracy = torch_loops.train_epoch(net, optimizer, x_train, y_train, BATCH_SIZE)
        val_loss, val_accuracy, _ = torch_score(net, loss_fn, x_val, y_val)
        for key, value in (("epoch", epoch), ("loss", loss), ("accuracy", accuracy),
                           ("val_loss", val_loss), ("val_accuracy", val_accuracy)):
            history[key].append(value)
        print(f"Epoch {epoch}/{epochs} - loss: {history['loss'][-1]:.4f} - accuracy: "
              f"{history['accuracy'][-1]:.4f} - val_loss: {val_loss:.4f} - val_accuracy: "
              f"{val_accuracy:.4f}", flush=True)
    seconds = time.perf_counter() - start
    test_loss, test_accuracy, predicted = torch_score(net, loss_fn, torch.from_numpy(x_test),
                                                      torch.from_numpy(y_test))

    torch.save(net.state_dict(), out / "model.pt")
    (out / "history.json").write_text(json.dumps(history, indent=2))
    with open(out / "history.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(list(history))
        writer.writerows(zip(*history.values()))
    draw_with_matplotlib(out, history, x_test[:, 0], y_test, predicted)
    print(f"trained {epochs} epoch(s) in {seconds:.1f} s; on the {len(x_test)} test images: "
          f"accuracy {test_accuracy:.4f}, loss {test_loss:.4f}")


def torch_score(net, loss_fn, x, y, batch_size: int = 256):
    """(mean loss, accuracy, predicted classes as an (N,) array) in inference mode."""
    import torch

    net.eval()
    with torch.inference_mode():
        outputs = torch.cat([net(x[begin:begin + batch_size])
                             for begin in range(0, len(x), batch_size)])
        loss = float(loss_fn(outputs, y))
        predicted = outputs.argmax(1)
    return loss, float((predicted == y).float().mean()), predicted.numpy()


def draw_with_matplotlib(out: Path, history: dict, images, y_true, y_pred) -> None:
    """The four PNGs of ``cnn train``, drawn as a PyTorch user's script usually draws them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for metric in ("accuracy", "loss"):
        plt.figure()
        plt.plot(history["epoch"], history[metric], marker="o", markersize=3, label="train")
        plt.plot(history["epoch"], history["val_" + metric], marker="o", markersize=3,
                 label="validation")
        plt.title(f"model {metric}")
        plt.xlabel("epoch")
        plt.ylabel(metric)
        plt.legend(loc="best")
        plt.grid(alpha=0.3)
        plt.savefig(out / f"{metric}.png")
        plt.close()

    matrix = np.bincount(10 * y_true + y_pred, minlength=100).reshape(10, 10)
    plt.figure(figsize=(6.4, 5.44))
    plt.imshow(matrix, interpolation="nearest", cmap="Blues", vmin=0)
    plt.colorbar()
    plt.xticks(range(10), [str(d) for d in range(10)], rotation=45)
    plt.yticks(range(10), [str(d) for d in range(10)])
    plt.title("confusion matrix")
    plt.xlabel("Predicted label")
    plt.ylabel("True label")
    for i in range(10):
        for j in range(10):
            plt.text(j, i, str(matrix[i, j]), ha="center", va="center",
                     color="white" if matrix[i, j] > matrix.max() / 2 else "black")
    plt.tight_layout()
    plt.savefig(out / "confusion.png")
    plt.close()

    wrong = np.flatnonzero(y_pred != y_true)
    shown = wrong[:25]
    plt.figure(figsize=(8.4, 10.1))
    plt.suptitle(f"misclassified: {len(wrong)} of {len(y_true)}, first {len(shown)} shown")
    for position, index in enumerate(shown, start=1):
        plt.subplot(5, 5, position)
        plt.imshow(images[index], cmap="gray")
        plt.title(f"true: {y_true[index]}\npred: {y_pred[index]}", fontsize=8)
        plt.axis("off")
    plt.tight_layout()
    plt.savefig(out / "misclassified.png")
    plt.close()


if __name__ == "__main__":
    main()
