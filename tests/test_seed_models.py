"""Files written by the original implementation (tests/fixtures/seed/models/*.h5, copies of
shared/seed/models) load and compute what the original computed."""

import shutil

import h5py
import numpy as np
import pytest
import scipy.io
from numpy.lib.stride_tricks import sliding_window_view

from cnn.datasets import mnist_sample
from cnn.models import ModelFileError, load_model
from helpers import seed_dir


SEED = seed_dir()
CNN_FILES = ["standard_MNIST_cnn.h5", "test_cnn.h5", "MNIST_cnn.h5"]


# -- the recurrent models: the original's published numbers ----------------------------------

def poi_test_split():
    """The test split as the seed's SP2 example prepares it: one centred 3-D trajectory,
    each point predicting the next."""
    points = scipy.io.loadmat(SEED / "data" / "POI.mat")["SquPOI"].T  # (2427, 3)
    points = points - points.mean(axis=0)
    return points[600:-1], points[601:]


@pytest.mark.parametrize("name, mae, loss", [
    ("standard_POI_rnn.h5", "0.255703", "0.0215306"),
    ("special_POI_rnn.h5", "0.386987", "0.0538749"),
])
def test_recurrent_files_reproduce_the_published_results(name, mae, loss):
    x_test, y_test = poi_test_split()
    model = load_model(SEED / "models" / name)
    with h5py.File(SEED / "models" / name, "r") as f:
        stored_state = f["layer_0/params"][:, -1]
    np.testing.assert_allclose(model.layers[0].buffers["state"], stored_state, rtol=1e-6)

    result = model.evaluate(x_test, y_test)
    assert (f"{result[0]:.6g}", f"{result[1]:.6g}") == (mae, loss)

    # The same numbers from the predictions, with the seed's definitions written out.
    predictions = load_model(SEED / "models" / name).predict(x_test)
    errors = predictions.astype(np.float64) - y_test
    assert f"{np.abs(errors).mean(axis=0).sum():.6g}" == mae
    assert f"{(errors ** 2).sum() / (2 * len(errors)):.6g}" == loss


def test_recurrent_file_maps_onto_bias_free_layers_with_the_file_settings():
    model = load_model(SEED / "models" / "special_POI_rnn.h5")
    recurrent, output = model.layers
    with h5py.File(SEED / "models" / "special_POI_rnn.h5", "r") as f:
        theta, v = f["layer_0/params"][()], f["layer_1/params"][()]
        assert model.lr == f["lr"][()]
    np.testing.assert_array_equal(recurrent.params["kernel"], theta[:, :3].astype(np.float32))
    np.testing.assert_array_equal(recurrent.params["recurrent_kernel"], theta[:, 3:-1].astype(np.float32))
    np.testing.assert_array_equal(output.params["kernel"], v.astype(np.float32))
    assert "bias" not in recurrent.params and "bias" not in output.params
    assert (recurrent.activation.name, output.activation.name) == ("tanh", "linear")
    assert (model.name, model.loss.name, model.metrics[0].name) == ("POI_rnn", "seed_mse", "MAE")


# -- the CNNs: structure and predictions against a direct NumPy computation ------------------

ACTIVATIONS = {
    "ReLU": lambda z: np.maximum(z, 0),
    "softmax": lambda z: np.exp(z - z.max(axis=1, keepdims=True))
    / np.exp(z - z.max(axis=1, keepdims=True)).sum(axis=1, keepdims=True),
}


def reference_network(path, x):
    """Run the network stored at ``path`` on ``x`` in float64, reading the raw datasets.

    Returns the output and, per layer, (type, output shape, parameter count).
    """
    layers = []
    a = np.asarray(x, dtype=np.float64)
    with h5py.File(path, "r") as f:
        for i in range(f["layer_cnt"][()]):
            group = f[f"layer_{i}"]
            kind, *strings = [s.decode() for s in group["_str"][()]]
            init = group["init_params"][()].tolist() if group["init_params_flag"][()] else []
            params = group["params"][()] if group["params_flag"][()] else None
            if kind == "Conv2D":
                assert strings[0] == "valid"
                stride = init[2]
                windows = sliding_window_view(a, params.shape[2:], axis=(2, 3))[:, :, ::stride, ::stride]
                a = ACTIVATIONS[strings[1]](np.einsum("nchwij,fcij->nfhw", windows, params))
            elif kind in ("MaxPooling2D", "AveragePooling2D"):
                assert strings[0] == "valid"
                size, stride = init
                windows = sliding_window_view(a, (size, size), axis=(2, 3))[:, :, ::stride, ::stride]
                a = windows.max(axis=(4, 5)) if kind == "MaxPooling2D" else windows.mean(axis=(4, 5))
            elif kind == "Flatten":
                a = a.reshape(len(a), -1)
            else:
                assert kind in ("Dense", "Output")
                a = ACTIVATIONS[strings[0]](a @ params.T)
            layers.append((kind, a.shape[1:], 0 if params is None else params.size))
    return a, layers


def summary_rows(model):
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines).splitlines()
    rows = [line for line in text if line and line[0].isalpha() and "(None" in line]
    total = next(line for line in text if line.startswith("Total params:"))
    return rows, int(total.split(":")[1])


