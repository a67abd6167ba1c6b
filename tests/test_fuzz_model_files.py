"""Fuzzing the loader (issue 14): seeded random corruptions of real model files (ours and the
original implementation's), each of which must give a clean load or one ModelFileError, never
another exception, a crash, a hang or a huge allocation.

The corruptions: bit flips and random byte runs at random offsets, truncation at many
offsets, attribute edits, dataset edits (values, shapes, types), type swaps (a dataset made
a group, numbers made strings) and edits of the JSON configs. The files are loaded in a
child process whose address space is capped 1 GiB above its start-up size
(``limited_loading``), so an allocation the file merely declares fails there at once; the
HDF5 library reads each in its reading process, which has READ_TIMEOUT seconds.

The source files: a stack of image layers, a functional graph (two branches joined by Add and
Concatenate, so layers with several inbound tensors), a sequence model (Embedding with a
mask into an LSTM) and one of the original implementation's files.
``CNN_FUZZ_CASES`` (default 450, 1,800 loads in all, sized for CI) sets the number of
corruptions of each source file, ``CNN_FUZZ_SEED`` the seed.
"""

import json
import os
import shutil

import h5py
import numpy as np
import pytest

import cnn
from cnn.layers import BatchNormalization, Conv2D, Dense, Flatten, Input, MaxPooling2D
from cnn.models import Model
from graph_sources import functional_file, sequence_file
from helpers import seed_dir
from limited_loading import load_limited

CASES = int(os.environ.get("CNN_FUZZ_CASES", "450"))
# Seed 14 finds, at its case 523, a file on which HDF5 itself loops forever (kept as
# tests/fixtures/hostile/hdf5_heap_loop.h5, see test_hostile_files.py): its load ends after
# READ_TIMEOUT with a ModelFileError. Seed 7 stays the default, the stream CI has always run.
SEED = int(os.environ.get("CNN_FUZZ_SEED", "7"))
SECONDS_PER_LOAD = 5.0
READ_TIMEOUT = 3.0  # seconds the HDF5 reading process has for one file


def our_file(path):
    cnn.set_seed(0)
    model = Model(Input((1, 6, 6)), "fuzzed")
    for layer in (Conv2D(2, 3, activation="leaky_relu(0.2)"), BatchNormalization(),
                  MaxPooling2D(2), Flatten(), Dense(3, activation="softmax")):
        model.add_layer(layer)
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.random((8, 1, 6, 6)).astype(np.float32)
    model.fit(x, np.eye(3, dtype=np.float32)[rng.integers(0, 3, 8)], epochs=1, verbose=0)
    model.class_names = ["a", "b", "c"]
    model.save(path)
    return path


OUR_SOURCES = {"ours": our_file, "functional": functional_file, "sequence": sequence_file}


# -- corruptions of the bytes ---------------------------------------------------------------

def flip_bits(data: bytes, rng) -> bytes:
    data = bytearray(data)
    for _ in range(rng.integers(1, 9)):
        data[rng.integers(len(data))] ^= 1 << int(rng.integers(8))
    return bytes(data)


def random_run(data: bytes, rng) -> bytes:
    data = bytearray(data)
    start = int(rng.integers(len(data)))
    length = int(rng.integers(1, 64))
    data[start:start + length] = rng.bytes(length)[:len(data) - start]
    return bytes(data)


def truncate(data: bytes, rng) -> bytes:
    return data[:int(rng.integers(len(data)))]


BYTE_EDITS = (flip_bits, random_run, truncate)


# -- corruptions through h5py -----------------------------------------------------------------

def all_items(f):
    names = []
    f.visititems(lambda name, item: names.append(name))
    return names


def random_value(rng):
    choice = int(rng.integers(10))
    return [
        lambda: int(rng.integers(-2 ** 40, 2 ** 40)),
        lambda: float(rng.choice([np.nan, np.inf, -1.0, 0.0, 1e300, 0.5])),
        lambda: "garbage",
        lambda: np.array([1.5, 2.5]),
        lambda: np.zeros((2, 3), np.int8),
        lambda: np.array(["a", "b"], dtype=h5py.string_dtype()),
        lambda: True,
        lambda: np.float16(3),
        lambda: int(rng.choice([0, 1, -1, 2 ** 31, 2 ** 62])),
        lambda: np.void(b"\x00\x01"),
    ][choice]()


def edit_attribute(f, rng):
    items = [f, *(f[name] for name in all_items(f))]
    item = items[int(rng.integers(len(items)))]
    keys = list(item.attrs)
    if keys and rng.random() < 0.8:
        key = keys[int(rng.integers(len(keys)))]
        if rng.random() < 0.2:
            del item.attrs[key]
            return
    else:
        key = str(rng.choice(["format", "epoch", "iterations", "layer_names", "extra"]))
    item.attrs[key] = random_value(rng)


