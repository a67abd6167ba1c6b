"""The functional API: symbolic tensors, graphs with fan-out, merge layers, several inputs
and outputs, shared layers, masks, summaries, errors, and saving of graphs."""

from __future__ import annotations

import numpy as np
import pytest

import cnn
from cnn.backend import floatx_scope
from cnn.layers import (Activation, Add, Average, BatchNormalization, Concatenate, Conv2D,
                        Dense, Dropout, Flatten, GlobalAveragePooling2D, Input, Layer, Maximum,
                        Multiply, Output, Subtract)
from cnn.layers.node import SymbolicTensor
from cnn.models import Model, Sequential, load_model
from cnn.utils.gradient_check import numerical_gradient
from helpers import check_model_gradients, gradient_error, separable_data

TOLERANCE = 1e-6


def residual_model():
    """Dense -> fan-out into a two-layer branch and a skip -> Add -> Output."""
    x = Input((6,))
    h = Dense(5, activation="tanh")(x)
    branch = Dense(5, activation="tanh")(h)
    branch = Dense(5)(branch)
    y = Output(3)(Add()([h, branch]))
    return Model(inputs=x, outputs=y)


def two_output_model():
    x = Input((4,))
    h = Dense(6, activation="tanh", name="trunk")(x)
    classes = Output(3, name="classes")(h)
    value = Dense(2, name="value")(h)
    return Model(x, [classes, value])


# -- building -------------------------------------------------------------------------------

def test_calling_a_layer_on_a_tensor_builds_it_and_records_a_node():
    x = Input((1, 8, 8))
    conv = Conv2D(4, 3, activation="relu")
    h = conv(x)
    assert isinstance(h, SymbolicTensor) and h.shape == (None, 4, 6, 6)
    assert conv.built and conv.params["kernel"].shape == (4, 1, 3, 3)
    assert conv.inbound_nodes[0].inputs == [x.symbolic_output()]
    with pytest.raises(TypeError, match="symbolic"):
        np.asarray(h)


def test_model_inputs_outputs_keywords_positional_and_predict_agree():
    cnn.set_seed(0)
    x = Input((6,))
    y = Output(3)(Dense(4, activation="relu")(x))
    by_keyword, positional = Model(inputs=x, outputs=y), Model(x, y)
    data = np.random.default_rng(0).standard_normal((10, 6)).astype(np.float32)
    np.testing.assert_array_equal(by_keyword.predict(data), positional.predict(data))
    np.testing.assert_array_equal(by_keyword(data), by_keyword.predict(data))
    manual = data @ by_keyword.layers[0].params["kernel"].T + by_keyword.layers[0].params["bias"]
    manual = np.maximum(manual, 0) @ by_keyword.layers[1].params["kernel"].T \
        + by_keyword.layers[1].params["bias"]
    manual = np.exp(manual - manual.max(1, keepdims=True))
    np.testing.assert_allclose(by_keyword.predict(data), manual / manual.sum(1, keepdims=True),
                               rtol=1e-5)


def test_the_seed_form_and_sequential_are_graphs_run_by_the_same_runner():
    cnn.set_seed(1)
    layers = lambda: [Dense(4, activation="relu"), Output(3)]  # noqa: E731
    seed_form = Model(Input((6,)), "seed")
    for layer in layers():
        seed_form.add_layer(layer)
    sequential = Sequential([Input((6,)), *layers()])
    x = Input((6,))
    a, b = layers()
    functional = Model(x, b(a(x)))
    for model in (sequential, functional):
        model.set_weights(seed_form.get_weights())
    data = np.random.default_rng(1).standard_normal((5, 6)).astype(np.float32)
    for model in (seed_form, sequential, functional):
        assert [node.layer for node in model.graph.nodes] == model.layers
        np.testing.assert_array_equal(model.predict(data), seed_form.predict(data))
    assert seed_form.name == "seed" and functional.name == "model"