@pytest.fixture(scope="module")
def images():
    (_, _), (x_test, _) = mnist_sample.load_data()
    return x_test[:8]


@pytest.mark.parametrize("name", CNN_FILES)
def test_cnn_files_load_with_their_layers_and_parameter_counts(name, images):
    model = load_model(SEED / "models" / name)
    _, expected = reference_network(SEED / "models" / name, images[:1])
    rows, total = summary_rows(model)
    assert len(rows) == len(expected)
    for row, (kind, shape, count) in zip(rows, expected):
        assert row.split()[0] == kind
        assert str((None, *shape)) in row
        assert int(row.split()[-1]) == count
    assert total == sum(count for _, _, count in expected) == model.count_params()
    with h5py.File(SEED / "models" / name, "r") as f:
        model_name, loss_name = (s.decode() for s in f["name"][()])
        assert (model.name, model.lr) == (model_name, f["lr"][()])
    assert loss_name == "cross_tropy" and model.loss.name == "categorical_crossentropy"


@pytest.mark.parametrize("name", CNN_FILES)
def test_cnn_predictions_equal_a_direct_numpy_computation(name, images):
    expected, _ = reference_network(SEED / "models" / name, images)
    as_loaded = load_model(SEED / "models" / name)
    assert as_loaded.dtype == "float32"
    np.testing.assert_allclose(as_loaded.predict(images), expected, rtol=1e-4, atol=1e-6)
    in_float64 = load_model(SEED / "models" / name, dtype="float64")
    np.testing.assert_allclose(in_float64.predict(images), expected, rtol=1e-10, atol=1e-13)


def test_a_seed_model_trains_further_and_round_trips_through_our_format(images, tmp_path):
    model = load_model(SEED / "models" / "test_cnn.h5")
    labels = np.arange(len(images)) % 10
    model.fit(images, labels, batch_size=4, epochs=1, verbose=0, seed=0)
    model.save(tmp_path / "ours.h5")
    loaded = load_model(tmp_path / "ours.h5")
    np.testing.assert_array_equal(loaded.predict(images), model.predict(images))
    assert loaded.epoch == 1 and loaded.lr == model.lr


# -- damaged seed files ----------------------------------------------------------------------

def edited(source, tmp_path, edit):
    path = tmp_path / f"edited_{source}"
    shutil.copyfile(SEED / "models" / source, path)
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


def replace(f, name, data):
    del f[name]
    if isinstance(data, list) and isinstance(data[0], str):
        data = np.array(data, dtype=h5py.string_dtype())
    f.create_dataset(name, data=data)


BAD_SEED_FILES = {
    "layer_count": ("standard_POI_rnn.h5", lambda f: replace(f, "layer_cnt", 3),
                    "layer_cnt is 3 but the file has the groups layer_0, layer_1"),
    "unknown_type": ("standard_POI_rnn.h5", lambda f: replace(f, "layer_0/_str", ["LSTM", "tanh"]),
                     r"layer_0 \(LSTM\): unknown layer type"),
    "init_params": ("standard_POI_rnn.h5", lambda f: replace(f, "layer_0/init_params", [10, 3]),
                    r"init_params should be \[units\], got \[10, 3\]"),
    "theta_shape": ("standard_POI_rnn.h5", lambda f: replace(f, "layer_0/params", np.zeros((10, 13))),
                    r"layer_0 \(Recurrent\): params have shape \(10, 13\), expected \(10, 14\)"),
    "params_missing": ("standard_POI_rnn.h5", lambda f: replace(f, "layer_1/params_flag", 0),
                       r"layer_1 \(Output\): params \(\(units, inputs\)\) are missing"),
    "activation": ("standard_POI_rnn.h5", lambda f: replace(f, "layer_1/_str", ["Output", "Lineaer"]),
                   "unknown activation 'Lineaer'"),
    "names": ("standard_POI_rnn.h5", lambda f: replace(f, "name", ["POI_rnn"]),
              r"'name' should be \[model name, loss\]"),
    "learning_rate": ("standard_POI_rnn.h5", lambda f: replace(f, "lr", -0.1),
                      "'lr' should be one positive number"),
    "unexpected_params": ("test_cnn.h5", lambda f: (replace(f, "layer_1/params_flag", 1),
                                                    f.create_dataset("layer_1/params", data=np.ones(4))),
                          r"layer_1 \(MaxPooling2D\): has params of shape \(4,\)"),
    "kernel_shape": ("test_cnn.h5", lambda f: replace(f, "layer_0/params", np.zeros((20, 1, 8, 8))),
                     r"layer_0 \(Conv2D\): params have shape \(20, 1, 8, 8\), expected \(20, 1, 9, 9\)"),
}


@pytest.mark.parametrize("bad", BAD_SEED_FILES)
def test_a_damaged_seed_file_raises_one_clear_error_naming_it(bad, tmp_path):
    source, edit, match = BAD_SEED_FILES[bad]
    path = edited(source, tmp_path, edit)
    with pytest.raises(ModelFileError, match=match) as info:
        load_model(path)
    assert str(info.value).startswith(f"{path}: ")
