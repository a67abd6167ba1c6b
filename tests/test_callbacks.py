"""Callbacks: the hooks and their order, and each ready-made callback against Keras's rules.

The monitoring callbacks are driven epoch by epoch with chosen values (as ``fit`` would call
them) so that each rule can be checked exactly; one ``fit`` run per callback checks the wiring.
"""

import csv
import math

import numpy as np
import pytest

import cnn
from cnn.callbacks import (Callback, CSVLogger, EarlyStopping, LearningRateScheduler,
                           ReduceLROnPlateau, TerminateOnNaN)
from cnn.layers import Dense, Input, Output
from cnn.models import Model, NonFiniteLossError
from cnn.optimizers import SGD
from cnn.schedules import ExponentialDecay, StepDecay
from helpers import separable_data


def dense_model(learning_rate=0.1, seed=0):
    cnn.set_seed(seed)
    model = Model(Input((4,)), "toy")
    model.add(Dense(8, activation="relu"))
    model.add(Output(3))
    model.compile(optimizer=SGD(learning_rate), loss="categorical_crossentropy")
    return model


def drive(callback, model, values, monitor="val_loss"):
    """Call the callback as fit would, with ``values`` as the monitored log per epoch; return
    the epoch after which training stopped (None if it did not)."""
    callback.set_model(model)
    model.stop_training = False
    callback.on_train_begin({})
    stopped = None
    for epoch, value in enumerate(values):
        callback.on_epoch_begin(epoch, {})
        callback.on_epoch_end(epoch, {monitor: value, "loss": 1.0})
        if model.stop_training:
            stopped = epoch
            break
    callback.on_train_end({})
    return stopped


# -- the Callback base class ---------------------------------------------------------------------

def test_hooks_are_called_in_keras_order_with_logs():
    calls = []

    class Recorder(Callback):
        def on_train_begin(self, logs=None):
            calls.append(("train_begin",))

        def on_epoch_begin(self, epoch, logs=None):
            calls.append(("epoch_begin", epoch))

        def on_train_batch_begin(self, batch, logs=None):
            calls.append(("batch_begin", batch))

        def on_train_batch_end(self, batch, logs=None):
            calls.append(("batch_end", batch, sorted(logs)))

        def on_epoch_end(self, epoch, logs=None):
            calls.append(("epoch_end", epoch, sorted(logs)))

        def on_train_end(self, logs=None):
            calls.append(("train_end",))

    x, y = separable_data(30)
    recorder = Recorder()
    dense_model().fit(x, y, batch_size=10, epochs=2, verbose=0, validation_split=0.2,
                      callbacks=[recorder])
    assert recorder.params == {"epochs": 2, "steps": 3, "samples": 24, "batch_size": 10,
                               "verbose": 0}
    epoch_keys = ["accuracy", "learning_rate", "loss", "val_accuracy", "val_loss"]
    batches = [item for b in range(3) for item in
               (("batch_begin", b), ("batch_end", b, ["accuracy", "loss"]))]
    assert calls == [
        ("train_begin",),
        ("epoch_begin", 0), *batches, ("epoch_end", 0, epoch_keys),
        ("epoch_begin", 1), *batches, ("epoch_end", 1, epoch_keys),
        ("train_end",),
    ]


