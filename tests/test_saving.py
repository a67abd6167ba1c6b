"""Saving and loading our .h5 format: round trips, exact resumption, atomicity, bad files,
and the ModelCheckpoint callback."""

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import cnn
from cnn import optimizers, schedules
from cnn.backend import floatx_scope
from cnn.callbacks import ModelCheckpoint
from cnn.layers import (GRU, LSTM, Activation, AveragePooling2D, BatchNormalization, Conv2D,
                        Dense, Dropout, Flatten, GlobalAveragePooling2D, Input, MaxPooling2D,
                        Output, Recurrent, Reshape, SimpleRNN, TimeDistributed, ZeroPadding2D)
from cnn.regularizers import L1L2
from cnn.models import Model, ModelFileError, load_model
from cnn.saving import h5_format as saving
from cnn.optimizers import SGD, Adagrad, Adam, AdamW, RMSprop
from cnn.utils import fileio

# -- every layer type and option: adding a layer means adding a line here -------------------

IMAGE = (2, 7, 7)
SEQUENCE = (3,)
TIME_SERIES = (5, 3)
THETA = np.random.default_rng(5).normal(0, 0.3, (4, 3 + 4 + 1))

LAYER_CASES = {
    "conv_valid_relu": (IMAGE, lambda: [Conv2D(3, 3, activation="relu")]),
    "conv_same_stride2": (IMAGE, lambda: [Conv2D(3, 3, strides=2, padding="same",
                                                 activation="tanh")]),
    "conv_full_no_bias": (IMAGE, lambda: [Conv2D(2, (2, 3), padding="full", use_bias=False,
                                                 activation="sigmoid")]),
    "conv_int_padding": (IMAGE, lambda: [Conv2D(2, 3, padding=1, activation="leaky_relu(0.2)")]),
    "conv_pair_padding": (IMAGE, lambda: [Conv2D(2, 3, (2, 1), padding=((1, 0), (2, 1)),
                                                 activation="elu", bias_initializer="ones")]),
    "conv_seed_arguments": (IMAGE, lambda: [Conv2D(2, 3, 1, IMAGE, "valid", "ReLU")]),
    "max_pool": (IMAGE, lambda: [MaxPooling2D(2)]),
    "max_pool_same_stride": (IMAGE, lambda: [MaxPooling2D(3, 2, padding="same")]),
    "avg_pool": (IMAGE, lambda: [AveragePooling2D(2, 1)]),
    "avg_pool_same": (IMAGE, lambda: [AveragePooling2D((2, 3), padding="same")]),
    "flatten_dense": (IMAGE, lambda: [Flatten(), Dense(5, activation="gelu")]),
    "dense_no_bias": (IMAGE, lambda: [Flatten(), Dense(4, use_bias=False,
                                                       kernel_initializer="glorot_normal")]),
    "output_softmax": (IMAGE, lambda: [Flatten(), Output(3)]),
    "output_seed_arguments": (SEQUENCE, lambda: [Output(2, 3, "sigmoid")]),
    "dropout": (IMAGE, lambda: [Flatten(), Dropout(0.3), Dense(3)]),
    "activation": (IMAGE, lambda: [Activation("softplus")]),
    "frozen_and_named": (IMAGE, lambda: [Flatten(), Dense(4, name="frozen", trainable=False),
                                         Dense(2, name="head")]),
    "recurrent": (SEQUENCE, lambda: [Recurrent(5, activation="tanh"), Output(3, activation="linear")]),
    "recurrent_seed_theta": (SEQUENCE, lambda: [Recurrent(4, 3, "tanh", THETA, use_bias=False),
                                                Dense(3, bias_initializer="ones")]),
    "simple_rnn": (TIME_SERIES, lambda: [SimpleRNN(4, return_sequences=True), SimpleRNN(3)]),
    "lstm_sequences_time_distributed": (TIME_SERIES, lambda: [
        LSTM(4, return_sequences=True), TimeDistributed(Dense(2, activation="tanh"))]),
    "gru_backwards": (TIME_SERIES, lambda: [GRU(4, go_backwards=True), Dense(2)]),
    "lstm_stateful": (TIME_SERIES, lambda: [LSTM(3, stateful=True), Dense(2)]),
    "batch_norm_conv_and_dense": (IMAGE, lambda: [
        Conv2D(3, 3), BatchNormalization(momentum=0.9), Flatten(), Dense(4),
        BatchNormalization(center=False)]),
    "reshaping": (IMAGE, lambda: [ZeroPadding2D(((1, 0), (2, 1))), Conv2D(2, 3),
                                  GlobalAveragePooling2D(), Reshape((2, 1))]),
    "regularizers": (IMAGE, lambda: [Conv2D(2, 3, kernel_regularizer="l2"), Flatten(),
                                     Dense(3, kernel_regularizer=L1L2(0.01, 0.02),
                                           bias_regularizer="l1")]),
}


