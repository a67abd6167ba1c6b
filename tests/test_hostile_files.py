"""Crafted model files (issue 14): each gives one ModelFileError naming the file and the
problem, fast, inside a limited address space, without reading anything outside the file.

Every file is made with h5py from a real saved model (ours) or a real file of the original
implementation, then loaded in one child process capped at 1 GiB above its start-up size
(``limited_loading``): a loader that allocated what such a file declares would die there.
"""

import json
import re
import shutil
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import cnn
from cnn.layers import Conv1D, Conv2D, Dense, Flatten, Input
from cnn.models import Model
from cnn.saving import limits
from cnn.saving.architecture import check_model_config
from cnn.saving.weights_file import load_weights
from graph_sources import functional_file, sequence_file
from helpers import seed_dir
from limited_loading import load_limited

SEED_MODELS = seed_dir() / "models"
HUGE = (10 ** 6, 10 ** 6)  # 4 TB of float32, declared in a few bytes (no storage allocated)
LARGE = (10 ** 4, 10 ** 5)  # 4 GB of float32: within the limit of one dataset, not the model's


def make_model():
    cnn.set_seed(0)
    model = Model(Input((1, 6, 6)), "small")
    for layer in (Conv2D(2, 3, name="conv", activation="relu"), Flatten(),
                  Dense(3, name="head", activation="softmax")):
        model.add_layer(layer)
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.random((8, 1, 6, 6)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 8)]
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    return model


# -- edits of our format ----------------------------------------------------------------------

def replace(f, name, data=None, **options):
    if name in f:
        del f[name]
    f.create_dataset(name, data=data, **options)


def huge_dataset(name, shape=HUGE, dtype="float32"):
    """``name`` replaced by a dataset declaring ``shape``: chunked, one chunk written (so it
    holds data) and the rest left to the fill value, a few KB in the file."""
    def edit(f, tmp):
        replace(f, name, shape=shape, dtype=dtype, chunks=(1,) * (len(shape) - 1) + (1000,))
        f[name][(0,) * len(shape)] = 1.0

    return edit


def unwritten_dataset(f, tmp):
    replace(f, "model_weights/head/kernel", shape=(3, 32), dtype="float32")


def config_edit(change):
    """Apply ``change(config_dict)`` to model_config (or compile_config: ``change`` gets
    both)."""
    def edit(f, tmp):
        model_config = json.loads(f["model_config"][()])
        compile_config = json.loads(f["compile_config"][()])
        change(model_config, compile_config)
        replace(f, "model_config", json.dumps(model_config), dtype=h5py.string_dtype())
        replace(f, "compile_config", json.dumps(compile_config), dtype=h5py.string_dtype())

    return edit


def layer_entry(model_config, name):
    """The entry of the layer ``name`` in a graph config's ``layers``."""
    return next(entry for entry in model_config["layers"] if entry["name"] == name)


def layer_config(name, **values):
    return config_edit(lambda m, c: layer_entry(m, name)["config"].update(values))


def input_shape_edit(shape, **head):
    """The input shape set to ``shape`` (in the Input layer and in the top-level copy older
    readers use), and the head layer's config updated with ``head``."""
    def change(m, c):
        m["input_shape"] = shape
        layer_entry(m, "input")["config"]["input_shape"] = shape
        layer_entry(m, "head")["config"].update(head)

    return config_edit(change)


def raw_config(text):
    return lambda f, tmp: replace(f, "model_config", text, dtype=h5py.string_dtype())


def external_link(f, tmp):
    other = tmp / "other.h5"
    with h5py.File(other, "w") as g:
        g["kernel"] = np.zeros((3, 32), np.float32)
    del f["model_weights/head/kernel"]
    f["model_weights/head/kernel"] = h5py.ExternalLink(str(other), "/kernel")


def external_storage(f, tmp):
    raw = tmp / "weights.bin"
    np.zeros(3, np.float32).tofile(raw)
    replace(f, "model_weights/head/bias", shape=(3,), dtype="float32",
            external=[(str(raw), 0, 12)])


