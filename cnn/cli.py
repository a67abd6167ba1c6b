"""The command line: ``python -m cnn train`` (also installed as ``cnn``).

With no arguments, ``train`` trains the seed's network on the MNIST sample bundled with the
package and writes the model, its history, the accuracy/loss plots and the confusion matrix.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cnn
from cnn.layers import AveragePooling2D, Conv2D, Dense, Flatten, Input, Output


def seed_network() -> "cnn.models.Model":
    """The seed's MNIST network: Conv2D(20, 9x9, ReLU) -> AvgPool(2) -> Dense(100) -> Output(10)."""
    from cnn.models import Model

    model = Model(Input((1, 28, 28)), "MNIST_cnn")
    model.add_layer(Conv2D(20, 9, activate_fcn="ReLU"))
    model.add_layer(AveragePooling2D(2))
    model.add_layer(Flatten())
    model.add_layer(Dense(100, activate_fcn="ReLU"))
    model.add_layer(Output(10))
    return model


def train(args) -> int:
    from cnn.datasets import mnist_sample
    from cnn.utils.visualization import confusion_show, history_show

    cnn.set_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = mnist_sample.load_data()
    model = seed_network()
    model.compile(args.lr, "cross_tropy")
    model.summary()
    start = time.perf_counter()
    history = model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
                        verbose=1, validation_data=(x_test, y_test))
    seconds = time.perf_counter() - start
    accuracy, loss = model.evaluate(x_test, y_test)
    out = Path(args.out)
    files = {
        "model": out / "model.h5",
        "history": out / "history.json",
        "accuracy plot": out / "accuracy.png",
        "loss plot": out / "loss.png",
        "confusion matrix": out / "confusion.png",
    }
    model.save(files["model"])
    out.mkdir(parents=True, exist_ok=True)
    files["history"].write_text(json.dumps(dict(history), indent=2))
    history_show(history, files["accuracy plot"], files["loss plot"], show=False)
    confusion_show(list(mnist_sample.CLASS_NAMES), model.predict_classes(x_test), y_test,
                   confusion_file=files["confusion matrix"], show=False)
    print(f"trained in {seconds:.1f} s; test accuracy {accuracy:.4f}, test loss {loss:.4f}")
    for what, path in files.items():
        print(f"{what:>17}: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnn", description="Train and use cnn models.")
    commands = parser.add_subparsers(dest="command")
    train_parser = commands.add_parser("train", help="train the seed's network on the MNIST sample")
    train_parser.add_argument("--epochs", type=int, default=5)
    train_parser.add_argument("--batch-size", type=int, default=32)
    train_parser.add_argument("--lr", type=float, default=0.1)
    train_parser.add_argument("--seed", type=int, default=0)
    train_parser.add_argument("--out", default="runs/seed")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["train", *(argv or [])])
    return train(args)


if __name__ == "__main__":
    sys.exit(main())
