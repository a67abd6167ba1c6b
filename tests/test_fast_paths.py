"""The speed-oriented code paths against the slow references (cnn.ops.reference).

* the channels-last im2col and its tap-major adjoint;
* the convolution when the batch is split into several chunks, with the columns kept from
  the forward pass or rebuilt in backward, for inputs stored either way (NCHW or channels last);
* pooling on channels-last inputs, and the memory order of what conv and pooling return;
* in-place ReLU in layers, BLAS thread control.
"""

import numpy as np
import pytest

import cnn
from cnn.training.data_adapters import Batch
from cnn.training.strategy import OneProcess
from cnn.training.trainer import train_step
from cnn.layers import Conv2D, Dense
from cnn.ops import conv as conv_ops
from cnn.ops.conv import conv2d_backward, conv2d_forward
from cnn.ops.im2col import channels_last, col2im_channels_last, im2col_channels_last
from cnn.ops.pooling import pool2d_backward, pool2d_forward
from cnn.ops.reference import (
    conv2d_backward_reference,
    conv2d_reference,
    im2col_reference,
    pool2d_backward_reference,
    pool2d_reference,
)
from cnn.ops.shapes import window_output_shape

# (N, C, (Hp, Wp), kernel, stride), sizes after padding.
GEOMETRIES = [
    (2, 3, (7, 6), (3, 3), (1, 1)),
    (3, 2, (8, 7), (3, 2), (2, 1)),
    (2, 4, (9, 9), (5, 5), (2, 2)),
    (1, 3, (7, 7), (4, 4), (2, 2)),
    (2, 2, (5, 8), (1, 3), (1, 3)),
    (2, 1, (10, 10), (5, 3), (3, 3)),
]