def build(input_shape, layers, optimizer="adam", loss="mse", name="model"):
    model = Model(Input(input_shape), name)
    for layer in layers:
        model.add_layer(layer)
    model.compile(optimizer=optimizer, loss=loss)
    return model


def random_data(model, n=6, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, *model.input.input_shape)).astype(np.float32)
    y = rng.normal(size=(n, *model.cur_output_shape)).astype(np.float32)
    return x, y


def summary_text(model):
    lines = []
    model.summary(print_fn=lines.append)
    return "\n".join(lines)


def assert_same_weights(a, b):
    assert [layer.weight_names() for layer in a.layers] == [layer.weight_names() for layer in b.layers]
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        assert wa.dtype == wb.dtype
        np.testing.assert_array_equal(wa, wb)


def assert_same_optimizer_state(a, b):
    state_a, state_b = a.optimizer.get_state(), b.optimizer.get_state()
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        np.testing.assert_array_equal(state_a[key], state_b[key])


@pytest.mark.parametrize("case", LAYER_CASES)
def test_every_layer_round_trips_bit_for_bit(case, tmp_path):
    input_shape, layers = LAYER_CASES[case]
    cnn.set_seed(0)
    model = build(input_shape, layers())
    x, y = random_data(model)
    model.fit(x, y, batch_size=3, epochs=1, verbose=0, seed=7, shuffle=False)
    model.save(tmp_path / "model.h5")
    loaded = load_model(tmp_path / "model.h5")

    assert loaded.get_config() == model.get_config()
    assert loaded.compile_config() == model.compile_config()
    assert summary_text(loaded) == summary_text(model)
    assert_same_weights(model, loaded)
    assert_same_optimizer_state(model, loaded)
    assert (loaded.epoch, loaded.train_seed) == (1, 7)
    # batch 3 as in training: a stateful layer carries its state for 3 sequences
    np.testing.assert_array_equal(loaded.predict(x, batch_size=3), model.predict(x, batch_size=3))


@pytest.mark.parametrize("optimizer", [
    SGD(0.05), SGD(0.05, momentum=0.9, nesterov=True, weight_decay=1e-3, clipnorm=1.0),
    Adam(0.01, clipvalue=0.5), AdamW(0.01, weight_decay=0.1, global_clipnorm=2.0),
    RMSprop(0.01, momentum=0.5, centered=True), Adagrad(0.1),
], ids=lambda o: repr(o)[:40])
def test_every_optimizer_round_trips_with_its_state(optimizer, tmp_path):
    cnn.set_seed(0)
    model = build(SEQUENCE, [Dense(4, activation="relu"), Dense(2)], optimizer=optimizer)
    x, y = random_data(model)
    model.fit(x, y, batch_size=2, epochs=2, verbose=0)
    model.save(tmp_path / "model.h5")
    loaded = load_model(tmp_path / "model.h5")
    assert type(loaded.optimizer) is type(optimizer)
    assert loaded.optimizer.get_config() == optimizer.get_config()
    assert loaded.optimizer.iterations == optimizer.iterations == 6
    assert_same_optimizer_state(model, loaded)