def test_dict_inputs_and_outputs_name_the_data():
    cnn.set_seed(2)
    image, extra = Input((1, 6, 6), name="image"), Input((3,), name="extra")
    h = Flatten()(Conv2D(2, 3)(image))
    joined = Concatenate()([h, Dense(4)(extra)])
    model = Model({"image": image, "extra": extra},
                  {"label": Output(2)(joined), "score": Dense(1)(joined)})
    assert model.input_names == ["image", "extra"] and model.output_names == ["label", "score"]
    rng = np.random.default_rng(2)
    data = {"image": rng.standard_normal((8, 1, 6, 6)), "extra": rng.standard_normal((8, 3))}
    out = model.predict(data)
    assert set(out) == {"label", "score"} and out["label"].shape == (8, 2)
    listed = model.predict([data["image"], data["extra"]])
    np.testing.assert_array_equal(listed["score"], out["score"])
    model.compile(optimizer="adam", loss={"label": "categorical_crossentropy", "score": "mse"},
                  loss_weights={"label": 1.0, "score": 0.5})
    history = model.fit(data, {"label": rng.integers(0, 2, 8), "score": rng.standard_normal(8)},
                        epochs=2, batch_size=4, verbose=0)
    assert {"loss", "label_loss", "score_loss", "label_accuracy", "score_mae"} <= set(history)
    assert history["loss"][0] == pytest.approx(
        history["label_loss"][0] + 0.5 * history["score_loss"][0], rel=1e-5)


def test_a_layer_called_twice_shares_its_weights():
    cnn.set_seed(3)
    a, b = Input((4,)), Input((4,))
    shared = Dense(3, activation="tanh")
    model = Model([a, b], Output(2)(Subtract()([shared(a), shared(b)])))
    assert model.layers.count(shared) == 1 and len(shared.inbound_nodes) == 2
    assert model.count_params() == 4 * 3 + 3 + 3 * 2 + 2
    rng = np.random.default_rng(3)
    same = rng.standard_normal((5, 4))
    out = model.predict([same, same])  # equal inputs cancel: the softmax of the bias
    bias = model.layers[-1].params["bias"]
    np.testing.assert_allclose(out, np.tile(np.exp(bias) / np.exp(bias).sum(), (5, 1)),
                               rtol=1e-5)


def test_get_layer_by_name_and_index():
    model = two_output_model()
    assert model.get_layer(name="trunk") is model.layers[0]
    assert model.get_layer(index=-1) is model.layers[-1]
    with pytest.raises(ValueError, match="no layer named 'nope'.*trunk"):
        model.get_layer(name="nope")
    with pytest.raises(ValueError, match="out of range"):
        model.get_layer(index=7)
    with pytest.raises(ValueError, match="exactly one"):
        model.get_layer()


def test_summary_shows_what_each_layer_is_connected_to():
    lines = []
    residual_model().summary(print_fn=lines.append)
    text = lines[0]
    assert "Connected to" in text
    add_line = next(line for line in text.splitlines() if line.startswith("add (Add)"))
    assert "dense[0][0]" in add_line
    assert "dense_2[0][0]" in text.splitlines()[text.splitlines().index(add_line) + 1]


# -- gradients (float64) --------------------------------------------------------------------

def test_gradients_add_up_where_a_tensor_fans_out():
    with floatx_scope("float64"):
        cnn.set_seed(4)
        model = residual_model()
        model.compile(optimizer="sgd", loss="categorical_crossentropy")
        assert model.fused_outputs == (0,)
        x = np.random.default_rng(4).standard_normal((5, 6))
        check_model_gradients(model, x, np.eye(3)[[0, 1, 2, 1, 0]])


def test_gradients_of_a_shared_layer_sum_over_its_calls():
    with floatx_scope("float64"):
        cnn.set_seed(5)
        x = Input((4,))
        shared = Dense(4, activation="tanh")
        twice = shared(shared(x))  # the same weights applied twice in a row
        model = Model(x, Dense(2)(Concatenate()([twice, x])))
        model.compile(optimizer="sgd", loss="mse")
        rng = np.random.default_rng(5)
        check_model_gradients(model, rng.standard_normal((6, 4)), rng.standard_normal((6, 2)))


