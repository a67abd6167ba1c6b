"""MultiHeadAttention: the slow reference, numerical gradients over its options, PyTorch's
nn.MultiheadAttention, masks, configs and errors."""

from __future__ import annotations

import numpy as np
import pytest

import cnn
from cnn.backend import floatx_scope
from cnn.layers import MultiHeadAttention, deserialize, serialize
from cnn.ops.reference_sequence import attention_reference
from sequence_helpers import check_gradients

N, TQ, TV, D = 2, 4, 5, 6


def random(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def built(inputs, seed=1, **kwargs):
    """A float64 layer called once on ``inputs`` (a list in Keras's call order), with random
    non-zero biases."""
    cnn.set_seed(seed)
    kwargs = {"num_heads": 2, "key_dim": 3, **kwargs}
    with floatx_scope("float64"):
        layer = MultiHeadAttention(**kwargs)
        layer(*inputs)
    for key in layer.params:
        layer.params[key] = layer.params[key] + 0.2 * random(layer.params[key].shape, seed + 5)
    return layer


def reference(layer, query, value, key=None, allowed=None):
    return attention_reference(query, value, value if key is None else key, dict(layer.params),
                               allowed)


def test_forward_matches_reference_and_scores_sum_to_one():
    q, v, k = random((N, TQ, D)), random((N, TV, 4), 1), random((N, TV, 3), 2)
    layer = built([q, v, k], value_dim=2, output_shape=7)
    out, scores = layer(q, v, k, return_attention_scores=True)
    expected, expected_scores = reference(layer, q, v, k)
    assert out.shape == (N, TQ, 7) and scores.shape == (N, 2, TQ, TV)
    np.testing.assert_allclose(out, expected, atol=1e-12)
    np.testing.assert_allclose(scores, expected_scores, atol=1e-12)
    np.testing.assert_allclose(scores.sum(-1), 1, atol=1e-12)


def test_causal_and_attention_masks_match_reference():
    x = random((N, TQ, D))
    mask = random((N, TQ, TQ), 3) > -0.3
    layer = built([x, x], use_causal_mask=True)
    causal = np.tril(np.ones((TQ, TQ), dtype=bool))
    out, scores = layer(x, x, return_attention_scores=True)
    np.testing.assert_allclose(out, reference(layer, x, x, None, np.broadcast_to(
        causal, (N, TQ, TQ)))[0], atol=1e-12)
    assert np.all(scores[..., ~causal] < 1e-12)
    masked = built([x, x, None, mask.astype(np.float64)])
    out = masked(x, x, attention_mask=mask.astype(np.float64))
    np.testing.assert_allclose(out, reference(masked, x, x, None, mask)[0], atol=1e-12)


def test_graph_masks_hide_padded_keys_and_queries():
    q, v = random((N, TQ, D)), random((N, TV, D), 1)
    layer = built([q, v])
    value_mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=bool)
    query_mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=bool)
    out = layer.forward([q, v], mask=[query_mask, value_mask])
    allowed = query_mask[:, :, None] & value_mask[:, None, :]
    np.testing.assert_allclose(out, reference(layer, q, v, None, allowed)[0], atol=1e-12)
    np.testing.assert_allclose(layer.attention_scores[0, :, 0, 3:], 0, atol=1e-12)
    assert layer.compute_mask([q, v], [query_mask, value_mask]) is query_mask


OPTIONS = [
    ({}, "self"), ({"use_bias": False}, "cross"), ({"value_dim": 2, "output_shape": 5}, "key"),
    ({"use_causal_mask": True}, "self"), ({}, "attention_mask"), ({"num_heads": 3}, "cross"),
]


@pytest.mark.parametrize("kwargs,case", OPTIONS)
def test_gradients(kwargs, case):
    q, v, k = random((N, TQ, D)), random((N, TV, 4), 1), random((N, TV, 3), 2)
    if case == "self":  # one tensor as query and value (a model adds the two gradients)
        inputs = [q, q.copy()]
    elif case == "cross":
        inputs = [q, v]
    elif case == "key":
        inputs = [q, v, k]
    else:
        inputs = [q, v, None, (random((N, TQ, TV), 4) > 0).astype(np.float64)]
    layer = built(inputs, **kwargs)
    packed = [a for a in inputs if a is not None]
    errors = check_gradients(layer, packed, lambda a: layer.forward(a))
    assert "input 0" in errors and "input 1" in errors


