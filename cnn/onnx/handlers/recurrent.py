"""ONNX ``RNN`` / ``LSTM`` / ``GRU`` (one direction) as SimpleRNN / LSTM / GRU.

The input must be the (N, T, F) activation seen time-major (``Transpose`` perm (1, 0, 2),
as torch.onnx and cnn write it) or batch-major with ``layout=1``; a time reversal
(``Slice`` with step -1) before it is ``go_backwards``, and so is ``direction="reverse"``
when only the final state is read. Initial states: omitted or zeros (``ConstantOfShape``)
are cnn's zeros; a vector broadcast over the batch (``Expand``) is ``set_initial_state``.

Which output the graph reads decides ``return_sequences``: Y (then ``Squeeze`` of its
direction axis and ``Transpose`` back, or ``Gather``/``Slice`` of its last step, which is
the final state) or Y_h. Gate orders: ONNX LSTM i, o, f, c -> cnn i, f, c, o; GRU z, r, h
is cnn's z, r, n; the two ONNX biases add up into cnn's one, except GRU's recurrent bias
with ``linear_before_reset=1`` (cnn ``reset_after=True``, ``recurrent_bias``).
"""

from __future__ import annotations

import numpy as np

from cnn import layers
from cnn.onnx.assembly import LayerSpec
from cnn.onnx.context import handles
from cnn.onnx.handlers.layers import alpha_name, float_weight
from cnn.onnx.values import BATCH, Broadcast, Data

LSTM_ONNX_TO_CNN = (0, 2, 3, 1)  # cnn block k is ONNX block LSTM_ONNX_TO_CNN[k]
_DEFAULTS = {"RNN": ["Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"]}
_NAMES = {"Tanh": "tanh", "Sigmoid": "sigmoid", "Relu": "relu", "Softplus": "softplus"}
_GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}


def blocks(array, order, units):
    return np.concatenate([array[k * units:(k + 1) * units] for k in order], axis=0)


def activation_names(ctx, node, attributes) -> list[str]:
    """cnn names of the op's activations; alphas and betas are read as onnxruntime reads
    them (only by the activations that take one, in order)."""
    names = [n.decode() if isinstance(n, bytes) else n
             for n in attributes.get("activations", _DEFAULTS[node.op_type])]
    alphas = list(attributes.get("activation_alpha", []))
    betas = list(attributes.get("activation_beta", []))
    result = []
    for name in names:
        if name in _NAMES:
            result.append(_NAMES[name])
        elif name == "LeakyRelu":
            result.append(alpha_name("leaky_relu", alphas.pop(0) if alphas else 0.01, 0.01))
        elif name == "Elu":
            result.append(alpha_name("elu", alphas.pop(0) if alphas else 1.0, 1.0))
        elif name == "Affine" and alphas and betas and (alphas.pop(0), betas.pop(0)) == (1, 0):
            result.append("linear")
        else:
            raise ctx.error(node, f"recurrent activation {name!r} (with its alpha/beta) has no "
                                  "cnn equivalent")
    return result


def sequence_input(ctx, node, value, layout):
    """The (N, T, F) tensor the op reads, and whether it is read backwards."""
    if not isinstance(value, Data):
        raise ctx.error(node, "X must be an activation")
    wanted = (0, 1, 2) if layout else (1, 0, 2)
    info = ctx.assembly.tensors[value.tensor]
    if value.axes != wanted or len(info.shape) != 2:
        raise ctx.error(node, f"X must be the (N, T, F) activation seen "
                              f"{'batch' if layout else 'time'}-major (axes {wanted}); got a "
                              f"view with axes {value.axes} of (N, {info.shape})")
    if value.reversed_axis not in (None, 1):
        raise ctx.error(node, "X is reversed along an axis other than time")
    ctx.assembly.claim(value, node)
    return info, value.reversed_axis == 1


def initial_state(ctx, node, value, units, what):
    """None for zeros, a (U,) vector for one broadcast over the batch."""
    if value is None:
        return None
    if isinstance(value, Broadcast) and BATCH in value.shape:
        vector = np.broadcast_to(value.array, (1, 1, units)).reshape(-1)[-units:]
        full = np.broadcast_to(value.array, [1 if e == BATCH else e for e in value.shape])
        if full.reshape(-1, units).std(axis=0).max() > 0:
            raise ctx.error(node, f"{what} differs between samples")
        return None if not np.any(vector) else vector.astype(np.float32)
    raise ctx.error(node, f"{what} must be zeros or one vector broadcast over the dynamic "
                          "batch (a state for a fixed batch size has no cnn equivalent)")