def test_stop_training_inside_an_epoch_ends_after_that_batch():
    seen = []

    class StopAtSecondBatch(Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append(batch)
            if batch == 1:
                self.model.stop_training = True

    x, y = separable_data(60)
    history = dense_model().fit(x, y, batch_size=10, epochs=3, verbose=0,
                                callbacks=[StopAtSecondBatch()])
    assert seen == [0, 1] and len(history["loss"]) == 1


# -- EarlyStopping -------------------------------------------------------------------------------

def test_early_stopping_patience():
    stopper = EarlyStopping(patience=2)
    # best at epoch 1; epochs 2 and 3 do not improve: stop after epoch 3.
    assert drive(stopper, dense_model(), [1.0, 0.9, 0.95, 0.96, 0.5]) == 3
    assert stopper.stopped_epoch == 3 and stopper.best == 0.9 and stopper.best_epoch == 1


def test_early_stopping_min_delta_and_mode_max():
    stopper = EarlyStopping(monitor="val_accuracy", min_delta=0.01, patience=1)
    # 0.705 is not an improvement of more than 0.01 over 0.7.
    assert drive(stopper, dense_model(), [0.7, 0.705, 0.9], monitor="val_accuracy") == 1
    stopper = EarlyStopping(monitor="val_accuracy", patience=1)
    assert drive(stopper, dense_model(), [0.7, 0.8, 0.9, 0.9], monitor="val_accuracy") == 3


def test_early_stopping_explicit_mode_and_start_from_epoch():
    stopper = EarlyStopping(monitor="val_score", mode="max", patience=1, start_from_epoch=2)
    assert drive(stopper, dense_model(), [5, 4, 3, 2, 1], monitor="val_score") == 3


def test_early_stopping_baseline():
    # Improving, but never better than the baseline: the wait is not reset (Keras 3).
    stopper = EarlyStopping(patience=2, baseline=0.5)
    assert drive(stopper, dense_model(), [0.9, 0.8, 0.8, 0.1]) == 2
    stopper = EarlyStopping(patience=2, baseline=0.5)
    assert drive(stopper, dense_model(), [0.9, 0.4, 0.45, 0.46, 0.47]) == 3


def test_early_stopping_restores_the_best_weights():
    model = dense_model()
    stopper = EarlyStopping(patience=1, restore_best_weights=True)
    stopper.set_model(model)
    stopper.on_train_begin({})
    snapshots = []
    for epoch, value in enumerate([1.0, 0.5, 0.7]):
        model.set_weights([w + epoch for w in model.get_weights()])
        snapshots.append(model.get_weights())
        stopper.on_epoch_end(epoch, {"val_loss": value})
    assert model.stop_training
    stopper.on_train_end({})
    for restored, best in zip(model.get_weights(), snapshots[1]):
        np.testing.assert_array_equal(restored, best)


def test_early_stopping_in_fit_restores_best_epoch_weights():
    x, y = separable_data(60)
    model = dense_model(learning_rate=2.0)
    weights_per_epoch = []

    class Snapshot(Callback):
        def on_epoch_end(self, epoch, logs=None):
            weights_per_epoch.append(self.model.get_weights())

    stopper = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    history = model.fit(x, y, batch_size=8, epochs=30, verbose=0, validation_split=0.3,
                        callbacks=[Snapshot(), stopper])
    best = int(np.argmin(history["val_loss"]))
    assert stopper.best_epoch == best
    for restored, kept in zip(model.get_weights(), weights_per_epoch[best]):
        np.testing.assert_array_equal(restored, kept)


@pytest.mark.parametrize("make, match", [
    (lambda: EarlyStopping(monitor="val_f1"), "cannot tell whether 'val_f1' should rise or fall"),
    (lambda: EarlyStopping(mode="lowest"), "mode must be one of auto, min, max"),
    (lambda: EarlyStopping(patience=-1), "patience must be >= 0"),
    (lambda: ReduceLROnPlateau(factor=1.0), r"factor must be in \[0, 1\)"),
    (lambda: ReduceLROnPlateau(factor=0), r"factor must be in \(0, 1\)"),
    (lambda: LearningRateScheduler(0.1), "needs a callable schedule"),
    (lambda: CSVLogger("log.csv", separator="::"), "separator must be one character"),
])
def test_bad_arguments_are_named(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_a_missing_monitor_names_what_is_available():
    x, y = separable_data(20)
    with pytest.raises(ValueError, match=r"monitors 'val_loss', which is not in the logs \(valid"
                                         r"ation values need validation_split.*available: "
                                         r"accuracy, learning_rate, loss"):
        dense_model().fit(x, y, epochs=2, verbose=0, callbacks=[EarlyStopping()])


# -- ReduceLROnPlateau ---------------------------------------------------------------------------

def learning_rates_after(callback, values, initial=0.1):
    model = dense_model(learning_rate=initial)
    rates = []
    callback.set_model(model)
    callback.on_train_begin({})
    for epoch, value in enumerate(values):
        callback.on_epoch_end(epoch, {"val_loss": value})
        rates.append(model.optimizer.learning_rate)
    return rates


def test_reduce_lr_on_plateau_patience_factor_and_min_lr():
    callback = ReduceLROnPlateau(factor=0.5, patience=2, min_lr=0.02)
    rates = learning_rates_after(callback, [1.0, 1.0, 1.0, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6])
    assert rates == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.02, 0.02, 0.02])


def test_reduce_lr_on_plateau_cooldown_and_min_delta():
    # 0.95 is no improvement by more than 0.1; with patience=1 the rate would halve every
    # epoch, but cooldown=2 leaves out the epoch after each reduction (Keras's counting: the
    # cooldown counter is decremented at the start of each epoch's check).
    callback = ReduceLROnPlateau(factor=0.5, patience=1, cooldown=2, min_delta=0.1)
    rates = learning_rates_after(callback, [1.0, 0.95, 0.95, 0.95, 0.95, 0.95])
    assert rates == pytest.approx([0.1, 0.05, 0.05, 0.025, 0.025, 0.0125])


def test_reduce_lr_on_plateau_in_fit_and_history():
    x, y = separable_data(40)
    model = dense_model(learning_rate=0.5)
    history = model.fit(x, y, epochs=4, verbose=0,
                        callbacks=[ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0,
                                                     min_delta=10.0)])
    # the first epoch sets the best value; after that nothing improves by 10, so the rate
    # halves after every epoch; the history shows the rate each epoch was trained with.
    assert history["learning_rate"] == pytest.approx([0.5, 0.5, 0.25, 0.125])
    assert model.optimizer.learning_rate == pytest.approx(0.0625)


