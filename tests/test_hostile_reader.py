"""The HDF5 reading process (cnn.saving.reader_process, hdf5_reader): what a crash, a loop, a
memory limit or a malformed reply of it gives, and that nothing it sends can run code."""

import io
import os
import pickle
import signal
import threading
from pathlib import Path

import h5py
import numpy as np
import pytest

import cnn
from cnn.layers import Dense, Input
from cnn.models import Model, load_model
from cnn.saving import ModelFileError, file_view, reader_protocol
from cnn.saving.reader_process import ReaderProcess, ReadingFailed, Session, resolve_timeout

HEAP_LOOP = Path(__file__).parent / "fixtures" / "hostile" / "hdf5_heap_loop.h5"


def small_model():
    cnn.set_seed(0)
    model = Model(Input((4,)), "small")
    model.add_layer(Dense(3, name="head"))
    model.compile(optimizer="adam", loss="mse")
    return model


@pytest.mark.parametrize("value", [
    "text", b"bytes \xff\xfe not UTF-8", np.float32(1.5), np.int64(-3),
    np.arange(6.0).reshape(2, 3),
    np.array([b"a", b"b\xff"], dtype=object), np.array(["x", "y"], dtype=object),
    np.array([b"fixed", b"len"], dtype="S5"), np.zeros((0, 3), np.float16), np.bool_(True)])
def test_values_cross_the_pipe_as_h5py_gave_them(value):
    description, array_bytes = reader_protocol.encode_value(value)
    back = reader_protocol.decode_value(description, array_bytes)
    assert type(back) is type(value) or (isinstance(value, np.ndarray) and
                                          isinstance(back, np.ndarray))
    if isinstance(value, np.ndarray):
        assert back.shape == value.shape
        assert back.tolist() == value.tolist()
        if value.dtype.kind in "biuf":
            assert back.dtype == value.dtype
    else:
        assert back == value
    inline = reader_protocol.inline_value(value, 1 << 16)
    assert np.array_equal(np.asarray(reader_protocol.decode_value(inline, None), dtype=object),
                          np.asarray(back, dtype=object))


