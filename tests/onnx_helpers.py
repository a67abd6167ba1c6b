"""What the ONNX tests share: building one-layer models, running exported graphs in
onnxruntime, and comparing them with ``model.predict``."""

from __future__ import annotations

import numpy as np
import pytest

import cnn
import cnn.onnx
from cnn.layers import Input
from cnn.models import Sequential

RTOL, ATOL = 1e-4, 1e-5


def one_layer_model(input_shape, *layers, seed=0):
    """``Sequential([Input(input_shape), *layers])`` with seeded weights."""
    cnn.set_seed(seed)
    return Sequential([Input(input_shape), *layers], name="one_layer")


def randomize_buffers(model, seed=0):
    """Give BatchNormalization moving statistics that are not 0 and 1 (and every bias a
    non-zero value), so that a wrong mapping shows."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        names = layer.weight_names()
        weights = layer.get_weights()
        for i, name in enumerate(names):
            if name in ("moving_variance",):
                weights[i] = rng.uniform(0.5, 2.0, weights[i].shape)
            elif name in ("moving_mean", "bias", "beta", "recurrent_bias"):
                weights[i] = rng.normal(0, 0.5, weights[i].shape)
            elif name == "gamma":
                weights[i] = rng.uniform(0.5, 1.5, weights[i].shape)
        layer.set_weights(weights)
    return model


def run_onnx(path_or_proto, x):
    """onnxruntime's output on ``x``; for several inputs give a list and get a list back."""
    onnxruntime = pytest.importorskip("onnxruntime", reason="needs the [onnx] extra")

    source = path_or_proto if isinstance(path_or_proto, str) else path_or_proto.SerializeToString()
    session = onnxruntime.InferenceSession(source, providers=["CPUExecutionProvider"])
    feeds = session.get_inputs()
    arrays = x if isinstance(x, list) else [x]
    outputs = session.run(None, {feed.name: np.asarray(a, dtype=np.float32)
                                 for feed, a in zip(feeds, arrays)})
    return outputs if len(outputs) > 1 or isinstance(x, list) else outputs[0]


def sample_inputs(model, batch=3, seed=1):
    """Random inputs for every model input (an array for a one-input model, else a list)."""
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal((batch, *t.sample_shape)).astype(np.float32)
              for t in model.inputs]
    return arrays[0] if len(arrays) == 1 else arrays


def assert_close(actual, expected, what=""):
    """Arrays, or lists of arrays (several outputs), equal to RTOL / ATOL."""
    if isinstance(expected, list):
        assert len(actual) == len(expected), what
        for a, e in zip(actual, expected):
            np.testing.assert_allclose(a, e, rtol=RTOL, atol=ATOL, err_msg=what)
        return
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL, err_msg=what)


def check_export(model, tmp_path, opset, batch=3, inputs=None):
    """Export, run the full checker, compare onnxruntime with predict at batch sizes ``batch``
    and 1; ``inputs(size)`` makes the inputs (default: ``sample_inputs``). Returns the proto."""
    onnx = pytest.importorskip("onnx", reason="needs the [onnx] extra")
    path = tmp_path / f"model_{opset}.onnx"
    cnn.onnx.export(model, path, opset=opset)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == opset
    for size in (batch, 1):
        x = sample_inputs(model, size) if inputs is None else inputs(size)
        actual, expected = run_onnx(str(path), x), model.predict(x)
        if isinstance(x, list) and not isinstance(expected, list):  # several inputs, one output
            actual = actual[0]
        assert_close(actual, expected, f"opset {opset}, batch {size}")
    return proto
