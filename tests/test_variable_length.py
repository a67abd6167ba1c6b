"""Variable-length sequences: ``Input((None, features))`` and ``Input((None,))`` (issue #15).

A None time axis is propagated by the layers that work on any length and refused, with the
layer named, by those that need a known one; a layer built on a variable length computes at
every length what the same layer built on that length computes (same weights), and its
gradients are right at each length.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import cnn
from cnn.layers import (GRU, LSTM, Activation, Add, AveragePooling1D, BatchNormalization,
                        Bidirectional, Concatenate, Conv1D, Conv2D, Dense, Dropout, Embedding,
                        Flatten, GlobalAveragePooling1D, GlobalMaxPooling1D, Input,
                        LayerNormalization, Masking, MaxPooling1D, MultiHeadAttention,
                        PositionEmbedding, ReLU, RepeatVector, Reshape, SimpleRNN, Softmax,
                        TimeDistributed)
from cnn.models import Model
from helpers import build_layer, check_layer_gradients, check_model_gradients
from sequence_helpers import check_gradients

F = 3  # features per step


def random(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# (name, layer factory, output sample shape for input (None, F)); one factory call per use.
PROPAGATING = [
    ("SimpleRNN", lambda: SimpleRNN(4), (4,)),
    ("LSTM sequences", lambda: LSTM(4, return_sequences=True), (None, 4)),
    ("GRU", lambda: GRU(4, reset_after=True), (4,)),
    ("Bidirectional concat", lambda: Bidirectional(LSTM(2, return_sequences=True)), (None, 4)),
    ("Bidirectional sum", lambda: Bidirectional(GRU(2), merge_mode="sum"), (2,)),
    ("Conv1D valid", lambda: Conv1D(5, 3), (None, 5)),
    ("Conv1D same stride 2", lambda: Conv1D(5, 3, strides=2, padding="same"), (None, 5)),
    ("Conv1D causal dilated", lambda: Conv1D(5, 2, padding="causal", dilation_rate=2),
     (None, 5)),
    ("Conv1D valid stride 3 dilated", lambda: Conv1D(2, 2, strides=3, dilation_rate=2),
     (None, 2)),
    ("MaxPooling1D", lambda: MaxPooling1D(2), (None, F)),
    ("AveragePooling1D same", lambda: AveragePooling1D(3, strides=2, padding="same"),
     (None, F)),
    ("GlobalMaxPooling1D", lambda: GlobalMaxPooling1D(), (F,)),
    ("GlobalAveragePooling1D keepdims", lambda: GlobalAveragePooling1D(keepdims=True), (1, F)),
    ("Masking", lambda: Masking(), (None, F)),
    ("LayerNormalization", lambda: LayerNormalization(), (None, F)),
    ("Dense", lambda: Dense(6, activation="tanh"), (None, 6)),
    ("TimeDistributed Dense", lambda: TimeDistributed(Dense(6)), (None, 6)),
    ("Dropout", lambda: Dropout(0.5), (None, F)),
    ("Activation", lambda: Activation("tanh"), (None, F)),
    ("ReLU", lambda: ReLU(), (None, F)),
    ("Softmax", lambda: Softmax(), (None, F)),
    ("PositionEmbedding", lambda: PositionEmbedding(12), (None, F)),
]
BY_NAME = {name: (factory, shape) for name, factory, shape in PROPAGATING}


@pytest.mark.parametrize("name", list(BY_NAME))
def test_layers_propagate_a_variable_time_axis(name):
    factory, expected = BY_NAME[name]
    x = Input((None, F))
    y = factory()(x)
    assert y.sample_shape == expected
    assert Model(x, y).output_shape == (None, *expected)


def test_embedding_takes_ids_of_any_length_and_summary_shows_none(capsys):
    ids = Input((None,))
    tokens = Embedding(20, 6, mask_zero=True)(ids)
    assert tokens.sample_shape == (None, 6)
    model = Model(ids, Dense(2)(Bidirectional(LSTM(3))(tokens)))
    model.summary()
    printed = capsys.readouterr().out
    assert "(None, None)" in printed and "(None, None, 6)" in printed
    assert model.input_shape == (None, None)


@pytest.mark.parametrize("factory,layer_type,shape", [
    (lambda: Flatten(), "Flatten", (None, F)),
    (lambda: Reshape((-1,)), "Reshape", (None, F)),
    (lambda: RepeatVector(3), "RepeatVector", (None,)),
    (lambda: Conv2D(2, 3), "Conv2D", (1, None, 8)),
    (lambda: Dense(4), "Dense", (F, None)),
    (lambda: LayerNormalization(axis=1), "LayerNormalization", (None, F)),
    (lambda: BatchNormalization(axis=1), "BatchNormalization", (None, F)),
    (lambda: LSTM(2), "LSTM", (F, None)),
])
def test_layers_that_need_a_known_length_say_so(factory, layer_type, shape):
    with pytest.raises(ValueError, match=rf"layer .*{layer_type}.*variable") as info:
        factory()(Input(shape))
    assert "None" in str(info.value)


def test_flatten_error_suggests_pooling_the_time_axis():
    with pytest.raises(ValueError, match="GlobalAveragePooling1D"):
        Flatten(name="flat")(Input((None, F)))


def test_position_embedding_refuses_batches_beyond_its_length():
    layer = PositionEmbedding(6, name="positions")
    model = Model(x := Input((None, F)), layer(x))
    assert model.predict(random((2, 6, F))).shape == (2, 6, F)
    with pytest.raises(ValueError, match=r'"positions".*up to 6 steps.*7 steps'):
        model.predict(random((2, 7, F)))
    with pytest.raises(ValueError, match=r"PositionEmbedding needs input .*steps <= 6"):
        PositionEmbedding(6)(Input((7, F)))


def test_conv1d_refuses_a_batch_shorter_than_its_window():
    model = Model(x := Input((None, F)), Conv1D(2, 4, dilation_rate=2, name="wide")(x))
    assert model.predict(random((1, 7, F))).shape == (1, 1, 2)
    with pytest.raises(ValueError, match=r'"wide".*does not fit the input \(None, 6, 3\)'):
        model.predict(random((1, 6, F)))


# -- the same weights at every length -------------------------------------------------------
def float64_layer(factory, shape, seed=3):
    cnn.set_seed(seed)
    layer = build_layer(factory(), shape)
    for key in layer.params:  # away from the initial values (zero biases, unit scales)
        layer.params[key] = layer.params[key] + 0.1 * random(layer.params[key].shape, seed + 1)
    return layer


CHECKED = [name for name in BY_NAME if not name.startswith(("Dropout", "ReLU"))]


@pytest.mark.parametrize("name", CHECKED)
@pytest.mark.parametrize("steps", [5, 9])
def test_variable_layer_equals_the_fixed_length_layer(name, steps):
    factory, _ = BY_NAME[name]
    variable = float64_layer(factory, (None, F))
    fixed = float64_layer(factory, (steps, F), seed=11)
    fixed.set_weights(variable.get_weights())
    x = random((2, steps, F), steps)
    np.testing.assert_allclose(variable.forward(x), fixed.forward(x), rtol=1e-12, atol=1e-12)
    grad = random(fixed.forward(x).shape, 1)
    variable.forward(x)
    np.testing.assert_allclose(variable.backward(grad.copy()), fixed.backward(grad.copy()),
                               rtol=1e-12, atol=1e-12)
    for key in fixed.grads:
        np.testing.assert_allclose(variable.grads[key], fixed.grads[key], rtol=1e-12,
                                   atol=1e-12)


@pytest.mark.parametrize("name", ["SimpleRNN", "LSTM sequences", "GRU", "Bidirectional concat",
                                  "Conv1D same stride 2", "Conv1D causal dilated",
                                  "AveragePooling1D same", "MaxPooling1D",
                                  "GlobalAveragePooling1D keepdims", "LayerNormalization",
                                  "PositionEmbedding", "TimeDistributed Dense"])
def test_gradients_at_two_lengths_with_the_same_weights(name):
    factory, _ = BY_NAME[name]
    layer = float64_layer(factory, (None, F))
    weights = [w.copy() for w in layer.get_weights()]
    for steps in (5, 8):
        check_layer_gradients(layer, random((2, steps, F), steps), seed=steps)
        for before, after in zip(weights, layer.get_weights()):
            np.testing.assert_array_equal(before, after)


def test_masked_bidirectional_gradients_at_two_lengths():
    layer = float64_layer(lambda: Bidirectional(GRU(2, return_sequences=True)), (None, F))
    for steps in (4, 7):
        mask = np.arange(steps)[None, :] < np.array([[steps], [2]])
        check_gradients(layer, random((2, steps, F), steps),
                        lambda x: layer.forward(x, mask=mask))


def test_attention_with_query_and_value_of_different_variable_lengths():
    query, value = Input((None, 4)), Input((None, 2))
    attention = MultiHeadAttention(2, 3, name="mha")
    out = attention(query, value)
    assert out.sample_shape == (None, 4)
    cnn.set_seed(0)
    with cnn.backend.floatx_scope("float64"):
        attention.build([(None, 4), (None, 2)])
    fixed = MultiHeadAttention(2, 3)
    with cnn.backend.floatx_scope("float64"):
        fixed.build([(3, 4), (6, 2)])
    fixed.inputs_layout = attention.inputs_layout
    fixed.set_weights(attention.get_weights())
    q, v = random((2, 3, 4), 1), random((2, 6, 2), 2)
    np.testing.assert_allclose(attention.forward([q, v]), fixed.forward([q, v]), atol=1e-12)
    for steps in ((3, 6), (5, 2)):
        check_gradients(attention, [random((2, steps[0], 4), 3), random((2, steps[1], 2), 4)],
                        lambda xs: attention.forward(xs))
    key = Input((None, 2))
    with_key = Model([query, value, key], MultiHeadAttention(1, 2, name="keyed")(
        query, value, key=key))
    with pytest.raises(ValueError, match='"keyed".*key and value need the same number of steps'):
        with_key.predict([q, v, random((2, 5, 2))])


# -- models ---------------------------------------------------------------------------------
def sequence_model(steps, seed=0):
    cnn.set_seed(seed)
    x = Input((steps, F))
    h = Conv1D(4, 3, padding="same", strides=2, activation="relu")(x)
    h = Bidirectional(LSTM(3, return_sequences=True))(h)
    h = LayerNormalization()(h)
    h = Add()([h, MultiHeadAttention(2, 2)(h, h)])
    h = GlobalAveragePooling1D()(h)
    return Model(x, Dense(2, activation="softmax")(h))


@pytest.mark.parametrize("steps", [5, 9])
def test_a_variable_model_equals_the_fixed_length_models(steps):
    with cnn.backend.floatx_scope("float64"):
        variable = sequence_model(None)
        fixed = sequence_model(steps, seed=1)
    fixed.set_weights(variable.get_weights())
    x = random((3, steps, F), steps)
    np.testing.assert_allclose(variable.predict(x), fixed.predict(x), rtol=1e-10, atol=1e-12)


def test_model_gradients_at_two_lengths():
    with cnn.backend.floatx_scope("float64"):
        model = sequence_model(None)
        model.compile(optimizer="sgd", loss="categorical_crossentropy")
    for steps in (5, 8):
        y = np.eye(2)[np.arange(3) % 2]
        check_model_gradients(model, random((3, steps, F), steps), y)


def test_conv_lstm_model_matches_pytorch_at_two_lengths():
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle of this test")
    with cnn.backend.floatx_scope("float64"):
        cnn.set_seed(2)
        x = Input((None, F))
        conv = Conv1D(4, 2, padding="causal", dilation_rate=2)
        lstm = LSTM(3)
        model = Model(x, lstm(conv(x)))
    torch_conv = torch.nn.Conv1d(F, 4, 2, dilation=2).double()
    torch_lstm = torch.nn.LSTM(4, 3, batch_first=True).double()
    with torch.no_grad():
        torch_conv.weight.copy_(torch.tensor(conv.params["kernel"]))
        torch_conv.bias.copy_(torch.tensor(conv.params["bias"]))
        torch_lstm.weight_ih_l0.copy_(torch.tensor(lstm.params["kernel"]))
        torch_lstm.weight_hh_l0.copy_(torch.tensor(lstm.params["recurrent_kernel"]))
        torch_lstm.bias_ih_l0.copy_(torch.tensor(lstm.params["bias"]))
        torch_lstm.bias_hh_l0.zero_()
    for steps in (5, 9):
        data = random((2, steps, F), steps)
        xt = torch.tensor(data).transpose(1, 2)
        causal = torch.nn.functional.pad(xt, (2, 0))  # (k - 1) * dilation zeros first
        out, _ = torch_lstm(torch_conv(causal).transpose(1, 2))
        np.testing.assert_allclose(model.predict(data), out[:, -1].detach().numpy(),
                                   atol=1e-10)


def test_save_and_load_keep_the_variable_axis(tmp_path):
    ids = Input((None,))
    model = Model(ids, Dense(2, activation="softmax")(
        Bidirectional(GRU(3))(Embedding(12, 4, mask_zero=True)(ids))))
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    config = model.get_config()
    assert config["layers"][0]["config"]["input_shape"] == [None]
    model.save(tmp_path / "model.h5")
    loaded = cnn.models.load_model(tmp_path / "model.h5")
    assert loaded.input_shape == (None, None)
    assert loaded.get_config() == config
    for steps in (3, 7):
        x = np.random.default_rng(steps).integers(0, 12, (4, steps))
        np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


# -- merges ---------------------------------------------------------------------------------
def test_merges_of_variable_and_fixed_lengths_follow_keras():
    a, b = Input((None, F), name="a"), Input((5, F), name="b")
    assert Add()([a, b]).sample_shape == (None, F)
    assert Concatenate(axis=1)([a, b]).sample_shape == (None, F)
    assert Concatenate()([a, Input((None, 2))]).sample_shape == (None, F + 2)
    with pytest.raises(ValueError, match=r'"six".*"b".*one shape'):
        Add()([Input((6, F), name="six"), b])


def test_a_merge_refuses_arrays_of_different_lengths():
    a, b = Input((None, F)), Input((None, F))
    model = Model([a, b], Add(name="plus")([a, b]))
    assert model.predict([random((2, 4, F)), random((2, 4, F))]).shape == (2, 4, F)
    with pytest.raises(ValueError, match=r'"plus".*differ on a variable axis'):
        model.predict([random((2, 4, F)), random((2, 6, F))])


# -- masks meeting layers that do not support them (Keras 3) --------------------------------
@pytest.mark.parametrize("factory", [lambda: Conv1D(3, 2, padding="same", name="dropper"),
                                     lambda: MaxPooling1D(1, name="dropper")])
def test_conv1d_and_pooling_drop_a_mask_with_a_warning_as_keras_3(factory):
    cnn.set_seed(0)
    ids = Input((None,))
    embedded = Embedding(9, 3, mask_zero=True)(ids)
    dropper = factory()
    lstm = LSTM(2)
    model = Model(ids, lstm(dropper(embedded)))
    x = np.array([[3, 4, 0, 0], [5, 6, 7, 8]])
    with pytest.warns(UserWarning, match='"dropper".*drops the mask'):
        out = model.predict(x)
    with pytest.warns(UserWarning, match="drops the mask"):  # a new model warns again
        hidden = Model(ids, dropper(embedded)).predict(x)
    unmasked = Model(inner := Input((4, 3)), lstm(inner))  # built on None: takes 4 steps
    np.testing.assert_allclose(out, unmasked.predict(hidden), rtol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per layer and model
        model.predict(x)


def test_dense_dropout_and_activation_pass_a_mask_on_as_keras():
    cnn.set_seed(0)
    ids = Input((None,))
    embedding, dense, lstm = Embedding(9, 3, mask_zero=True), Dense(4), LSTM(2)
    model = Model(ids, lstm(Activation("tanh")(Dropout(0.5)(dense(embedding(ids))))))
    x = np.array([[3, 4, 0, 0], [5, 6, 7, 8]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no mask is dropped
        out = model.predict(x)
    expected = lstm.forward(np.tanh(dense.forward(embedding.forward(x))), mask=x != 0)
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    np.testing.assert_allclose(out[0], model.predict(x[:1, :2])[0], rtol=1e-5)


def test_a_sequential_stack_declared_with_none_trains_saves_and_loads(tmp_path, capsys):
    cnn.set_seed(0)
    model = cnn.models.Sequential([Conv1D(4, 3, padding="causal", input_shape=(None, F)),
                                   GRU(5), Dense(2)])
    model.summary()
    assert "(None, None, 4)" in capsys.readouterr().out
    model.compile(optimizer="sgd", loss="mse")
    batches = [(random((2, steps, F), steps), np.zeros((2, 2))) for steps in (2, 6)]
    model.fit(iter(batches), epochs=1, steps_per_epoch=2, verbose=0)
    model.save(tmp_path / "stack.h5")
    loaded = cnn.models.load_model(tmp_path / "stack.h5")
    assert loaded.input_shape == (None, None, F)
    for steps in (1, 7):
        x = random((2, steps, F), steps)
        np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
