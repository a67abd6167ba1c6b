"""The seed's network on Fashion-MNIST, compiled as in the seed: SGD 0.1, batch 32, 3 epochs.

    apt-get install dataset-fashion-mnist     # or put the IDX files in $CNN_DATA
    python examples/fashion_mnist_seed.py [--out runs/fashion_seed]
"""

import argparse

import cnn
from cnn.datasets import fashion_mnist
from cnn.layers import AveragePooling2D, Conv2D, Dense, Flatten, Input, Output
from cnn.models import Model
from fashion_common import train_and_report


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/fashion_seed")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

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

    train_and_report(model, (x_train, y_train), (x_test, y_test), args.out, batch_size=32, epochs=args.epochs)


if __name__ == "__main__":
    main()
