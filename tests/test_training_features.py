"""fit's training features: validation semantics, class and sample weights, evaluation-mode
behaviour of Dropout and BatchNormalization, regularisation in the loss, the logged rate."""

import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import cnn
from cnn.backend import floatx_scope
from cnn.callbacks import Callback
from cnn.layers import BatchNormalization, Dense, Dropout, Input, Output
from cnn.models import Model, load_model
from cnn.optimizers import SGD, Adam
from cnn.schedules import StepDecay
from cnn.utils.gradient_check import numerical_gradient
from helpers import TOLERANCE, fashion_example_on_random_images, gradient_error, separable_data


def model_with(*layers, optimizer=None, seed=0):
    cnn.set_seed(seed)
    model = Model(Input((4,)), "toy")
    for layer in layers:
        model.add(layer)
    model.compile(optimizer=optimizer or SGD(0.1), loss="categorical_crossentropy")
    return model


def mlp(optimizer=None, seed=0, **dense_kwargs):
    return model_with(Dense(6, activation="tanh", **dense_kwargs), Output(3),
                      optimizer=optimizer, seed=seed)


def assert_same_weights(a, b):
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def per_sample_losses(model, x, y):
    p = model.predict(x).astype(np.float64)
    return -np.log(p[np.arange(len(y)), y])


# -- validation ----------------------------------------------------------------------------------

def test_validation_split_holds_out_the_last_samples_before_shuffling():
    x, y = separable_data(50)
    y_poisoned = y.copy()
    y_poisoned[40:] = (y[40:] + 1) % 3  # wrong labels in the last 20%: they must not be learnt
    split = mlp()
    history = split.fit(x, y_poisoned, batch_size=8, epochs=3, verbose=0, shuffle=True,
                        validation_split=0.2, seed=7)
    alone = mlp()
    alone.fit(x[:40], y[:40], batch_size=8, epochs=3, verbose=0, shuffle=True, seed=7)
    assert_same_weights(split, alone)
    loss, accuracy = split.evaluate(x[40:], y_poisoned[40:])
    assert history["val_loss"][-1] == pytest.approx(loss, rel=1e-6)
    assert history["val_accuracy"][-1] == pytest.approx(accuracy)


def test_validation_split_rounds_the_training_part_down_as_keras():
    x, y = separable_data(10)
    seen = {}
    model = mlp()

    class Params(Callback):
        def on_train_begin(self, logs=None):
            seen.update(self.params)

    model.fit(x, y, epochs=1, verbose=0, validation_split=0.25, callbacks=[Params()])
    assert seen["samples"] == 7  # int(10 * 0.75)


def test_validation_data_with_sample_weights_matches_weighted_evaluate():
    x, y = separable_data(50)
    weights = np.linspace(0.0, 2.0, 10)
    model = mlp()
    history = model.fit(x[:40], y[:40], epochs=2, verbose=0,
                        validation_data=(x[40:], y[40:], weights))
    loss, accuracy = model.evaluate(x[40:], y[40:], sample_weight=weights)
    assert history["val_loss"][-1] == pytest.approx(loss, rel=1e-6)
    assert history["val_accuracy"][-1] == pytest.approx(accuracy)
    expected = (weights * per_sample_losses(model, x[40:], y[40:])).sum() / 10
    assert loss == pytest.approx(expected, rel=1e-5)


# -- class and sample weights --------------------------------------------------------------------

def test_sample_weight_multiplies_each_sample_loss():
    x, y = separable_data(30)
    weights = np.random.default_rng(1).uniform(0, 3, 30)
    model = mlp()
    before = per_sample_losses(model, x, y)
    history = model.fit(x, y, batch_size=30, epochs=1, verbose=0, shuffle=False,
                        sample_weight=weights)
    # one full batch: the reported loss is that of the weights before the step
    assert history["loss"][0] == pytest.approx((weights * before).sum() / 30, rel=1e-5)