@pytest.mark.parametrize("loss, metrics", [
    ("cross_tropy", None), ("categorical_crossentropy", ["accuracy", "mae"]),
    ({"name": "categorical_crossentropy", "from_logits": True}, []),
    ("binary_crossentropy", ["binary_accuracy"]), ("MSE", ["MAE"]), ("mse", ["mse"]),
])
def test_losses_and_metrics_round_trip(loss, metrics, tmp_path):
    model = build(SEQUENCE, [Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss=loss, metrics=metrics)
    model.save(tmp_path / "model.h5")
    loaded = load_model(tmp_path / "model.h5")
    assert loaded.compile_config() == model.compile_config()
    x, y = random_data(model)
    y = np.abs(y) / np.abs(y).sum(axis=1, keepdims=True)
    assert loaded.evaluate(x, y, return_dict=True) == model.evaluate(x, y, return_dict=True)


def test_float64_model_stays_float64_and_dtype_can_be_chosen(tmp_path):
    with floatx_scope("float64"):
        model = build(SEQUENCE, [Dense(4), Dense(2)])
    model.save(tmp_path / "model.h5")
    loaded = load_model(tmp_path / "model.h5")
    assert loaded.dtype == "float64" and loaded.get_weights()[0].dtype == np.float64
    assert_same_weights(model, loaded)
    as_float32 = load_model(tmp_path / "model.h5", dtype="float32")
    assert as_float32.dtype == "float32" and as_float32.get_weights()[0].dtype == np.float32


def test_uncompiled_models_and_compile_false(tmp_path):
    model = Model(Input(SEQUENCE), "plain")
    model.add_layer(Dense(2))
    model.save(tmp_path / "plain.h5")
    loaded = load_model(tmp_path / "plain.h5")
    assert loaded.loss is None and loaded.optimizer is None
    compiled = build(SEQUENCE, [Dense(2)])
    compiled.save(tmp_path / "compiled.h5")
    assert load_model(tmp_path / "compiled.h5", compile=False).optimizer is None


def test_loading_leaves_the_global_random_stream_alone(tmp_path):
    build(IMAGE, [Flatten(), Dense(50)]).save(tmp_path / "model.h5")
    cnn.set_seed(3)
    expected = cnn.backend.rng().random(3)
    cnn.set_seed(3)
    load_model(tmp_path / "model.h5")
    np.testing.assert_array_equal(cnn.backend.rng().random(3), expected)


def test_the_file_is_browsable_with_plain_h5py(tmp_path):
    cnn.set_seed(0)
    model = build(IMAGE, [Conv2D(2, 3, name="conv"), Flatten(), Dense(3, name="head")])
    x, y = random_data(model)
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "model.h5")
    with h5py.File(tmp_path / "model.h5", "r") as f:
        assert f.attrs["format"] == "cnn" and f.attrs["format_version"] == saving.FORMAT_VERSION
        config = json.loads(f["model_config"][()])
        assert [spec["class_name"] for spec in config["layers"]] == ["Input", "Conv2D", "Flatten",
                                                                      "Dense"]
        assert config["layers"][1]["inbound_nodes"] == [[["input", 0, 0]]]
        assert json.loads(f["compile_config"][()])["optimizer"]["name"] == "adam"
        assert list(f["model_weights"].attrs["layer_names"]) == ["conv", "flatten", "head"]
        np.testing.assert_array_equal(f["model_weights/conv/kernel"][()], model.layers[0].params["kernel"])
        assert f["model_weights/head/bias"].shape == (3,)
        assert list(f["optimizer_weights"].attrs["param_names"]) == [
            "conv/kernel", "conv/bias", "head/kernel", "head/bias"]
        assert f["optimizer_weights/2/m"].shape == (3, 50)
        assert f["optimizer_weights"].attrs["iterations"] == 1
        assert f["training_state"].attrs["epoch"] == 1


# -- resuming training exactly ---------------------------------------------------------------

def convnet(optimizer):
    cnn.set_seed(11)
    return build((1, 8, 8), [Conv2D(3, 3, activation="relu"), MaxPooling2D(2), Flatten(),
                             Dropout(0.3), Output(3)], optimizer=optimizer, loss="cross_tropy")