def test_reduce_lr_on_plateau_refuses_a_schedule():
    x, y = separable_data(20)
    model = dense_model()
    model.optimizer.learning_rate = ExponentialDecay(0.1, 10, 0.5)
    with pytest.raises(ValueError, match="ReduceLROnPlateau sets the optimizer's learning rate, "
                                         "but it is the schedule ExponentialDecay"):
        model.fit(x, y, verbose=0, callbacks=[ReduceLROnPlateau(monitor="loss")])


# -- LearningRateScheduler -----------------------------------------------------------------------

@pytest.mark.parametrize("schedule, expected", [
    (lambda epoch, lr: lr * 0.5, [0.05, 0.025, 0.0125, 0.00625]),
    (lambda epoch: 0.1 / (epoch + 1), [0.1, 0.05, 0.1 / 3, 0.025]),
    (StepDecay(0.2, decay_steps=2, decay_rate=0.1), [0.2, 0.2, 0.02, 0.02]),
])
def test_learning_rate_scheduler_sets_the_rate_each_epoch(schedule, expected):
    x, y = separable_data(30)
    model = dense_model(learning_rate=0.1)
    history = model.fit(x, y, batch_size=10, epochs=4, verbose=0,
                        callbacks=[LearningRateScheduler(schedule)])
    assert history["learning_rate"] == pytest.approx(expected)
    assert model.optimizer.learning_rate == pytest.approx(expected[-1])


def test_learning_rate_scheduler_reports_a_bad_rate():
    x, y = separable_data(20)
    with pytest.raises(ValueError, match="the schedule returned -1 for epoch 0"):
        dense_model().fit(x, y, verbose=0, callbacks=[LearningRateScheduler(lambda epoch: -1)])


# -- CSVLogger -----------------------------------------------------------------------------------

def read_csv(path, separator=","):
    with open(path, newline="") as f:
        return list(csv.reader(f, delimiter=separator))


def test_csv_logger_writes_one_row_per_epoch(tmp_path):
    x, y = separable_data(30)
    path = tmp_path / "logs" / "history.csv"
    history = dense_model().fit(x, y, epochs=3, verbose=0, validation_split=0.2,
                                callbacks=[CSVLogger(path)])
    rows = read_csv(path)
    assert rows[0] == ["epoch", "accuracy", "learning_rate", "loss", "val_accuracy", "val_loss"]
    assert [int(r[0]) for r in rows[1:]] == [0, 1, 2]
    for column, key in enumerate(rows[0][1:], start=1):
        assert [float(r[column]) for r in rows[1:]] == pytest.approx(history[key], rel=1e-12)


def test_csv_logger_appends_under_the_same_header(tmp_path):
    x, y = separable_data(30)
    path = tmp_path / "history.csv"
    model = dense_model()
    model.fit(x, y, epochs=2, verbose=0, callbacks=[CSVLogger(path, separator=";")])
    model.fit(x, y, epochs=1, verbose=0, callbacks=[CSVLogger(path, separator=";", append=True)])
    rows = read_csv(path, ";")
    assert rows[0] == ["epoch", "accuracy", "learning_rate", "loss"]
    assert [r[0] for r in rows[1:]] == ["0", "1", "2"]
    model.fit(x, y, epochs=1, verbose=0, callbacks=[CSVLogger(path)])
    assert len(read_csv(path)) == 2  # without append the file starts again


# -- TerminateOnNaN ------------------------------------------------------------------------------

def diverging_fit(callbacks):
    x, y = separable_data(64)
    model = dense_model(learning_rate=1e6)
    history = model.fit(x * 1e3, y, batch_size=8, epochs=3, verbose=0, callbacks=callbacks)
    return model, history


def test_terminate_on_nan_stops_quietly_with_the_last_good_weights(capsys):
    snapshots = []

    class Snapshot(Callback):
        def on_batch_end(self, batch, logs=None):
            if math.isfinite(logs["loss"]):
                snapshots.append(self.model.get_weights())

    with np.errstate(all="ignore"):
        model, history = diverging_fit([Snapshot(), TerminateOnNaN()])
    assert "Invalid loss, terminating training" in capsys.readouterr().out
    assert not math.isfinite(history["loss"][-1])
    for current, last_good in zip(model.get_weights(), snapshots[-1]):
        np.testing.assert_array_equal(current, last_good)


def test_without_terminate_on_nan_fit_raises():
    with np.errstate(all="ignore"), pytest.raises(NonFiniteLossError, match="TerminateOnNaN"):
        diverging_fit([])
