"""Inference's convolution pooled on the fly (``cnn.ops.conv.conv2d_pool_forward``, reached
through ``Conv2D.forward_pooled`` and ``Graph.pooled_pairs``) against the slow reference
twins (``cnn.ops.reference``) and the layer-by-layer pass, and the cases it leaves to the
layers; ``relu_inplace``'s broadcast zero against ``maximum(z, 0)``."""

import numpy as np
import pytest

import cnn
from cnn.layers import (AveragePooling2D, Conv2D, Dense, Flatten, Input, MaxPooling2D, Output,
                        ReLU)
from cnn.models import Model
from cnn.ops import conv as conv_ops
from cnn.ops import pooling as pool_ops
from cnn.ops.activations import in_memory_order, linear, relu_inplace
from cnn.ops.reference import conv2d_reference, pool2d_reference

# (N, F, (H, W), (kh, kw), stride, padding, pool): one input channel, a kernel bands serve,
# pooling windows that tile the convolution's output.
CASES = [
    (5, 20, (28, 28), (9, 9), (1, 1), ((0, 0), (0, 0)), (2, 2)),  # the seed network: bands of 4
    (3, 4, (17, 26), (5, 7), (2, 3), ((2, 1), (0, 3)), (2, 2)),  # strided, padded: bands of 4
    (4, 3, (12, 30), (3, 9), (1, 1), ((1, 1), (4, 4)), (3, 5)),  # bands of 5, 3x5 windows
    (2, 6, (16, 23), (7, 8), (1, 1), ((0, 0), (0, 0)), (1, 2)),  # ow = 16: bands of 4
    (7, 2, (10, 12), (3, 7), (1, 1), ((0, 0), (0, 0)), (4, 3)),  # ow = 6: bands of 3
]


def _case(case, dtype, seed=0):
    n, f, hw, kernel, stride, padding, pool = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 1, *hw)).astype(dtype)
    w = rng.standard_normal((f, 1, *kernel)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    return x, w, b, stride, padding, pool


@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("case", CASES)
def test_pooled_convolution_matches_the_references_in_float64(case, mode):
    x, w, b, stride, padding, pool = _case(case, np.float64)
    got = conv_ops.conv2d_pool_forward(x, w, b, stride, padding, pool, mode, relu_inplace)
    expected = pool2d_reference(np.maximum(conv2d_reference(x, w, b, stride, padding), 0),
                                pool, pool, ((0, 0), (0, 0)), mode)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES)
def test_pooled_convolution_without_bias_or_activation_matches_the_references(case):
    x, w, _, stride, padding, pool = _case(case, np.float64, seed=1)
    got = conv_ops.conv2d_pool_forward(x, w, None, stride, padding, pool, "avg")
    expected = pool2d_reference(conv2d_reference(x, w, None, stride, padding), pool, pool,
                                ((0, 0), (0, 0)), "avg")
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    assert (got < 0).any()  # no ReLU slipped in


@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("case", CASES)
def test_pooled_convolution_matches_the_layer_by_layer_pass_in_float32(case, mode,
                                                                       monkeypatch):
    monkeypatch.setattr(conv_ops, "CHUNK_BYTES", 20000)  # several chunks, a short last one
    x, w, b, stride, padding, pool = _case(case, np.float32, seed=2)
    y, _ = conv_ops.conv2d_forward(x, w, b, stride, padding, keep_columns=False,
                                   epilogue=relu_inplace)
    expected, _ = pool_ops.pool2d_forward(y, pool, mode=mode)
    workspace = {}
    for _ in range(2):  # the second call reuses the workspace's buffers
        got = conv_ops.conv2d_pool_forward(x, w, b, stride, padding, pool, mode,
                                           relu_inplace, workspace)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert {"bands", "pooled_conv"} <= set(workspace)