def image_data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    x = rng.normal(0, 0.5, (n, 1, 8, 8)).astype(np.float32)
    for c in range(3):
        x[labels == c, :, c::3] += 1.0
    return x, labels


@pytest.mark.parametrize("make_optimizer", [
    lambda: Adam(0.01), lambda: SGD(0.05, momentum=0.9, nesterov=True),
    lambda: RMSprop(0.005, momentum=0.5),
], ids=["adam", "sgd_momentum", "rmsprop"])
def test_save_load_and_fit_continues_exactly_like_an_uninterrupted_run(make_optimizer, tmp_path):
    x, y = image_data()
    uninterrupted = convnet(make_optimizer())
    full_history = uninterrupted.fit(x, y, batch_size=5, epochs=4, verbose=0, seed=3,
                                     validation_split=0.2)

    first_half = convnet(make_optimizer())
    first_half.fit(x, y, batch_size=5, epochs=2, verbose=0, seed=3, validation_split=0.2)
    first_half.save(tmp_path / "half.h5")
    resumed = load_model(tmp_path / "half.h5")
    cnn.set_seed(999)  # the global generator must not matter after loading
    second_history = resumed.fit(x, y, batch_size=5, epochs=2, verbose=0, validation_split=0.2)

    assert resumed.epoch == 4 and second_history.epoch == [2, 3]
    assert second_history["loss"] == full_history["loss"][2:]
    assert second_history["val_loss"] == full_history["val_loss"][2:]
    assert_same_weights(uninterrupted, resumed)
    assert_same_optimizer_state(uninterrupted, resumed)


def test_recurrent_carried_state_is_saved(tmp_path):
    cnn.set_seed(2)
    model = build(SEQUENCE, [Recurrent(6), Output(3, activation="linear")])
    sequence = np.random.default_rng(0).normal(size=(40, 3))
    model.fit(sequence[:-1], sequence[1:], batch_size=13, epochs=1, verbose=0, shuffle=False)
    model.predict(sequence[:20])
    state = model.layers[0].buffers["state"].copy()
    assert np.any(state != 0)
    model.save(tmp_path / "rnn.h5")
    loaded = load_model(tmp_path / "rnn.h5")
    np.testing.assert_array_equal(loaded.layers[0].buffers["state"], state)
    np.testing.assert_array_equal(loaded.predict(sequence[20:]), model.predict(sequence[20:]))


class HalvingSchedule:
    """A learning-rate schedule defined outside cnn: halves every ``period`` steps."""

    name = "test_halving"

    def __init__(self, initial, period):
        self.initial, self.period = initial, period

    def __call__(self, step):
        return self.initial * 0.5 ** (step // self.period)

    def get_config(self):
        return {"name": self.name, "initial": self.initial, "period": self.period}


def test_a_registered_schedule_is_saved_and_resumes_where_it_was(tmp_path):
    schedules.register(HalvingSchedule)
    model = build(SEQUENCE, [Dense(2)], optimizer=SGD(HalvingSchedule(0.1, 2)))
    x, y = random_data(model)
    model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    model.save(tmp_path / "model.h5")
    loaded = load_model(tmp_path / "model.h5")
    assert isinstance(loaded.optimizer.learning_rate, HalvingSchedule)
    assert loaded.optimizer.get_config()["learning_rate"] == {
        "name": "test_halving", "initial": 0.1, "period": 2}
    assert loaded.lr == model.lr == 0.05  # 3 steps taken: halved once


def test_a_schedule_that_cannot_be_rebuilt_is_refused_before_writing(tmp_path):
    model = build(SEQUENCE, [Dense(2)], optimizer=SGD(lambda step: 0.1))
    with pytest.raises(ValueError, match="get_config"):
        model.save(tmp_path / "model.h5")

    class Unregistered(HalvingSchedule):
        name = "not_registered"

    model = build(SEQUENCE, [Dense(2)], optimizer=SGD(Unregistered(0.1, 2)))
    with pytest.raises(ValueError, match="'not_registered'.*not registered.*could not be rebuilt"):
        model.save(tmp_path / "model.h5")
    assert list(tmp_path.iterdir()) == []


def test_saving_an_empty_model_or_a_non_json_config_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no input and layers"):
        Model(Input(3)).save(tmp_path / "empty.h5")
    model = build(SEQUENCE, [Dense(2)])
    model.name = object()
    with pytest.raises(ValueError, match="model config is not JSON"):
        model.save(tmp_path / "model.h5")
    assert list(tmp_path.iterdir()) == []


# -- atomic saving ---------------------------------------------------------------------------

@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"),
                                     KeyboardInterrupt()], ids=["disk_full", "interrupted"])
