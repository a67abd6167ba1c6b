"""ONNX export of the layers of issue #15 (Conv1D, 1-D and global pooling, Embedding,
Masking, LayerNormalization, MultiHeadAttention, Bidirectional, RepeatVector, the activation
layers, Rescaling / Normalization, depthwise, separable and transposed convolutions,
UpSampling2D, Cropping2D, dilation, augmentation, channels-last images, PositionEmbedding),
each alone at opsets 13 and 17: onnx's full checker passes and onnxruntime equals
``model.predict`` (1e-4 relative, 1e-5 absolute), at two batch sizes."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="ONNX export needs the [onnx] extra (onnx)")
pytest.importorskip("onnxruntime", reason="the export tests run graphs in onnxruntime")

import cnn  # noqa: E402
import cnn.onnx  # noqa: E402
from cnn.layers import (ELU, GRU, LSTM, Add, AveragePooling1D, AveragePooling2D,  # noqa: E402
                        BatchNormalization, Bidirectional, Conv1D, Conv2D, Conv2DTranspose,
                        Cropping2D, Dense, DepthwiseConv2D, Embedding, GlobalAveragePooling1D,
                        GlobalAveragePooling2D, GlobalMaxPooling1D, GlobalMaxPooling2D, Input,
                        LayerNormalization, LeakyReLU, Masking, MaxPooling1D, MaxPooling2D,
                        MultiHeadAttention, Normalization, PositionEmbedding, PReLU,
                        RandomBrightness, RandomContrast, RandomCrop, RandomFlip,
                        RandomRotation, RandomTranslation, RandomZoom, ReLU, RepeatVector,
                        Rescaling, SeparableConv2D, SimpleRNN, Softmax, UpSampling2D,
                        TimeDistributed, ZeroPadding2D)
from cnn.models import Model, Sequential  # noqa: E402
from cnn.onnx import OnnxExportError  # noqa: E402
from cnn.onnx.export import value_info  # noqa: E402
from onnx_helpers import check_export, one_layer_model, run_onnx, sample_inputs  # noqa: E402
from test_onnx_export import example_module  # noqa: E402

OPSETS = (13, 17)
IMAGE = (3, 9, 8)
IMAGE_LAST = (9, 8, 3)
SEQ = (7, 4)
LAST = {"data_format": "channels_last"}
FIRST = {"data_format": "channels_first"}

LAYERS = {
    # Conv1D: every padding, stride, dilation, both data formats
    "conv1d_valid": (SEQ, lambda: Conv1D(5, 3)),
    "conv1d_same_stride": (SEQ, lambda: Conv1D(5, 2, strides=2, padding="same")),
    "conv1d_causal_dilated": (SEQ, lambda: Conv1D(3, 3, padding="causal", dilation_rate=2,
                                                  activation="relu")),
    "conv1d_channels_first": ((4, 7), lambda: Conv1D(3, 2, padding="same", **FIRST)),
    "conv1d_softmax": (SEQ, lambda: Conv1D(3, 2, activation="softmax", use_bias=False)),
    "max_pool1d": (SEQ, lambda: MaxPooling1D(2)),
    "max_pool1d_same": (SEQ, lambda: MaxPooling1D(3, strides=2, padding="same")),
    "avg_pool1d_same": (SEQ, lambda: AveragePooling1D(2, strides=1, padding="same")),
    "avg_pool1d_first": ((4, 7), lambda: AveragePooling1D(3, **FIRST)),
    "max_pool1d_first_same": ((4, 7), lambda: MaxPooling1D(2, strides=3, padding="same",
                                                           **FIRST)),
    "global_max1d": (SEQ, lambda: GlobalMaxPooling1D()),
    "global_avg1d_keepdims": (SEQ, lambda: GlobalAveragePooling1D(keepdims=True)),
    "global_avg1d": (SEQ, lambda: GlobalAveragePooling1D()),
    "global_max2d": (IMAGE, lambda: GlobalMaxPooling2D(**FIRST)),
    "global_max2d_last_keepdims": (IMAGE_LAST, lambda: GlobalMaxPooling2D(keepdims=True, **LAST)),
    "global_avg2d_last": (IMAGE_LAST, lambda: GlobalAveragePooling2D(**LAST)),
    # Conv2D: dilation, channels last
    "conv2d_dilated": (IMAGE, lambda: Conv2D(4, 3, dilation_rate=(2, 1), padding="same",
                                             data_format="channels_first")),
    "conv2d_last": (IMAGE_LAST, lambda: Conv2D(4, (2, 3), strides=(2, 1), padding="same",
                                               activation="softmax", **LAST)),
    "max_pool2d_last": (IMAGE_LAST, lambda: MaxPooling2D((3, 2), strides=2, padding="same",
                                                         **LAST)),
    "avg_pool2d_last": (IMAGE_LAST, lambda: AveragePooling2D(2, **LAST)),
    "zero_padding_last": (IMAGE_LAST, lambda: ZeroPadding2D(((1, 2), (0, 3)), **LAST)),
    "batchnorm_last": (IMAGE_LAST, lambda: BatchNormalization(axis=-1)),
    "depthwise": (IMAGE, lambda: DepthwiseConv2D(3, depth_multiplier=2, padding="same",
                                                 **FIRST)),
    "depthwise_last_strided_dilated": (IMAGE_LAST, lambda: DepthwiseConv2D(
        (2, 3), strides=2, dilation_rate=1, activation="relu", **LAST)),
    "depthwise_dilated": (IMAGE, lambda: DepthwiseConv2D(2, dilation_rate=2, use_bias=False,
                                                         **FIRST)),
    "separable": (IMAGE, lambda: SeparableConv2D(5, 3, padding="same", depth_multiplier=2,
                                                 **FIRST)),
    "separable_last": (IMAGE_LAST, lambda: SeparableConv2D(4, 2, strides=2, activation="tanh",
                                                           **LAST)),
    "conv_transpose_valid": (IMAGE, lambda: Conv2DTranspose(4, 3, **FIRST)),
    "conv_transpose_same_stride": (IMAGE, lambda: Conv2DTranspose(3, 3, strides=2,
                                                                  padding="same", **FIRST)),
    "conv_transpose_stride_gt_kernel": (IMAGE, lambda: Conv2DTranspose(2, 2, strides=3,
                                                                       **FIRST)),
    "conv_transpose_output_padding": (IMAGE, lambda: Conv2DTranspose(
        2, (3, 2), strides=2, padding="same", output_padding=1, **FIRST)),
    "conv_transpose_dilated_last": (IMAGE_LAST, lambda: Conv2DTranspose(
        3, 2, strides=(1, 2), dilation_rate=(2, 1), activation="elu", **LAST)),
    "upsampling_nearest": (IMAGE, lambda: UpSampling2D((2, 3), **FIRST)),
    "upsampling_bilinear": (IMAGE, lambda: UpSampling2D((3, 2), interpolation="bilinear",
                                                        **FIRST)),
    "upsampling_bilinear_last": (IMAGE_LAST, lambda: UpSampling2D(2, interpolation="bilinear",
                                                                  **LAST)),
    "cropping": (IMAGE, lambda: Cropping2D(((1, 2), (0, 3)), **FIRST)),
    "cropping_last": (IMAGE_LAST, lambda: Cropping2D(((2, 0), (1, 1)), **LAST)),
    # activation layers
    "relu": ((6,), lambda: ReLU()),
    "relu6": ((6,), lambda: ReLU(max_value=0.7)),
    "relu_keras_full": ((6,), lambda: ReLU(max_value=1.2, negative_slope=0.1, threshold=0.3)),
    "relu_threshold": ((6,), lambda: ReLU(threshold=0.2)),
    "leaky_relu": ((6,), lambda: LeakyReLU(0.2)),
    "elu": ((6,), lambda: ELU(0.6)),
    "softmax_channels": (IMAGE, lambda: Softmax(axis=1)),
    "softmax_last": (SEQ, lambda: Softmax()),
    "prelu_shared": (IMAGE, lambda: PReLU(alpha_initializer=0.25, shared_axes=[2, 3])),
    "prelu_full": (SEQ, lambda: PReLU(alpha_initializer="glorot_uniform")),
    # preprocessing, augmentation
    "rescaling": (IMAGE, lambda: Rescaling(1 / 255, offset=-0.5)),
    "rescaling_per_channel": (IMAGE, lambda: Rescaling(np.array([1., 2., 3.]).reshape(3, 1, 1),
                                                       offset=np.array([0.5]))),
    "normalization": (IMAGE, lambda: Normalization(axis=1, mean=[0.5, -1., 2.],
                                                   variance=[4., 0.25, 1.])),
    "normalization_invert": (SEQ, lambda: Normalization(mean=0.3, variance=2.0, invert=True)),
    "random_flip": (IMAGE, lambda: RandomFlip(**FIRST)),
    "random_rotation": (IMAGE, lambda: RandomRotation(0.2, **FIRST)),
    "random_translation": (IMAGE, lambda: RandomTranslation(0.1, 0.2, **FIRST)),
    "random_zoom": (IMAGE, lambda: RandomZoom(0.2, **FIRST)),
    "random_contrast": (IMAGE, lambda: RandomContrast(0.3, **FIRST)),
    "random_brightness_last": (IMAGE_LAST, lambda: RandomBrightness(0.2, **LAST)),
    "random_crop_resized": (IMAGE, lambda: RandomCrop(5, 7, **FIRST)),  # 9x8 -> 6x8 -> 5x7
    "random_crop_up_last": (IMAGE_LAST, lambda: RandomCrop(12, 5, **LAST)),  # 9x8 -> 9x3 -> 12x5
    "random_crop_window": ((3, 9, 12), lambda: RandomCrop(6, 8, **FIRST)),  # 9x12 -> 9x12 -> 6x8
    "random_crop_no_resize": (IMAGE, lambda: RandomCrop(9, 4, **FIRST)),  # a centred 9x4 window
    # sequences
    "layer_norm": (SEQ, lambda: LayerNormalization()),
    "layer_norm_two_axes": (IMAGE, lambda: LayerNormalization(axis=[2, 3], epsilon=1e-5)),
    "layer_norm_middle_axis": (IMAGE, lambda: LayerNormalization(axis=1, center=False)),
    "layer_norm_no_scale": (SEQ, lambda: LayerNormalization(scale=False)),
    "repeat_vector": ((5,), lambda: RepeatVector(3)),
    "masking_alone": (SEQ, lambda: Masking(0.0)),
    "position_embedding": (SEQ, lambda: PositionEmbedding(10)),
}

RNNS = {"simple_rnn": SimpleRNN, "lstm": LSTM, "gru": GRU}


def randomize_all(model, seed=0):
    """Every weight random (moving statistics positive), so that a wrong mapping shows."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = [rng.uniform(0.5, 2.0, w.shape) if name in ("moving_variance", "variance")
                   else rng.normal(0, 0.5, w.shape)
                   for name, w in zip(layer.weight_names(), layer.get_weights())]
        layer.set_weights(weights)
    return model


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("case", sorted(LAYERS))
def test_every_new_layer_matches_predict(case, opset, tmp_path):
    input_shape, make = LAYERS[case]
    model = randomize_all(one_layer_model(input_shape, make()))
    check_export(model, tmp_path, opset)


