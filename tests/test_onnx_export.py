"""ONNX export: every layer type alone, every example network, the seed's model files, at
opsets 13 and 17 (20 for the native Gelu), checked with onnx's full checker and compared with
``model.predict`` in onnxruntime (1e-4 relative, 1e-5 absolute)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="ONNX export needs the [onnx] extra (onnx)")
pytest.importorskip("onnxruntime", reason="the export tests run graphs in onnxruntime")

import cnn.onnx  # noqa: E402
from cnn import networks  # noqa: E402
from cnn.layers import (GRU, LSTM, Activation, AveragePooling2D, BatchNormalization,  # noqa: E402
                        Conv2D, Dense, Dropout, Flatten, GlobalAveragePooling2D, MaxPooling2D,
                        Output, Recurrent, Reshape, SimpleRNN, TimeDistributed, ZeroPadding2D)
from cnn.models import Model, load_model  # noqa: E402
from cnn.onnx import OnnxExportError  # noqa: E402
from helpers import seed_dir  # noqa: E402
from onnx_helpers import (assert_close, check_export, one_layer_model,  # noqa: E402
                          randomize_buffers, run_onnx, sample_inputs)

OPSETS = (13, 17)
ROOT = Path(__file__).resolve().parents[1]
ACTIVATIONS = ["linear", "relu", "sigmoid", "tanh", "softmax", "leaky_relu", "leaky_relu(0.2)",
               "elu", "elu(0.5)", "gelu", "softplus", "silu"]

IMAGE = (3, 9, 8)
LAYERS = {
    "conv_valid": (IMAGE, lambda: Conv2D(4, 3)),
    "conv_same_odd_total": (IMAGE, lambda: Conv2D(4, (2, 3), strides=(2, 1), padding="same")),
    "conv_same_stride2": (IMAGE, lambda: Conv2D(5, 3, strides=2, padding="same")),
    "conv_full": (IMAGE, lambda: Conv2D(2, (3, 2), padding="full", activation="relu")),
    "conv_explicit": (IMAGE, lambda: Conv2D(3, 3, strides=(1, 2), padding=((2, 0), (1, 3)))),
    "conv_no_bias": (IMAGE, lambda: Conv2D(3, (1, 4), use_bias=False)),
    "max_pool": (IMAGE, lambda: MaxPooling2D(2)),
    "max_pool_overlapping": (IMAGE, lambda: MaxPooling2D(3, strides=1)),
    "max_pool_same": (IMAGE, lambda: MaxPooling2D((3, 2), strides=2, padding="same")),
    "avg_pool": (IMAGE, lambda: AveragePooling2D(2)),
    "avg_pool_overlapping": (IMAGE, lambda: AveragePooling2D((2, 3), strides=1)),
    "avg_pool_same": (IMAGE, lambda: AveragePooling2D(3, strides=2, padding="same")),
    "flatten": (IMAGE, lambda: Flatten()),
    "reshape": (IMAGE, lambda: Reshape((-1, 12))),
    "zero_padding": (IMAGE, lambda: ZeroPadding2D(((1, 2), (0, 3)))),
    "global_average": (IMAGE, lambda: GlobalAveragePooling2D()),
    "global_average_keepdims": (IMAGE, lambda: GlobalAveragePooling2D(keepdims=True)),
    "dense": ((7,), lambda: Dense(5, activation="tanh")),
    "dense_no_bias": ((7,), lambda: Dense(5, use_bias=False)),
    "dense_sequence": ((4, 7), lambda: Dense(5, activation="relu")),
    "output": ((7,), lambda: Output(4)),
    "dropout": ((7,), lambda: Dropout(0.4)),
    "batchnorm_images": (IMAGE, lambda: BatchNormalization()),
    "batchnorm_features": ((7,), lambda: BatchNormalization(epsilon=1e-5)),
    "batchnorm_last_axis": ((4, 7), lambda: BatchNormalization(center=False)),
    "batchnorm_height_axis": (IMAGE, lambda: BatchNormalization(axis=2, scale=False)),
    "time_distributed_conv": ((4, *IMAGE), lambda: TimeDistributed(Conv2D(2, 3))),
    "time_distributed_dense": ((4, 6), lambda: TimeDistributed(Dense(3, activation="elu"))),
    "time_distributed_flatten": ((4, 2, 3), lambda: TimeDistributed(Flatten())),
}

SEQUENCE = (6, 3)
RECURRENT = {
    "simple_rnn": lambda **kw: SimpleRNN(4, **kw),
    "simple_rnn_relu": lambda **kw: SimpleRNN(4, activation="relu", **kw),
    "simple_rnn_leaky": lambda **kw: SimpleRNN(4, activation="leaky_relu(0.3)", **kw),
    "lstm": lambda **kw: LSTM(4, **kw),
    "lstm_elu_hard": lambda **kw: LSTM(4, activation="elu(0.7)", recurrent_activation="sigmoid",
                                       **kw),
    "gru": lambda **kw: GRU(4, **kw),
    "gru_reset_before": lambda **kw: GRU(4, reset_after=False, **kw),
    "gru_no_bias": lambda **kw: GRU(4, use_bias=False, **kw),
    "gru_linear_leaky": lambda **kw: GRU(4, activation="linear",
                                         recurrent_activation="leaky_relu(0.2)", **kw),
}


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("case", sorted(LAYERS))
def test_every_layer_matches_predict(case, opset, tmp_path):
    input_shape, make = LAYERS[case]
    model = randomize_buffers(one_layer_model(input_shape, make()))
    check_export(model, tmp_path, opset)


@pytest.mark.parametrize("opset", (13, 17, 20))
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_activation_matches_predict(activation, opset, tmp_path):
    model = one_layer_model((2, 5, 5), Conv2D(3, 2, activation=activation))
    randomize_buffers(model)
    check_export(model, tmp_path, opset)
    standalone = one_layer_model((6,), Activation(activation))
    check_export(standalone, tmp_path, opset)


def test_gelu_is_the_native_op_from_opset_20_and_erf_below(tmp_path):
    model = one_layer_model((3,), Activation("gelu"))
    ops_13 = [node.op_type for node in cnn.onnx.to_onnx(model, 13).graph.node]
    ops_20 = [node.op_type for node in cnn.onnx.to_onnx(model, 20).graph.node]
    assert ops_13 == ["Div", "Erf", "Add", "Mul", "Mul"]
    assert ops_20 == ["Gelu"]


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("case", sorted(RECURRENT))
def test_recurrent_layers_match_predict(case, return_sequences, go_backwards, opset, tmp_path):
    layer = RECURRENT[case](return_sequences=return_sequences, go_backwards=go_backwards)
    model = randomize_buffers(one_layer_model(SEQUENCE, layer))
    check_export(model, tmp_path, opset)


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("cell", [SimpleRNN, LSTM, GRU])
def test_initial_states_are_broadcast_over_the_batch(cell, opset, tmp_path):
    layer = cell(4, return_sequences=True)
    model = randomize_buffers(one_layer_model(SEQUENCE, layer))
    rng = np.random.default_rng(3)
    layer.set_initial_state([rng.normal(size=4) for _ in layer.state_names])
    check_export(model, tmp_path, opset)


def test_time_distributed_recurrent_stack(tmp_path):
    model = one_layer_model((5, 2, 4, 4), TimeDistributed(Conv2D(3, 3, activation="relu")),
                            TimeDistributed(Flatten()), LSTM(6), Dense(2))
    randomize_buffers(model)
    for opset in OPSETS:
        check_export(model, tmp_path, opset)


def test_names_batch_axis_and_readable_nodes(tmp_path):
    model = networks.lenet()
    proto = cnn.onnx.export(model, tmp_path / "lenet.onnx")
    graph = proto.graph
    assert [i.name for i in graph.input] == [model.input.name]
    assert [o.name for o in graph.output] == [model.layers[-1].name]
    batch = graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param == "batch" and not batch.HasField("dim_value")
    assert [n.op_type for n in graph.node] == ["Conv", "Relu", "MaxPool", "Conv", "Relu",
                                               "MaxPool", "Flatten", "Gemm", "Relu", "Gemm",
                                               "Softmax"]
    assert graph.node[0].name == "conv2d/Conv"
    kernel = next(t for t in graph.initializer if t.name == "conv2d/kernel")
    np.testing.assert_array_equal(onnx.numpy_helper.to_array(kernel),
                                  model.layers[0].get_weights()[0])


def test_same_padding_puts_the_odd_extra_at_the_end():
    model = one_layer_model((1, 6, 6), Conv2D(1, 2, padding="same"))
    (conv,) = [n for n in cnn.onnx.to_onnx(model).graph.node if n.op_type == "Conv"]
    pads = next(a for a in conv.attribute if a.name == "pads")
    assert list(pads.ints) == [0, 0, 1, 1]


# -- example networks and the seed's files ----------------------------------------------------

def example_module(name):
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(ROOT / "examples"))


def example_networks():
    """Untrained networks with the architectures of examples/ (built by their own code)."""
    bn = example_module("fashion_mnist_bn")
    convnet = example_module("fashion_mnist_convnet")
    poi_lstm = example_module("poi_lstm")
    return {
        "seed (seed_readme_example, fashion_mnist_seed)": networks.seed(),
        "lenet": networks.lenet(),
        "mlp": networks.mlp(),
        "fashion_mnist_bn": bn.build_model(1e-3),
        "fashion_mnist_convnet": convnet.build_model(100),
        "poi_lstm lstm": poi_lstm.build("lstm", 30, 32, 5e-3),
        "poi_lstm gru": poi_lstm.build("gru", 30, 32, 5e-3),
    }


@pytest.mark.parametrize("opset", OPSETS)
def test_every_example_network_matches_predict(opset, tmp_path):
    for name, model in example_networks().items():
        randomize_buffers(model)
        check_export(model, tmp_path, opset, batch=4)


def test_the_seeds_recurrent_example_cannot_be_exported(tmp_path):
    model = example_module("poi_rnn").build(0.5)
    with pytest.raises(OnnxExportError, match='"recurrent" \\(Recurrent\\).*state'):
        cnn.onnx.export(model, tmp_path / "poi.onnx")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["standard_MNIST_cnn.h5", "test_cnn.h5", "MNIST_cnn.h5"])
def test_seed_model_files_load_and_export(name, tmp_path):
    model = load_model(seed_dir() / "models" / name)
    for opset in OPSETS:
        check_export(model, tmp_path, opset)


@pytest.mark.parametrize("name", ["standard_POI_rnn.h5", "special_POI_rnn.h5"])
def test_seed_recurrent_files_refuse_with_the_reason(name, tmp_path):
    model = load_model(seed_dir() / "models" / name)
    with pytest.raises(OnnxExportError, match="Recurrent.*carries its state"):
        cnn.onnx.export(model, tmp_path / "poi.onnx")


# -- what cannot be exported: an error naming the layer, and no file --------------------------

def unexportable_models():
    per_sample = LSTM(3)
    model = one_layer_model(SEQUENCE, per_sample)
    per_sample.set_initial_state([np.ones((2, 3)), np.ones((2, 3))])
    return [
        (one_layer_model(SEQUENCE, LSTM(3, stateful=True, name="carry")), '"carry".*stateful'),
        (one_layer_model(SEQUENCE, GRU(3, activation="silu", name="g")), '"g".*silu'),
        (model, "one row per sample"),
        (Model(None), "no layers"),
    ]


@pytest.mark.parametrize("index", range(4))
def test_unexportable_models_raise_and_write_nothing(index, tmp_path):
    model, message = unexportable_models()[index]
    target = tmp_path / "model.onnx"
    target.write_bytes(b"previous")
    with pytest.raises(OnnxExportError, match=message):
        cnn.onnx.export(model, target)
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


@pytest.mark.parametrize("opset", [12, 99, "17"])
def test_unsupported_opsets_are_refused(opset, tmp_path):
    with pytest.raises(OnnxExportError, match="opset"):
        cnn.onnx.export(networks.seed(), tmp_path / "m.onnx", opset=opset)
    assert not list(tmp_path.iterdir())


# -- the command line -------------------------------------------------------------------------

def test_cnn_export_command_writes_a_checked_file(tmp_path, capsys):
    from cnn.cli import main

    model_path = seed_dir() / "models" / "test_cnn.h5"
    target = tmp_path / "seed.onnx"
    assert main(["export", str(model_path), str(target), "--opset", "13"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {target} (ONNX opset 13" in out and "input (batch, 1, 28, 28)" in out
    model = load_model(model_path)
    x = sample_inputs(model, 4)
    assert_close(run_onnx(str(target), x), model.predict(x))


def test_cnn_export_command_reports_unexportable_models_in_one_line(tmp_path, capsys):
    from cnn.cli import main

    target = tmp_path / "poi.onnx"
    assert main(["export", str(seed_dir() / "models" / "standard_POI_rnn.h5"), str(target)]) == 2
    assert "Recurrent" in capsys.readouterr().err and not target.exists()
    assert main(["export", str(seed_dir() / "models" / "test_cnn.h5"), str(target),
                 "--opset", "12"]) == 2
    assert "opset 12 is not supported" in capsys.readouterr().err