@pytest.mark.parametrize("mode", ["avg", "max"])
def test_pooled_convolution_matches_pytorch(mode):
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle of this test")
    functional = torch.nn.functional
    x, w, b, stride, padding, pool = _case(CASES[1], np.float64, seed=3)
    got = conv_ops.conv2d_pool_forward(x, w, b, stride, padding, pool, mode, relu_inplace)
    (top, bottom), (left, right) = padding
    padded = functional.pad(torch.from_numpy(x), (left, right, top, bottom))
    z = functional.relu(functional.conv2d(padded, torch.from_numpy(w), torch.from_numpy(b),
                                          stride=stride))
    pooled = (functional.avg_pool2d if mode == "avg" else functional.max_pool2d)(z, pool)
    np.testing.assert_allclose(got, pooled.numpy(), rtol=1e-12, atol=1e-12)


def test_pooled_band_width_takes_multiples_of_the_pool_width_that_tile_the_output():
    assert conv_ops.pooled_band_width(1, (9, 9), (1, 1), (20, 20), (2, 2)) == 4
    assert conv_ops.pooled_band_width(1, (9, 9), (1, 1), (20, 20), (2, 5)) == 5
    assert conv_ops.pooled_band_width(1, (9, 9), (1, 1), (21, 21), (3, 3)) == 3
    assert conv_ops.pooled_band_width(1, (9, 9), (1, 1), (20, 20), (3, 2)) == 0  # 20 % 3
    assert conv_ops.pooled_band_width(1, (9, 9), (1, 1), (14, 14), (2, 2)) == 2
    assert conv_ops.pooled_band_width(1, (9, 9), (1, 1), (14, 14), (7, 7)) == 0  # 7 > 5
    assert conv_ops.pooled_band_width(2, (9, 9), (1, 1), (20, 20), (2, 2)) == 0  # channels
    assert conv_ops.pooled_band_width(1, (3, 3), (1, 1), (20, 20), (2, 2)) == 0  # narrow
    assert conv_ops.pooled_band_width(1, (9, 9), (2, 2), (20, 20), (2, 2)) == 0  # dilated
    assert conv_ops.band_width(1, (9, 9), 20) == 5  # the unpooled path keeps its bands


def test_pooled_convolution_refuses_what_it_does_not_serve_by_name():
    x = np.zeros((2, 1, 28, 28), np.float32)
    w = np.zeros((4, 1, 9, 9), np.float32)
    with pytest.raises(ValueError, match=r"no fused path .* pool \(3, 3\)"):
        conv_ops.conv2d_pool_forward(x, w, None, 1, 0, (3, 3))
    with pytest.raises(ValueError, match="unknown mode 'sum'"):
        conv_ops.conv2d_pool_forward(x, w, None, 1, 0, (2, 2), "sum")
    with pytest.raises(ValueError, match="channels"):
        conv_ops.conv2d_pool_forward(np.zeros((2, 3, 28, 28), np.float32), w, None)
    with pytest.raises(ValueError, match="output would be empty"):
        conv_ops.conv2d_pool_forward(np.zeros((2, 1, 5, 5), np.float32), w, None)


# Mutation run 8 (docs/TESTING.md): what the tests above let conv2d_pool_forward get wrong.


def test_pooled_convolution_errors_name_the_argument_and_the_value():
    x = np.zeros((2, 1, 28, 28))
    w = np.zeros((4, 1, 9, 9))
    with pytest.raises(ValueError, match=r"unknown mode 'sum'; valid modes: max, avg$"):
        conv_ops.conv2d_pool_forward(x, w, None, 1, 0, (2, 2), "sum")
    with pytest.raises(ValueError, match=r"^pool_size must be an int or a pair of ints, got '2'"):
        conv_ops.conv2d_pool_forward(x, w, None, 1, 0, "2")
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\) .* got \(5,\)$"):
        conv_ops.conv2d_pool_forward(x, w, np.zeros(5))
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\) .* got \(1, 4\)$"):
        conv_ops.conv2d_pool_forward(x, w, np.zeros((1, 4)))  # would broadcast


@pytest.mark.parametrize("x_dtype, w_dtype", [(np.float32, np.float64),
                                              (np.float64, np.float32)])
