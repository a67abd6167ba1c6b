"""save_weights / load_weights: Keras's matching by order or by name, exact values, clear
errors, nothing changed by a failed load."""

import h5py
import numpy as np
import pytest

import cnn
from cnn.layers import BatchNormalization, Dense, Dropout, Input, Normalization
from cnn.models import Sequential
from cnn.saving import ModelFileError
from cnn.saving.weights_file import load_weights, save_weights

X = np.random.default_rng(0).standard_normal((16, 4))


def network(seed, units=8, names=(None, None, None)):
    cnn.set_seed(seed)
    normalization = Normalization()
    normalization.adapt(X)
    return Sequential([Input((4,)), normalization, Dense(units, activation="relu", name=names[0]),
                       BatchNormalization(name=names[1]), Dropout(0.1),
                       Dense(2, name=names[2])])


def assert_same_weights(a, b):
    for x, y in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(x, y)


def trained(seed=0):
    model = network(seed)
    model.compile(optimizer="adam", loss="mse")
    model.fit(X, np.ones((16, 2)), epochs=2, batch_size=4, verbose=0)
    return model


def test_weights_round_trip_by_order_into_a_fresh_model(tmp_path):
    model = trained()
    model.save_weights(tmp_path / "w.h5")
    other = network(seed=1, names=("a", "b", "c"))  # other names and initial weights
    other.load_weights(tmp_path / "w.h5")
    assert_same_weights(model, other)
    np.testing.assert_array_equal(other.predict(X), model.predict(X))


def test_load_weights_reads_a_whole_model_file(tmp_path):
    model = trained()
    model.save(tmp_path / "model.h5")
    other = network(seed=1)
    load_weights(other, tmp_path / "model.h5")
    assert_same_weights(model, other)


def test_by_name_loads_matching_layers_and_leaves_the_others(tmp_path):
    model = trained()
    save_weights(model, tmp_path / "w.h5")
    names = [layer.name for layer in model.layers]
    other = network(seed=1, names=(names[1], "fresh_bn", names[4]))
    before = other.layers[2].get_weights()
    other.load_weights(tmp_path / "w.h5", by_name=True)
    for i in (0, 1, 4):
        for x, y in zip(model.layers[i].get_weights(), other.layers[i].get_weights()):
            np.testing.assert_array_equal(x, y)
    for x, y in zip(before, other.layers[2].get_weights()):
        np.testing.assert_array_equal(x, y)


def test_skip_mismatch_warns_and_skips(tmp_path):
    model = trained()
    save_weights(model, tmp_path / "w.h5")
    names = [layer.name for layer in model.layers]
    other = network(seed=1, units=5, names=(names[1], "bn", names[4]))
    kept = other.layers[1].get_weights()
    with pytest.raises(ValueError, match=r"weight 'kernel' has shape \(5, 4\) in the model but "
                                         r"\(8, 4\) in the file"):
        load_weights(other, tmp_path / "w.h5", by_name=True)
    with pytest.warns(UserWarning, match="load_weights skipped layer"):
        load_weights(other, tmp_path / "w.h5", by_name=True, skip_mismatch=True)
    for x, y in zip(kept, other.layers[1].get_weights()):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(other.layers[0].get_weights()[0],
                                  model.layers[0].get_weights()[0])


def test_a_mismatch_by_order_names_both_sides_and_changes_nothing(tmp_path):
    model = trained()
    save_weights(model, tmp_path / "w.h5")
    wider = network(seed=1, units=5)
    before = wider.get_weights()
    with pytest.raises(ModelFileError, match=r"w.h5: layer #1 with weights, \"dense.*\" \(Dense\) "
                                             r".*weight 'kernel' has shape \(5, 4\) in the "
                                             r"model but \(8, 4\) in the file"):
        load_weights(wider, tmp_path / "w.h5")
    for x, y in zip(before, wider.get_weights()):
        np.testing.assert_array_equal(x, y)  # the first layer was not loaded either
    shorter = Sequential([Input((4,)), Dense(2)])
    with pytest.raises(ModelFileError, match="the file holds weights for 4 layers .* but the "
                                             "model has 1 layers with weights"):
        load_weights(shorter, tmp_path / "w.h5")


def test_bad_files_and_arguments(tmp_path):
    model = trained()
    with pytest.raises(FileNotFoundError):
        load_weights(model, tmp_path / "missing.h5")
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(ModelFileError, match="not an HDF5 file"):
        load_weights(model, tmp_path / "text.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.attrs["format"] = "keras"
    with pytest.raises(ModelFileError, match="not a cnn weights file"):
        load_weights(model, tmp_path / "other.h5")
    with pytest.raises(ValueError, match="skip_mismatch=True needs by_name=True"):
        load_weights(model, tmp_path / "other.h5", skip_mismatch=True)
    with pytest.raises(ValueError, match="the model has no layers"):
        save_weights(Sequential([Input((4,))]), tmp_path / "empty.h5")
    (tmp_path / "dir").mkdir()
    with pytest.raises(OSError, match="cannot write the weights file"):
        save_weights(model, tmp_path / "dir")


def test_a_damaged_weight_dataset_is_reported(tmp_path):
    model = trained()
    save_weights(model, tmp_path / "w.h5")
    name = model.layers[1].name
    with h5py.File(tmp_path / "w.h5", "a") as f:
        del f[f"{name}/kernel"]
        f[f"{name}/kernel"] = np.array(["text"], dtype=h5py.string_dtype())
    with pytest.raises(ModelFileError, match="weight 'kernel' holds object in the file, not "
                                             "numbers"):
        load_weights(network(seed=1), tmp_path / "w.h5")
