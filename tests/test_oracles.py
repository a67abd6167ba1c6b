"""Window geometry (padding, output sizes) and values against an independent oracle.

The slow reference twins in cnn.ops.reference share ``window_output_shape`` with the fast
code, so they cannot catch a wrong padding convention. These tests compare with results
PyTorch computed, padded by PyTorch or by Keras/TensorFlow's documented "same" formula
(tests/fixtures/oracles/windows.json, written by scripts/make_oracle_fixtures.py), and
assert the "same" convention (the extra row at the end) directly on layer outputs.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from cnn.layers import AveragePooling2D, Conv2D, MaxPooling2D
from cnn.ops import conv as conv_ops
from cnn.ops import pooling as pool_ops
from cnn.ops import reference
from cnn.ops.shapes import axis_padding, check_padding, window_output_shape
from helpers import build_layer

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "oracles" / "windows.json"
ORACLE = json.loads(FIXTURE.read_text())
CONV = ORACLE["conv"]
POOL = ORACLE["pool"]
TOL = dict(rtol=1e-11, atol=1e-12)


def arrays(case, *keys):
    return [np.array(case[key], dtype=np.float64) for key in keys]


def padding_argument(spec):
    return spec if isinstance(spec, (str, int)) else [tuple(p) for p in spec]


@pytest.mark.parametrize("case", CONV, ids=[c["name"] for c in CONV])
def test_conv_geometry_matches_oracle(case):
    out_hw, pads = window_output_shape(case["input_hw"], case["kernel"], case["stride"],
                                       check_padding(padding_argument(case["padding"])))
    assert list(out_hw) == case["out_hw"]
    assert [list(p) for p in pads] == case["pads"]


@pytest.mark.parametrize("case", CONV, ids=[c["name"] for c in CONV])
def test_conv_layer_matches_oracle(case):
    x, w, b, y, dy, dx, dw, db = arrays(case, "x", "w", "b", "y", "dy", "dx", "dw", "db")
    layer = Conv2D(w.shape[0], case["kernel"], strides=case["stride"],
                   padding=padding_argument(case["padding"]))
    build_layer(layer, x.shape[1:])
    assert layer.output_shape[1:] == (w.shape[0], *case["out_hw"])
    layer.params["kernel"][...] = w
    layer.params["bias"][...] = b
    layer.needs_input_grad = True
    np.testing.assert_allclose(layer.forward(x, training=True), y, **TOL)
    np.testing.assert_allclose(layer.backward(dy), dx, **TOL)
    np.testing.assert_allclose(layer.grads["kernel"], dw, **TOL)
    np.testing.assert_allclose(layer.grads["bias"], db, **TOL)


@pytest.mark.parametrize("case", CONV, ids=[c["name"] for c in CONV])
def test_conv_kernels_and_reference_match_oracle(case):
    x, w, b, y, dy, dx, dw = arrays(case, "x", "w", "b", "y", "dy", "dx", "dw")
    pads = tuple(tuple(p) for p in case["pads"])
    fast, cache = conv_ops.conv2d_forward(x, w, b, tuple(case["stride"]), pads, keep_columns=True)
    np.testing.assert_allclose(fast, y, **TOL)
    np.testing.assert_allclose(conv_ops.conv2d_backward(dy, cache)[0], dx, **TOL)
    slow = reference.conv2d_reference(x, w, b, case["stride"], pads)
    np.testing.assert_allclose(slow, y, **TOL)
    np.testing.assert_allclose(reference.conv2d_backward_reference(
        dy, x, w, case["stride"], pads)[1], dw, **TOL)


POOL_LAYERS = {"max": MaxPooling2D, "avg": AveragePooling2D}


@pytest.mark.parametrize("case", POOL, ids=[c["name"] for c in POOL])
def test_pool_matches_oracle(case):
    x, y, dy, dx = arrays(case, "x", "y", "dy", "dx")
    pads = tuple(tuple(p) for p in case["pads"])
    fast, cache = pool_ops.pool2d_forward(x, case["pool"], case["stride"], pads, case["mode"])
    np.testing.assert_allclose(fast, y, **TOL)
    np.testing.assert_allclose(pool_ops.pool2d_backward(dy, cache), dx, **TOL)
    if isinstance(case["padding"], str):  # the layers offer valid and same only
        layer = POOL_LAYERS[case["mode"]](case["pool"], strides=case["stride"],
                                          padding=case["padding"])
        build_layer(layer, x.shape[1:])
        assert list(layer.output_shape[2:]) == case["out_hw"]
        np.testing.assert_allclose(layer.forward(x), y, **TOL)
        np.testing.assert_allclose(layer.backward(dy), dx, **TOL)
        _, layer_pads = window_output_shape(case["input_hw"], case["pool"], case["stride"],
                                            case["padding"])
        assert [list(p) for p in layer_pads] == case["pads"]


def test_oracle_covers_the_conventions():
    """The fixture holds every case the issue names (a guard against a thinned fixture)."""
    kinds = {c["padding"] if isinstance(c["padding"], str) else "explicit" for c in CONV}
    assert kinds == {"valid", "same", "full", "explicit"}
    assert any(c["stride"] != [1, 1] and c["padding"] == "same" for c in CONV)
    assert any(sum(c["pads"][0]) % 2 == 1 for c in CONV if c["padding"] == "same")
    assert any(c["ceil_mode"] for c in POOL)
    assert any(c["stride"][0] < c["pool"][0] for c in POOL)  # overlapping windows
    assert {c["mode"] for c in POOL if isinstance(c["padding"], int)} == {"max", "avg"}


@pytest.mark.parametrize("case", ORACLE["dilated_sizes"],
                         ids=lambda c: "n{n}-k{k}-s{stride}-d{dilation}-p{padding}".format(**c))
def test_dilated_output_size_is_that_of_the_effective_kernel(case):
    """A dilated window spans ``d (k - 1) + 1`` cells; PyTorch's sizes follow from that."""
    effective = case["dilation"] * (case["k"] - 1) + 1
    p = case["padding"]
    assert axis_padding(case["n"], effective, case["stride"], (p, p))[2] == case["out"]