def test_pooled_convolution_of_mixed_operands_gives_the_wider_dtype(x_dtype, w_dtype):
    x, w, b, stride, padding, pool = _case(CASES[2], np.float64, seed=4)
    x, w = x.astype(x_dtype), w.astype(w_dtype)
    got = conv_ops.conv2d_pool_forward(x, w, b, stride, padding, pool, "avg", relu_inplace)
    assert got.dtype == np.float64
    expected = pool2d_reference(
        np.maximum(conv2d_reference(x.astype(np.float64), w.astype(np.float64), b, stride,
                                    padding), 0), pool, pool, ((0, 0), (0, 0)), "avg")
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("case", [CASES[0], CASES[2], CASES[4]])
def test_float32_pooling_on_the_fly_is_the_layer_by_layer_float32_pass_bit_for_bit(case, mode):
    # Small integers make every GEMM exact in float32, so the bias, the ReLU, the sum of the
    # cells and its share (1/15 for 3x5 windows) are the only roundings: all in float32.
    x, w, _, stride, padding, pool = _case(case, np.float32, seed=5)
    x, w = np.round(x * 1.5), np.round(w * 1.5)
    b = np.random.default_rng(6).standard_normal(w.shape[0]).astype(np.float32)
    y, _ = conv_ops.conv2d_forward(x, w, b, stride, padding, epilogue=relu_inplace)
    expected, _ = pool_ops.pool2d_forward(y, pool, mode=mode)
    workspace = {}
    got = conv_ops.conv2d_pool_forward(x, w, b, stride, padding, pool, mode, relu_inplace,
                                       workspace)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)
    assert workspace["pooled_conv"].dtype == workspace["bands"].dtype == np.float32


def test_pooled_convolution_allocates_its_buffers_once_whatever_the_chunks(monkeypatch):
    empties = []

    class CountingNumpy:
        def __getattr__(self, name):
            return getattr(np, name)

        def empty(self, *args, **kwargs):
            empties.append(args[0])
            return np.empty(*args, **kwargs)

    x, w, b, stride, padding, pool = _case(CASES[0], np.float32, seed=7)
    monkeypatch.setattr(conv_ops, "xp", CountingNumpy())
    counts = []
    for chunk_bytes in (1 << 30, 20000):  # one chunk, then one sample a chunk
        monkeypatch.setattr(conv_ops, "CHUNK_BYTES", chunk_bytes)
        empties.clear()
        conv_ops.conv2d_pool_forward(x, w, b, stride, padding, pool)  # no workspace given
        counts.append(len(empties))
    assert counts[0] == counts[1] <= 3  # the output, the band columns, the convolution


def _seed_like(pool_layer, activation="relu", data_format=None):
    cnn.set_seed(0)
    model = Model(Input((1, 28, 28) if data_format != "channels_last" else (28, 28, 1)))
    model.add(Conv2D(6, 9, activation=activation, data_format=data_format))
    model.add(pool_layer)
    model.add(Flatten())
    model.add(Dense(12, activation="relu"))
    model.add(Output(5))
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    return model