def test_a_failed_save_leaves_the_previous_file_untouched(failure, tmp_path, monkeypatch):
    target = tmp_path / "model.h5"
    model = build(SEQUENCE, [Dense(2)])
    model.save(target)
    before = target.read_bytes()

    def fail_halfway(group, model):
        group.create_dataset("partial", data=np.zeros(10))
        raise failure

    monkeypatch.setattr(saving, "_write_weights", fail_halfway)
    with pytest.raises(type(failure)) as info:
        model.save(target)
    if isinstance(failure, OSError):
        assert str(target) in str(info.value) and "No space left" in str(info.value)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.h5"]
    monkeypatch.undo()
    np.testing.assert_array_equal(load_model(target).predict(np.ones((1, 3))),
                                  model.predict(np.ones((1, 3))))


def test_an_unwritable_target_raises_an_oserror_naming_it(tmp_path):
    (tmp_path / "a_file").write_text("not a directory")
    target = tmp_path / "a_file" / "model.h5"
    with pytest.raises(OSError) as info:
        build(SEQUENCE, [Dense(2)]).save(target)
    assert str(target) in str(info.value)


# -- bad files -------------------------------------------------------------------------------

@pytest.fixture
def saved(tmp_path):
    cnn.set_seed(0)
    model = build(IMAGE, [Conv2D(2, 3, name="conv"), Flatten(), Dense(3, name="head")])
    x, y = random_data(model)
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "good.h5"
    model.save(path)
    return path


def edited(*edits):
    """A maker of bad files: a copy of the saved file changed by each ``edit(h5py.File)``."""
    def make(saved):
        path = saved.with_name("bad.h5")
        shutil.copyfile(saved, path)
        with h5py.File(path, "r+") as f:
            for edit in edits:
                edit(f)
        return path

    return make


def replaced(name, data):
    def edit(f):
        del f[name]
        f.create_dataset(name, data=data)

    return edit


def deleted(name):
    return lambda f: f.__delitem__(name)


def with_attribute(group, key, value):
    return lambda f: f[group].attrs.__setitem__(key, value)


def json_edited(name, old, new):
    """Replace the text ``old`` by ``new`` in the JSON dataset ``name``."""
    return lambda f: replaced(name, f[name][()].decode().replace(old, new))(f)


def truncated(saved):
    path = saved.with_name("truncated.h5")
    data = saved.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def text_file(saved):
    path = saved.with_name("notes.h5")
    path.write_text("these are my notes, not a model\n")
    return path


def other_program(saved):
    path = saved.with_name("other.h5")
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=np.zeros((2, 4, 4)))
        f.attrs["creator"] = "some other program"
    return path