@pytest.mark.parametrize("merge", [Add(), Subtract(), Multiply(), Average(), Maximum(),
                                   Concatenate(axis=1), Concatenate(axis=-1)],
                         ids=["add", "subtract", "multiply", "average", "maximum",
                              "concatenate1", "concatenate-1"])
def test_every_merge_layer_backward_matches_numerical_gradients(merge):
    with floatx_scope("float64"):
        rng = np.random.default_rng(6)
        shape = (3, 4)
        count = 2 if isinstance(merge, Subtract) else 3
        inputs = [rng.standard_normal((5, *shape)) for _ in range(count)]
        out = merge(inputs)
        r = rng.standard_normal(out.shape)
        grads = merge.backward(r.copy())
        for i, x in enumerate(inputs):
            numeric = numerical_gradient(lambda: float((merge.forward(inputs) * r).sum()), x)
            merge.forward(inputs)
            assert gradient_error(grads[i], numeric) < TOLERANCE, f"input {i}"


@pytest.mark.parametrize("merge", [Add, Subtract, Multiply, Average, Maximum, Concatenate])
def test_every_merge_layer_trains_inside_a_model(merge):
    with floatx_scope("float64"):
        cnn.set_seed(7)
        a, b = Input((3,)), Input((3,))
        merged = merge()([Dense(4, activation="tanh")(a), Dense(4, activation="tanh")(b)])
        model = Model([a, b], Dense(2)(merged))
        model.compile(optimizer="sgd", loss="mse")
        rng = np.random.default_rng(7)
        xs = [rng.standard_normal((5, 3)), rng.standard_normal((5, 3))]
        check_model_gradients(model, xs, rng.standard_normal((5, 2)))


def test_gradients_of_a_two_output_model_with_loss_weights():
    with floatx_scope("float64"):
        cnn.set_seed(8)
        model = two_output_model()
        model.compile(optimizer="sgd", loss=["categorical_crossentropy", "mse"],
                      loss_weights=[0.7, 2.0])
        rng = np.random.default_rng(8)
        targets = [np.eye(3)[[0, 2, 1, 1]], rng.standard_normal((4, 2))]
        check_model_gradients(model, rng.standard_normal((4, 4)), targets)
        result = model.compute_gradients(rng.standard_normal((4, 4)), targets)
        assert result.loss == pytest.approx(0.7 * result.output_losses[0]
                                            + 2.0 * result.output_losses[1])


def test_an_output_that_also_feeds_another_layer_gets_both_gradients():
    with floatx_scope("float64"):
        cnn.set_seed(9)
        x = Input((3,))
        first = Dense(3, activation="softmax", name="first")(x)
        second = Dense(2, name="second")(first)
        model = Model(x, [first, second])
        model.compile(optimizer="sgd", loss=["categorical_crossentropy", "mse"])
        assert model.fused_outputs == ()  # the softmax output has another reader
        rng = np.random.default_rng(9)
        check_model_gradients(model, rng.standard_normal((4, 3)),
                              [np.eye(3)[[0, 1, 2, 0]], rng.standard_normal((4, 2))])


# -- several outputs in training ------------------------------------------------------------

def test_history_names_each_outputs_loss_and_metrics_as_keras():
    cnn.set_seed(10)
    model = two_output_model()
    model.compile(optimizer="adam", loss=["categorical_crossentropy", "mse"],
                  metrics=[["accuracy"], ["mae"]])
    x, labels = separable_data(40, features=4)
    values = np.random.default_rng(10).standard_normal((40, 2))
    history = model.fit(x, [labels, values], epochs=2, batch_size=8, verbose=0,
                        validation_split=0.25)
    expected = {"loss", "classes_loss", "value_loss", "classes_accuracy", "value_mae"}
    assert expected | {f"val_{k}" for k in expected} | {"learning_rate"} == set(history)
    assert model.metrics_names == ["loss", "classes_loss", "value_loss", "classes_accuracy",
                                   "value_mae"]
    results = model.evaluate(x[30:], [labels[30:], values[30:]])
    assert results[0] == pytest.approx(history["val_loss"][-1], rel=1e-6)
    assert results[3] == pytest.approx(history["val_classes_accuracy"][-1])


