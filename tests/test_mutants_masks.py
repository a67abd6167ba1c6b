"""Tests written for mutation run 10 (docs/TESTING.md): the merge layers with masks and
variable lengths (``cnn/layers/merge.py``), attention's backward (``cnn/ops/attention.py``) and
the masks at ONNX export (``cnn/onnx/masks.py``). Each kills mutants that the older tests let
survive; what a test pins down is said in its name."""

from __future__ import annotations

import re

import numpy as np
import pytest

import cnn
from cnn.layers import (LSTM, Add, Concatenate, Dense, Embedding, GlobalAveragePooling1D, Input,
                        Masking, Maximum, MultiHeadAttention, Subtract)
from cnn.layers.merge import real_steps
from cnn.models import Model

F = 3


def random(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# -- merge.py: the check of variable axes ---------------------------------------------------
def test_concatenate_along_a_variable_axis_takes_batches_of_different_lengths():
    a, b = Input((None, F)), Input((None, F))
    model = Model([a, b], Concatenate(axis=1, name="steps")([a, b]))
    x = [random((2, 4, F)), random((2, 2, F), 1)]
    np.testing.assert_array_equal(model.predict(x), np.concatenate(x, axis=1))


def test_a_merge_of_different_lengths_names_the_shapes_of_the_batch():
    a, b = Input((None, F)), Input((None, F))
    model = Model([a, b], Concatenate(name="features")([a, b]))
    with pytest.raises(ValueError, match=r'"features".*got arrays of shapes '
                                         r'\(2, 4, 3\), \(2, 6, 3\)$'):
        model.predict([random((2, 4, F)), random((2, 6, F))])


# -- merge.py: how many inputs ----------------------------------------------------------------
def test_a_merge_called_on_one_tensor_says_to_pass_a_list():
    with pytest.raises(ValueError, match=r'"plus" \(Add\) merges a list of tensors: call it as '
                                         r'Add\(\)\(\[a, b\]\)'):
        Add(name="plus")(Input((F,)))


@pytest.mark.parametrize("merge, count, wanted", [(Add, 1, "at least 2"),
                                                  (Subtract, 3, "exactly 2"),
                                                  (Subtract, 1, "exactly 2")])
def test_a_merge_of_too_few_or_too_many_inputs_says_how_many_it_takes(merge, count, wanted):
    with pytest.raises(ValueError, match=rf'"m" \(\w+\) needs {wanted} inputs, got {count}$'):
        merge(name="m")([Input((F,)) for _ in range(count)])


# -- merge.py: masks are boolean ----------------------------------------------------------------
def test_real_steps_of_a_0_1_mask_is_boolean_and_broadcasts_over_the_features():
    mask = np.array([[1.0, 0.0, 1.0]])
    steps = real_steps(mask, np.zeros((1, 3, 2)))
    assert steps.dtype == bool and steps.shape == (1, 3, 1)
    np.testing.assert_array_equal(steps[..., 0], mask == 1)


def test_maximum_reads_a_0_1_float_mask_as_the_boolean_one():
    xs = [random((2, 3, F)), random((2, 3, F), 1)]
    masks = [np.array([[1, 0, 0], [1, 1, 0]], dtype=bool), np.array([[0, 1, 0], [1, 0, 0]], bool)]
    layer = Maximum()
    layer.build([(3, F)] * 2)
    expected = layer.call_forward(xs, False, masks)
    got = layer.call_forward(xs, False, [m.astype(np.float32) for m in masks])
    np.testing.assert_array_equal(got, expected)


def test_a_variable_axis_in_the_second_input_makes_the_merged_axis_variable():
    fixed, variable = Input((5, F)), Input((None, F))
    assert Add()([fixed, variable]).sample_shape == (None, F)
    assert Concatenate()([fixed, Input((None, 2))]).sample_shape == (None, F + 2)


# -- merge.py: Concatenate's axis ----------------------------------------------------------------
@pytest.mark.parametrize("axis", [0, True, 1.0, "1", None])
def test_concatenate_refuses_the_batch_axis_and_what_is_not_an_int(axis):
    with pytest.raises(ValueError, match=r"Concatenate axis must be a non-zero int \(0 is the "
                                         rf"batch axis\), got {re.escape(repr(axis))}$"):
        Concatenate(axis=axis)


def test_concatenate_keeps_its_name_and_axis():
    layer = Concatenate(axis=1, name="joined")
    assert layer.name == "joined" and layer.get_config() == {"axis": 1, "name": "joined"}


@pytest.mark.parametrize("axis", [3, -3, 5, -4])
def test_concatenate_refuses_an_axis_beyond_the_rank_and_the_batch_axis_counted_back(axis):
    """Axes 1, 2, -1, -2 of (N, 4, 3) inputs; 3 and 5 do not exist, -3 is the batch (it was
    taken as the batch and gave a sample shape (4, 4, 6, 3)), -4 does not exist."""
    a, b = Input((4, F)), Input((4, F))
    with pytest.raises(ValueError, match=rf'"join" \(Concatenate\) cannot join shapes '
                                         rf'\(None, 4, 3\), \(None, 4, 3\) on axis {axis}$'):
        Concatenate(axis=axis, name="join")([a, b])
    for good, shape in [(1, (8, F)), (-2, (8, F)), (2, (4, 2 * F)), (-1, (4, 2 * F))]:
        assert Concatenate(axis=good)([a, b]).sample_shape == shape


def test_concatenate_refuses_inputs_of_another_rank_naming_their_shapes():
    with pytest.raises(ValueError, match=r'"join" \(Concatenate\) cannot join shapes '
                                         r'\(None, 4, 3\), \(None, 4\) on axis 1$'):
        Concatenate(axis=1, name="join")([Input((4, F)), Input((4,))])


def test_concatenate_refuses_inputs_that_differ_off_its_axis_naming_their_shapes():
    with pytest.raises(ValueError, match=r'"join" \(Concatenate\) needs inputs that agree on '
                                         r'every axis but 1, got \(None, 4, 3\), \(None, 2, 2\)$'):
        Concatenate(axis=1, name="join")([Input((4, F)), Input((2, 2))])


def test_concatenate_splits_the_gradient_at_the_lengths_of_the_last_batch():
    layer = Concatenate(axis=1)
    layer.build([(None, F), (None, F)])
    x = [random((2, 4, F)), random((2, 2, F), 1)]
    layer.call_forward(x, training=True)
    grad = random((2, 6, F), 2)
    grads = layer.backward(grad)
    assert len(grads) == 2
    np.testing.assert_array_equal(grads[0], grad[:, :4])
    np.testing.assert_array_equal(grads[1], grad[:, 4:])


@pytest.mark.parametrize("axis", [1, -1])
def test_concatenate_gives_a_boolean_mask_for_0_1_masks_and_unmasked_inputs(axis):
    layer = Concatenate(axis=axis)
    layer.build([(3, F), (3, F)])
    x = [random((2, 3, F)), random((2, 3, F), 1)]
    mask = np.array([[1, 0, 0], [1, 1, 0]], dtype=np.float32)
    for masks in ([mask, None], [None, mask], [mask, mask]):
        got = layer.compute_mask(x, masks)
        assert got.dtype == bool, masks
        real = [np.ones((2, 3), bool) if m is None else m == 1 for m in masks]
        expected = np.concatenate(real, axis=1) if axis == 1 else real[0] | real[1]
        np.testing.assert_array_equal(got, expected)


# -- onnx/masks.py ------------------------------------------------------------------------------
@pytest.fixture
def export(tmp_path):
    """Exports a model and returns (onnxruntime's outputs on x, the ONNX graph)."""
    onnx = pytest.importorskip("onnx", reason="needs the [onnx] extra")
    pytest.importorskip("onnxruntime", reason="needs the [onnx] extra")
    from onnx_helpers import run_onnx

    def run(model, x):
        path = tmp_path / "model.onnx"
        cnn.onnx.export(model, path)
        return run_onnx(str(path), x), onnx.load(str(path)).graph
    return run


def three_ids():
    """(3, 5) id arrays (0: padding) whose masks all differ."""
    return [np.array(rows, dtype=np.float32) for rows in (
        [[1, 2, 0, 0, 0], [3, 0, 0, 4, 0], [1, 1, 1, 1, 1]],
        [[0, 2, 3, 0, 0], [0, 0, 0, 0, 5], [6, 0, 0, 0, 0]],
        [[4, 0, 0, 0, 7], [1, 2, 3, 0, 0], [0, 0, 8, 8, 0]])]


def test_two_merges_of_different_masks_keep_their_own_masks_at_export(export):
    """Two Adds and two step-Concatenates, each of another pair of masks: each mask tensor is
    shared only by equal keys."""
    cnn.set_seed(20)
    inputs = [Input((5,)) for _ in range(3)]
    a, b, c = (Embedding(9, 2, mask_zero=True)(t) for t in inputs)
    pools = [GlobalAveragePooling1D()(merged) for merged in (
        Add()([a, b]), Add()([a, c]), Concatenate(axis=1)([a, b]), Concatenate(axis=1)([c, a]))]
    model = Model(inputs, Concatenate()(pools))
    x = three_ids()
    got, _ = export(model, x)
    np.testing.assert_allclose(got[0], model.predict(x), rtol=1e-5, atol=1e-6)


def test_two_masking_layers_on_one_input_keep_their_own_masks_at_export(export):
    cnn.set_seed(21)
    values = Input((4, 2))
    pools = [GlobalAveragePooling1D()(Masking(mask_value=v)(values)) for v in (0.0, 1.0)]
    model = Model(values, Concatenate()(pools))
    x = np.random.default_rng(3).integers(0, 2, (3, 4, 2)).astype(np.float32)
    x[0, 1] = x[1, 2] = 0.0
    x[0, 2] = x[2, 0] = 1.0
    got, _ = export(model, x)
    np.testing.assert_allclose(got, model.predict(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("merge", ["add", "concatenate_steps"])
def test_a_merged_mask_refused_later_names_the_layer_it_came_from(merge, tmp_path):
    pytest.importorskip("onnx", reason="needs the [onnx] extra")
    import cnn.onnx  # not imported by cnn

    left, right = Input((5,)), Input((5,))
    a = Embedding(9, 2, mask_zero=True, name="words")(left)
    b = Embedding(9, 2, mask_zero=True, name="tags")(right)
    merged = Add()([a, b]) if merge == "add" else Concatenate(axis=1)([a, b])
    model = Model([left, right], LSTM(2, name="reader")(merged))
    with pytest.raises(cnn.onnx.OnnxExportError,
                       match=r'"reader" \(LSTM\) cannot be exported: it reads the mask of layer '
                             r'"words" \(Embedding\), which its ONNX form cannot apply \(the '
                             r'masked steps would count\); export the model without the mask '
                             r'\(mask_zero=False, no Masking layer\) if the padded steps may '
                             r'count$'):
        cnn.onnx.export(model, tmp_path / "refused.onnx")


def test_a_refused_masked_maximum_says_how_to_export(tmp_path):
    pytest.importorskip("onnx", reason="needs the [onnx] extra")
    import cnn.onnx  # not imported by cnn

    tokens = Input((5,))
    embedded = Embedding(9, 2, mask_zero=True)(tokens)
    model = Model(tokens, GlobalAveragePooling1D()(Maximum()([embedded, Dense(2)(embedded)])))
    with pytest.raises(cnn.onnx.OnnxExportError,
                       match=r"padded steps compete; export the model without the mask "
                             r"\(mask_zero=False, no Masking layer\)$"):
        cnn.onnx.export(model, tmp_path / "refused.onnx")


def test_attention_called_with_a_key_reads_the_keys_mask_at_export(export):
    """query, value, key from three embeddings: the value unmasked, so only the key's mask
    hides the padded keys (ONNX must read the layout the layer was called with)."""
    cnn.set_seed(22)
    inputs = [Input((5,)) for _ in range(3)]
    query = Embedding(9, 4, mask_zero=True)(inputs[0])
    value = Embedding(9, 4)(inputs[1])
    key = Embedding(9, 4, mask_zero=True)(inputs[2])
    attended = MultiHeadAttention(2, 2)(query, value, key)
    model = Model(inputs, GlobalAveragePooling1D()(attended))
    x = three_ids()
    got, _ = export(model, x)
    np.testing.assert_allclose(got[0], model.predict(x), rtol=1e-4, atol=1e-5)


def test_a_mask_carried_to_the_attention_mask_input_adds_no_nodes(export):
    """The attention_mask input's own mask is not read (the converter reads the query's and
    the key's): no node computes it."""
    cnn.set_seed(23)
    tokens, pairs = Input((5,)), Input((5, 5))
    x = Embedding(9, 4, mask_zero=True)(tokens)
    allowed = Masking(mask_value=0.0, name="pair_mask")(pairs)
    model = Model([tokens, pairs], MultiHeadAttention(2, 2)(x, x, attention_mask=allowed))
    rng = np.random.default_rng(4)
    batch = [three_ids()[0], rng.integers(0, 2, (3, 5, 5)).astype(np.float32)]
    batch[1][:, :, 0] = 1.0
    got, graph = export(model, batch)
    np.testing.assert_allclose(got[0], model.predict(batch), rtol=1e-4, atol=1e-5)
    assert not [node.name for node in graph.node if node.name.startswith("pair_mask/mask")]


@pytest.mark.parametrize("keepdims", [False, True])
def test_a_masked_channels_first_average_weights_its_steps_axis_at_export(export, keepdims):
    """GlobalAveragePooling1D(data_format="channels_first") reads (N, C, L) and weights the
    L axis by the mask (N, L). Masking on (N, 4, 4) gives such a mask, so the graph must put
    the weights on axis 2 and sum over it, as predict does."""
    cnn.set_seed(22)
    values = Input((4, 4))
    pooled = GlobalAveragePooling1D(data_format="channels_first", keepdims=keepdims)(
        Masking()(values))
    model = Model(values, pooled)
    x = np.random.default_rng(4).standard_normal((3, 4, 4)).astype(np.float32)
    x[0, 1] = x[1, 2] = x[1, 3] = 0.0
    got, _ = export(model, x)
    mask = (x != 0).any(axis=-1)  # (N, L): the steps of the channels-first input
    weights = mask / np.maximum(mask.sum(axis=1, keepdims=True), 1)
    expected = (x * weights[:, None, :]).sum(axis=2, keepdims=keepdims)
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