@pytest.mark.parametrize("case", ["graph masks", "attention_mask"])
def test_gradients_where_a_query_may_attend_to_no_key(case):
    """A padded query (a row of no allowed keys) attends uniformly, from constant logits: its
    gradient reaches the values only, not the queries or keys (it once leaked into both)."""
    q, v = random((N, TQ, D)), random((N, TV, D), 1)
    if case == "graph masks":
        layer = built([q, v])
        masks = [np.array([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=bool),
                 np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=bool)]
        errors = check_gradients(layer, [q, v], lambda a: layer.forward(a, mask=masks))
    else:
        allowed = random((N, TQ, TV), 4) > 0
        allowed[0, 1] = allowed[1, 3] = False
        inputs = [q, v, None, allowed.astype(np.float64)]
        layer = built(inputs)
        errors = check_gradients(layer, [q, v, inputs[3]], lambda a: layer.forward(a))
    assert {"input 0", "input 1", "query_kernel", "key_kernel"} <= set(errors)


def test_gradients_with_dropout_fixed_by_the_seed():
    q, v = random((N, TQ, D)), random((N, TV, D), 1)
    layer = built([q, v], dropout=0.3)
    check_gradients(layer, [q, v], lambda a: layer.forward(a, training=True), reseed=4)
    cnn.set_seed(4)
    dropped = layer.forward([q, v], training=True)
    assert not np.allclose(dropped, layer.forward([q, v]))  # inference: no dropout


def test_matches_pytorch_multihead_attention():
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle of this test")
    heads, embed = 2, D
    q, v = random((N, TQ, embed)), random((N, TV, embed), 1)
    layer = built([q, v], num_heads=heads, key_dim=embed // heads)
    module = torch.nn.MultiheadAttention(embed, heads, batch_first=True).double()
    p = layer.params
    with torch.no_grad():
        module.in_proj_weight.copy_(torch.tensor(np.concatenate(
            [p[f"{name}_kernel"].reshape(embed, embed).T for name in ("query", "key", "value")])))
        module.in_proj_bias.copy_(torch.tensor(np.concatenate(
            [p[f"{name}_bias"].reshape(-1) for name in ("query", "key", "value")])))
        module.out_proj.weight.copy_(torch.tensor(p["output_kernel"].reshape(embed, embed).T))
        module.out_proj.bias.copy_(torch.tensor(p["output_bias"]))
    causal = np.tril(np.ones((TQ, TV), dtype=bool))
    layer.use_causal_mask = True
    qt, vt = torch.tensor(q, requires_grad=True), torch.tensor(v, requires_grad=True)
    out, weights = module(qt, vt, vt, attn_mask=torch.tensor(~causal),
                          average_attn_weights=False)
    grad = random(out.shape, 7)
    (out * torch.tensor(grad)).sum().backward()
    ours = layer.forward([q, v])
    np.testing.assert_allclose(ours, out.detach().numpy(), atol=1e-10)
    np.testing.assert_allclose(layer.attention_scores, weights.detach().numpy(), atol=1e-10)
    dq, dv = layer.backward(grad)
    np.testing.assert_allclose(dq, qt.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(dv, vt.grad.numpy(), atol=1e-10)
    in_grad = module.in_proj_weight.grad.numpy()
    np.testing.assert_allclose(layer.grads["key_kernel"].reshape(embed, embed).T,
                               in_grad[embed:2 * embed], atol=1e-10)
    np.testing.assert_allclose(layer.grads["output_kernel"].reshape(embed, embed).T,
                               module.out_proj.weight.grad.numpy(), atol=1e-10)


def test_config_round_trip_and_errors():
    q, v = random((N, TQ, D)), random((N, TV, D), 1)
    layer = built([q, v], use_causal_mask=True, dropout=0.1, name="att")
    copy = deserialize(serialize(layer))
    assert copy.get_config() == layer.get_config() and copy.inputs_layout == ("query", "value")
    with floatx_scope("float64"):
        copy([q, v])
    copy.set_weights(layer.get_weights())
    np.testing.assert_array_equal(copy.forward([q, v]), layer.forward([q, v]))
    expected = r'"att" \(MultiHeadAttention\) expects value of shape \(None, 5, 6\).*\(2, 3, 6\)'
    with pytest.raises(ValueError, match=expected):
        layer.forward([q, v[:, :3]])
    with pytest.raises(ValueError, match=r'"att".*cannot be called with'):
        layer(q, v, v)
    with pytest.raises(ValueError, match="needs query and value"):
        MultiHeadAttention(2, 3)(q)
    with pytest.raises(ValueError, match=r"attention_mask must be \(batch, 4, 5\)"):
        MultiHeadAttention(2, 3)(q, v, attention_mask=np.ones((N, TQ, TQ)))
    with pytest.raises(ValueError, match=r"key and value need the same number of steps"):
        MultiHeadAttention(2, 3)(q, v, q)
    with pytest.raises(ValueError, match="num_heads"):
        MultiHeadAttention(0, 3)