def _out_hw(hw, kernel, stride):
    return tuple((n - k) // s + 1 for n, k, s in zip(hw, kernel, stride))


def _channels_last_memory(x):
    """The same (N, C, H, W) values, stored channels last (what conv and pooling return)."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_im2col_channels_last_matches_reference(geometry):
    n, c, hw, kernel, stride = geometry
    x = np.random.default_rng(0).standard_normal((n, c, *hw))
    out_hw = _out_hw(hw, kernel, stride)
    cols = im2col_channels_last(channels_last(x), kernel, stride, out_hw)
    reference = im2col_reference(x, kernel, stride, out_hw)  # rows (c, i, j)
    kh, kw = kernel
    expected = reference.reshape(c, kh, kw, -1).transpose(3, 1, 2, 0).reshape(-1, kh * kw * c)
    np.testing.assert_array_equal(cols, expected)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_col2im_channels_last_is_the_adjoint(geometry):
    n, c, hw, kernel, stride = geometry
    rng = np.random.default_rng(1)
    out_hw = _out_hw(hw, kernel, stride)
    x = rng.standard_normal((n, *hw, c))
    cols = im2col_channels_last(x, kernel, stride, out_hw)
    r = rng.standard_normal(cols.shape)
    taps = r.reshape(cols.shape[0], kernel[0] * kernel[1], c).transpose(1, 0, 2)
    back = col2im_channels_last(np.ascontiguousarray(taps), x.shape, kernel, stride, out_hw)
    assert np.sum(cols * r) == pytest.approx(np.sum(x * back), rel=1e-12)


def test_im2col_fills_out_and_checks_it():
    x = np.random.default_rng(2).standard_normal((2, 5, 5, 3))
    out = np.empty((2 * 9, 9 * 3))
    assert im2col_channels_last(x, (3, 3), (1, 1), (3, 3), out=out) is out
    np.testing.assert_array_equal(out, im2col_channels_last(x, (3, 3), (1, 1), (3, 3)))
    with pytest.raises(ValueError, match="out"):
        im2col_channels_last(x, (3, 3), (1, 1), (3, 3), out=np.empty((3, 3)))


# (N, C, F, (H, W), kernel, stride, padding)
CONV_CASES = [
    (5, 1, 3, (9, 9), (3, 3), (1, 1), "valid"),  # C = 1: taps-as-rows columns
    (5, 3, 2, (8, 7), (3, 2), (2, 1), "same"),  # C > 1: channels-last columns
    (4, 2, 3, (7, 9), (2, 4), (3, 2), ((1, 2), (0, 3))),
    (3, 1, 2, (6, 6), (5, 5), (1, 1), "full"),
    (6, 4, 2, (6, 5), (1, 1), (1, 1), "valid"),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=str)
@pytest.mark.parametrize("chunk_bytes", [1, 2000, 1 << 20], ids=["1 sample", "some", "all"])
@pytest.mark.parametrize("keep_bytes", [0, 1 << 30], ids=["rebuild", "keep"])
@pytest.mark.parametrize("memory", ["nchw", "channels_last"])
def test_chunked_conv_matches_reference(case, chunk_bytes, keep_bytes, memory, monkeypatch):
    monkeypatch.setattr(conv_ops, "CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(conv_ops, "KEEP_COLUMNS_BYTES", keep_bytes)
    n, c, f, hw, kernel, stride, padding = case
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, c, *hw))
    if memory == "channels_last":
        x = _channels_last_memory(x)
    w, b = rng.standard_normal((f, c, *kernel)), rng.standard_normal(f)
    padding = window_output_shape(hw, kernel, stride, padding)[1]
    y, cache = conv2d_forward(x, w, b, stride, padding)
    assert (cache.columns is not None) == (keep_bytes > 0)
    np.testing.assert_allclose(y, conv2d_reference(x, w, b, stride, padding), atol=1e-10)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = conv2d_backward(dy, cache)
    dx_ref, dw_ref, db_ref = conv2d_backward_reference(dy, x, w, stride, padding)
    np.testing.assert_allclose(dx, dx_ref, atol=1e-10)
    np.testing.assert_allclose(dw, dw_ref, atol=1e-10)
    np.testing.assert_allclose(db, db_ref, atol=1e-10)


@pytest.mark.parametrize("chunk_bytes", [2000, 1 << 20], ids=["some", "all"])
@pytest.mark.parametrize("stride", [(1, 1), (2, 1)])
def test_training_with_band_columns_matches_reference(chunk_bytes, stride, monkeypatch):
    """One input channel and a 9x9 kernel: the training forward uses band columns, keeps
    none, and backward rebuilds them for the kernel gradient; both agree with the
    reference."""
    monkeypatch.setattr(conv_ops, "CHUNK_BYTES", chunk_bytes)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((5, 1, 14, 13))
    w, b = rng.standard_normal((3, 1, 9, 9)), rng.standard_normal(3)
    padding = ((0, 0), (0, 0))
    assert conv_ops.band_width(1, (9, 9), 5) == 5
    y, cache = conv2d_forward(x, w, b, stride, padding, keep_columns=True, workspace={})
    assert cache.columns is None
    np.testing.assert_allclose(y, conv2d_reference(x, w, b, stride, padding), atol=1e-10)
    dy = rng.standard_normal(y.shape)
    expected = conv2d_backward_reference(dy, x, w, stride, padding)
    for got, want in zip(conv2d_backward(dy, cache), expected):
        np.testing.assert_allclose(got, want, atol=1e-10)


def test_conv_output_and_input_gradient_are_stored_channels_last():
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3))
    y, cache = conv2d_forward(x, w, None, 1, 1)
    assert y.shape == (2, 4, 6, 6) and y.transpose(0, 2, 3, 1).flags.c_contiguous
    dx, _, _ = conv2d_backward(_channels_last_memory(rng.standard_normal(y.shape)), cache)
    assert dx.shape == x.shape and dx.transpose(0, 2, 3, 1).flags.c_contiguous


# (N, C, (H, W), pool, stride, padding)
POOL_CASES = [
    (2, 3, (8, 6), (2, 2), (2, 2), "valid"),  # tiled
    (3, 2, (7, 7), (3, 3), (2, 2), "valid"),  # overlapping
    (2, 4, (7, 6), (2, 2), (2, 2), "same"),  # padded
    (2, 2, (9, 8), (2, 2), (3, 3), "valid"),  # gaps
]


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
@pytest.mark.parametrize("mode", ["max", "avg"])
def test_pooling_of_channels_last_input_matches_reference(case, mode):
    n, c, hw, pool, stride, padding = case
    rng = np.random.default_rng(5)
    # Ties, as after a ReLU, check the first-maximum rule on channels-last memory too.
    x = np.maximum(rng.integers(-1, 3, size=(n, c, *hw)), 0).astype(np.float64)
    x_cl = _channels_last_memory(x)
    padding = window_output_shape(hw, pool, stride, padding)[1]
    y, cache = pool2d_forward(x_cl, pool, stride, padding, mode)
    np.testing.assert_allclose(y, pool2d_reference(x, pool, stride, padding, mode), atol=1e-12)
    assert y.transpose(0, 2, 3, 1).flags.c_contiguous
    dy = rng.standard_normal(y.shape)
    dx = pool2d_backward(dy, cache)
    expected = pool2d_backward_reference(dy, x, pool, stride, padding, mode)
    np.testing.assert_allclose(dx, expected, atol=1e-12)
    assert dx.transpose(0, 2, 3, 1).flags.c_contiguous


def test_many_cell_max_pool_uses_a_wide_index():
    x = np.random.default_rng(6).standard_normal((1, 2, 17, 17))
    y, cache = pool2d_forward(x, (17, 17), None, ((0, 0), (0, 0)), "max")  # 289 cells > 256
    assert cache.argmax.dtype == np.int64
    np.testing.assert_array_equal(y, pool2d_reference(x, (17, 17), (17, 17), 0, "max"))
    dx = pool2d_backward(np.ones_like(y), cache)
    np.testing.assert_array_equal(dx, pool2d_backward_reference(np.ones_like(y), x, 17, 17, 0, "max"))


@pytest.mark.parametrize("layer, shape", [(Dense(4, activation="relu"), (6,)),
                                          (Conv2D(3, 2, activation="relu"), (2, 4, 4))])
def test_in_place_relu_gives_the_same_outputs_and_gradients(layer, shape):
    with cnn.backend.floatx_scope("float64"):
        layer.build(shape)
    x = np.random.default_rng(7).standard_normal((3, *shape))
    a = layer.forward(x)
    z = layer.forward_linear(x)
    np.testing.assert_array_equal(a, np.maximum(z, 0))
    assert layer.z is None  # relu needs only its output: z was overwritten, not kept
    layer.forward(x)
    g = np.random.default_rng(8).standard_normal(a.shape)
    dx = layer.backward(g.copy())  # in place: backward may overwrite its argument
    layer.forward(x)
    expected = layer.backward_linear(g * (a > 0))
    np.testing.assert_allclose(dx, expected)


def test_set_num_threads_limits_and_restores():
    default = cnn.get_num_threads()
    try:
        cnn.set_num_threads(1)
        assert cnn.get_num_threads() == 1
    finally:
        cnn.set_num_threads(None)
    assert cnn.get_num_threads() == default
    with pytest.raises(ValueError, match="threads"):
        cnn.set_num_threads(0)


@pytest.mark.parametrize("case", CONV_CASES[:2], ids=str)
@pytest.mark.parametrize("keep_bytes", [0, 1 << 30], ids=["rebuild", "keep"])
def test_conv_with_a_workspace_reuses_its_buffer_and_matches(case, keep_bytes, monkeypatch):
    monkeypatch.setattr(conv_ops, "CHUNK_BYTES", 2000)
    monkeypatch.setattr(conv_ops, "KEEP_COLUMNS_BYTES", keep_bytes)
    n, c, f, hw, kernel, stride, padding = case
    rng = np.random.default_rng(9)
    w, b = rng.standard_normal((f, c, *kernel)), rng.standard_normal(f)
    workspace = {}
    for step in range(2):  # the second step builds its columns in the first step's buffer
        x = rng.standard_normal((n, c, *hw))
        y, cache = conv2d_forward(x, w, b, stride, padding, workspace=workspace)
        buffer = workspace["columns"]
        y_plain, cache_plain = conv2d_forward(x, w, b, stride, padding)
        np.testing.assert_allclose(y, y_plain, atol=1e-12)
        dy = rng.standard_normal(y.shape)
        for got, expected in zip(conv2d_backward(dy, cache), conv2d_backward(dy, cache_plain)):
            np.testing.assert_allclose(got, expected, atol=1e-12)
        if step == 1:
            assert workspace["columns"] is buffer


def _small_convnet():
    from cnn.layers import AveragePooling2D, Flatten, Input, MaxPooling2D, Output
    from cnn.models import Model

    with cnn.backend.floatx_scope("float64"):
        model = Model(Input((1, 8, 8)))
        model.add(Conv2D(3, 3, padding="same", activation="relu"))
        model.add(MaxPooling2D(2))
        model.add(Conv2D(4, 3, activation="relu"))
        model.add(AveragePooling2D(2, padding="same"))
        model.add(Flatten())
        model.add(Dense(5, activation="relu"))
        model.add(Output(3))
        model.compile(optimizer="sgd", loss="categorical_crossentropy")
    return model


def _step(model, x, y, weights=None):
    """One optimizer step through the trainer's public step: ``(loss, output)``."""
    batch = Batch([x.astype(model.dtype)], [y.astype(model.dtype)],
                  None if weights is None else weights.astype(model.dtype))
    loss, result = train_step(model, OneProcess(), batch)
    return loss, result.outputs[0]


def _train_twice(part_bytes, monkeypatch, weights=None):
    from cnn.models import model as model_module

    monkeypatch.setattr(model_module, "PART_BYTES", part_bytes)
    cnn.set_seed(0)
    model = _small_convnet()
    rng = np.random.default_rng(10)
    x = rng.standard_normal((11, 1, 8, 8))
    y = np.eye(3)[rng.integers(0, 3, size=11)]
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    results = [_step(model, x, y, w) for _ in range(2)]
    return model, results, model.parts(11)


@pytest.mark.parametrize("weights", [None, np.linspace(0.5, 2.0, 11)], ids=["plain", "weighted"])
def test_a_batch_run_in_parts_trains_like_the_whole_batch(weights, monkeypatch):
    whole, whole_results, whole_parts = _train_twice(1 << 40, monkeypatch, weights)
    parted, parted_results, parts = _train_twice(1, monkeypatch, weights)
    assert len(whole_parts) == 1 and len(parts) == 11  # one sample per part
    for (loss_a, out_a), (loss_b, out_b) in zip(whole_results, parted_results):
        assert loss_a == pytest.approx(loss_b, rel=1e-12)
        np.testing.assert_allclose(out_a, out_b, atol=1e-12)
    for a, b in zip(whole.get_weights(), parted.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-12)
    for layer_a, layer_b in zip(whole.layers, parted.layers):  # grads are the batch's
        for key in layer_a.grads:
            np.testing.assert_allclose(layer_a.grads[key], layer_b.grads[key], atol=1e-12)


def test_parts_are_balanced_and_sized_by_the_largest_activation(monkeypatch):
    from cnn.models import model as model_module

    model = _small_convnet()
    largest = 3 * 8 * 8 * 8  # the first Conv2D's output, float64
    monkeypatch.setattr(model_module, "PART_BYTES", 4 * largest)
    parts = model.parts(10)
    assert sorted(p.stop - p.start for p in parts) == [3, 3, 4]
    assert parts[0].start == 0 and parts[-1].stop == 10
    assert all(a.stop == b.start for a, b in zip(parts, parts[1:]))


def test_a_layer_that_mixes_samples_keeps_the_batch_whole(monkeypatch):
    from cnn.models import model as model_module

    monkeypatch.setattr(model_module, "PART_BYTES", 1)
    model = _small_convnet()
    model.layers[2].samplewise = False  # as a batch-normalisation layer would declare
    assert model.parts(10) == [slice(0, 10)]


def test_predict_and_evaluate_in_parts_match_whole_batches(monkeypatch):
    from cnn.models import model as model_module

    model = _small_convnet()
    rng = np.random.default_rng(11)
    x, y = rng.standard_normal((9, 1, 8, 8)), rng.integers(0, 3, size=9)
    monkeypatch.setattr(model_module, "PART_BYTES", 1 << 40)
    expected = model.predict(x, batch_size=4), model.evaluate(x, y, batch_size=4)
    monkeypatch.setattr(model_module, "PART_BYTES", 1)
    np.testing.assert_allclose(model.predict(x, batch_size=4), expected[0], atol=1e-12)
    np.testing.assert_allclose(model.evaluate(x, y, batch_size=4), expected[1], atol=1e-12)


def test_relu_backward_leaves_a_read_only_gradient_alone():
    layer = Dense(4, activation="relu")
    with cnn.backend.floatx_scope("float64"):
        layer.build((3,))
    x = np.random.default_rng(12).standard_normal((5, 3))
    a = layer.forward(x)
    g = np.broadcast_to(np.ones(4), a.shape)  # read-only view
    dx = layer.backward(g)
    layer.forward(x)
    np.testing.assert_allclose(dx, layer.backward_linear(np.ones(a.shape) * (a > 0)))


def _sequential(input_shape, layers, loss="mse"):
    from cnn.models import Model
    from cnn.layers import Input

    with cnn.backend.floatx_scope("float64"):
        cnn.set_seed(3)
        model = Model(Input(input_shape))
        for layer in layers:
            model.add(layer)
        model.compile(optimizer="sgd", loss=loss)
    return model


def _part_cases():
    from cnn.layers import (GRU, LSTM, BatchNormalization, Conv2D, Dense, GlobalAveragePooling2D,
                            Recurrent, Reshape, TimeDistributed, ZeroPadding2D)

    return {
        "reshaping": ((1, 6, 6), lambda: [ZeroPadding2D(1), Conv2D(3, 3), GlobalAveragePooling2D(),
                                          Reshape((3, 1)), TimeDistributed(Dense(2))], True),
        "regularized": ((4,), lambda: [Dense(5, kernel_regularizer="l2", bias_regularizer="l1"),
                                       Dense(2)], True),
        "lstm_gru": ((5, 3), lambda: [LSTM(4, return_sequences=True), GRU(3)], True),
        "batch_norm": ((4,), lambda: [Dense(5), BatchNormalization(), Dense(2)], False),
        "stateful": ((5, 3), lambda: [LSTM(3, stateful=True), Dense(2)], False),
        "seed_recurrent": ((3,), lambda: [Recurrent(4), Dense(2)], False),
    }


@pytest.mark.parametrize("case", sorted(_part_cases()))
def test_every_layer_declares_whether_batches_may_be_split(case, monkeypatch):
    from cnn.models import model as model_module

    input_shape, layers, samplewise = _part_cases()[case]
    results = []
    for part_bytes in (1 << 40, 1):
        monkeypatch.setattr(model_module, "PART_BYTES", part_bytes)
        model = _sequential(input_shape, layers())
        rng = np.random.default_rng(4)
        x = rng.standard_normal((6, *input_shape))
        y = rng.standard_normal((6, *model.cur_output_shape))
        loss, _ = _step(model, x, y)
        results.append((len(model.parts(6)), loss, model.get_weights()))
    (whole_parts, loss_a, weights_a), (parts, loss_b, weights_b) = results
    assert whole_parts == 1 and parts == (6 if samplewise else 1)
    assert loss_a == pytest.approx(loss_b, rel=1e-12)
    for a, b in zip(weights_a, weights_b):
        np.testing.assert_allclose(a, b, atol=1e-12)