def virtual_dataset(f, tmp):
    other = tmp / "source.h5"
    with h5py.File(other, "w") as g:
        g["bias"] = np.zeros(3, np.float32)
    layout = h5py.VirtualLayout(shape=(3,), dtype="float32")
    layout[:] = h5py.VirtualSource(str(other), "bias", shape=(3,))
    del f["model_weights/head/bias"]
    f.create_virtual_dataset("model_weights/head/bias", layout)


def soft_link_loop(f, tmp):
    f["model_weights/loop_a"] = h5py.SoftLink("/model_weights/loop_b")
    f["model_weights/loop_b"] = h5py.SoftLink("/model_weights/loop_a")


def soft_link_out(f, tmp):
    del f["model_weights/head/bias"]
    f["model_weights/head/bias"] = h5py.SoftLink("/optimizer_weights/3/m")


def hard_link_cycle(f, tmp):
    f["model_weights/head/again"] = f["model_weights"]


def reference_attribute(f, tmp):
    f["model_weights"].attrs["pointer"] = f["model_config"].ref


def reference_dataset(f, tmp):
    f.create_dataset("model_weights/head/refs", data=[f["model_config"].ref],
                     dtype=h5py.ref_dtype)


def plugin_filter(f, tmp):
    data = f["model_weights/head/bias"][()]
    del f["model_weights/head/bias"]
    space = h5py.h5s.create_simple((3,))
    plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    plist.set_chunk((3,))
    plist.set_filter(32001, h5py.h5z.FLAG_OPTIONAL)  # Blosc: a plugin, absent here
    h5py.h5d.create(f.id, b"model_weights/head/bias", h5py.h5t.IEEE_F32LE, space, plist)
    f["model_weights/head/bias"][...] = data


def optimizer_value(key, value):
    def edit(f, tmp):
        data = f[f"optimizer_weights/{key}"][()]
        data.flat[0] = value
        replace(f, f"optimizer_weights/{key}", data)

    return edit