def test_masking_sets_masked_steps_to_zero(tmp_path):
    model = one_layer_model(SEQ, Masking(0.5))

    def inputs(size):
        x = sample_inputs(model, size)
        x[:, 2] = 0.5
        return x

    check_export(model, tmp_path, 13, inputs=inputs)
    assert np.all(run_onnx(cnn.onnx.to_onnx(model, 13), inputs(2))[:, 2] == 0)


@pytest.mark.parametrize("opset", OPSETS)
def test_layer_normalization_is_the_op_at_17_and_decomposed_at_13(opset):
    model = one_layer_model(SEQ, LayerNormalization())
    ops = [node.op_type for node in cnn.onnx.to_onnx(model, opset).graph.node]
    assert ("LayerNormalization" in ops) == (opset >= 17)


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("mask_zero", [False, True])
def test_embedding_gathers_rows(opset, mask_zero, tmp_path):
    model = randomize_all(one_layer_model((6,), Embedding(11, 4, mask_zero=mask_zero), Dense(3)))

    def ids(size):
        return np.random.default_rng(size).integers(0, 11, (size, 6)).astype(np.float32)

    check_export(model, tmp_path, opset, inputs=ids)


def test_a_mask_that_reaches_a_layer_that_reads_it_is_refused(tmp_path):
    path = tmp_path / "masked.onnx"
    model = one_layer_model((6,), Embedding(11, 4, mask_zero=True), LSTM(3))
    with pytest.raises(OnnxExportError, match=r"lstm.*reads the mask of layer .*embedding"):
        cnn.onnx.export(model, path)
    assert not path.exists()
    masked = one_layer_model(SEQ, Masking(), LayerNormalization(),
                             Bidirectional(GRU(2)))
    with pytest.raises(OnnxExportError, match="bidirectional.*masking"):
        cnn.onnx.export(masked, path)
    assert not path.exists()