# -- masks ----------------------------------------------------------------------------------

class _MaskZeros(Layer):
    """Toy: the mask says which time steps are not all zero; passes x on."""

    samplewise = True

    def forward(self, x, training=False):
        return x

    def backward(self, grad):
        return grad

    def compute_mask(self, x, mask):
        return np.any(x != 0, axis=-1)


class _PassMask(_MaskZeros):
    supports_masking = True

    def compute_mask(self, x, mask):
        return Layer.compute_mask(self, x, mask)


class _SeesMask(Layer):
    """Toy: zeroes the masked time steps; records the mask it saw."""

    samplewise = True
    accepts_mask = True

    def forward(self, x, training=False, mask=None):
        self.seen = mask
        return x * mask[..., None]

    def backward(self, grad):
        return grad * self.seen[..., None]


def test_masks_flow_from_the_layer_that_makes_them_to_the_layer_that_reads_them():
    x = Input((4, 2))
    seen = _SeesMask()
    model = Model(x, Flatten()(seen(_PassMask()(_MaskZeros()(x)))))
    data = np.ones((2, 4, 2), dtype=np.float32)
    data[0, 1] = 0
    data[1, 3] = 0
    model.predict(data)
    np.testing.assert_array_equal(seen.seen, [[1, 0, 1, 1], [1, 1, 1, 0]])
    assert Flatten().compute_mask(data, seen.seen) is None  # not supports_masking: dropped


# -- errors ---------------------------------------------------------------------------------

def test_incompatible_shapes_name_both_layers_and_both_shapes():
    x = Input((4,))
    h = Dense(5, name="first")(x)
    later = Dense(3, name="later")
    later(h)
    other = Dense(7, name="seven")(x)
    with pytest.raises(ValueError, match=r'"later".*"seven".*\(None, 7\).*\(None, 5\)'):
        later(other)
    with pytest.raises(ValueError, match=r'"conv" \(Conv2D\).*"first" \(Dense\).*\(None, 5\)'):
        Conv2D(2, 3, name="conv")(h)
    with pytest.raises(ValueError, match=r"one shape.*\(None, 5\), \(None, 7\)"):
        Add()([h, other])


def test_graph_errors_say_what_is_wrong():
    x, unused = Input((4,)), Input((4,), name="unused")
    y = Dense(2)(x)
    with pytest.raises(ValueError, match="not reachable from the model's inputs"):
        Model(unused, y)
    with pytest.raises(ValueError, match='input "unused".*reaches no output'):
        Model([x, unused], y)
    with pytest.raises(TypeError, match="symbolic tensors.*ndarray"):
        Model(x, np.zeros(3))
    with pytest.raises(TypeError, match="got the layer"):
        Model(x, Dense(2))
    with pytest.raises(TypeError, match="where a tensor is expected"):
        Dense(2)(Dense(3))


def test_a_cycle_is_refused():
    x = Input((3,))
    first = Dense(3)
    a = first(x)
    b = Dense(3)(a)
    first.inbound_nodes[0].inputs = [b]  # only a hand-edited graph can loop
    with pytest.raises(ValueError, match="cycle"):
        Model(x, b)


def test_a_wrong_number_of_input_arrays_is_named():
    a, b = Input((2,)), Input((3,))
    model = Model([a, b], Add()([Dense(2)(a), Dense(2)(b)]))
    with pytest.raises(ValueError, match="2 inputs.*list or dict"):
        model.predict(np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"x\['input_1'\] has shape \(4, 2\)"):
        model.predict([np.zeros((4, 2)), np.zeros((4, 2))])