OUR_FILES = {
    "weight declared 10**4 x 10**5": (huge_dataset("model_weights/head/kernel", LARGE),
                                      r"weight 'kernel' has shape \(3, 32\), got \(10000, "),
    "optimizer slot declared 10**4 x 10**5": (huge_dataset("optimizer_weights/2/m", LARGE),
                                              r"optimizer_weights/2/m has shape \(10000, "),
    "dataset declared 10**6 x 10**6": (huge_dataset("model_weights/extra"),
                                       "declares 1000000000000 elements"),
    "weight never written": (unwritten_dataset, "holds no data"),
    "units = 10**8": (layer_config("head", units=10 ** 8), "units must be an integer in"),
    "filters = 10**9": (layer_config("conv", filters=10 ** 9), "filters must be an integer in"),
    "units over the parameter budget": (
        input_shape_edit([1, 4096, 4096], units=1 << 20),
        "would bring the model to .* weight elements; at most 2147483648"),
    "input_shape [1, 1e5, 1e5] (floats)": (input_shape_edit([1, 1e5, 1e5]), r"input_shape\[1\] must be an integer"),
    "input_shape [1, 10**5, 10**5]": (input_shape_edit([1, 10 ** 5, 10 ** 5]), "10000000000 elements per sample"),
    "input_shape [1.5, 8, 8]": (input_shape_edit([1.5, 8, 8]),
                                r"input_shape\[0\] must be an integer, got 1.5"),
    "kernel_size 2.0": (layer_config("conv", kernel_size=[3, 2.0]), "kernel_size.* must be an integer"),
    "units true": (layer_config("head", units=True), "units must be an integer, got True"),
    "activation leaky_relu(nan)": (layer_config("conv", activation="leaky_relu(nan)"),
                                   r"'leaky_relu\(nan\)': the argument must be a finite"),
    "activation elu(1e999)": (layer_config("conv", activation="elu(1e999)"), "must be a finite"),
    "NaN in the JSON": (config_edit(lambda m, c: c["optimizer"].update(learning_rate=float("nan"))),
                        "NaN is not a finite number"),
    "number overflowing to inf": (
        raw_config('{"input_shape": [1, 6, 6], "layers": [], "x": 1e999}'),
        "the number 1e999 is not finite"),
    "JSON nested 100000 deep": (raw_config("[" * 100_000 + "]" * 100_000),
                                "nested too deeply"),
    "JSON nested 100 deep": (raw_config('{"input_shape": [1, 6, 6], "layers": [], "x": '
                                        + "[" * 100 + "]" * 100 + "}"),
                             "nested more than 64 levels"),
    "20000 layers": (config_edit(lambda m, c: m.update(layers=[{"class_name": "Flatten",
                                                                 "config": {}}] * 20000)),
                     "20000 layers; at most 10000"),
    "dtype object": (config_edit(lambda m, c: m.update(dtype="object")), "dtype must be one of"),
    "external link": (external_link, "external link to .*other.h5"),
    "external storage": (external_storage, "keeps its data in external files"),
    "virtual dataset": (virtual_dataset, "is a virtual dataset"),
    "soft link loop": (soft_link_loop, "is a soft link"),
    "soft link out of its group": (soft_link_out, r"'/model_weights/head/bias' is a soft link"),
    "hard link cycle": (hard_link_cycle, "second link to an object"),
    "object reference attribute": (reference_attribute, "holds HDF5 references"),
    "object reference dataset": (reference_dataset, "holds HDF5 references"),
    "filter plugin": (plugin_filter, "filter 32001, which is not built into HDF5"),
    "Adam v NaN": (optimizer_value("0/v", np.nan), "optimizer_weights/0/v holds NaN"),
    "Adam v negative": (optimizer_value("0/v", -1.0), "optimizer_weights/0/v holds negative"),
    "Adam m infinite": (optimizer_value("1/m", np.inf), "optimizer_weights/1/m holds NaN or inf"),
    "optimizer slot of no parameter": (
        lambda f, tmp: f.create_dataset("optimizer_weights/9/m", data=np.zeros(3)),
        "an index below 4"),
    "iterations beyond the limit": (
        lambda f, tmp: f["optimizer_weights"].attrs.__setitem__("iterations", 2 ** 63 - 1),
        "'iterations' should be an integer in"),
    "config as a huge fixed string": (
        lambda f, tmp: replace(f, "model_config", shape=(), dtype="S2000000000"),
        "strings of 2000000000 bytes"),
}


# -- edits of the original implementation's files ------------------------------------------