def test_a_constant_sample_weight_scales_the_sgd_step():
    x, y = separable_data(30)
    doubled = mlp(SGD(0.05))
    doubled.fit(x, y, batch_size=10, epochs=2, verbose=0, seed=3, sample_weight=np.full(30, 2.0))
    faster = mlp(SGD(0.1))
    faster.fit(x, y, batch_size=10, epochs=2, verbose=0, seed=3)
    for a, b in zip(doubled.get_weights(), faster.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_class_weight_equals_the_matching_sample_weight():
    x, y = separable_data(30)
    class_weight = {0: 1.0, 1: 3.0, 2: 0.5}
    by_class = mlp()
    history = by_class.fit(x, y, batch_size=10, epochs=2, verbose=0, seed=3,
                           class_weight=class_weight)
    by_sample = mlp()
    reference = by_sample.fit(x, y, batch_size=10, epochs=2, verbose=0, seed=3,
                              sample_weight=np.array([class_weight[c] for c in y]))
    assert_same_weights(by_class, by_sample)
    assert history["loss"] == reference["loss"]


def test_class_and_sample_weights_multiply():
    x, y = separable_data(30)
    sample = np.random.default_rng(2).uniform(0.5, 1.5, 30)
    both = mlp()
    both.fit(x, y, batch_size=10, epochs=1, verbose=0, seed=3, sample_weight=sample,
             class_weight={1: 2.0})
    combined = mlp()
    combined.fit(x, y, batch_size=10, epochs=1, verbose=0, seed=3,
                 sample_weight=sample * np.where(y == 1, 2.0, 1.0))
    assert_same_weights(both, combined)


@pytest.mark.parametrize("kwargs, match", [
    ({"validation_split": 1.0}, r"validation_split must be in \[0, 1\)"),
    ({"validation_split": 0.99}, "leaves an empty set"),
    ({"validation_data": (np.zeros((3, 4)),)}, "validation_data must be"),
    ({"validation_data": (np.zeros((3, 5)), np.zeros(3))}, r"validation x has shape \(3, 5\)"),
    ({"class_weight": {5: 1.0}}, r"class_weight has class 5, valid classes are 0..2"),
    ({"class_weight": {0: -1.0}}, "must be finite and >= 0"),
    ({"class_weight": [1.0, 2.0]}, "class_weight must be a dict"),
    ({"sample_weight": np.ones(3)}, "sample_weight has 3 values for 20 samples"),
    ({"sample_weight": np.full(20, np.nan)}, "sample_weight must be finite"),
])
def test_bad_validation_and_weight_arguments_are_named(kwargs, match):
    x, y = separable_data(20)
    with pytest.raises(ValueError, match=match):
        mlp().fit(x, y, verbose=0, **kwargs)


# -- evaluation mode -----------------------------------------------------------------------------

def test_dropout_is_active_in_training_and_off_in_predict_and_evaluate():
    x, y = separable_data(40)
    model = model_with(Dense(32, activation="relu"), Dropout(0.5), Output(3))
    train_a = model.forward(x.astype(model.dtype), training=True)
    train_b = model.forward(x.astype(model.dtype), training=True)
    assert not np.allclose(train_a, train_b)
    np.testing.assert_array_equal(model.predict(x), model.predict(x))
    twin = model_with(Dense(32, activation="relu"), Output(3))
    twin.set_weights(model.get_weights())
    np.testing.assert_array_equal(model.predict(x), twin.predict(x))
    history = model.fit(x[:30], y[:30], epochs=1, verbose=0, validation_data=(x[30:], y[30:]))
    assert history["val_loss"][0] == pytest.approx(model.evaluate(x[30:], y[30:])[0])


def test_batch_normalization_uses_batch_statistics_in_training_and_moving_ones_after():
    x, y = separable_data(64)
    x = x * 3.0 + 5.0  # far from normalised, so the two modes differ clearly
    model = model_with(Dense(8), BatchNormalization(momentum=0.5), Dense(3, activation="softmax"),
                       optimizer=Adam(0.01))
    history = model.fit(x, y, batch_size=16, epochs=5, verbose=0, validation_split=0.25)
    # validation ran in inference mode: it equals evaluate on the held-out samples
    loss, accuracy = model.evaluate(x[48:], y[48:])
    assert history["val_loss"][-1] == pytest.approx(loss, rel=1e-5)
    # inference does not depend on the batch: one sample at a time gives the same answers
    np.testing.assert_allclose(model.predict(x[:5], batch_size=1), model.predict(x[:5]), rtol=1e-5)
    bn = model.layers[1]
    hidden = model.layers[0].forward(x[:16].astype(model.dtype))
    inference = bn.forward(hidden, training=False)
    scale = bn.params["gamma"] / np.sqrt(bn.buffers["moving_variance"] + bn.epsilon)
    expected = (hidden - bn.buffers["moving_mean"]) * scale + bn.params["beta"]
    np.testing.assert_allclose(inference, expected, rtol=1e-5, atol=1e-5)
    batch_mode = bn.forward(hidden, training=True)
    np.testing.assert_allclose(batch_mode.mean(axis=0), bn.params["beta"], atol=1e-4)
    assert np.abs(batch_mode - inference).max() > 0.1


# -- regularisation and the logged learning rate -------------------------------------------------

def test_regularizer_penalty_is_part_of_the_reported_loss():
    x, y = separable_data(30)
    model = mlp(kernel_regularizer="l2")
    data_loss = per_sample_losses(model, x, y).mean()
    penalty = 0.01 * float((model.layers[0].params["kernel"].astype(np.float64) ** 2).sum())
    history = model.fit(x, y, batch_size=30, epochs=1, verbose=0)
    assert history["loss"][0] == pytest.approx(data_loss + penalty, rel=1e-5)
    loss, accuracy = model.evaluate(x, y)
    kernel = model.layers[0].params["kernel"].astype(np.float64)
    assert loss == pytest.approx(per_sample_losses(model, x, y).mean() + 0.01 * (kernel**2).sum(),
                                 rel=1e-5)


def test_model_gradient_includes_the_penalty_gradient():
    x, y = separable_data(6)
    targets = np.eye(3)[y]
    with floatx_scope("float64"):
        model = model_with(Dense(5, activation="tanh", kernel_regularizer="l1_l2",
                                 bias_regularizer=cnn.regularizers.L2(0.3)),
                           Output(3, kernel_regularizer=cnn.regularizers.L1(0.05)))
        x = x.astype(np.float64)
        model.compute_gradients(x, targets)
        analytic = [g.copy() for g in model.add_regularization_gradients()]

        def objective():
            return model.compute_gradients(x, targets).loss + model.regularization_loss()

        for param, grad in zip(model.trainable_weights, analytic):
            assert gradient_error(grad, numerical_gradient(objective, param)) < TOLERANCE


def test_weight_decay_by_regularizer_shrinks_the_weights():
    x, y = separable_data(40)
    plain, decayed = mlp(seed=4), mlp(seed=4, kernel_regularizer=cnn.regularizers.L2(0.5))
    for model in (plain, decayed):
        model.fit(x, y, epochs=5, verbose=0, seed=1)
    norm = lambda m: np.linalg.norm(m.layers[0].params["kernel"])  # noqa: E731
    assert norm(decayed) < 0.8 * norm(plain)


def test_history_logs_the_rate_of_each_epoch_from_a_schedule():
    x, y = separable_data(30)
    schedule = StepDecay(0.1, decay_steps=4, decay_rate=0.5)
    history = mlp(SGD(schedule)).fit(x, y, batch_size=10, epochs=4, verbose=0)
    # 3 steps per epoch; epoch e ends with step 3e + 2
    assert history["learning_rate"] == pytest.approx([schedule(3 * e + 2) for e in range(4)])


# -- the example ---------------------------------------------------------------------------------

def test_the_fashion_mnist_example_runs_end_to_end(tmp_path, monkeypatch, capsys):
    """examples/fashion_mnist_bn.py's main(), on 64 random images instead of the data set."""
    example = fashion_example_on_random_images("fashion_mnist_bn", monkeypatch, 64, 32)
    monkeypatch.setattr(sys, "argv", ["fashion_mnist_bn.py", "--epochs", "1", "--batch-size", "32",
                                      "--out", str(tmp_path)])
    with threadpool_limits(1):  # small GEMMs: more BLAS threads only fight on a busy machine
        example.main()
    assert "test accuracy:" in capsys.readouterr().out
    rows = (tmp_path / "history.csv").read_text().splitlines()
    assert rows[0] == "epoch,accuracy,learning_rate,loss,val_accuracy,val_loss" and len(rows) == 2
    for name in ("accuracy", "loss", "learning_rate"):
        assert (tmp_path / f"{name}.png").stat().st_size > 0
    assert load_model(tmp_path / "model.h5").count_params() == 468778