def padded_ids(size, steps=6, vocabulary=11):
    """Ids with trailing padding (0), one sample all padding."""
    rng = np.random.default_rng(size)
    ids = rng.integers(1, vocabulary, (size, steps)).astype(np.float32)
    for row in range(size):
        ids[row, rng.integers(1, steps):] = 0
    ids[0] = 0
    return ids


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("keepdims", [False, True])
def test_masked_average_pooling_averages_the_unmasked_steps(opset, keepdims, tmp_path):
    model = randomize_all(one_layer_model((6,), Embedding(11, 4, mask_zero=True),
                                          LayerNormalization(),
                                          GlobalAveragePooling1D(keepdims=keepdims)))
    check_export(model, tmp_path, opset, inputs=padded_ids)
    unmasked = randomize_all(one_layer_model((6,), Embedding(11, 4), LayerNormalization(),
                                             GlobalAveragePooling1D(keepdims=keepdims)))
    ids = padded_ids(4)
    assert not np.allclose(unmasked.predict(ids), model.predict(ids))  # the mask matters


def test_masking_before_average_pooling(tmp_path):
    model = one_layer_model(SEQ, Masking(0.5), GlobalAveragePooling1D())

    def inputs(size):
        x = sample_inputs(model, size)
        x[:, 2:4] = 0.5
        return x

    check_export(model, tmp_path, 13, inputs=inputs)


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave"])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("cell", sorted(RNNS))
def test_bidirectional_matches_predict(cell, return_sequences, merge_mode, opset, tmp_path):
    layer = Bidirectional(RNNS[cell](3, return_sequences=return_sequences),
                          merge_mode=merge_mode)
    model = randomize_all(one_layer_model(SEQ, layer))
    check_export(model, tmp_path, opset)