SEED_FILES = {
    "layer_cnt = 10**9": ("test_cnn.h5", lambda f, tmp: replace(f, "layer_cnt", 10 ** 9),
                          r"'layer_cnt' should be an integer in \[1, 10000\]"),
    "params declared 10**4 x 10**5": (
        "test_cnn.h5", huge_dataset("layer_3/params", LARGE, "float64"),
        r"params have shape \(10000, 100000\), expected \(100, 2000\)"),
    "units 10**8": ("test_cnn.h5", lambda f, tmp: replace(f, "layer_3/init_params",
                                                           np.array([10 ** 8], np.int32)),
                    r"layer_3 \(Dense\): init_params\[0\] must be an integer in"),
    "units over the parameter budget": (
        "test_cnn.h5", lambda f, tmp: (replace(f, "layer_3/init_params", np.array([1 << 20])),
                                       huge_dataset("layer_3/params", (1 << 20, 2000),
                                                    "float64")(f, tmp),
                                       huge_dataset("layer_4/params", (100, 1 << 20),
                                                    "float64")(f, tmp),
                                       replace(f, "layer_4/init_params", np.array([100]))),
        r"params of 2202\d{6} elements in all; at most 2147483648"),
    "input_shape [1.5, 28, 28]": ("test_cnn.h5", lambda f, tmp: replace(
        f, "input_shape", np.array([1.5, 28, 28])), "input_shape should be a list of at most"),
    "input_shape of 100000 entries": ("test_cnn.h5", lambda f, tmp: replace(
        f, "input_shape", np.ones(100_000, np.int32)), "input_shape should be a list of at most 8"),
    "NaN weight": ("test_cnn.h5", lambda f, tmp: f["layer_4/params"].__setitem__((0, 0), np.nan),
                   r"layer_4 \(Output\): params holds NaN"),
    "infinite recurrent weight": ("standard_POI_rnn.h5", lambda f, tmp: f[
        "layer_0/params"].__setitem__((0, 0), np.inf), r"layer_0 \(Recurrent\): params holds NaN"),
    "activation leaky_relu(nan)": ("test_cnn.h5", lambda f, tmp: replace(
        f, "layer_0/_str", np.array(["Conv2D", "valid", "leaky_relu(nan)"],
                                    dtype=h5py.string_dtype())), "must be a finite number"),
    "lr NaN": ("test_cnn.h5", lambda f, tmp: replace(f, "lr", np.nan),
               "'lr' should be one positive number"),
    "name of 1000 strings": ("test_cnn.h5", lambda f, tmp: replace(
        f, "name", np.array(["x"] * 1000, dtype=h5py.string_dtype())),
        "should be a list of at most 8 strings"),
    "external link": ("test_cnn.h5", lambda f, tmp: (f.__delitem__("layer_4"), f.__setitem__(
        "layer_4", h5py.ExternalLink(str(SEED_MODELS / "MNIST_cnn.h5"), "/layer_4"))),
        "'/layer_4' is an external link"),
}


def json_edit(name, change):
    """Apply ``change`` to the JSON dataset ``name`` (a config or a resume state)."""
    def edit(f, tmp):
        value = json.loads(f[name][()])
        value = change(value) or value
        replace(f, name, json.dumps(value), dtype=h5py.string_dtype())

    return edit


def graph_layer(name, **values):
    return json_edit("model_config", lambda m: layer_entry(m, name)["config"].update(values))


def graph_input(shape, **head):
    def change(m):
        m["input_shape"] = shape
        layer_entry(m, "input")["config"]["input_shape"] = shape
        layer_entry(m, "head")["config"].update(head)

    return json_edit("model_config", change)


