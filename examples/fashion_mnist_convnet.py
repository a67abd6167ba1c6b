"""A small modern convnet on Fashion-MNIST with Adam: two 3x3 conv blocks, dropout, 5 epochs.

    apt-get install dataset-fashion-mnist     # or put the IDX files in $CNN_DATA
    python examples/fashion_mnist_convnet.py [--out runs/fashion_convnet]
"""

import argparse
import time
from pathlib import Path

import cnn
from cnn.datasets import fashion_mnist
from cnn.layers import Conv2D, Dense, Dropout, Flatten, Input, MaxPooling2D, Output
from cnn.models import Model
from cnn.optimizers import Adam
from cnn.utils.visualization import confusion_show, history_show


def build_model():
    model = Model(Input((1, 28, 28)), "fashion_convnet")
    model.add(Conv2D(32, 3, padding="same", activation="relu"))
    model.add(MaxPooling2D(2))
    model.add(Conv2D(64, 3, padding="same", activation="relu"))
    model.add(MaxPooling2D(2))
    model.add(Flatten())
    model.add(Dropout(0.3))
    model.add(Dense(128, activation="relu"))
    model.add(Dropout(0.3))
    model.add(Output(10))
    model.compile(optimizer=Adam(learning_rate=1e-3), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/fashion_convnet")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = Path(args.out)

    cnn.set_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    model = build_model()
    model.summary()

    start = time.perf_counter()
    history = model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
                        verbose=2)
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