BAD_FILES = {
    "truncated": (truncated, "truncated"),
    "text_file": (text_file, "not an HDF5 file"),
    "other_program": (other_program, "not a cnn model file.*images"),
    "foreign_format_attribute": (edited(with_attribute("/", "format", "keras")),
                                 "'format' attribute is 'keras'"),
    "newer_version": (edited(with_attribute("/", "format_version", 99)),
                      "format version 99.*upgrade cnn"),
    "weight_shape": (edited(replaced("model_weights/head/kernel", np.zeros((3, 7), np.float32))),
                     r"'kernel' has shape \(3, 50\), got \(3, 7\)"),
    "weight_missing": (edited(deleted("model_weights/head/bias")),
                       "weight model_weights/head/bias is missing"),
    "weight_extra": (edited(lambda f: f.create_dataset("model_weights/head/gamma", data=np.ones(3))),
                     "holds gamma, which layer"),
    "weight_as_bytes": (edited(replaced("model_weights/head/bias", np.void(b"\x80\x04pickle"))),
                        "should hold numbers"),
    "weight_not_finite": (edited(replaced("model_weights/head/bias",
                                          np.array([0, np.nan, 0], np.float32))), "finite"),
    "broken_json": (edited(replaced("model_config", '{"layers": [')),
                    "model_config' is not valid JSON"),
    "unknown_layer": (edited(json_edited("model_config", '"Conv2D"', '"Conv3D"')),
                      "unknown layer type 'Conv3D'"),
    "bad_layer_argument": (edited(json_edited("model_config", '"filters"', '"filterz"')),
                           "bad config for layer Conv2D"),
    "config_not_object": (edited(replaced("model_config", "[1, 2]")),
                          "model_config should be a JSON object"),
    "unknown_optimizer": (edited(json_edited("compile_config", '"adam"', '"adamax2"')),
                          "unknown optimizer 'adamax2'"),
    "optimizer_state_shape": (edited(replaced("optimizer_weights/0/m", np.zeros(3, np.float32))),
                              "optimizer state optimizer_weights/0/m has shape"),
    "optimizer_state_missing": (edited(deleted("optimizer_weights/2/v")), "lacks the state 2/v"),
    "optimizer_for_other_params": (edited(with_attribute(
        "optimizer_weights", "param_names", np.array(["a/kernel"], dtype=h5py.string_dtype()))),
        "are for the parameters"),
    "training_state_missing": (edited(deleted("training_state")),
                               "group 'training_state' is missing"),
    "negative_epoch": (edited(with_attribute("training_state", "epoch", -3)),
                       r"'epoch' should be an integer in \[0, \d+\], got -3"),
}


@pytest.mark.parametrize("bad", BAD_FILES)
def test_a_bad_file_raises_one_clear_error_naming_it(bad, saved):
    make, match = BAD_FILES[bad]
    path = make(saved)
    with pytest.raises(ModelFileError, match=match) as info:
        load_model(path)
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith(f"{path}: ") and info.value.path == str(path)


def test_missing_files_and_directories_raise_oserrors_naming_them(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_model(tmp_path / "nowhere.h5")
    assert info.value.filename == str(tmp_path / "nowhere.h5")
    assert str(tmp_path / "nowhere.h5") in str(info.value)
    with pytest.raises(IsADirectoryError):
        load_model(tmp_path)


# -- ModelCheckpoint -------------------------------------------------------------------------

def test_checkpoint_every_epoch_then_resume_from_a_checkpoint_exactly(tmp_path):
    x, y = image_data()
    uninterrupted = convnet(Adam(0.01))
    uninterrupted.fit(x, y, batch_size=5, epochs=3, verbose=0, seed=5)

    model = convnet(Adam(0.01))
    checkpoint = ModelCheckpoint(tmp_path / "ckpt-{epoch:02d}-{loss:.3f}.h5", monitor="loss")
    history = model.fit(x, y, batch_size=5, epochs=2, verbose=0, seed=5, callbacks=[checkpoint])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"ckpt-{e + 1:02d}-{history['loss'][e]:.3f}.h5" for e in range(2)]

    resumed = load_model(tmp_path / names[1])
    assert resumed.epoch == 2
    resumed.fit(x, y, batch_size=5, epochs=1, verbose=0)
    assert_same_weights(uninterrupted, resumed)


def drive(checkpoint, model, values, key="val_loss"):
    """Feed epoch-end logs to a checkpoint as ``fit`` would."""
    checkpoint.set_model(model)
    checkpoint.on_train_begin({})
    for epoch, value in enumerate(values):
        checkpoint.on_epoch_begin(epoch, {})
        checkpoint.on_epoch_end(epoch, {"loss": 1.0, key: value})