@handles("RNN", "LSTM", "GRU")
def recurrent(ctx, node, inputs):
    attributes = ctx.attributes(node)
    op = node.op_type
    direction = attributes.get("direction", "forward")
    if direction not in ("forward", "reverse"):
        raise ctx.error(node, f"direction {direction!r} is not supported (one direction only)")
    if attributes.get("clip") is not None or attributes.get("input_forget", 0):
        raise ctx.error(node, "clip and input_forget are not supported")
    layout = attributes.get("layout", 0)
    inputs = list(inputs) + [None] * (8 - len(inputs))
    if inputs[4] is not None:
        raise ctx.error(node, "sequence_lens (sequences of different lengths) is not supported")
    if op == "LSTM" and inputs[7] is not None and np.any(ctx.const(node, inputs[7], "P")):
        raise ctx.error(node, "peephole connections are not supported")
    info, backwards = sequence_input(ctx, node, inputs[0], layout)
    steps, features = info.shape
    units = int(attributes["hidden_size"])
    gates = _GATES[op]
    w = float_weight(ctx, node, inputs[1], "W")
    r = float_weight(ctx, node, inputs[2], "R")
    if w.shape != (1, gates * units, features) or r.shape != (1, gates * units, units):
        raise ctx.error(node, f"W {w.shape} and R {r.shape} do not fit {features} features and "
                              f"{units} units")
    b = (float_weight(ctx, node, inputs[3], "B") if inputs[3] is not None
         else np.zeros((1, 2 * gates * units), np.float32))
    w_b, r_b = b.reshape(2, gates * units)
    kwargs = {"units": units, "go_backwards": backwards or direction == "reverse"}
    names = activation_names(ctx, node, attributes)
    weights = {"kernel": w[0], "recurrent_kernel": r[0]}
    if op == "RNN":
        cls = layers.SimpleRNN
        kwargs["activation"] = names[0]
        weights["bias"] = w_b + r_b
    elif op == "LSTM":
        cls = layers.LSTM
        if names[1] != names[2]:
            raise ctx.error(node, "cnn's LSTM uses one activation for the cell input and output")
        kwargs.update(recurrent_activation=names[0], activation=names[1])
        weights = {key: blocks(value, LSTM_ONNX_TO_CNN, units) for key, value in
                   (("kernel", w[0]), ("recurrent_kernel", r[0]), ("bias", w_b + r_b))}
    else:
        cls = layers.GRU
        reset_after = bool(attributes.get("linear_before_reset", 0))
        kwargs.update(recurrent_activation=names[0], activation=names[1], reset_after=reset_after)
        weights["bias"] = w_b if reset_after else w_b + r_b
        if reset_after:
            weights["recurrent_bias"] = r_b
    states = [initial_state(ctx, node, inputs[5], units, "initial_h")]
    if op == "LSTM":
        states.append(initial_state(ctx, node, inputs[6], units, "initial_c"))
    if any(state is not None for state in states):
        weights["initial_state"] = [np.zeros(units, np.float32) if s is None else s
                                    for s in states]
    spec = LayerSpec(cls, kwargs, weights, node.name or op)
    tensors = ctx.assembly.add_recurrent(spec, steps, units, cell=op == "LSTM")
    sequence_axes = (0, 1, None, 2) if layout else (1, None, 0, 2)
    state_axes = (0, None, 1) if layout else (None, 0, 1)
    if direction == "reverse":
        sequence = None  # ONNX's reverse Y is in input order, cnn's go_backwards is not
    else:
        sequence = Data(tensors["sequence"], sequence_axes)
    outputs = [sequence, Data(tensors["final"], state_axes)]
    if op == "LSTM":
        outputs.append(Data(tensors["cell"], state_axes))
    if direction == "reverse" and node.output[0] and ctx.consumers.get(node.output[0], 0):
        raise ctx.error(node, "the sequence output of a reverse-direction op has no cnn "
                              "equivalent (go_backwards returns the steps reversed)")
    return outputs
