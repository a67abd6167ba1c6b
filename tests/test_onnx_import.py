"""ONNX import: what torch.onnx.export wrote (tests/fixtures/onnx, made by
scripts/make_onnx_fixtures.py from networks trained briefly in PyTorch) predicts what PyTorch
predicted; what cnn.onnx.export writes imports and round-trips (export -> import -> export
gives the same ops and weights); everything else is refused with an error naming the node."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="ONNX import needs the [onnx] extra (onnx)")
pytest.importorskip("onnxruntime", reason="the round trips run graphs in onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import cnn.onnx  # noqa: E402
from cnn.layers import GRU, LSTM, Conv2D, Dense, Embedding, Flatten, Input  # noqa: E402
from cnn.models import Sequential, load_model  # noqa: E402
from cnn.onnx import OnnxImportError  # noqa: E402
from onnx_helpers import assert_close, one_layer_model, randomize_buffers, run_onnx  # noqa: E402
from onnx_helpers import sample_inputs  # noqa: E402
from test_onnx_export import (ACTIVATIONS, LAYERS, RECURRENT, SEQUENCE,  # noqa: E402
                              example_networks)
from test_onnx_export_layers import LAYERS as NEW_LAYERS  # noqa: E402
from test_onnx_export_layers import randomize_all  # noqa: E402

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "onnx"
TORCH_FIXTURES = sorted(p.stem for p in FIXTURES.glob("*.onnx"))
EXPECTED_LAYERS = {
    "torch_convnet": ["Conv2D", "MaxPooling2D", "Conv2D", "GlobalAveragePooling2D", "Dense",
                      "BatchNormalization", "Activation", "Dense"],
    "torch_pooling": ["ZeroPadding2D", "Conv2D", "ZeroPadding2D", "AveragePooling2D",
                      "MaxPooling2D", "GlobalAveragePooling2D", "Dense"],
    "torch_activations": ["Reshape"] + ["Dense"] * 7,
    "torch_lstm": ["LSTM", "Dense"],
    "torch_gru_sequences": ["GRU", "Dense"],
    "torch_residual": ["Conv2D", "Conv2D", "Conv2D", "Add", "Conv2D", "Concatenate",
                       "GlobalAveragePooling2D", "Dense"],
    "torch_conv1d": ["Conv1D", "Conv1D", "Flatten", "Dense"],
    "torch_image_ops": ["Conv2D", "PReLU", "DepthwiseConv2D", "MaxPooling2D", "Conv2DTranspose",
                        "UpSampling2D", "UpSampling2D", "Softmax", "GlobalAveragePooling2D",
                        "Dense"],
    "torch_embedding": ["Embedding", "LayerNormalization", "Flatten", "Dense"],
}


def fixture(stem):
    data = np.load(FIXTURES / f"{stem}.npz")
    return FIXTURES / f"{stem}.onnx", data["x"], data["y"]


# -- what torch.onnx.export wrote ---------------------------------------------------------------

def test_every_fixture_family_is_there():
    assert {stem.rsplit("_opset", 1)[0] for stem in TORCH_FIXTURES} == set(EXPECTED_LAYERS)


@pytest.mark.parametrize("stem", TORCH_FIXTURES)
def test_torch_exports_predict_what_pytorch_predicted(stem):
    path, x, expected = fixture(stem)
    model = cnn.onnx.load(path)
    assert_close(model.predict(x), expected, stem)
    family = stem.rsplit("_opset", 1)[0]
    assert [type(layer).__name__ for layer in model.layers] == EXPECTED_LAYERS[family]


def test_torch_layer_options_import():
    conv1d = cnn.onnx.load(fixture("torch_conv1d_opset13")[0]).layers
    assert [(layer.padding, layer.dilation_rate, layer.strides) for layer in conv1d[:2]] == [
        ("same", (2,), (1,)), ("valid", (1,), (2,))]
    assert [layer.activation.get_config() for layer in conv1d[:2]] == ["leaky_relu(0.1)", "elu"]
    image = cnn.onnx.load(fixture("torch_image_ops_opset13")[0]).layers
    assert image[1].shared_axes == [2, 3] and image[2].depth_multiplier == 2
    assert (image[4].padding, image[4].activation.get_config()) == ("same", "tanh")
    assert [(layer.interpolation, layer.size) for layer in image[5:7]] == [
        ("bilinear", (2, 2)), ("nearest", (1, 2))]
    assert image[7].axis == 1


def test_torch_recurrent_outputs_decide_return_sequences():
    lstm = cnn.onnx.load(fixture("torch_lstm_opset13")[0]).layers[0]
    gru = cnn.onnx.load(fixture("torch_gru_sequences_opset13")[0]).layers[0]
    assert not lstm.return_sequences and gru.return_sequences and gru.reset_after


def test_activations_become_the_layers_activations():
    model = cnn.onnx.load(fixture("torch_activations_opset17")[0])
    names = [layer.activation.get_config() for layer in model.layers[1:]]
    assert names == ["tanh", "silu", "elu", "leaky_relu(0.2)", "softplus", "sigmoid", "linear"]
    convnet = cnn.onnx.load(fixture("torch_convnet_opset17")[0])
    assert [layer.name for layer in convnet.layers[:3]] == ["conv1", "pool", "conv2"]
    assert convnet.layers[0].activation.get_config() == "relu"
    assert convnet.layers[6].activation.get_config() == "gelu"


def test_imported_model_summarises_evaluates_fine_tunes_and_saves(tmp_path, capsys):
    path, x, expected = fixture("torch_convnet_opset13")
    model = cnn.onnx.load(path)
    model.summary()
    assert "conv1 (Conv2D)" in capsys.readouterr().out
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    labels = expected.argmax(axis=1)
    results = model.evaluate(x, labels, return_dict=True)
    assert results["accuracy"] == 1.0 and np.isfinite(results["loss"])
    model.save(tmp_path / "imported.h5")
    reloaded = load_model(tmp_path / "imported.h5")
    assert_close(reloaded.predict(x), expected)
    before = [w.copy() for w in model.get_weights()]
    model.fit(x, labels, epochs=1, batch_size=8, verbose=0)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


@pytest.mark.parametrize("stem", TORCH_FIXTURES)
def test_torch_exports_round_trip_through_cnn(stem, tmp_path):
    path, x, expected = fixture(stem)
    model = cnn.onnx.load(path)
    opset = min(int(stem.rsplit("_opset", 1)[1]), 17)  # torch's LayerNorm op needs 17
    first = cnn.onnx.export(model, tmp_path / "cnn.onnx", opset=opset)
    assert_close(run_onnx(str(tmp_path / "cnn.onnx"), x), expected, stem)
    assert_same_graph(first, cnn.onnx.to_onnx(cnn.onnx.load(tmp_path / "cnn.onnx"), opset))


# -- export -> import -> export ---------------------------------------------------------------

def assert_same_graph(first, second):
    """The same ops in the same order, and the same initializers (names and values)."""
    assert [n.op_type for n in first.graph.node] == [n.op_type for n in second.graph.node]
    assert [t.name for t in first.graph.initializer] == [t.name for t in second.graph.initializer]
    for a, b in zip(first.graph.initializer, second.graph.initializer):
        np.testing.assert_array_equal(numpy_helper.to_array(a), numpy_helper.to_array(b), a.name)


def round_trip_models():
    from cnn.layers import Activation

    models = {name: (shape, make) for name, (shape, make) in LAYERS.items()}
    for name, make in RECURRENT.items():
        for flags in ((False, False), (True, False), (False, True), (True, True)):
            models[f"{name}{flags}"] = (SEQUENCE, lambda make=make, f=flags: make(
                return_sequences=f[0], go_backwards=f[1]))
    for activation in ACTIVATIONS:
        models[f"conv_{activation}"] = ((2, 5, 5), lambda a=activation: Conv2D(3, 2, activation=a))
        models[f"activation_{activation}"] = ((6,), lambda a=activation: Activation(a))
    return models


ROUND_TRIPS = round_trip_models()


@pytest.mark.parametrize("opset", (13, 17))
@pytest.mark.parametrize("case", sorted(ROUND_TRIPS))
def test_export_import_export_round_trips(case, opset, tmp_path):
    shape, make = ROUND_TRIPS[case]
    check_round_trip(randomize_buffers(one_layer_model(shape, make())), opset, tmp_path)


def check_round_trip(model, opset, tmp_path):
    first = cnn.onnx.export(model, tmp_path / "first.onnx", opset=opset)
    imported = cnn.onnx.load(tmp_path / "first.onnx")
    x = sample_inputs(model)
    assert_close(imported.predict(x), model.predict(x))
    assert_same_graph(first, cnn.onnx.to_onnx(imported, opset))
    return imported


def test_gelu_round_trips_at_opset_20(tmp_path):
    from cnn.layers import Activation

    imported = check_round_trip(one_layer_model((5,), Dense(4, activation="gelu"),
                                                Activation("gelu")), 20, tmp_path)
    assert [layer.activation.get_config() for layer in imported.layers] == ["gelu", "gelu"]


@pytest.mark.parametrize("opset", (13, 17))
def test_example_networks_round_trip(opset, tmp_path):
    for name, model in example_networks().items():
        imported = check_round_trip(randomize_buffers(model), opset, tmp_path)
        assert [type(a).__name__ for a in imported.layers] == [
            "Dense" if type(b).__name__ == "Output" else type(b).__name__ for b in model.layers]


def test_initial_states_round_trip(tmp_path):
    for cell in (LSTM, GRU):
        layer = cell(4, return_sequences=True)
        model = randomize_buffers(one_layer_model(SEQUENCE, layer))
        layer.set_initial_state([np.full(4, 0.5 + k) for k, _ in enumerate(layer.state_names)])
        imported = check_round_trip(model, 13, tmp_path)
        for got, want in zip(imported.layers[0].initial_state, layer.initial_state):
            np.testing.assert_allclose(np.asarray(got).reshape(-1), want)


# -- what is refused --------------------------------------------------------------------------

def write_graph(path, nodes, inputs, outputs, initializers=(), opset=13):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.save_model(model, str(path))
    return path


def float_input(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def tensor(name, array):
    return numpy_helper.from_array(np.asarray(array, dtype=np.float32), name)


def test_an_unsupported_op_names_the_op_and_the_node(tmp_path):
    path = write_graph(tmp_path / "m.onnx", [helper.make_node("LogSoftmax", ["x"], ["y"],
                                                               name="act/LogSoftmax")],
                       [float_input("x", ["N", 4])], [float_input("y", ["N", 4])])
    message = "node 'act/LogSoftmax' \\(LogSoftmax\\).*'LogSoftmax' is not supported"
    with pytest.raises(OnnxImportError, match=message):
        cnn.onnx.load(path)


def refused_graphs():
    """(name, nodes, inputs, output shape, initializers, expected message)."""
    x = float_input("x", ["N", 2, 6, 6])
    w2 = tensor("w2", np.ones((4, 2, 3, 3)))
    seq = float_input("x", ["N", 5, 3])
    lstm_w = tensor("W", np.ones((2, 16, 3)))
    lstm_r = tensor("R", np.ones((2, 16, 4)))
    return [
        ("grouped conv", [helper.make_node("Conv", ["x4", "w2"], ["y"], name="c", group=2)],
         [float_input("x4", ["N", 4, 6, 6])], ["N", 4, 4, 4], [w2], "grouped convolutions"),
        ("dilated pooling", [helper.make_node("MaxPool", ["x"], ["y"], name="p",
                                              kernel_shape=[2, 2], dilations=[2, 2])],
         [x], ["N", 2, 4, 4], [], "dilated"),
        ("ceil mode", [helper.make_node("MaxPool", ["x"], ["y"], name="p", kernel_shape=[2, 2],
                                        strides=[2, 2], ceil_mode=1)],
         [x], ["N", 2, 3, 3], [], "ceil_mode"),
        ("asymmetric max pads", [helper.make_node("MaxPool", ["x"], ["y"], name="p",
                                                  kernel_shape=[3, 3], pads=[2, 0, 0, 0])],
         [x], ["N", 2, 6, 4], [], "neither 'valid' nor Keras's 'same'"),
        ("broadcasting merge", [helper.make_node("ReduceMean", ["x"], ["m"], name="r",
                                                 axes=[2, 3], keepdims=1),
                                helper.make_node("Add", ["m", "x"], ["y"], name="add")],
         [x], ["N", 2, 6, 6], [], "no broadcasting"),
        ("scale by constant", [helper.make_node("Mul", ["x", "s"], ["y"], name="m")],
         [x], ["N", 2, 6, 6], [tensor("s", 2.0)], "only as the bias"),
        ("bidirectional", [helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0, 2]),
                           helper.make_node("LSTM", ["t", "W", "R"], ["", "h"], name="l",
                                            hidden_size=4, direction="bidirectional")],
         [seq], [2, "N", 4], [lstm_w, lstm_r], "direction 'bidirectional'"),
        ("batch-major without layout", [helper.make_node(
            "LSTM", ["x", "W1", "R1"], ["", "h"], name="l", hidden_size=4)],
         [seq], [1, "N", 4],
         [tensor("W1", np.ones((1, 16, 3))), tensor("R1", np.ones((1, 16, 4)))],
         "time-major"),
        ("huge zeros", [helper.make_node("ConstantOfShape", ["shape"], ["z"], name="z"),
                        helper.make_node("Add", ["x", "z"], ["y"], name="a")],
         [x], ["N", 2, 6, 6],
         [numpy_helper.from_array(np.array([1 << 20, 1 << 20], np.int64), "shape")], "limit"),
    ]


@pytest.mark.parametrize("index", range(9))
def test_graphs_without_a_cnn_equivalent_are_refused(index, tmp_path):
    name, nodes, inputs, output_shape, initializers, message = refused_graphs()[index]
    path = write_graph(tmp_path / "m.onnx", nodes, inputs, [float_input("y", output_shape)]
                       if "h" not in nodes[-1].output else [float_input("h", output_shape)],
                       initializers)
    with pytest.raises(OnnxImportError, match=message):
        cnn.onnx.load(path)


def test_reading_the_lstm_cell_state_is_refused(tmp_path):
    seq = float_input("x", ["N", 5, 3])
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0, 2]),
             helper.make_node("LSTM", ["t", "W", "R"], ["", "", "c"], name="l", hidden_size=4),
             helper.make_node("Squeeze", ["c", "axes"], ["y"], name="s")]
    inits = [tensor("W", np.ones((1, 16, 3))), tensor("R", np.ones((1, 16, 4))),
             numpy_helper.from_array(np.array([0], np.int64), "axes")]
    path = write_graph(tmp_path / "m.onnx", nodes, [seq], [float_input("y", ["N", 4])], inits)
    with pytest.raises(OnnxImportError, match="cell state"):
        cnn.onnx.load(path)


def test_external_data_is_refused_without_reading_it(tmp_path):
    model = Sequential([Input((40,)), Dense(300)])
    proto = cnn.onnx.to_onnx(model)
    onnx.save_model(proto, str(tmp_path / "m.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    (tmp_path / "weights.bin").unlink()  # reading it would fail differently
    with pytest.raises(OnnxImportError, match="external file"):
        cnn.onnx.load(tmp_path / "m.onnx")


def test_files_too_large_not_onnx_or_too_old_are_refused(tmp_path):
    cnn.onnx.export(Sequential([Input((4,)), Dense(3)]), tmp_path / "m.onnx")
    with pytest.raises(OnnxImportError, match="limit of 100 bytes"):
        cnn.onnx.load(tmp_path / "m.onnx", max_bytes=100)
    (tmp_path / "junk.onnx").write_bytes(b"\x00\xffnot a model at all" * 10)
    with pytest.raises(OnnxImportError, match="not an ONNX model"):
        cnn.onnx.load(tmp_path / "junk.onnx")
    old = write_graph(tmp_path / "old.onnx", [helper.make_node("Relu", ["x"], ["y"])],
                      [float_input("x", ["N", 4])], [float_input("y", ["N", 4])], opset=12)
    with pytest.raises(OnnxImportError, match="opset 12 is older than 13"):
        cnn.onnx.load(old)
    with pytest.raises(FileNotFoundError):
        cnn.onnx.load(tmp_path / "missing.onnx")


def test_skip_connections_and_two_inputs_import_as_functional_models(tmp_path):
    nodes = [helper.make_node("Relu", ["a"], ["r"], name="act/Relu"),
             helper.make_node("Add", ["r", "a"], ["s"], name="skip/Add"),
             helper.make_node("Concat", ["s", "b"], ["y"], name="join/Concat", axis=1)]
    path = write_graph(tmp_path / "m.onnx", nodes, [float_input("a", ["N", 4]),
                                                    float_input("b", ["N", 3])],
                       [float_input("y", ["N", 7])])
    model = cnn.onnx.load(path)
    assert [type(layer).__name__ for layer in model.layers] == ["Activation", "Add",
                                                                "Concatenate"]
    assert [layer.name for layer in model.layers] == ["act", "skip", "join"]
    a = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)
    b = np.ones((2, 3), np.float32)
    np.testing.assert_allclose(model.predict([a, b]),
                               np.concatenate([np.maximum(a, 0) + a, b], axis=1))


def test_global_max_pool_imports_and_folds_the_flatten_after_it(tmp_path):
    x = float_input("x", ["N", 2, 5, 4])
    path = write_graph(tmp_path / "m.onnx", [
        helper.make_node("GlobalMaxPool", ["x"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["y"], name="flat")], [x],
        [float_input("y", ["N", 2])])
    model = cnn.onnx.load(path)
    assert [(type(a).__name__, a.keepdims) for a in model.layers] == [("GlobalMaxPooling2D",
                                                                       False)]
    data = np.random.default_rng(0).random((3, 2, 5, 4)).astype(np.float32)
    assert_close(model.predict(data), data.max(axis=(2, 3)))


def test_flatten_after_global_pooling_folds_into_it(tmp_path):
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["g"], name="gap/GlobalAveragePool"),
             helper.make_node("Flatten", ["g"], ["y"], name="gap/Flatten")]
    path = write_graph(tmp_path / "m.onnx", nodes, [float_input("x", ["N", 3, 4, 4])],
                       [float_input("y", ["N", 3])])
    model = cnn.onnx.load(path)
    assert [type(layer).__name__ for layer in model.layers] == ["GlobalAveragePooling2D"]
    assert not model.layers[0].keepdims and model.output_shape == (None, 3)
    assert [layer.name for layer in Sequential([Input((2,)), Flatten()]).layers] == ["flatten"]


def test_a_tensor_that_does_not_fill_its_shape_is_refused(tmp_path):
    weight = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[1000, 1000],
                         raw_data=b"\x00" * 16)  # declares 4 MB, holds 16 bytes
    path = write_graph(tmp_path / "m.onnx", [helper.make_node("MatMul", ["x", "w"], ["y"])],
                       [float_input("x", ["N", 1000])], [float_input("y", ["N", 1000])],
                       [weight])
    with pytest.raises(OnnxImportError, match=r"\bw\b.*(too small|malformed)"):
        cnn.onnx.load(path)


def test_time_distributed_layers_import_with_their_names(tmp_path):
    from cnn.layers import TimeDistributed

    model = one_layer_model((4, 2, 5, 5), TimeDistributed(Conv2D(3, 3, activation="relu")),
                            TimeDistributed(Flatten()))
    imported = check_round_trip(randomize_buffers(model), 13, tmp_path)
    assert [type(layer.layer).__name__ for layer in imported.layers] == ["Conv2D", "Flatten"]
    assert [layer.name for layer in imported.layers] == [layer.name for layer in model.layers]
    assert imported.layers[0].layer.activation.get_config() == "relu"


def functional_model():
    """Two inputs, merge layers of every kind, a shared layer and three outputs."""
    from cnn.layers import (Add, Average, Concatenate, Maximum, MaxPooling2D, Multiply,
                            Output, Subtract)
    from cnn.models import Model

    image, extra = Input((3, 8, 8), name="image"), Input((5,), name="extra")
    conv = Conv2D(4, 3, padding="same", activation="relu")(image)
    residual = Add()([conv, Conv2D(4, 3, padding="same")(conv)])
    flat = Flatten()(MaxPooling2D(2)(residual))
    side = Dense(16, activation="tanh")(extra)
    joined = Concatenate()([Dense(16)(flat), side, Multiply()([side, side, side])])
    best = Maximum()([Dense(8)(joined), Dense(8)(joined)])
    mean = Average()([best, Subtract()([best, Dense(8)(joined)])])
    shared = Dense(8, name="shared")
    outputs = [Output(3)(mean), Dense(2)(Add()([joined, joined, joined])),
               Add()([shared(joined), shared(joined)])]
    return Model([image, extra], outputs, name="functional")


@pytest.mark.parametrize("opset", (13, 17))
def test_functional_models_export_import_and_round_trip(opset, tmp_path):
    model = functional_model()
    first = cnn.onnx.export(model, tmp_path / "f.onnx", opset=opset)
    assert [i.name for i in first.graph.input] == ["image", "extra"]
    assert len(first.graph.output) == 3
    # the shared layer's weights are stored once and read by the nodes of both calls
    shared = [i.name for i in first.graph.initializer if i.name.startswith("shared/")]
    assert shared == ["shared/kernel", "shared/bias"]
    assert sum("shared/kernel" in n.input for n in first.graph.node) == 2
    x = sample_inputs(model, 4)
    assert_close(run_onnx(str(tmp_path / "f.onnx"), x), model.predict(x))
    imported = cnn.onnx.load(tmp_path / "f.onnx")
    assert_close(imported.predict(x), model.predict(x))
    # the shared layer comes back as one layer called twice, with the original's weights
    assert [layer.name for layer in imported.layers].count("shared") == 1
    assert len(imported.get_weights()) == len(model.get_weights())
    second = cnn.onnx.to_onnx(imported, opset)
    assert [n.op_type for n in first.graph.node] == [n.op_type for n in second.graph.node]
    assert len(first.graph.initializer) == len(second.graph.initializer)
    for a, b in zip(first.graph.initializer, second.graph.initializer):
        np.testing.assert_array_equal(numpy_helper.to_array(a), numpy_helper.to_array(b))


def test_graphs_above_the_node_limit_are_refused(tmp_path, monkeypatch):
    from cnn.onnx import reader

    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Relu", ["r"], ["y"])]
    path = write_graph(tmp_path / "m.onnx", nodes, [float_input("x", ["N", 4])],
                       [float_input("y", ["N", 4])])
    assert len(cnn.onnx.load(path).layers) == 2
    monkeypatch.setattr(reader, "MAX_NODES", 1)
    with pytest.raises(OnnxImportError, match="2 nodes .* exceed the limits"):
        cnn.onnx.load(path)


# -- the layers of issue #15 that import --------------------------------------------------------

NEW_ROUND_TRIPS = ["conv1d_channels_first", "conv2d_dilated", "depthwise", "depthwise_dilated",
                   "conv_transpose_valid", "conv_transpose_same_stride",
                   "conv_transpose_stride_gt_kernel", "conv_transpose_output_padding",
                   "upsampling_nearest", "upsampling_bilinear", "softmax_channels",
                   "prelu_shared", "prelu_full", "leaky_relu", "elu", "relu", "global_max1d",
                   "global_avg1d_keepdims", "global_avg1d", "global_max2d",
                   "global_max2d_last_keepdims", "global_avg2d_last", "avg_pool1d_first",
                   "max_pool1d_first_same", "cropping", "cropping_last"]


@pytest.mark.parametrize("opset", (13, 17))
@pytest.mark.parametrize("case", NEW_ROUND_TRIPS)
def test_new_layers_export_import_export_round_trip(case, opset, tmp_path):
    shape, make = NEW_LAYERS[case]
    model = randomize_all(one_layer_model(shape, make()))
    check_round_trip(model, opset, tmp_path)


@pytest.mark.parametrize("case", ["layer_norm", "layer_norm_no_scale"])
def test_layer_normalization_round_trips_at_opset_17(case, tmp_path):
    shape, make = NEW_LAYERS[case]
    imported = check_round_trip(randomize_all(one_layer_model(shape, make())), 17, tmp_path)
    assert type(imported.layers[0]).__name__ == "LayerNormalization"


@pytest.mark.parametrize("opset", (13, 17))
def test_embedding_round_trips(opset, tmp_path):
    model = randomize_all(one_layer_model((6,), Embedding(11, 4), Flatten(), Dense(3)))
    first = cnn.onnx.export(model, tmp_path / "first.onnx", opset=opset)
    imported = cnn.onnx.load(tmp_path / "first.onnx")
    ids = np.random.default_rng(0).integers(0, 11, (5, 6)).astype(np.float32)
    assert_close(imported.predict(ids), model.predict(ids))
    assert [type(layer).__name__ for layer in imported.layers] == ["Embedding", "Flatten",
                                                                    "Dense"]
    assert_same_graph(first, cnn.onnx.to_onnx(imported, opset))