@pytest.mark.parametrize("monitor, mode, values, saved_epochs", [
    ("val_loss", "auto", [0.5, 0.7, 0.3, 0.3], [1, 3]),
    ("val_accuracy", "auto", [0.5, 0.7, 0.3, 0.8], [1, 2, 4]),
    ("val_loss", "max", [0.5, 0.7, 0.3, 0.8], [1, 2, 4]),
    ("val_mae", "min", [0.5, float("nan"), 0.4, 0.6], [1, 3]),
])
def test_checkpoint_save_best_only(monitor, mode, values, saved_epochs, tmp_path):
    checkpoint = ModelCheckpoint(str(tmp_path / "best-{epoch}.h5"), monitor=monitor, mode=mode,
                                 save_best_only=True)
    drive(checkpoint, build(SEQUENCE, [Dense(2)]), values, key=monitor)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"best-{e}.h5" for e in saved_epochs]


def test_checkpoint_verbose_lines(tmp_path):
    stream = io.StringIO()
    checkpoint = ModelCheckpoint(tmp_path / "best.h5", save_best_only=True, verbose=1, stream=stream)
    drive(checkpoint, build(SEQUENCE, [Dense(2)]), [0.5, 0.6])
    lines = stream.getvalue().splitlines()
    assert lines[0] == f"Epoch 1: val_loss improved from inf to 0.50000, saving model to {tmp_path / 'best.h5'}"
    assert lines[1] == "Epoch 2: val_loss did not improve from 0.50000"


def test_checkpoint_every_n_batches(tmp_path):
    model = build(SEQUENCE, [Dense(2)])
    x, y = random_data(model, n=10)
    checkpoint = ModelCheckpoint(tmp_path / "e{epoch}-b{batch}.h5", save_freq=3)
    model.fit(x, y, batch_size=2, epochs=2, verbose=0, callbacks=[checkpoint])
    # 5 batches per epoch, a save after every 3rd batch counted across epochs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e1-b3.h5", "e2-b1.h5", "e2-b4.h5"]


def test_checkpoint_errors(tmp_path):
    model = build(SEQUENCE, [Dense(2)])
    with pytest.raises(ValueError, match="monitors 'val_loss'.*loss"):
        drive(ModelCheckpoint(tmp_path / "m.h5", save_best_only=True), model, [0.1], key="loss")
    with pytest.raises(ValueError, match="names the field 'val_acc'"):
        drive(ModelCheckpoint(tmp_path / "m-{val_acc}.h5"), model, [0.1])
    for kwargs, match in [({"filepath": "m-{epoch.h5"}, "not a valid format string"),
                          ({"filepath": "m.h5", "mode": "best"}, "mode"),
                          ({"filepath": "m.h5", "save_freq": 0}, "save_freq"),
                          ({"filepath": "m.h5", "save_freq": "batch"}, "save_freq"),
                          ({"filepath": "m.h5", "verbose": 2}, "verbose")]:
        with pytest.raises(ValueError, match=match):
            ModelCheckpoint(**kwargs)
    assert list(tmp_path.iterdir()) == []


def test_class_names_are_saved_with_the_model(tmp_path):
    model = build((4,), [Dense(3)])
    model.class_names = ["cat", "dog", "bird"]
    model.save(tmp_path / "named.h5")
    assert load_model(tmp_path / "named.h5").class_names == ["cat", "dog", "bird"]
    model.class_names = None
    model.save(tmp_path / "plain.h5")
    assert load_model(tmp_path / "plain.h5").class_names is None


# -- failed and killed saves (issue 14) ----------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
BIG_MODEL_SCRIPT = r"""
import resource, signal, sys
from cnn.layers import Dense, Input
from cnn.models import Model
model = Model(Input((1000,)), "big")
model.add_layer(Dense(int(sys.argv[2])))
model.compile(optimizer="adam", loss="mse")
if sys.argv[3] == "limit":  # writes beyond 200 kB fail with EFBIG, as on a full disk
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
    try:
        model.save(sys.argv[1])
    except OSError as exc:
        print(f"OSError errno={exc.errno} filename={exc.filename} | {exc}")
else:
    print("saving", flush=True)
    while True:
        model.save(sys.argv[1])
"""