# -- "same" puts the extra row at the end, asserted on the layers ---------------------------

def hand_padded_valid(x, kernel, filters_kernel, stride, pad_hw):
    """A valid convolution of x zero-padded by hand with ((top, bottom), (left, right))."""
    padded = np.pad(x, ((0, 0), (0, 0), *pad_hw))
    layer = build_layer(Conv2D(filters_kernel.shape[0], kernel, strides=stride, padding="valid",
                               use_bias=False), padded.shape[1:])
    layer.params["kernel"][...] = filters_kernel
    return layer.forward(padded)


@pytest.mark.parametrize("hw, kernel, stride, pad_hw", [
    ((5, 6), (2, 2), (1, 1), ((0, 1), (0, 1))),   # total 1: the one row goes at the end
    ((5, 5), (4, 4), (1, 1), ((1, 2), (1, 2))),   # total 3: one before, two after
    ((7, 7), (2, 2), (2, 2), ((0, 1), (0, 1))),   # strided, odd input
    ((6, 6), (3, 3), (2, 2), ((0, 1), (0, 1))),
])
def test_same_conv_pads_the_extra_row_at_the_end(hw, kernel, stride, pad_hw):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 2, *hw))
    w = rng.standard_normal((3, 2, *kernel))
    same = build_layer(Conv2D(3, kernel, strides=stride, padding="same", use_bias=False),
                       x.shape[1:])
    same.params["kernel"][...] = w
    expected = hand_padded_valid(x, kernel, w, stride, pad_hw)
    np.testing.assert_allclose(same.forward(x), expected, rtol=1e-12)
    # and not at the front
    front = tuple((after, before) for before, after in pad_hw)
    assert not np.allclose(same.forward(x), hand_padded_valid(x, kernel, w, stride, front))


def test_same_max_pooling_last_window_holds_the_last_row_alone():
    """5 rows, windows of 2, stride 2: rows (0, 1), (2, 3), (4, pad): the pad is at the end."""
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    layer = build_layer(MaxPooling2D(2, padding="same"), (1, 5, 5))
    y = layer.forward(x)
    np.testing.assert_array_equal(y[0, 0, :, -1], [9.0, 19.0, 24.0])
    np.testing.assert_array_equal(y[0, 0, -1], [21.0, 23.0, 24.0])
    avg = build_layer(AveragePooling2D(2, padding="same"), (1, 5, 5)).forward(x)
    assert avg[0, 0, -1, -1] == 24.0  # one real cell, padding not counted
    assert avg[0, 0, 0, -1] == (4.0 + 9.0) / 2


def test_fixture_is_what_the_script_makes():
    """The committed oracle is PyTorch's current answer (run where torch is installed)."""
    pytest.importorskip("torch", reason="PyTorch (not a test dependency) recomputes the oracle")
    pytest.importorskip("scipy.signal")
    script = Path(__file__).resolve().parent.parent / "scripts" / "make_oracle_fixtures.py"
    if not script.is_file():
        pytest.skip(f"{script} is not in this copy of the tests")
    spec = importlib.util.spec_from_file_location("make_oracle_fixtures", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fresh = module.build()
    for family in ("conv", "pool"):
        assert [c["name"] for c in fresh[family]] == [c["name"] for c in ORACLE[family]]
        for new, old in zip(fresh[family], ORACLE[family]):
            for key, value in old.items():
                if isinstance(value, list) and key in ("x", "y", "dx", "dw", "db", "w", "b", "dy"):
                    np.testing.assert_allclose(new[key], value, rtol=1e-13, err_msg=key)
                else:
                    assert new[key] == value, (old["name"], key)
    assert fresh["dilated_sizes"] == ORACLE["dilated_sizes"]