# Edits of the functional model (Add and Concatenate) and the sequence model (Embedding and
# LSTM) of graph_sources: each node's input shape comes from the nodes it names.
GRAPH_FILES = {
    # left and right: 4 * (2**20 + 1) each; head reads Concatenate's 4 + 2**20 features:
    # 2**20 * (4 + 2**20 + 1); 1099525259272 in all.
    "head over the budget behind Concatenate": (
        "functional", graph_input([1 << 20], units=1 << 20),
        r'layer 6 "head" \(Dense\) would bring the model to 1099525259272 weight elements'),
    "units 10**8 in a branch": ("functional", graph_layer("left", units=10 ** 8),
                                 '"left" .*units must be an integer in'),
    "Concatenate axis 99": ("functional", graph_layer("joined", axis=99),
                            r"axis must be an integer in \[-8, 8\]"),
    "Dropout seed -1": ("functional", graph_layer("dropout", seed=-1),
                        r"seed must be an integer in \[0, "),
    "bad generator state": ("functional", json_edit("training_state/layer_states", lambda s: {
        "dropout": {"rng": {"state": 5}}}), "layer_states: .*bad generator state"),
    "state of a layer that does not exist": (
        "functional", json_edit("training_state/layer_states", lambda s: {"ghost": {}}),
        "layer_states: .*ghost"),
    "Embedding input_dim 10**9": ("sequence", graph_layer("embedding", input_dim=10 ** 9),
                                  "input_dim must be an integer in"),
    "Embedding output_dim 1.5": ("sequence", graph_layer("embedding", output_dim=1.5),
                                 "output_dim must be an integer, got 1.5"),
    "Embedding of 2**24 x 2**24": (
        "sequence", graph_layer("embedding", input_dim=1 << 24, output_dim=1 << 24),
        r'"embedding" \(Embedding\) would bring the model to 281474976710656 weight'),
    # Conv1D has no rule in WEIGHT_BOUNDS: its kernel of 2**24 x 8 x 32 (2**32) elements is
    # refused by the bounded initialization, before it is drawn.
    "Conv1D over the budget (no rule)": (
        "conv1d", graph_layer("conv", filters=1 << 24, kernel_size=32),
        r'"conv" \(Conv1D\): initial weights of shape \(.*\) \(4294967296 elements\) exceed'),
    "LSTM units over the budget": ("sequence", graph_layer("lstm", units=1 << 24),
                                   '"lstm" .*would bring the model to'),
    "an inbound node naming a layer that does not exist": (
        "functional", json_edit("model_config", lambda m: layer_entry(m, "head").update(
            inbound_nodes=[[["ghost", 0, 0]]])), "name layers or nodes that do not exist"),
}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """Every crafted file, loaded once in a memory-limited child: {case: (path, outcome)}."""
    tmp = tmp_path_factory.mktemp("hostile")
    good = tmp / "good.h5"
    make_model().save(good)
    paths = {}
    for case, (edit, _) in OUR_FILES.items():
        paths[("ours", case)] = crafted(good, tmp, case, edit)
    for case, (source, edit, _) in SEED_FILES.items():
        paths[("seed", case)] = crafted(SEED_MODELS / source, tmp, case, edit)
    sources = {"functional": functional_file(tmp / "functional.h5"),
               "sequence": sequence_file(tmp / "sequence.h5"), "conv1d": tmp / "conv1d.h5"}
    conv1d = Model(Input((64, 8)), "conv1d")
    for layer in (Conv1D(4, 3, name="conv"), Flatten(), Dense(2, name="head")):
        conv1d.add_layer(layer)
    conv1d.save(sources["conv1d"])
    for case, (source, edit, _) in GRAPH_FILES.items():
        paths[("graph", case)] = crafted(sources[source], tmp, case, edit)
    results = load_limited(paths.values())
    return {key: (path, results[str(path)]) for key, path in paths.items()}


def crafted(source, tmp, case, edit):
    path = tmp / ("".join(c if c.isalnum() else "_" for c in case) + f"_{source.name}")
    shutil.copyfile(source, path)
    with h5py.File(path, "r+") as f:
        edit(f, tmp)
    return path


def check(outcome, path, match):
    kind, message, seconds = outcome
    assert kind == "ModelFileError", (kind, message)
    assert message.startswith(f"{path}: ")
    assert re.search(match, message), message
    assert seconds < 5.0, f"took {seconds:.1f} s"


@pytest.mark.parametrize("case", OUR_FILES)
def test_a_crafted_file_of_our_format_is_refused_cleanly(case, outcomes):
    path, outcome = outcomes[("ours", case)]
    check(outcome, path, OUR_FILES[case][1])


@pytest.mark.parametrize("case", SEED_FILES)
def test_a_crafted_file_of_the_original_format_is_refused_cleanly(case, outcomes):
    path, outcome = outcomes[("seed", case)]
    check(outcome, path, SEED_FILES[case][2])


@pytest.mark.parametrize("case", GRAPH_FILES)
def test_a_crafted_graph_model_file_is_refused_cleanly(case, outcomes):
    path, outcome = outcomes[("graph", case)]
    check(outcome, path, GRAPH_FILES[case][2])


