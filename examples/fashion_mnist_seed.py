"""The seed's network on Fashion-MNIST, compiled as in the seed: SGD 0.1, batch 32, 3 epochs.

    apt-get install dataset-fashion-mnist     # or put the IDX files in $CNN_DATA
    python examples/fashion_mnist_seed.py [--out runs/fashion_seed]
"""

import argparse
import time
from pathlib import Path

import cnn
from cnn.datasets import fashion_mnist
from cnn.layers import AveragePooling2D, Conv2D, Dense, Flatten, Input, Output
from cnn.models import Model
from cnn.utils.visualization import confusion_show, history_show


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/fashion_seed")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = Path(args.out)

    cnn.set_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()

    model = Model(Input((1, 28, 28)), "fashion_seed")
    model.add_layer(Conv2D(20, 9, input_shape=(1, 28, 28), activate_fcn="ReLU"))
    model.add_layer(AveragePooling2D(2, input_shape=(20, 20, 20)))
    model.add_layer(Flatten((20, 10, 10)))
    model.add_layer(Dense(100, 2000, activate_fcn="ReLU"))
    model.add_layer(Output(10, 100))
    model.compile(0.1, "cross_tropy")
    model.summary()

    start = time.perf_counter()
    history = model.fit(x_train, y_train, batch_size=32, epochs=args.epochs, verbose=2)
    seconds = time.perf_counter() - start
    accuracy, loss = model.evaluate(x_test, y_test)
    print(f"training time: {seconds:.1f} s ({seconds / args.epochs:.1f} s/epoch)")
    print(f"test accuracy: {accuracy:.4f}  test loss: {loss:.4f}")

    history_show(history, out / "accuracy.png", out / "loss.png")
    confusion_show(list(fashion_mnist.CLASS_NAMES), model.predict_classes(x_test), y_test,
                   confusion_file=out / "confusion.png")
    model.save(out / "model.h5")
    print(f"wrote {out}/model.h5, accuracy.png, loss.png, confusion.png")


if __name__ == "__main__":
    main()
