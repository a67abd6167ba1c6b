"""The POI task with a batched LSTM (or GRU) on windows of the trajectory.

Each input is the window of the last ``--window`` positions, the target the next position.
Training windows lie in the seed's training part (targets d[window..600]); the test targets
are the seed's, d[601:], each predicted from the ``--window`` steps before it, and the
metric is the seed's "MAE" (the sum over x, y, z of each coordinate's mean absolute error).

    python examples/poi_lstm.py [--data POI.mat] [--cell lstm|gru] [--out runs/poi]
"""

import argparse
import time

import numpy as np

import cnn
from cnn.layers import GRU, LSTM, Dense, Input
from cnn.models import Model
from cnn.optimizers import Adam
from cnn.utils.timeseries import sliding_windows
from poi_common import TRAIN_END, default_data_path, load_poi, plot_against_truth, seed_mae

CELLS = {"lstm": LSTM, "gru": GRU}


def build(cell, window, units, learning_rate):
    model = Model(Input((window, 3)), f"POI_{cell}")
    model.add_layer(CELLS[cell](units))
    model.add_layer(Dense(3))
    model.compile(optimizer=Adam(learning_rate, global_clipnorm=1.0), loss="mse", metrics=["MAE"])
    return model


def closed_loop(model, history, steps):
    """Predict ``steps`` positions, each from a window that ends with the predictions so far."""
    window = list(history)
    predictions = np.empty((steps, 3))
    for t in range(steps):
        predictions[t] = model.predict(np.asarray(window[-len(history):])[None])[0]
        window.append(predictions[t])
    return predictions


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=default_data_path())
    parser.add_argument("--cell", choices=sorted(CELLS), default="lstm")
    parser.add_argument("--window", type=int, default=30)
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.005)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/poi")
    args = parser.parse_args()
    series, mean = load_poi(args.data)

    x_train, y_train = sliding_windows(series[:TRAIN_END + 1], args.window)
    x_test, y_test = sliding_windows(series[TRAIN_END + 1 - args.window:], args.window)
    assert np.array_equal(y_test, series[TRAIN_END + 1:])  # the seed's test steps

    cnn.set_seed(args.seed)
    model = build(args.cell, args.window, args.units, args.lr)
    model.summary()
    start, cpu_start = time.perf_counter(), time.process_time()
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs, verbose=0,
              seed=args.seed)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    loss, mae = model.evaluate(x_test, y_test)
    print(f"{args.cell.upper()}({args.units}) on windows of {args.window}: trained "
          f"{args.epochs} epochs on {len(x_train)} windows in {seconds:.1f} s "
          f"({cpu_seconds:.1f} s CPU)")
    print(f"test MAE {mae:.4f}, test loss (mse) {loss:.5f} on {len(y_test)} test steps")

    one_step = model.predict(x_test)
    assert abs(seed_mae(one_step, y_test) - mae) < 1e-4
    name = args.cell
    plot_against_truth(one_step, y_test, mean, f"{name.upper()}({args.units}), windows of "
                       f"{args.window}: one-step predictions (test MAE {mae:.3f})",
                       f"{args.out}/poi_{name}_one_step.png")
    loop = closed_loop(model, x_test[0], 100)
    print(f"closed loop, 100 steps: MAE {seed_mae(loop, y_test[:100]):.4f}")
    plot_against_truth(loop, y_test, mean, f"{name.upper()}({args.units}): 100 steps in closed loop",
                       f"{args.out}/poi_{name}_closed_loop.png")


if __name__ == "__main__":
    main()