def _count_fused(monkeypatch):
    calls = []
    original = conv_ops.conv2d_pool_forward

    def spy(*args, **kwargs):
        calls.append(args[0].shape[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(conv_ops, "conv2d_pool_forward", spy)
    return calls


@pytest.mark.parametrize("pool_layer", [AveragePooling2D(2), MaxPooling2D(2)],
                         ids=["avg", "max"])
@pytest.mark.parametrize("data_format", ["channels_first", "channels_last"])
def test_predict_pools_on_the_fly_with_the_training_forward_outputs(pool_layer, data_format,
                                                                    monkeypatch):
    cnn.set_floatx("float64")
    try:
        model = _seed_like(type(pool_layer)(2, data_format=data_format),
                           data_format=data_format)
        shape = (37, 1, 28, 28) if data_format == "channels_first" else (37, 28, 28, 1)
        x = np.random.default_rng(3).standard_normal(shape)
        calls = _count_fused(monkeypatch)
        got = model.predict(x, workers=1)
        assert calls and sum(calls) == 37  # every sample went through the fused path
        expected = model.graph.forward([x], training=True)[0]
    finally:
        cnn.set_floatx("float32")
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


def test_predict_matches_the_layer_by_layer_pass_and_evaluate_is_unchanged(monkeypatch):
    model = _seed_like(AveragePooling2D(2))
    rng = np.random.default_rng(4)
    x = rng.random((50, 1, 28, 28), dtype=np.float32)
    y = np.eye(5, dtype=np.float32)[rng.integers(0, 5, 50)]
    fused, fused_loss = model.predict(x, workers=1), model.evaluate(x, y, workers=1)
    assert model.graph.pooled_pairs  # the conv -> pooling pair was found
    monkeypatch.setattr(model.graph, "pooled_pairs", {})
    layered, layered_loss = model.predict(x, workers=1), model.evaluate(x, y, workers=1)
    np.testing.assert_allclose(fused, layered, rtol=1e-5, atol=1e-6)
    assert fused_loss == pytest.approx(layered_loss, rel=1e-5)


def test_training_never_takes_the_fused_path(monkeypatch):
    model = _seed_like(AveragePooling2D(2))
    x = np.random.default_rng(5).random((8, 1, 28, 28), dtype=np.float32)
    y = np.eye(5, dtype=np.float32)[np.arange(8) % 5]
    calls = _count_fused(monkeypatch)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, workers=1)
    assert calls == []


def _pairs(model):
    return {model.graph.nodes[0].layer.name: node.layer.name
            for node in model.graph.pooled_pairs.values()}


def test_pairs_left_to_the_layers(monkeypatch):
    # An activation without an in-place form (softmax reads its whole row): no fusion.
    calls = _count_fused(monkeypatch)
    x = np.random.default_rng(6).random((4, 1, 28, 28), dtype=np.float32)
    for model in (_seed_like(AveragePooling2D(2), activation="softmax"),
                  _seed_like(AveragePooling2D(3)),  # 20 % 3: the windows do not tile
                  _seed_like(AveragePooling2D(2, strides=1)),  # overlapping windows
                  _seed_like(MaxPooling2D(4, padding="same"))):  # 20 % 4 == 0 but same
        assert model.predict(x, workers=1).shape == (4, 5)
        assert bool(model.graph.pooled_pairs) == (len(calls) == 1)
    assert len(calls) == 1  # only the 4x4 "same" pool, whose windows tile 20 x 20 exactly


def test_a_narrow_kernel_or_several_channels_keep_the_layers_and_their_parts():
    cnn.set_seed(0)
    model = Model(Input((3, 28, 28)))
    model.add(Conv2D(4, 3, activation="relu"))  # narrow and three channels: im2col
    model.add(MaxPooling2D(2))
    model.add(Conv2D(4, 9, activation="relu"))  # 4 channels
    model.add(AveragePooling2D(2))
    model.add(Flatten())
    model.add(Output(5))
    assert model.graph.pooled_pairs == {}
    assert model.parts(300, training=False) == model.parts(300)


def test_inference_parts_leave_out_the_activation_the_fused_pass_never_holds():
    model = _seed_like(AveragePooling2D(2))  # (6, 20, 20) conv output, (6, 10, 10) pooled
    conv_output = model.graph.nodes[0].output
    assert conv_output not in model.graph.inference_tensors()
    assert len(model.graph.inference_tensors()) == len(model.graph.tensors()) - 1
    rows = cnn.models.model.PART_BYTES // (6 * 20 * 20 * 4)  # a part in training
    assert len(model.parts(4 * rows)) == 4
    # The (1, 28, 28) input is the largest activation inference holds now.
    input_parts = -(-4 * rows * 28 * 28 * 4 // cnn.models.model.PART_BYTES)
    assert input_parts == 2
    assert len(model.parts(4 * rows, training=False)) == input_parts


def test_a_convolution_read_twice_or_given_out_is_not_fused():
    inputs = Input((1, 28, 28))
    features = Conv2D(4, 9, activation="relu")(inputs)
    pooled = AveragePooling2D(2)(features)
    both = Model(inputs, [pooled, features])  # the convolution's output is a model output
    assert both.graph.pooled_pairs == {}
    inputs = Input((1, 28, 28))
    features = Conv2D(4, 9, activation="relu")(inputs)
    twice = Model(inputs, [AveragePooling2D(2)(features), ReLU()(features)])
    assert twice.graph.pooled_pairs == {}
    x = np.random.default_rng(7).random((3, 1, 28, 28), dtype=np.float32)
    a, b = both.predict(x, workers=1)
    np.testing.assert_allclose(a, b.reshape(3, 4, 10, 2, 10, 2).mean(axis=(3, 5)), rtol=1e-5)


def test_relu_inplace_gives_maximum_with_zero_bit_for_bit():
    rng = np.random.default_rng(8)
    for shape in [(7,), (3, 5), (4, 6, 6, 3)]:
        for dtype in (np.float32, np.float64):
            z = rng.standard_normal(shape).astype(dtype)
            flat = z.reshape(-1)
            flat[:4] = [-0.0, np.nan, -np.inf, np.inf][:flat.size]
            expected = np.maximum(z, 0)
            got = relu_inplace(z)
            assert got is z and got.dtype == dtype
            np.testing.assert_array_equal(got, expected)
            assert (np.signbit(got) == np.signbit(expected)).all()
    strided = rng.standard_normal((6, 8))[:, ::2]  # a view: written where it lies
    expected = np.maximum(strided, 0)
    assert relu_inplace(strided) is strided
    np.testing.assert_array_equal(strided, expected)
    assert linear(strided) is strided


def test_relu_inplace_follows_the_memory_order_of_a_permuted_view():
    """A convolution's channels-last output read as (N, C, H, W): the zeros are shaped in
    memory order (``in_memory_order``), the values written where they lie."""
    rng = np.random.default_rng(10)
    base = rng.standard_normal((4, 5, 6, 3)).astype(np.float32)  # (N, H, W, C) in memory
    base.reshape(-1)[:2] = [-0.0, np.nan]
    view = base.transpose(0, 3, 1, 2)
    expected = np.maximum(view, 0)
    assert in_memory_order(view).shape == (4, 5, 6, 3)
    assert np.shares_memory(in_memory_order(view), base)
    assert relu_inplace(view) is view
    np.testing.assert_array_equal(view, expected)
    assert (np.signbit(view) == np.signbit(expected)).all()
    assert in_memory_order(base) is base
    sliced = base[:, ::2]  # no permutation makes it contiguous: used as it is
    assert in_memory_order(sliced) is sliced


def test_worker_processes_pool_on_the_fly_and_give_one_process_outputs(monkeypatch):
    model = _seed_like(AveragePooling2D(2))
    rng = np.random.default_rng(9)
    x = rng.random((300, 1, 28, 28), dtype=np.float32)
    y = np.eye(5, dtype=np.float32)[rng.integers(0, 5, 300)]

    def layer_by_layer(*args, **kwargs):
        raise AssertionError("the pooling layer ran on its own")

    with monkeypatch.context() as patch:  # the forked workers inherit it
        patch.setattr(pool_ops, "pool2d_forward", layer_by_layer)
        try:
            two = model.predict(x, batch_size=100, workers=2)
            two_loss = model.evaluate(x, y, batch_size=100, workers=2)
        finally:
            model.close_workers()
    one = model.predict(x, batch_size=100, workers=1)
    assert model.graph.pooled_pairs  # the worker rebuilds the same graph from the config
    np.testing.assert_allclose(two, one, rtol=1e-5, atol=1e-6)
    assert two_loss == pytest.approx(model.evaluate(x, y, batch_size=100, workers=1), rel=1e-5)