# -- saving ---------------------------------------------------------------------------------

def resnet_like():
    x = Input((2, 6, 6))
    h = Conv2D(4, 3, padding="same")(x)
    h = Activation("relu")(BatchNormalization()(h))
    skip = Conv2D(4, 3, padding="same", activation="relu")(h)
    h = Add()([h, BatchNormalization()(Conv2D(4, 3, padding="same")(skip))])
    pooled = GlobalAveragePooling2D()(h)
    extra = Input((3,), name="extra")
    joined = Concatenate()([pooled, Dropout(0.3, seed=4)(Dense(3)(extra))])
    return Model([x, extra], {"classes": Output(2)(joined), "score": Dense(1)(joined)})


def test_a_graph_round_trips_through_a_file_exactly(tmp_path):
    cnn.set_seed(11)
    model = resnet_like()
    model.compile(optimizer="adam", loss={"classes": "categorical_crossentropy",
                                          "score": "mse"}, loss_weights=[1.0, 0.3])
    rng = np.random.default_rng(11)
    x = [rng.standard_normal((16, 2, 6, 6)), rng.standard_normal((16, 3))]
    y = {"classes": rng.integers(0, 2, 16), "score": rng.standard_normal(16)}
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    model.save(tmp_path / "graph.h5")
    loaded = load_model(tmp_path / "graph.h5")
    assert loaded.get_config() == model.get_config()
    assert loaded.output_names == ["classes", "score"] and not loaded.is_stack
    for a, b in zip(model.predict(x).values(), loaded.predict(x).values()):
        np.testing.assert_array_equal(a, b)
    assert loaded.evaluate(x, y) == model.evaluate(x, y)
    # training goes on identically, Dropout's own generator included
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    loaded.fit(x, y, epochs=1, batch_size=8, verbose=0)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_stack_reloads_as_a_stack(tmp_path):
    model = Sequential([Input((4,)), Dense(3), Output(2)], name="stacked")
    model.compile(0.1, "cross_tropy")
    model.save(tmp_path / "stack.h5")
    loaded = load_model(tmp_path / "stack.h5")
    assert loaded.is_stack and loaded.seed_compiled and loaded.name == "stacked"
    assert loaded.get_config() == model.get_config()


def _rewrite_config(path, change):
    import json

    import h5py

    with h5py.File(path, "r+") as f:
        config = json.loads(f["model_config"][()])
        change(config)
        del f["model_config"]
        f.create_dataset("model_config", data=json.dumps(config), dtype=h5py.string_dtype())


@pytest.mark.parametrize("change, message", [
    (lambda c: c["layers"][2]["inbound_nodes"][0][0].__setitem__(0, "ghost"),
     "name layers or nodes that do not exist or form a cycle"),
    (lambda c: c["layers"][2]["inbound_nodes"][0][0].__setitem__(1, 5),
     "name layers or nodes that do not exist or form a cycle"),
    (lambda c: c["layers"][1]["inbound_nodes"].__setitem__(0, [["dense_1", 0, 0]]),
     "name layers or nodes that do not exist or form a cycle"),
    (lambda c: c["layers"][2]["inbound_nodes"][0].__setitem__(0, ["dense", "0", 0]),
     r"bad inbound reference"),
    (lambda c: c.__setitem__("output_layers", [["dense", 3, 0]]),
     "output_layers names node 3 of layer 'dense', which does not exist"),
    (lambda c: c["layers"][1].__setitem__("inbound_nodes", "x"), "malformed inbound_nodes"),
])
def test_a_damaged_graph_config_is_refused_with_its_reason(tmp_path, change, message):
    x = Input((3,))
    model = Model(x, Dense(2)(Dense(4)(x)))  # layers: input, dense, dense_1
    model.save(tmp_path / "g.h5")
    _rewrite_config(tmp_path / "g.h5", change)
    with pytest.raises(cnn.models.ModelFileError, match=message):
        load_model(tmp_path / "g.h5")