def run_script(*args, **options):
    return subprocess.Popen([sys.executable, "-c", BIG_MODEL_SCRIPT, *map(str, args)],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True, **options)


def test_a_write_that_fails_for_lack_of_space_is_an_oserror_naming_the_target(tmp_path):
    target = tmp_path / "model.h5"
    old = build(SEQUENCE, [Dense(2)])
    old.save(target)
    before = target.read_bytes()
    output, _ = run_script(target, 1000, "limit").communicate(timeout=120)
    assert f"errno=27 filename={target} |" in output, output
    assert "File too large" in output
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.h5"]


def test_a_save_killed_mid_write_leaves_garbage_only_until_the_next_save(tmp_path):
    target = tmp_path / "model.h5"
    model = build(SEQUENCE, [Dense(2)])
    model.save(target)
    process = run_script(target, 4000, "loop")  # 4000 x 1000 weights: 48 MB with Adam's state
    try:
        assert process.stdout.readline() == "saving\n"
        deadline = time.monotonic() + 120
        while not any(p.name.endswith(".tmp") and p.stat().st_size > 1_000_000
                      for p in tmp_path.iterdir()):
            assert time.monotonic() < deadline, "the child never started writing"
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
        process.stdout.close()
    stale = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert stale and all(p.name.startswith(".model.h5.") for p in stale)
    (tmp_path / "other.h5").write_bytes(b"another target")
    model.save(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.h5", "other.h5"]
    np.testing.assert_array_equal(load_model(target).predict(np.ones((1, 3))),
                                  model.predict(np.ones((1, 3))))


def test_only_the_temporaries_of_dead_writers_of_the_same_target_are_removed(tmp_path):
    target = tmp_path / "model.h5"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()

    def temporary(pid, name="model.h5", host=fileio.HOST_TAG):
        path = tmp_path / f".{name}.{host}.{pid}.0123abcd.tmp"
        path.write_bytes(b"partial")
        return path

    of_dead, of_live = temporary(dead.pid), temporary(os.getpid())
    of_other_target = temporary(dead.pid, "other.h5")
    of_other_host, old_of_other_host = temporary(dead.pid, host="elsewhere"), temporary(
        1, host="far-away")
    os.utime(old_of_other_host, (0, 0))
    removed = fileio.remove_stale_temporaries(target)
    assert sorted(removed) == sorted([of_dead, old_of_other_host])
    assert all(p.exists() for p in (of_live, of_other_target, of_other_host))


def test_a_directory_in_the_way_of_an_atomic_write_is_named_not_the_temporary(tmp_path):
    (tmp_path / "plot.png").mkdir()
    with pytest.raises(IsADirectoryError) as caught:
        with fileio.atomic_write(tmp_path / "plot.png") as stream:
            stream.write(b"\x89PNG")
    assert caught.value.filename == str(tmp_path / "plot.png")
    assert [p.name for p in tmp_path.iterdir()] == ["plot.png"]  # the temporary is gone


def test_metadata_is_saved_read_back_and_checked(tmp_path):
    path = tmp_path / "model.h5"
    model = build(SEQUENCE, [Dense(2)])
    saving.save_model(model, path, metadata={"dataset": "fashion-mnist"})
    assert saving.read_metadata(path) == {"dataset": "fashion-mnist"}
    model.save(tmp_path / "plain.h5")
    assert saving.read_metadata(tmp_path / "plain.h5") == {}
    with pytest.raises(ValueError, match="metadata must map strings to strings"):
        saving.save_model(model, path, metadata={"epochs": 3})
    with h5py.File(path, "r+") as f:
        f.attrs["metadata"] = "[1, 2]"
    with pytest.raises(ModelFileError, match="'metadata' should be a JSON object of strings"):
        saving.read_metadata(path)