def test_a_weights_file_declaring_huge_or_nan_weights_is_refused(tmp_path):
    model = make_model()
    before = [w.copy() for w in model.get_weights()]
    huge, nan = tmp_path / "huge.weights.h5", tmp_path / "nan.weights.h5"
    for path in (huge, nan):
        model.save_weights(path)
    with h5py.File(huge, "r+") as f:
        huge_dataset("head/kernel", HUGE)(f, tmp_path)
    with h5py.File(nan, "r+") as f:
        f["head/kernel"][0, 0] = np.nan
    with pytest.raises(cnn.saving.ModelFileError, match="declares 1000000000000 elements"):
        load_weights(model, huge)
    with pytest.raises(cnn.saving.ModelFileError, match="head/kernel holds NaN"):
        load_weights(model, nan)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_the_untouched_files_still_load_under_the_memory_limit(tmp_path):
    good = tmp_path / "good.h5"
    make_model().save(good)
    results = load_limited([good, functional_file(tmp_path / "functional.h5"),
                            sequence_file(tmp_path / "sequence.h5"),
                            *sorted(SEED_MODELS.glob("*.h5"))])
    assert {outcome for outcome, _, _ in results.values()} == {"loaded"}, results


def test_the_limits_accept_what_this_library_builds():
    assert limits.integer(limits.MAX_SIZE, "units") == limits.MAX_SIZE
    assert limits.sample_shape([3, 224, 224], "input_shape") == (3, 224, 224)
    limits.activation("leaky_relu(0.2)")
    limits.activation("relu")
    with pytest.raises(ValueError, match="not a number"):
        limits.activation("elu(fast)")


HEAP_LOOP = Path(__file__).parent / "fixtures" / "hostile" / "hdf5_heap_loop.h5"


def test_a_file_on_which_hdf5_itself_loops_is_refused_in_bounded_time():
    """HDF5's C library loops forever reading the variable-length string attribute 'format'
    of this corrupted file (found by the fuzzer): the reading process is ended after the
    read timeout and the load says so, naming the file."""
    (outcome, message, seconds), = load_limited([HEAP_LOOP], seconds=20,
                                                read_timeout=2).values()
    assert outcome == "ModelFileError", (outcome, message, seconds)
    assert message == (f"{HEAP_LOOP}: the HDF5 library did not finish reading it within 2 s "
                       "(the reading process was ended; $CNN_HDF5_TIMEOUT or read_timeout "
                       "sets the limit)")
    assert 2.0 <= seconds < 5.0


def test_after_a_file_that_hangs_hdf5_the_next_load_starts_a_new_reader(tmp_path):
    good = tmp_path / "good.h5"
    model = make_model()
    model.save(good)
    with pytest.raises(cnn.saving.ModelFileError, match="did not finish reading it within 1 s"):
        cnn.models.load_model(HEAP_LOOP, read_timeout=1)
    with pytest.raises(cnn.saving.ModelFileError, match="did not finish reading it within 1 s"):
        load_weights(model, HEAP_LOOP, read_timeout=1)
    loaded = cnn.models.load_model(good, read_timeout=30)
    for old, new in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_a_graph_listed_backwards_is_checked_and_built_in_linear_time():
    """3,000 chained layers listed last-first: replaying them by repeated passes took
    quadratic time (about 30 s here); in the builder's order it takes a fraction of a
    second, and the model is the chain."""
    entries = [{"class_name": "Input", "config": {"input_shape": [2]}, "name": "input",
                "inbound_nodes": []}]
    previous = "input"
    chain = []
    for i in range(3000):
        chain.append({"class_name": "Dense", "config": {"units": 2, "name": f"d{i}"},
                      "name": f"d{i}", "inbound_nodes": [[[previous, 0, 0]]]})
        previous = f"d{i}"
    config = {"name": "backwards", "dtype": "float32", "stack": False,
              "layers": entries + chain[::-1], "input_layers": [["input", 0, 0]],
              "output_layers": [[previous, 0, 0]]}
    start = time.process_time()  # CPU time: other processes on the core do not count
    check_model_config(config)
    model = Model.from_config(config, None)
    assert time.process_time() - start < 5.0
    assert [layer.name for layer in model.layers] == [f"d{i}" for i in range(3000)]
