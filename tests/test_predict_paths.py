"""The inference-only fast paths behind ``predict``: the band columns of one-channel
convolutions, the activation applied chunk by chunk inside a convolution, and pooling in
chunks of samples, each against its slow reference twin (``cnn.ops.reference``) or the
training-mode forward."""

import numpy as np
import pytest

import cnn
from cnn.layers import AveragePooling2D, Conv2D, Dense, Flatten, Input, MaxPooling2D, Output
from cnn.models import Model
from cnn.ops import conv as conv_ops
from cnn.ops import pooling as pool_ops
from cnn.ops.activations import relu_inplace
from cnn.ops.reference import conv2d_reference, pool2d_reference

# (N, F, (H, W), (kh, kw), stride, padding): one input channel, kernels wide enough for bands.
BAND_CASES = [
    (5, 20, (28, 28), (9, 9), (1, 1), "valid"),  # the seed network: bands of 5
    (3, 4, (17, 26), (5, 7), (2, 3), ((2, 1), (0, 3))),  # strided bands of 4
    (4, 3, (12, 30), (3, 9), (1, 1), "same"),  # bands of 5 over a padded row
    (2, 6, (11, 14), (7, 7), (1, 2), "full"),  # ow = 10: bands of 5 with a stride
    (3, 2, (9, 16), (2, 7), (1, 1), "valid"),  # ow = 10
    (2, 3, (8, 15), (4, 8), (2, 1), "valid"),  # ow = 8: bands of 4
]


