"""data_format="channels_last" on every image layer, the global setting, and the layout hint.

Each channels-last layer must compute exactly what its channels-first twin computes on the
transposed batch, forward and backward, and pass the float64 gradient check itself.
"""

import numpy as np
import pytest

import cnn
from cnn.layers import (AveragePooling2D, BatchNormalization, Conv2D, Conv2DTranspose,
                        Cropping2D, Dense, DepthwiseConv2D, Flatten, SeparableConv2D, GlobalAveragePooling2D, GlobalMaxPooling2D, Input,
                        MaxPooling2D, RandomContrast, RandomCrop, RandomZoom, UpSampling2D,
                        ZeroPadding2D, deserialize, serialize)
from cnn.models import Model, Sequential, load_model
from cnn.optimizers import Adam
from helpers import check_layer_gradients, seed_dir
from window_helpers import assert_round_trips, built, layer_pass, random

TO_LAST, TO_FIRST = (0, 2, 3, 1), (0, 3, 1, 2)

IMAGE_LAYERS = {
    "conv": lambda f: Conv2D(3, 3, data_format=f, activation="tanh"),
    "conv_same_strided_dilated": lambda f: Conv2D(2, (3, 2), strides=2, padding="same",
                                                  dilation_rate=(2, 1), data_format=f),
    "max_pool": lambda f: MaxPooling2D(2, data_format=f),
    "avg_pool_same": lambda f: AveragePooling2D(3, 2, padding="same", data_format=f),
    "global_avg": lambda f: GlobalAveragePooling2D(data_format=f),
    "global_avg_keepdims": lambda f: GlobalAveragePooling2D(data_format=f, keepdims=True),
    "global_max": lambda f: GlobalMaxPooling2D(data_format=f),
    "global_max_keepdims": lambda f: GlobalMaxPooling2D(data_format=f, keepdims=True),
    "zero_padding": lambda f: ZeroPadding2D(((1, 0), (2, 1)), data_format=f),
    "cropping": lambda f: Cropping2D(((1, 0), (2, 1)), data_format=f),
    "upsampling_nearest": lambda f: UpSampling2D((2, 3), data_format=f),
    "upsampling_bilinear": lambda f: UpSampling2D(2, data_format=f, interpolation="bilinear"),
    "batch_norm": lambda f: BatchNormalization(axis=1 if f == "channels_first" else -1),
    "depthwise": lambda f: DepthwiseConv2D(3, 2, "same", 2, f),
    "separable": lambda f: SeparableConv2D(3, 3, padding="same", data_format=f,
                                           depth_multiplier=2),
    "transposed": lambda f: Conv2DTranspose(3, 3, 2, "same", 1, f),
    "random_crop": lambda f: RandomCrop(4, 3, seed=1, data_format=f),
    "random_crop_resized": lambda f: RandomCrop(5, 7, seed=1, data_format=f),
    "random_zoom": lambda f: RandomZoom(0.3, seed=1, data_format=f),
    "random_contrast": lambda f: RandomContrast(0.4, (-2, 2), seed=1, data_format=f),
}


def _to_last(a):
    return a if a.ndim != 4 else a.transpose(TO_LAST)


@pytest.mark.parametrize("case", IMAGE_LAYERS)
@pytest.mark.parametrize("training", [False, True])
def test_channels_last_equals_channels_first_on_the_transposed_batch(case, training):
    first = built(IMAGE_LAYERS[case]("channels_first"), (2, 7, 6))
    last = built(IMAGE_LAYERS[case]("channels_last"), (7, 6, 2))
    assert last.output_shape[1:] == _to_last(np.zeros((1, *first.output_shape[1:]))).shape[1:]
    last.set_weights(first.get_weights())
    x = random((3, 2, 7, 6), seed=1)
    y, r, dx, grads = layer_pass(first, x, training=training)
    y_last = last.forward(np.ascontiguousarray(x.transpose(TO_LAST)), training=training)
    np.testing.assert_allclose(y_last, _to_last(y), atol=1e-12)
    dx_last = last.backward(np.ascontiguousarray(_to_last(r)))
    np.testing.assert_allclose(dx_last, dx.transpose(TO_LAST), atol=1e-12)
    for key, grad in grads.items():
        np.testing.assert_allclose(last.grads[key], grad, atol=1e-12)


@pytest.mark.parametrize("case", IMAGE_LAYERS)
def test_channels_last_gradients(case):
    layer = built(IMAGE_LAYERS[case]("channels_last"), (6, 5, 2))
    check_layer_gradients(layer, random((2, 6, 5, 2), seed=2), training=case == "batch_norm")


@pytest.mark.parametrize("case", [c for c in IMAGE_LAYERS if c != "batch_norm"])
def test_channels_last_layers_round_trip(case, tmp_path):
    loaded = assert_round_trips([IMAGE_LAYERS[case]("channels_last")], (6, 5, 2), tmp_path)
    assert loaded.layers[0].data_format == "channels_last"


@pytest.fixture
def channels_last_default():
    cnn.set_image_data_format("channels_last")
    yield
    cnn.set_image_data_format("channels_first")


