"""SimpleRNN, LSTM and GRU as ONNX ``RNN`` / ``LSTM`` / ``GRU`` (one direction).

The plumbing is what ``torch.onnx`` writes for ``batch_first`` layers: ``Transpose`` the
(N, T, F) input to time-major (T, N, F) (ONNX's ``layout`` attribute only exists from opset
14), run the op, then either ``Squeeze`` the sequence output Y (T, 1, N, U) and transpose it
back to (N, T, U) (``return_sequences``) or ``Squeeze`` the final state Y_h (1, N, U).

Weights: cnn stores gate blocks stacked on the first axis, ``kernel`` (G*U, F) and
``recurrent_kernel`` (G*U, U), which is ONNX's W and R (with a leading direction axis). The
gate orders: LSTM cnn i, f, g(c), o -> ONNX i, o, f, c; GRU z, r, n is ONNX's z, r, h. ONNX
adds two biases (input and recurrent); cnn's one ``bias`` is the input bias, GRU's
``recurrent_bias`` (``reset_after=True``, ONNX ``linear_before_reset=1``) the recurrent one.

``go_backwards`` reverses the time axis of the input with a ``Slice`` (step -1) and runs the
forward direction: the outputs are then in reversed order, as in Keras (ONNX's "reverse"
direction would return them in the input's order). Initial states fixed with
``set_initial_state`` as (U,) vectors are broadcast over the batch with ``Expand``.

Not exportable (the error names the layer): the seed's ``Recurrent`` and ``stateful`` layers
(their state lives between calls, an ONNX graph has none), per-sample initial states (their
batch size is fixed, the graph's is dynamic), and activations that ONNX's recurrent ops do not
offer (softmax, gelu, silu).
"""

from __future__ import annotations

import numpy as np

from cnn.layers import GRU, LSTM, Recurrent, SimpleRNN
from cnn.onnx.converters.activations import parse_activation
from cnn.onnx.converters.core import layer_weights
from cnn.onnx.errors import OnnxExportError
from cnn.onnx.registry import converter

LSTM_CNN_TO_ONNX = (0, 3, 1, 2)  # ONNX block k is cnn block LSTM_CNN_TO_ONNX[k]

# ONNX recurrent-op activation names (and whether they take an alpha)
_RNN_ACTIVATIONS = {"tanh": "Tanh", "sigmoid": "Sigmoid", "relu": "Relu", "softplus": "Softplus",
                    "leaky_relu": "LeakyRelu", "elu": "Elu", "linear": "Affine"}


@converter(Recurrent)
def convert_seed_recurrent(builder, layer, inputs, output):
    raise OnnxExportError(
        f"layer {layer.describe()} cannot be exported: the seed's Recurrent layer carries its "
        "state from one batch to the next (the rows of a batch are the time steps of one "
        "sequence), and an ONNX graph keeps no state between runs; use SimpleRNN on "
        "(batch, time steps, features) sequences")


def gate_blocks(array, order, units):
    """Reorder the gate blocks of U rows on the first axis of ``array``."""
    return np.concatenate([array[k * units:(k + 1) * units] for k in order], axis=0)


def rnn_activations(layer, functions) -> dict:
    """The ``activations`` (and ``activation_alpha``/``activation_beta``) attributes.

    The alphas and betas list only the activations that take one, in order (onnxruntime
    reads them so: a Sigmoid consumes no alpha).
    """
    names, alphas, betas = [], [], []
    for function in functions:
        name, alpha = parse_activation(function)
        if name not in _RNN_ACTIVATIONS:
            raise OnnxExportError(
                f"layer {layer.describe()} cannot be exported: ONNX recurrent ops have no "
                f"{function.get_config()!r} activation (they offer {', '.join(_RNN_ACTIVATIONS)})")
        names.append(_RNN_ACTIVATIONS[name])
        if name == "linear":  # Affine: alpha * x + beta
            alphas.append(1.0)
            betas.append(0.0)
        elif alpha is not None:
            alphas.append(alpha)
    attributes = {"activations": names}
    if alphas:
        attributes["activation_alpha"] = alphas
    if betas:
        attributes["activation_beta"] = betas
    return attributes