def _band_case(case, dtype, seed=0):
    n, f, hw, kernel, stride, padding = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 1, *hw)).astype(dtype)
    w = rng.standard_normal((f, 1, *kernel)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    return x, w, b, stride, padding


@pytest.mark.parametrize("case", BAND_CASES)
def test_band_columns_match_the_reference_in_float64(case):
    x, w, b, stride, padding = _band_case(case, np.float64)
    y, cache = conv_ops.conv2d_forward(x, w, b, stride, padding, keep_columns=False)
    assert conv_ops.band_width(1, w.shape[2:], y.shape[3]) > 1  # the band path ran
    assert cache.columns is None
    np.testing.assert_allclose(y, conv2d_reference(x, w, b, stride, padding),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", BAND_CASES)
def test_band_columns_match_the_training_forward_in_float32(case):
    x, w, b, stride, padding = _band_case(case, np.float32, seed=1)
    fast, _ = conv_ops.conv2d_forward(x, w, b, stride, padding, keep_columns=False,
                                      workspace={})
    trained, _ = conv_ops.conv2d_forward(x, w, b, stride, padding, keep_columns=True)
    assert fast.dtype == np.float32
    np.testing.assert_allclose(fast, trained, rtol=1e-5, atol=1e-5)


def test_band_width_divides_the_output_row_and_refuses_what_bands_do_not_serve():
    assert conv_ops.band_width(1, (9, 9), 20) == 5
    assert conv_ops.band_width(1, (9, 9), 8) == 4
    assert conv_ops.band_width(1, (9, 9), 9) == 3
    assert conv_ops.band_width(1, (9, 9), 7) == 1  # prime: one output a row, i.e. im2col
    assert conv_ops.band_width(2, (9, 9), 20) == 0  # several input channels
    assert conv_ops.band_width(1, (3, 3), 20) == 0  # narrow kernel: im2col measured faster
    assert conv_ops.band_width(1, (9, 9), 20, dilation=(1, 2)) == 0


def test_band_matrix_holds_the_kernel_once_per_output_column():
    rng = np.random.default_rng(2)
    w = rng.standard_normal((3, 1, 2, 4))
    matrix = conv_ops.band_matrix(w, band=3, stride_w=2).reshape(2, 8, 3, 3)  # span 8
    for q in range(3):
        np.testing.assert_array_equal(matrix[:, 2 * q:2 * q + 4, q, :],
                                      w[:, 0].transpose(1, 2, 0))
        outside = np.delete(matrix[:, :, q, :], np.s_[2 * q:2 * q + 4], axis=1)
        assert not outside.any()


def test_a_backward_after_a_band_forward_rebuilds_the_columns():
    x, w, b, stride, padding = _band_case(BAND_CASES[1], np.float64, seed=3)
    y, cache = conv_ops.conv2d_forward(x, w, b, stride, padding, keep_columns=False)
    dy = np.random.default_rng(4).standard_normal(y.shape)
    _, trained_cache = conv_ops.conv2d_forward(x, w, b, stride, padding, keep_columns=True)
    for got, want in zip(conv_ops.conv2d_backward(dy, cache),
                         conv_ops.conv2d_backward(dy, trained_cache)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("channels", [1, 3])
def test_the_epilogue_runs_on_every_chunk_after_the_bias(channels, monkeypatch):
    monkeypatch.setattr(conv_ops, "CHUNK_BYTES", 4096)  # many chunks, a short last one
    rng = np.random.default_rng(5)
    x = rng.standard_normal((13, channels, 12, 12)).astype(np.float32)
    w = rng.standard_normal((4, channels, 7, 7)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    seen = []

    def epilogue(chunk):
        seen.append(chunk.shape[0])
        return relu_inplace(chunk)

    fused, _ = conv_ops.conv2d_forward(x, w, b, keep_columns=False, epilogue=epilogue)
    plain, _ = conv_ops.conv2d_forward(x, w, b, keep_columns=False)
    assert sum(seen) == 13 and len(seen) > 1
    np.testing.assert_array_equal(fused, np.maximum(plain, 0))


def test_chunked_bias_is_bit_identical_to_the_whole_batch_bias(monkeypatch):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((9, 2, 10, 10)).astype(np.float32)
    w = rng.standard_normal((5, 2, 3, 3)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    chunked, _ = conv_ops.conv2d_forward(x, w, b)
    without_bias, _ = conv_ops.conv2d_forward(x, w, None)
    np.testing.assert_array_equal(chunked, without_bias + b[:, None, None])


@pytest.fixture
def float64():
    cnn.set_floatx("float64")
    yield
    cnn.set_floatx("float32")


@pytest.mark.parametrize("in_channels,kernel", [(1, 9), (1, 3), (2, 5)])
def test_conv_layer_inference_equals_its_training_forward(in_channels, kernel, float64):
    cnn.set_seed(7)
    layer = Conv2D(6, kernel, activation="relu", input_shape=(in_channels, 14, 14))
    layer.build((in_channels, 14, 14))
    layer.params["bias"][...] = np.linspace(-1, 1, 6)
    x = np.random.default_rng(8).standard_normal((5, in_channels, 14, 14))
    trained = layer.forward(x, training=True).copy()
    inferred = layer.forward(x, training=False)
    assert layer.z is None and layer.a is inferred
    assert (inferred == 0).any() and (inferred > 0).any()  # the ReLU did act
    np.testing.assert_allclose(inferred, trained, rtol=1e-12, atol=1e-12)


def test_conv_layer_keeps_its_preactivation_in_inference_when_asked(float64):
    layer = Conv2D(3, 9, activation="relu", input_shape=(1, 12, 12))
    layer.build((1, 12, 12))
    layer.keep_preactivation = True
    x = np.random.default_rng(9).standard_normal((2, 1, 12, 12))
    a = layer.forward(x, training=False)
    assert layer.z is not None and (layer.z < 0).any()
    np.testing.assert_array_equal(a, np.maximum(layer.z, 0))


POOL_CASES = [
    ((37, 20, 20, 20), 2, None, 0),  # the seed network's pooling, several chunks
    ((23, 3, 13, 11), 3, 2, 1),  # overlapping, padded
    ((19, 8, 9, 9), 2, 1, 0),
    ((11, 2, 7, 7), 3, 3, ((1, 0), (0, 1))),
]


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("case", POOL_CASES)
def test_pooling_in_chunks_is_bit_identical_to_one_chunk(case, mode, monkeypatch):
    shape, pool, stride, padding = case
    rng = np.random.default_rng(10)
    x = rng.standard_normal(shape).astype(np.float32)
    x[:, :, ::2] = 0.5  # ties: the first maximal cell must win in every chunk
    whole, whole_cache = pool_ops.pool2d_forward(x, pool, stride, padding, mode)
    monkeypatch.setattr(pool_ops, "CHUNK_BYTES", 3000)  # a few samples a chunk
    chunked, cache = pool_ops.pool2d_forward(x, pool, stride, padding, mode)
    np.testing.assert_array_equal(chunked, whole)
    if mode == "max":
        np.testing.assert_array_equal(cache.argmax, whole_cache.argmax)
    expected = pool2d_reference(x.astype(np.float64), pool, stride or pool, padding, mode)
    np.testing.assert_allclose(chunked, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("layer_type", [AveragePooling2D, MaxPooling2D])
def test_pooling_layers_infer_as_they_train(layer_type):
    layer = layer_type(2)
    x = np.random.default_rng(11).standard_normal((70, 20, 20, 20)).astype(np.float32)
    layer.build(x.shape[1:])
    np.testing.assert_array_equal(layer.forward(x, training=False),
                                  layer.forward(x, training=True))


def _seed_network():
    """The seed's network (Conv2D 20x9x9 -> AveragePooling 2 -> Dense 100 -> Dense 10),
    whose first convolution takes the band path in inference."""
    cnn.set_seed(12)
    model = Model(Input((1, 28, 28)), "seed")
    model.add(Conv2D(20, 9, activation="relu"))
    model.add(AveragePooling2D(2))
    model.add(Flatten())
    model.add(Dense(100, activation="relu"))
    model.add(Output(10))
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    return model


def test_seed_network_predicts_what_its_training_forward_computes():
    model = _seed_network()
    x = np.random.default_rng(13).random((300, 1, 28, 28)).astype(np.float32)
    trained = model.graph.forward([x], training=True)[0]
    predicted = model.predict(x, workers=1)
    assert predicted.dtype == np.float32 and predicted.shape == (300, 10)
    np.testing.assert_allclose(predicted, trained, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.predict(x, batch_size=7, workers=1), predicted,
                               rtol=1e-5, atol=1e-6)


def test_seed_network_predicts_the_same_on_two_processes():
    model = _seed_network()
    x = np.random.default_rng(14).random((600, 1, 28, 28)).astype(np.float32)
    try:
        two = model.predict(x, workers=2)
    finally:
        model.close_workers()
    np.testing.assert_allclose(two, model.predict(x, workers=1), rtol=1e-5, atol=1e-6)