def test_bidirectional_with_a_custom_backward_layer(tmp_path):
    layer = Bidirectional(LSTM(3, return_sequences=True),
                          backward_layer=GRU(3, return_sequences=True, go_backwards=True))
    check_export(randomize_all(one_layer_model(SEQ, layer)), tmp_path, 17)


def test_bidirectional_without_merge_is_refused(tmp_path):
    model = one_layer_model(SEQ, Bidirectional(SimpleRNN(3), merge_mode=None))
    with pytest.raises(OnnxExportError, match="merge_mode=None"):
        cnn.onnx.export(model, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def attention_model(causal=False, with_key=False, with_mask=False, **kwargs):
    cnn.set_seed(0)
    query, value = Input((5, 6), name="query"), Input((4, 3), name="value")
    inputs, call = [query, value], {}
    if with_key:
        call["key"] = Input((4, 2), name="key")
        inputs.append(call["key"])
    if with_mask:
        call["attention_mask"] = Input((5, 4), name="attention_mask")
        inputs.append(call["attention_mask"])
    mha = MultiHeadAttention(2, 3, use_causal_mask=causal, **kwargs)
    return randomize_all(Model(inputs, mha(query, value, **call)))


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("variant", ["plain", "key", "mask", "causal", "all", "options"])
def test_multi_head_attention_matches_predict(variant, opset, tmp_path):
    options = {"plain": {}, "key": {"with_key": True}, "mask": {"with_mask": True},
               "causal": {"causal": True},
               "all": {"with_key": True, "with_mask": True, "causal": True},
               "options": {"value_dim": 2, "output_shape": 7, "use_bias": False}}[variant]
    model = attention_model(**options)

    def inputs(size):
        arrays = sample_inputs(model, size)
        if options.get("with_mask"):
            arrays[-1] = (np.random.default_rng(size).random((size, 5, 4)) > 0.4)
            arrays[-1] = arrays[-1].astype(np.float32)
        return arrays

    check_export(model, tmp_path, opset, inputs=inputs)


def test_self_attention_block(tmp_path):
    cnn.set_seed(0)
    x = Input((6, 4))
    attended = MultiHeadAttention(2, 2, use_causal_mask=True)(x, x)
    y = LayerNormalization()(Add()([x, attended]))
    model = randomize_all(Model(x, Dense(3)(y)))
    for opset in OPSETS:
        check_export(model, tmp_path, opset)


@pytest.mark.parametrize("case", ["global_max1d", "global_avg2d_last", "masking_alone",
                                  "layer_norm_middle_axis"])
def test_reductions_take_their_axes_as_an_input_from_opset_18(case, tmp_path):
    input_shape, make = LAYERS[case]
    model = randomize_all(one_layer_model(input_shape, make()))
    proto = check_export(model, tmp_path, 20)
    reductions = [n for n in proto.graph.node if n.op_type.startswith("Reduce")]
    assert reductions and all(len(n.input) == 2 and not n.attribute[0].name == "axes"
                              for n in reductions)


@pytest.mark.parametrize("opset", OPSETS)
def test_attention_applies_the_embedding_mask_to_queries_and_keys(opset, tmp_path):
    cnn.set_seed(0)
    ids = Input((6,))
    tokens = Embedding(11, 4, mask_zero=True)(ids)
    attended = MultiHeadAttention(2, 3)(tokens, tokens)
    model = randomize_all(Model(ids, GlobalAveragePooling1D()(attended)))  # the query's mask
    check_export(model, tmp_path, opset, inputs=padded_ids)
    ops = [node.op_type for node in cnn.onnx.to_onnx(model, opset).graph.node]
    assert ops.count("Equal") == 1  # one mask, read twice


def test_attention_with_a_masked_key_and_a_causal_mask(tmp_path):
    cnn.set_seed(0)
    query, ids = Input((5, 6), name="query"), Input((4,), name="ids")
    value = Embedding(9, 3, mask_zero=True)(ids)
    output = MultiHeadAttention(2, 2, use_causal_mask=True)(query, value)
    model = randomize_all(Model([query, ids], output))

    def inputs(size):
        return [sample_inputs(model, size)[0], padded_ids(size, steps=4, vocabulary=9)]

    check_export(model, tmp_path, 17, inputs=inputs)


def test_none_sizes_become_symbolic_dims():
    dims = value_info("tokens", (None, 4)).type.tensor_type.shape.dim
    assert [(d.dim_param, d.dim_value) for d in dims] == [("batch", 0), ("tokens_axis1", 0),
                                                          ("", 4)]


def new_example_networks():
    """Untrained networks with the architectures of the examples that use the layers of #15
    (built by their own code)."""
    addition = example_module("addition_rnn")
    channels_last = example_module("fashion_mnist_channels_last")
    resnet = example_module("fashion_mnist_resnet")
    transformer = example_module("transformer_encoder")
    previous = cnn.image_data_format()
    cnn.set_image_data_format("channels_last")  # as the example's main() does
    try:
        convnet_last = channels_last.build_model(100)
    finally:
        cnn.set_image_data_format(previous)
    return {
        "addition_rnn": (addition.build(16, 1e-3, 100), None),
        "fashion_mnist_channels_last": (convnet_last, None),
        "fashion_mnist_resnet": (resnet.build_model(1e-3, blocks=1), None),
        "transformer_encoder": (transformer.build(8, 5, 8, 2, 16, 2, 1e-3),
                                lambda size: padded_ids(size, 8, 6)),
    }


@pytest.mark.parametrize("opset", OPSETS)
def test_new_example_networks_match_predict(opset, tmp_path):
    for name, (model, inputs) in new_example_networks().items():
        check_export(randomize_all(model), tmp_path, opset, inputs=inputs)


def variable_length_models():
    """Models on Input((None, F)) / Input((None,)) (a variable number of steps)."""
    cnn.set_seed(0)
    x = Input((None, 4))
    attended = MultiHeadAttention(2, 2)(x, x)
    mha = Model(x, Add()([x, PositionEmbedding(10)(attended)]))
    y = Input((None, 4))
    causal = Model(y, MultiHeadAttention(2, 2, use_causal_mask=True)(y, y))
    return {
        "lstm": Sequential([Input((None, 4)), LSTM(3, return_sequences=True), Dense(2)]),
        "bidirectional_gru": Sequential([Input((None, 4)), Bidirectional(GRU(3)), Dense(2)]),
        "conv1d_pooling": Sequential([Input((None, 4)), Conv1D(3, 3, padding="causal",
                                                               dilation_rate=2),
                                      Conv1D(2, 2, strides=2, padding="same"),
                                      MaxPooling1D(2, padding="same"),
                                      AveragePooling1D(3, strides=2, padding="same"),
                                      GlobalMaxPooling1D()]),
        "embedding": Sequential([Input((None,)), Embedding(9, 4), LayerNormalization(),
                                 GlobalAveragePooling1D()]),
        "embedding_masked": Sequential([Input((None,)), Embedding(9, 4, mask_zero=True),
                                        GlobalAveragePooling1D()]),
        "attention": mha,
        "causal_attention": causal,
        "masking": Sequential([Input((None, 4)), Masking(), Dense(3)]),
        "time_distributed": Sequential([Input((None, 4)), TimeDistributed(Dense(3))]),
    }


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("case", sorted(variable_length_models()))
def test_variable_length_inputs_run_at_every_length(case, opset):
    model = randomize_all(variable_length_models()[case])
    if case == "causal_attention" and opset < 14:
        with pytest.raises(OnnxExportError, match="Trilu"):
            cnn.onnx.to_onnx(model, opset)
        return
    proto = cnn.onnx.to_onnx(model, opset)
    assert proto.graph.input[0].type.tensor_type.shape.dim[1].dim_param
    for steps in (3, 8):
        rng = np.random.default_rng(steps)
        if case.startswith("embedding"):
            x = padded_ids(2, steps, 9)
        else:
            x = rng.standard_normal((2, steps, 4)).astype(np.float32)
        actual = run_onnx(proto, x)
        np.testing.assert_allclose(actual, model.predict(x), rtol=1e-4, atol=1e-5,
                                   err_msg=f"{steps} steps")