def edit_dataset(f, rng):
    datasets = [n for n in all_items(f) if isinstance(f[n], h5py.Dataset)]
    name = datasets[int(rng.integers(len(datasets)))]
    old = f[name]
    choice = int(rng.integers(6))
    if choice == 0 and old.dtype.kind == "f" and old.size:  # a bad value in place
        index = np.unravel_index(int(rng.integers(old.size)), old.shape)
        old[index] = rng.choice([np.nan, np.inf, -1e30, -1.0])
        return
    del f[name]
    if choice == 1:  # another shape
        shape = tuple(int(s) for s in rng.integers(0, 5, rng.integers(0, 4)))
        f.create_dataset(name, data=np.ones(shape, np.float32))
    elif choice == 2:  # a declared size, partly written
        f.create_dataset(name, shape=(10 ** 5, 10 ** 4), dtype="float32", chunks=(1, 100))
        f[name][0, 0] = 1
    elif choice == 3:  # another type
        f.create_dataset(name, data=random_value(rng))
    elif choice == 4:  # a group instead
        f.create_group(name)
    # choice 5: deleted


def edit_json(f, rng):
    name = str(rng.choice([n for n in ("model_config", "compile_config") if n in f]))
    text = f[name][()]
    text = text.decode() if isinstance(text, bytes) else str(text)
    config = json.loads(text)
    paths = []

    def collect(value, path):
        paths.append(path)
        if isinstance(value, dict):
            for key, child in value.items():
                collect(child, path + (key,))
        elif isinstance(value, list):
            for index, child in enumerate(value):
                collect(child, path + (index,))

    collect(config, ())
    path = paths[int(rng.integers(1, len(paths)))] if len(paths) > 1 else ()
    parent = config
    for key in path[:-1]:
        parent = parent[key]
    replacements = ["delete", 10 ** 9, -1, 1.5, float("nan"), None, [], {}, "x" * 50, 0, True,
                    [1e5, 1e5], "leaky_relu(nan)", 2 ** 64]
    replacement = replacements[int(rng.integers(len(replacements)))]
    if isinstance(replacement, str) and replacement == "delete" and isinstance(parent, dict):
        del parent[path[-1]]
    elif path:
        parent[path[-1]] = replacement
    del f[name]
    f.create_dataset(name, data=json.dumps(config), dtype=h5py.string_dtype())


H5PY_EDITS = (edit_attribute, edit_dataset, edit_json)
SEED_H5PY_EDITS = (edit_attribute, edit_dataset)


def corrupt(source, target, rng, h5py_edits) -> str:
    """Write a corruption of ``source`` to ``target``; return its kind."""
    data = source.read_bytes()
    edits = BYTE_EDITS + h5py_edits
    edit = edits[int(rng.integers(len(edits)))]
    if edit in BYTE_EDITS:
        target.write_bytes(edit(data, rng))
    else:
        shutil.copyfile(source, target)
        with h5py.File(target, "r+") as f:
            for _ in range(rng.integers(1, 4)):
                edit(f, rng)
    return edit.__name__


@pytest.mark.parametrize("source", ["ours", "functional", "sequence", "seed"])
def test_random_corruptions_load_cleanly_or_raise_one_model_file_error(source, tmp_path):
    # The stream of the first two sources is the one they had when only they were fuzzed.
    rng = np.random.default_rng([SEED, ["ours", "seed", "functional", "sequence"].index(source)])
    if source in OUR_SOURCES:
        original, edits = OUR_SOURCES[source](tmp_path / "original.h5"), H5PY_EDITS
    else:
        original, edits = tmp_path / "original.h5", SEED_H5PY_EDITS
        shutil.copyfile(seed_dir() / "models" / "standard_POI_rnn.h5", original)
    kinds = {}
    for case in range(CASES):
        path = tmp_path / f"case_{case}.h5"
        kinds[str(path)] = corrupt(original, path, rng, edits)
    results = load_limited(kinds, timeout=60 + CASES * SECONDS_PER_LOAD,
                           seconds=int(SECONDS_PER_LOAD) + 1, read_timeout=READ_TIMEOUT)
    bad = {path: (kinds[path], *outcome) for path, outcome in results.items()
           if outcome[0] not in ("loaded", "ModelFileError") or outcome[2] > SECONDS_PER_LOAD}
    assert not bad, f"{len(bad)} of {CASES} corruptions: " + "; ".join(
        f"{path} [{kind}] {outcome}: {message[:300]} ({seconds:.1f} s)"
        for path, (kind, outcome, message, seconds) in list(bad.items())[:10])
    assert len(results) == CASES
    refused = [outcome for outcome, _, _ in results.values() if outcome == "ModelFileError"]
    assert len(refused) > CASES // 4  # most corruptions are noticed, not loaded
    for path, (outcome, message, _) in results.items():
        if outcome == "ModelFileError":
            assert message.startswith(f"{path}: "), message