def check_exportable(layer) -> None:
    if layer.stateful:
        raise OnnxExportError(
            f"layer {layer.describe()} cannot be exported: it is stateful (its final states "
            "start the next batch), and an ONNX graph keeps no state between runs")


def initial_states(builder, layer, x: str) -> list[str]:
    """Inputs initial_h (and initial_c): '' for zeros, else the fixed (U,) states broadcast
    to (1, N, U)."""
    states = layer.initial_state
    if states is None:
        return ["" for _ in layer.state_names]
    names = []
    units = layer.units
    shape = None
    for state_name, state in zip(layer.state_names, states):
        state = np.asarray(state)
        if state.ndim == 2 and state.shape[0] != 1:
            raise OnnxExportError(
                f"layer {layer.describe()} cannot be exported: its initial state {state_name!r} "
                f"holds one row per sample ({state.shape[0]} samples), but the graph's batch "
                "size is dynamic; give (units,) initial states to export")
        if shape is None:
            batch = builder.batch_size(x)
            shape = builder.node("Concat", [builder.ints([1], "one"), batch,
                                            builder.ints([units], "units")], axis=0)
        value = builder.initializer(state.reshape(1, 1, units), f"initial_{state_name}")
        names.append(builder.node("Expand", [value, shape]))
    return names


def emit_recurrence(builder, layer, inputs, output, op_type, w, r, b, **attributes):
    """The Transpose / (Slice) / op / Squeeze / Transpose nodes around one recurrent op."""
    x = inputs[0]
    steps = builder.node("Transpose", [x], perm=[1, 0, 2])
    if layer.go_backwards:
        steps = builder.reverse(steps, 0)
    operands = [steps, builder.initializer(w[None], "W"), builder.initializer(r[None], "R"),
                builder.initializer(b[None], "B"), "", *initial_states(builder, layer, x)]
    while operands[-1] == "":
        operands.pop()
    if layer.return_sequences:
        sequence = builder.node(op_type, operands, outputs=[builder.unique("Y")],
                                hidden_size=layer.units, **attributes)
        squeezed = builder.node("Squeeze", [sequence, builder.ints([1], "direction_axis")])
        builder.node("Transpose", [squeezed], output, perm=[1, 0, 2])
        return
    final = builder.node(op_type, operands, outputs=["", builder.unique("Y_h")],
                         hidden_size=layer.units, **attributes)[1]
    builder.node("Squeeze", [final, builder.ints([0], "direction_axis")], output)


def biases(layer, weights, recurrent_bias=None):
    """ONNX's B: [input bias, recurrent bias], zeros where cnn has none."""
    rows = weights["kernel"].shape[0]
    bias = weights.get("bias", np.zeros(rows, np.float32))
    recurrent = np.zeros(rows, np.float32) if recurrent_bias is None else recurrent_bias
    return np.concatenate([bias, recurrent])


@converter(SimpleRNN)
def convert_simple_rnn(builder, layer, inputs, output):
    check_exportable(layer)
    weights = layer_weights(layer)
    emit_recurrence(builder, layer, inputs, output, "RNN", weights["kernel"],
                    weights["recurrent_kernel"], biases(layer, weights),
                    **rnn_activations(layer, [layer.activation]))


@converter(LSTM)
def convert_lstm(builder, layer, inputs, output):
    check_exportable(layer)
    weights = layer_weights(layer)
    units = layer.units
    b = biases(layer, weights)
    b = np.concatenate([gate_blocks(half, LSTM_CNN_TO_ONNX, units) for half in np.split(b, 2)])
    emit_recurrence(builder, layer, inputs, output, "LSTM",
                    gate_blocks(weights["kernel"], LSTM_CNN_TO_ONNX, units),
                    gate_blocks(weights["recurrent_kernel"], LSTM_CNN_TO_ONNX, units), b,
                    **rnn_activations(layer, [layer.recurrent_activation, layer.activation,
                                              layer.activation]))


@converter(GRU)
def convert_gru(builder, layer, inputs, output):
    check_exportable(layer)
    weights = layer_weights(layer)
    emit_recurrence(builder, layer, inputs, output, "GRU", weights["kernel"],
                    weights["recurrent_kernel"],
                    biases(layer, weights, weights.get("recurrent_bias")),
                    linear_before_reset=int(layer.reset_after),
                    **rnn_activations(layer, [layer.recurrent_activation, layer.activation]))