def test_a_pickle_in_a_reply_is_refused_unread():
    stream = io.BytesIO()
    np.save(stream, np.array([print], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="allow_pickle=False"):
        reader_protocol.decode_value({"array": True}, stream.getvalue())
    with pytest.raises(ValueError):
        reader_protocol.decode_value({"array": True}, pickle.dumps([1, 2]))


class FakeSession:
    """Stands for the pipe: answers every call with ``reply`` and ``array_bytes``."""

    def __init__(self, reply, array_bytes=None):
        self.reply, self.array_bytes = reply, array_bytes

    def call(self, message, payload=None, array_limit=0):
        return self.reply, self.array_bytes


STRUCTURE = {"/": {"kind": "group", "members": ["w"], "attributes": []},
             "/w": {"kind": "dataset", "shape": [2, 3], "type": {"number": "<f4"},
                    "attributes": []}}


def npy(array):
    stream = io.BytesIO()
    np.save(stream, array)
    return stream.getvalue()


def test_data_of_another_shape_or_type_than_announced_is_refused():
    for wrong in (np.zeros((3, 2), np.float32), np.zeros((2, 3), np.float64)):
        root = file_view.root(FakeSession({"value": {"array": True}}, npy(wrong)), STRUCTURE)
        with pytest.raises(ReadingFailed, match="data of another shape or type than '/w'"):
            root["w"][()]
    root = file_view.root(FakeSession({"value": {"array": True}},
                                      npy(np.ones((2, 3), np.float32))), STRUCTURE)
    assert root["w"][()].tolist() == [[1.0] * 3] * 2


@pytest.mark.parametrize("objects", [
    [], {"/": {"kind": "dataset"}}, {"/": {"kind": "group", "members": ["x"], "attributes": []}},
    {"/": {"kind": "group", "members": [""], "attributes": []}},  # itself: a loop
    {"/": {"kind": "group", "members": ["w"], "attributes": []},
     "/w": {"kind": "dataset", "shape": [-1], "type": {"number": "<f4"}, "attributes": []}},
    {"/": {"kind": "group", "members": ["w"], "attributes": []},
     "/w": {"kind": "dataset", "shape": [1], "type": {"number": "|O"}, "attributes": []}}])
def test_a_malformed_structure_is_refused(objects):
    with pytest.raises(ReadingFailed, match="malformed structure"):
        file_view.root(FakeSession({}), objects)


def test_a_crash_of_the_reading_process_names_the_signal():
    reader = ReaderProcess()
    session = Session(reader, 30.0)
    data = HEAP_LOOP.read_bytes()
    threading.Timer(1.0, os.kill, (reader.process.pid, signal.SIGSEGV)).start()
    with pytest.raises(ReadingFailed, match=r"crashed reading it \(the reading process got "
                                            r"SIGSEGV\)"):
        session.call({"op": "open", "size": len(data), "cpu_seconds": 30,
                      "memory_bytes": 1 << 30}, data)
    reader.end()


def test_the_cpu_limit_ends_a_loop_nobody_watches():
    reader = ReaderProcess()
    session = Session(reader, 60.0)  # the wall-clock limit is far; the CPU limit is 1 s
    data = HEAP_LOOP.read_bytes()
    with pytest.raises(ReadingFailed, match=r"used up its CPU time limit reading it \(SIGXCPU\)"):
        session.call({"op": "open", "size": len(data), "cpu_seconds": 1,
                      "memory_bytes": 1 << 30}, data)
    assert session.left > 0
    reader.end()


def test_a_read_beyond_the_memory_limit_is_refused(tmp_path):
    path = tmp_path / "zeros.h5"
    with h5py.File(path, "w") as f:  # 512 MiB declared, one compressed chunk written
        f.create_dataset("zeros", shape=(1 << 27,), dtype="float32", chunks=(1 << 16,),
                         compression="gzip")
        f["zeros"][:1 << 16] = 1
    data = path.read_bytes()
    reader = ReaderProcess()
    session = Session(reader, 60.0)
    reply, _ = session.call({"op": "open", "size": len(data), "cpu_seconds": 60,
                             "memory_bytes": 128 << 20}, data)
    root = file_view.root(session, reply["objects"])
    with pytest.raises(ReadingFailed, match="needs more memory than the limit"):
        root["zeros"][()]
    reader.end()


def test_read_timeouts_are_checked(tmp_path, monkeypatch):
    assert resolve_timeout(None, 10 ** 9) == 70.0
    assert resolve_timeout(2, 0) == 2.0
    monkeypatch.setenv("CNN_HDF5_TIMEOUT", "4.5")
    assert resolve_timeout(None, 0) == 4.5
    path = tmp_path / "small.h5"
    small_model().save(path)
    monkeypatch.setenv("CNN_HDF5_TIMEOUT", "soon")
    with pytest.raises(ValueError, match=r"\$CNN_HDF5_TIMEOUT must be a number, got 'soon'"):
        load_model(path)
    with pytest.raises(ValueError, match="read_timeout must be a finite number > 0, got 0"):
        load_model(path, read_timeout=0)


def test_a_file_that_is_not_regular_or_too_large_is_refused(tmp_path, monkeypatch):
    fifo = tmp_path / "pipe.h5"
    os.mkfifo(fifo)
    handle = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # so that opening it does not block
    try:
        with pytest.raises(ModelFileError, match="pipe.h5: not a regular file"):
            load_model(fifo)
    finally:
        os.close(handle)
    path = tmp_path / "small.h5"
    small_model().save(path)
    monkeypatch.setattr(cnn.saving.limits, "MAX_FILE_BYTES", 1000)
    with pytest.raises(ModelFileError, match="holds more than 1000 bytes"):
        load_model(path)


def test_a_model_loads_the_same_through_the_reading_process(tmp_path):
    model = small_model()
    model.fit(np.ones((4, 4), np.float32), np.ones((4, 3), np.float32), epochs=1, verbose=0)
    path = tmp_path / "small.h5"
    cnn.saving.save_model(model, path, metadata={"dataset": "none"})
    loaded = load_model(path)
    for old, new in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(old, new)
    old_state, new_state = model.optimizer.get_state(), loaded.optimizer.get_state()
    assert old_state.keys() == new_state.keys()
    for key in old_state:
        np.testing.assert_array_equal(old_state[key], new_state[key])
    assert cnn.saving.h5_format.read_metadata(path) == {"dataset": "none"}
