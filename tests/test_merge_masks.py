"""Merge layers carry sequence masks as Keras 3's do (``keras/src/layers/merging``): the OR of
the inputs' masks when all have one, else none; ``Concatenate`` along the steps joins them;
``Maximum`` lets only real steps compete. In models, on a slow reference, through the
gradients and through ONNX export."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import cnn
from cnn.backend import floatx_scope
from cnn.layers import (LSTM, Add, Average, Concatenate, Dense, Embedding,
                        GlobalAveragePooling1D, Input, Maximum, MultiHeadAttention, Multiply,
                        Subtract)
from cnn.models import Model
from helpers import check_model_gradients

T = 5
A = np.array([[1, 1, 0, 0, 0], [1, 1, 1, 1, 0]], dtype=bool)
B = np.array([[1, 0, 0, 0, 1], [0, 0, 0, 0, 0]], dtype=bool)


def ids(rng, n, steps=T, vocabulary=9):
    """Ids with trailing padding (0) of random lengths; the first sample has one real step."""
    x = rng.integers(1, vocabulary, (n, steps))
    for row in range(n):
        x[row, rng.integers(1, steps + 1):] = 0
    x[0, 1:] = 0
    return x


def crossing_ids():
    """Two (4, T) id arrays whose masks each have real steps that the other's lacks (so their
    OR differs from both) and a sample with no real step in either."""
    left = np.array([[1, 2, 0, 0, 0], [3, 0, 0, 0, 0], [4, 5, 6, 7, 8], [0, 0, 0, 0, 0]])
    right = np.array([[0, 3, 4, 0, 0], [0, 0, 0, 5, 6], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
    return [left.astype(np.float32), right.astype(np.float32)]


def arrays(shape=(2, T, 3), count=2, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) for _ in range(count)]


# -- compute_mask -----------------------------------------------------------------------------
@pytest.mark.parametrize("layer", [Add(), Subtract(), Multiply(), Average(), Maximum(),
                                   Concatenate()])
def test_the_output_mask_is_the_or_when_every_input_has_one(layer):
    x = arrays()
    layer.build([(T, 3), (T, 3)])
    np.testing.assert_array_equal(layer.compute_mask(x, [A, B]), A | B)
    assert layer.compute_mask(x, [None, None]) is None
    if isinstance(layer, Concatenate):  # an unmasked input: all True along the features
        np.testing.assert_array_equal(layer.compute_mask(x, [A, None]), np.ones((2, T), bool))
    else:
        assert layer.compute_mask(x, [A, None]) is None


def test_three_masks_or_together():
    x = arrays(count=3)
    c = np.array([[0, 0, 1, 0, 0], [0, 0, 0, 0, 0]], dtype=bool)
    np.testing.assert_array_equal(Add().compute_mask(x, [A, B, c]), A | B | c)


def test_concatenate_along_the_steps_joins_the_masks():
    layer = Concatenate(axis=1)
    layer.build([(T, 3), (2, 3)])
    x = [np.zeros((2, T, 3)), np.zeros((2, 2, 3))]
    np.testing.assert_array_equal(layer.compute_mask(x, [A, None]),
                                  np.concatenate([A, np.ones((2, 2), bool)], axis=1))
    short = np.array([[0, 1], [1, 0]], dtype=bool)
    np.testing.assert_array_equal(layer.compute_mask(x, [None, short]),
                                  np.concatenate([np.ones((2, T), bool), short], axis=1))


# -- Maximum's values with masks ----------------------------------------------------------------
def maximum_reference(xs, masks):
    """Loops: at each (sample, step), the max over the inputs whose step is real, or over all
    of them where none is (Keras 3's pairwise ``where`` then ``maximum``)."""
    n, steps = xs[0].shape[:2]
    out = np.empty_like(xs[0])
    for i in range(n):
        for t in range(steps):
            real = [x[i, t] for x, m in zip(xs, masks) if m is None or m[i, t]]
            out[i, t] = np.max(real or [x[i, t] for x in xs], axis=0)
    return out


@pytest.mark.parametrize("masks", [[A, B], [A, None], [None, B], [A, B, None], [B, B, A]])
def test_maximum_lets_only_real_steps_compete(masks):
    xs = arrays(count=len(masks), seed=len(masks))
    layer = Maximum()
    layer.build([(T, 3)] * len(masks))
    got = layer.call_forward(xs, training=False, mask=masks)
    np.testing.assert_array_equal(got, maximum_reference(xs, masks))
    grad = np.random.default_rng(9).standard_normal(got.shape)
    grads = layer.backward(grad)
    for x, g in zip(xs, grads):  # each output element's gradient goes to the input it came from
        np.testing.assert_array_equal(g, np.where(x == got, grad, 0.0))
    np.testing.assert_array_equal(sum(grads), grad)


def test_maximum_without_masks_is_unchanged():
    xs = arrays(count=3)
    layer = Maximum()
    layer.build([(T, 3)] * 3)
    np.testing.assert_array_equal(layer.call_forward(xs, False, [None] * 3), np.maximum.reduce(xs))


# -- in models ------------------------------------------------------------------------------------
def residual_then_lstm():
    """Embedding(mask_zero) + a Dense branch of it, added (a residual), read by an LSTM."""
    cnn.set_seed(3)
    tokens = Input((T,))
    embedded = Embedding(9, 4, mask_zero=True)(tokens)
    added = Add()([embedded, Dense(4, activation="tanh")(embedded)])
    return Model(tokens, Dense(2, activation="softmax")(LSTM(3)(added)))


def test_a_residual_add_passes_the_embedding_mask_to_the_lstm():
    model = residual_then_lstm()
    x = ids(np.random.default_rng(1), 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the mask is not dropped
        out = model.predict(x)
    embedding, dense, lstm, head = (model.get_layer(name) for name in
                                    ("embedding", "dense", "lstm", "dense_1"))
    e = embedding.forward(x.astype(np.float32))
    summed = e + dense.forward(e)
    np.testing.assert_allclose(out, head.forward(lstm.forward(summed, mask=x != 0)),
                               rtol=1e-5, atol=1e-7)
    assert not np.allclose(out, head.forward(lstm.forward(summed)), atol=1e-3)  # it matters


def test_two_masks_meet_in_an_add_as_their_or():
    cnn.set_seed(4)
    left, right = Input((T,)), Input((T,))
    embeddings = [Embedding(9, 3, mask_zero=True), Embedding(9, 3, mask_zero=True)]
    joined = Add()([embeddings[0](left), embeddings[1](right)])
    model = Model([left, right], GlobalAveragePooling1D()(joined))
    x = crossing_ids()
    e = [layer.forward(a.astype(np.float32)) for layer, a in zip(embeddings, x)]
    real = ((x[0] != 0) | (x[1] != 0))[:, :, None]
    expected = ((e[0] + e[1]) * real).sum(axis=1) / np.maximum(real.sum(axis=1), 1)
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("build", ["maximum", "concatenate_steps", "residual"])
def test_gradients_through_masked_merges(build):
    with floatx_scope("float64"):
        cnn.set_seed(5)
        left, right = Input((T,)), Input((T,))
        a = Embedding(9, 3, mask_zero=True)(left)
        b = Embedding(9, 3, mask_zero=build != "residual")(right)
        if build == "maximum":
            merged = Maximum()([a, Dense(3)(b)])
        elif build == "concatenate_steps":
            merged = Concatenate(axis=1)([a, b])
        else:
            merged = Add()([a, Dense(3)(a), b])
        model = Model([left, right], Dense(2, activation="softmax")(LSTM(3)(merged)))
        model.compile(optimizer="sgd", loss="categorical_crossentropy")
    x = [a.astype(np.float64) for a in crossing_ids()]
    check_model_gradients(model, x, np.eye(2)[[0, 1, 1, 0]])


def test_concatenated_steps_are_masked_where_their_input_was():
    cnn.set_seed(7)
    left, right = Input((T,)), Input((2, 3))
    embedding, lstm = Embedding(9, 3, mask_zero=True), LSTM(2)
    joined = Concatenate(axis=1)([embedding(left), right])
    model = Model([left, right], lstm(joined))
    rng = np.random.default_rng(8)
    x = [ids(rng, 3), rng.standard_normal((3, 2, 3)).astype(np.float32)]
    embedded = embedding.forward(x[0].astype(np.float32))
    mask = np.concatenate([x[0] != 0, np.ones((3, 2), bool)], axis=1)
    expected = lstm.forward(np.concatenate([embedded, x[1]], axis=1), mask=mask)
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-6)


# -- ONNX export -----------------------------------------------------------------------------
def onnx_outputs(model, x, tmp_path):
    pytest.importorskip("onnxruntime", reason="needs the [onnx] extra")
    from onnx_helpers import run_onnx
    path = tmp_path / "merged.onnx"
    cnn.onnx.export(model, path)
    return run_onnx(str(path), x)


def test_export_carries_the_mask_through_a_residual_add_to_attention(tmp_path):
    cnn.set_seed(9)
    tokens = Input((T,))
    embedded = Embedding(9, 4, mask_zero=True)(tokens)
    x = Add()([embedded, Dense(4)(embedded)])
    attended = MultiHeadAttention(2, 2)(x, x)
    model = Model(tokens, GlobalAveragePooling1D()(Add()([x, attended])))
    batch = ids(np.random.default_rng(3), 4).astype(np.float32)
    np.testing.assert_allclose(onnx_outputs(model, batch, tmp_path), model.predict(batch),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("merge", ["add", "concatenate_steps", "concatenate_features"])
def test_export_combines_two_masks_as_predict_does(merge, tmp_path):
    cnn.set_seed(10)
    left, right = Input((T,)), Input((T,))
    a, b = Embedding(9, 3, mask_zero=True)(left), Embedding(9, 3, mask_zero=True)(right)
    merged = {"add": lambda: Add()([a, b]),
              "concatenate_steps": lambda: Concatenate(axis=1)([a, b]),
              "concatenate_features": lambda: Concatenate()([a, b])}[merge]()
    model = Model([left, right], GlobalAveragePooling1D()(merged))
    x = crossing_ids()
    np.testing.assert_allclose(onnx_outputs(model, x, tmp_path)[0], model.predict(x),
                               rtol=1e-5, atol=1e-6)


def test_export_joins_a_masked_and_an_unmasked_sequence(tmp_path):
    cnn.set_seed(11)
    left, right = Input((T,)), Input((2, 3))
    joined = Concatenate(axis=1)([Embedding(9, 3, mask_zero=True)(left), right])
    model = Model([left, right], GlobalAveragePooling1D()(joined))
    rng = np.random.default_rng(5)
    x = [ids(rng, 3).astype(np.float32), rng.standard_normal((3, 2, 3)).astype(np.float32)]
    np.testing.assert_allclose(onnx_outputs(model, x, tmp_path)[0], model.predict(x),
                               rtol=1e-5, atol=1e-6)


def test_export_refuses_a_maximum_of_masked_inputs(tmp_path):
    pytest.importorskip("onnx", reason="needs the [onnx] extra")
    import cnn.onnx  # not imported by cnn; run alone, nothing else here imports it
    cnn.set_seed(12)
    tokens = Input((T,))
    embedded = Embedding(9, 3, mask_zero=True, name="words")(tokens)
    merged = Maximum(name="biggest")([embedded, Dense(3)(embedded)])
    model = Model(tokens, GlobalAveragePooling1D()(merged))
    with pytest.raises(cnn.onnx.OnnxExportError,
                       match=r'"biggest".*takes the mask of layer "words".*padded steps compete'):
        cnn.onnx.export(model, tmp_path / "max.onnx")
