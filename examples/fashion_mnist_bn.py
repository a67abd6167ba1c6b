"""Fashion-MNIST with the training toolkit: BatchNormalization, Dropout, Adam with a cosine
learning-rate schedule, EarlyStopping on a validation split, a CSV log.

    apt-get install dataset-fashion-mnist     # or put the IDX files in $CNN_DATA
    OPENBLAS_NUM_THREADS=1 python examples/fashion_mnist_bn.py [--out runs/fashion_bn] \
        [--images docs/images]

(one BLAS thread: on a busy 2-core machine more threads only fight; see docs/TRAINING.md).
Result on the project's 2-core machine: 93.83% test accuracy after 12 epochs, 1,467 s.

Network: two blocks of (Conv 3x3 -> BatchNormalization -> ReLU) x 2 -> max pooling ->
dropout, with 32 then 64 filters, then Dense 128 -> BatchNormalization -> ReLU -> dropout ->
softmax. The last 10% of the training images (taken before shuffling) validate each epoch;
EarlyStopping watches ``val_loss`` and restores the best epoch's weights at the end.
"""

import argparse
import math
import time
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import cnn
from cnn.callbacks import CSVLogger, EarlyStopping
from cnn.datasets import fashion_mnist
from cnn.layers import (Activation, BatchNormalization, Conv2D, Dense, Dropout, Flatten, Input,
                        MaxPooling2D, Output)
from cnn.models import Sequential
from cnn.optimizers import Adam
from cnn.schedules import CosineDecay
from cnn.utils.visualization import history_show

VALIDATION_SPLIT = 0.1


def conv_block(filters):
    """(Conv -> BN -> ReLU) x 2 -> 2x2 max pooling -> dropout; the conv needs no bias (BN's
    beta is one)."""
    layers = []
    for _ in range(2):
        layers += [Conv2D(filters, 3, padding="same", use_bias=False), BatchNormalization(),
                   Activation("relu")]
    return layers + [MaxPooling2D(2), Dropout(0.25)]


def build_model(learning_rate):
    """The network, compiled with Adam; ``learning_rate`` a float or a schedule."""
    model = Sequential(
        [Input((1, 28, 28)), *conv_block(32), *conv_block(64), Flatten(),
         Dense(128, use_bias=False), BatchNormalization(), Activation("relu"), Dropout(0.4),
         Output(10)],
        name="fashion_bn",
    )
    model.compile(optimizer=Adam(learning_rate), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def plot_learning_rate(history, path):
    figure = Figure(figsize=(6.4, 4.0))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    epochs = range(1, len(history["learning_rate"]) + 1)
    axes.plot(epochs, history["learning_rate"], marker="o")
    axes.set(title="learning rate (at each epoch's last step)", xlabel="epoch",
             ylabel="learning rate")
    axes.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100, bbox_inches="tight")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/fashion_bn", help="model, CSV log and plots")
    parser.add_argument("--images", help="also write the curves here as fashion_bn_*.png")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--limit", type=int,
                        help="use only the first N training and N test images (smoke test)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = Path(args.out)

    cnn.set_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    if args.limit:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
        x_test, y_test = x_test[:args.limit], y_test[:args.limit]
    steps_per_epoch = math.ceil(len(x_train) * (1 - VALIDATION_SPLIT) / args.batch_size)
    schedule = CosineDecay(args.learning_rate, decay_steps=args.epochs * steps_per_epoch)
    model = build_model(schedule)
    model.summary()

    callbacks = [
        EarlyStopping(monitor="val_loss", patience=args.patience, restore_best_weights=True,
                      verbose=1),
        CSVLogger(out / "history.csv"),
    ]
    start, cpu_start = time.perf_counter(), time.process_time()
    history = model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
                        verbose=2, validation_split=VALIDATION_SPLIT, callbacks=callbacks)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    loss, accuracy = model.evaluate(x_test, y_test)
    epochs_run = len(history["loss"])
    # On a shared machine the wall-clock time depends on the other jobs; the CPU time of
    # this process (all its threads) does much less.
    print(f"training time: {seconds:.0f} s wall clock, {cpu_seconds:.0f} s CPU, for "
          f"{epochs_run} epochs ({seconds / epochs_run:.0f} s/epoch wall clock, validation "
          "included)")
    print(f"test accuracy: {accuracy:.4f}  test loss: {loss:.4f}")

    history_show(history, out / "accuracy.png", out / "loss.png", show=False)
    plot_learning_rate(history, out / "learning_rate.png")
    if args.images:
        images = Path(args.images)
        history_show(history, images / "fashion_bn_accuracy.png", images / "fashion_bn_loss.png",
                     show=False)
        plot_learning_rate(history, images / "fashion_bn_learning_rate.png")
    model.save(out / "model.h5")
    print(f"wrote {out}/model.h5, history.csv, accuracy.png, loss.png, learning_rate.png")


if __name__ == "__main__":
    main()