def test_the_default_is_channels_first():
    assert cnn.image_data_format() == "channels_first"
    assert Conv2D(2, 3).data_format == "channels_first"
    assert BatchNormalization().axis is None


def test_the_global_setting_reaches_every_image_layer(channels_last_default):
    layers = [Conv2D(4, 3, padding="same"), BatchNormalization(), MaxPooling2D(2),
              ZeroPadding2D(1), Cropping2D(1), UpSampling2D(2), GlobalMaxPooling2D()]
    model = Sequential([Input((8, 8, 3)), *layers, Dense(2)])
    assert [layer.data_format for layer in layers if hasattr(layer, "data_format")] == \
        ["channels_last"] * 6
    assert layers[1].axis == -1
    assert model.output_shape == (None, 2)
    assert layers[0].output_shape == (None, 8, 8, 4)
    assert layers[3].output_shape == (None, 6, 6, 4)


def test_a_layer_keeps_its_format_when_the_setting_changes_and_when_loaded(tmp_path):
    cnn.set_image_data_format("channels_last")
    try:
        layer = Conv2D(2, 3)
    finally:
        cnn.set_image_data_format("channels_first")
    assert layer.data_format == "channels_last"
    assert deserialize(serialize(layer)).data_format == "channels_last"


def test_an_old_config_without_data_format_means_channels_first(channels_last_default):
    config = serialize(Conv2D(2, 3, data_format="channels_first"))
    del config["config"]["data_format"]
    assert deserialize(config).data_format == "channels_first"


def test_bad_formats_are_refused():
    with pytest.raises(ValueError, match="unknown image data format 'nhwc'"):
        cnn.set_image_data_format("nhwc")
    with pytest.raises(ValueError, match="unknown data_format 'last'"):
        Conv2D(2, 3, data_format="last")


def test_flatten_orders_channels_last_maps_as_keras():
    layer = built(Flatten(), (2, 3, 4))
    x = random((2, 2, 3, 4))
    np.testing.assert_array_equal(layer.forward(x)[0, :5], x[0, 0, 0, :4].tolist() + [x[0, 0, 1, 0]])


@pytest.mark.parametrize("make", [lambda: Conv2D(8, 3), lambda: MaxPooling2D(3)])
def test_channels_last_data_in_a_channels_first_layer_gets_a_hint(make):
    model = Model(Input((28, 28, 1)))
    with pytest.raises(ValueError) as info:
        model.add_layer(make())
    message = str(info.value)
    assert "does not fit the input (None, 28, 28, 1) read as (channels, height, width)" in message
    assert "looks like channels-last data" in message
    assert "data_format='channels_last'" in message
    assert "cnn.set_image_data_format('channels_last')" in message


def test_channels_first_data_in_a_channels_last_layer_gets_a_hint():
    layer = Conv2D(8, 3, data_format="channels_last")
    with pytest.raises(ValueError, match="looks like channels-first data"):
        layer.build((1, 28, 28))


def test_a_kernel_too_large_for_a_plausible_layout_gets_no_hint():
    with pytest.raises(ValueError, match="does not fit") as info:
        Conv2D(2, 9).build((1, 5, 5))
    assert "looks like" not in str(info.value)


def test_the_model_input_check_names_a_moved_channel_axis():
    model = Sequential([Input((1, 28, 28)), Conv2D(2, 3), Flatten(), Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="channels axis is at the other end"):
        model.predict(np.zeros((2, 28, 28, 1), dtype=np.float32))


def test_a_channels_last_convnet_trains(channels_last_default):
    cnn.set_seed(0)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 64)
    x = rng.normal(0, 0.3, (64, 6, 6, 1)).astype(np.float32)
    x[y == 1, :3] += 1.0  # class 1 is bright at the top
    model = Sequential([Input((6, 6, 1)), Conv2D(4, 3, padding="same", activation="relu"),
                        BatchNormalization(momentum=0.8), MaxPooling2D(2), Flatten(),
                        Dense(2, activation="softmax")])
    model.compile(optimizer=Adam(0.02), loss="categorical_crossentropy")
    model.fit(x, y, epochs=15, batch_size=16, verbose=0)
    assert model.evaluate(x, y, return_dict=True)["accuracy"] > 0.95


def test_seed_files_load_channels_first_whatever_the_default(channels_last_default):
    model = load_model(seed_dir() / "models" / "test_cnn.h5")
    formats = {layer.data_format for layer in model.layers if hasattr(layer, "data_format")}
    assert formats == {"channels_first"}
    assert model.predict(np.zeros((1, 1, 28, 28), dtype=np.float32)).shape == (1, 10)


@pytest.mark.parametrize("case", IMAGE_LAYERS)
def test_float32_stays_float32(case):
    layer = IMAGE_LAYERS[case]("channels_last")
    layer.build((6, 5, 2))
    x = random((2, 6, 5, 2)).astype(np.float32)
    y = layer.forward(x, training=True)
    dx = layer.backward(np.ones_like(y))
    assert y.dtype == dx.dtype == np.float32
    assert all(g.dtype == np.float32 for g in layer.grads.values())
