"""Batched recurrent layers on (batch, time steps, features): SimpleRNN, LSTM, GRU.

Arguments follow Keras: ``units``, ``activation``, ``recurrent_activation``, ``use_bias``,
``return_sequences``, ``return_state``, ``stateful``, ``go_backwards``,
``kernel_initializer`` / ``recurrent_initializer`` / ``bias_initializer``,
``unit_forget_bias`` (LSTM), ``reset_after`` (GRU).

Shapes: input (N, T, F) -> output (N, T, U) with ``return_sequences=True``, else (N, U) (the
last step's output). Back-propagation runs through all T steps.

Weights (gate blocks of U rows stacked on the first axis, as Dense stores ``(units, inputs)``
and as PyTorch stores ``weight_ih_l0`` / ``weight_hh_l0``):

=========  =========================  ============================  =========================
layer      ``kernel``                 ``recurrent_kernel``          biases
=========  =========================  ============================  =========================
SimpleRNN  (U, F)                     (U, U)                        ``bias`` (U,)
LSTM       (4U, F), gates i, f, g, o  (4U, U)                       ``bias`` (4U,)
GRU        (3U, F), gates z, r, n     (3U, U)                       ``bias`` (3U,) and, with
                                                                    ``reset_after``,
                                                                    ``recurrent_bias`` (3U,)
=========  =========================  ============================  =========================

(Keras stores the transposes, ``(F, G*U)``; its GRU keeps both biases in one (2, 3U) array.)

States:

* ``layer.states`` holds the final states after every forward pass: ``[h]`` (SimpleRNN, GRU)
  or ``[h, c]`` (LSTM), each (N, U). With ``return_state=True``, calling the layer directly
  returns ``[output, *states]`` as in Keras; inside a model (which passes one array from layer
  to layer) the layer outputs ``output`` only and the states are read from ``layer.states``.
* Initial states: zeros by default; ``layer.set_initial_state(states)`` (or
  ``layer.initial_state = states``) fixes them for every sequence, each (U,) or (N, U); a
  forward call can pass ``initial_state=`` for that call only. ``backward`` leaves the
  gradients with respect to the initial states in ``layer.initial_state_grads``, and accepts
  ``state_grads=`` (gradients with respect to the final states) for encoder-decoder use.
* ``stateful=True``: the final states of one batch are the initial states of the next (sample
  ``i`` continues sample ``i``), so every batch must have the same size and the batches must
  not be shuffled (``Model.fit`` refuses ``shuffle=True``); back-propagation stops at the
  batch boundary. ``reset_states()`` (called by ``Model.fit`` at the start of each epoch)
  returns to the initial states; ``reset_states(states)`` sets them.
* ``go_backwards=True`` reads the sequence from the last step to the first; with
  ``return_sequences`` the outputs are in that reversed order (as in Keras).

Masks (Keras's semantics): ``forward(x, mask=mask)`` with ``mask`` (N, T) bool (True where a
step counts; a model passes the mask an ``Embedding(mask_zero=True)`` or ``Masking`` layer
makes). At a masked step a sequence keeps its states, so the last output is the output of its
last unmasked step, and with ``return_sequences`` the output at a masked step repeats the
previous output (before the first unmasked step: the initial state, zeros by default;
Keras gives zeros there even with an initial state); ``zero_output_for_mask=True`` gives
zeros there instead (``Bidirectional`` sets it with ``return_sequences``, as Keras does). The
output mask (``compute_mask``) is the input mask with ``return_sequences``, else None.

``recurrent_dropout=rate``: in training, each sequence draws one dropout mask (N, U) from the
seeded generator and multiplies ``h_{t-1}`` by it where it enters the recurrent kernel, at
every step (the same mask over time, as Keras); inference uses no dropout. The mask of the
last training forward is ``layer.recurrent_dropout_mask``.
"""

from __future__ import annotations

import numpy as np

from cnn import activations, backend, initializers
from cnn.backend import xp
from cnn.layers import batch_draws
from cnn.layers.base import Layer, format_shape
from cnn.layers.node import is_symbolic
from cnn.utils import checks
from cnn.layers.core import initializer_name
from cnn.ops import rnn as rnn_ops


def check_elementwise(activation, what: str):
    """The recurrences need element-wise activations (softmax mixes units)."""
    activation = activations.get(activation)
    if activation.name == "softmax":
        raise ValueError(f"{what} must be element-wise; softmax is not allowed in a recurrent layer")
    return activation


def set_recurrent_arguments(layer, units, activation, use_bias, kernel_initializer,
                            recurrent_initializer, bias_initializer) -> None:
    """Check and store the arguments every recurrent layer (these and ``Recurrent``) takes."""
    layer.units = checks.count("units", units, minimum=1)
    layer.activation = check_elementwise(activation, "activation")
    layer.use_bias = bool(use_bias)
    for init in (kernel_initializer, recurrent_initializer, bias_initializer):
        initializers.get(init)
    layer.kernel_initializer = kernel_initializer
    layer.recurrent_initializer = recurrent_initializer
    layer.bias_initializer = bias_initializer


def recurrent_config(layer) -> dict:
    """The config entries of the arguments ``set_recurrent_arguments`` stores."""
    return {
        "units": layer.units,
        "activation": layer.activation.get_config(),
        "use_bias": layer.use_bias,
        "kernel_initializer": initializer_name(layer.kernel_initializer),
        "recurrent_initializer": initializer_name(layer.recurrent_initializer),
        "bias_initializer": initializer_name(layer.bias_initializer),
    }


class _RNN(Layer):
    """Shared machinery: input projection, states, shapes and configuration.

    Subclasses set ``gate_blocks`` and ``state_names`` and implement ``_recurrence(xw,
    states) -> (h, final_states, cache)`` and ``_recurrence_backward(cache, dh, final_grads)
    -> (dxw, initial_grads, {param: grad})`` with the functions of ``cnn.ops.rnn``. With
    ``projects_inputs`` the recurrence takes the (time-major) inputs instead of ``xw`` and
    returns the gradients of ``kernel`` and ``bias`` as well.
    """

    gate_blocks = 1
    projects_inputs = False
    state_names: tuple = ("h",)
    accepts_mask = True
    supports_masking = True
    variable_length = True  # any number of steps (None); the features must be known

    def __init__(self, units, activation="tanh", *, use_bias=True, return_sequences=False,
                 return_state=False, stateful=False, go_backwards=False,
                 recurrent_dropout=0.0, zero_output_for_mask=False,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", input_shape=None, name=None, trainable=True):
        super().__init__(input_shape=input_shape, name=name, trainable=trainable)
        set_recurrent_arguments(self, units, activation, use_bias, kernel_initializer,
                                recurrent_initializer, bias_initializer)
        self.recurrent_dropout = checks.fraction("recurrent_dropout", recurrent_dropout)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.recurrent_dropout_mask = None
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.stateful = bool(stateful)
        self.go_backwards = bool(go_backwards)
        self.states = None
        self.initial_state_grads = None
        self._initial_state = None
        self._cache = None
        self._workspace = {}  # large buffers kept between batches (see cnn.ops.rnn)

    # -- building ---------------------------------------------------------------------------
    def _build(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(
                f"layer {self.describe()} takes sequences: input of shape (batch, time steps, "
                f"features), i.e. input_shape (time steps, features); got "
                f"{format_shape(input_shape)}. For the seed's one-sequence layout use Recurrent."
            )
        steps, features = input_shape
        if features is None:
            self.refuse_variable(input_shape, "its features (axis -1)")
        rows = self.gate_blocks * self.units
        self.add_param("kernel", initializers.initialize(
            self.kernel_initializer, (rows, features), features, rows))
        self.add_param("recurrent_kernel", initializers.initialize(
            self.recurrent_initializer, (rows, self.units), self.units, rows))
        if self.use_bias:
            self.add_param("bias", self._initial_bias(rows, features))
        if self.stateful:
            # The states carried to the next batch are buffers, so they are saved with the
            # weights; (0, U) means "nothing carried yet".
            self.batch_sized_buffers = tuple(f"carried_{n}" for n in self.state_names)
            for key in self.batch_sized_buffers:
                self.add_param(key, np.zeros((0, self.units)), trainable=False)
        return (steps, self.units) if self.return_sequences else (self.units,)

    def _initial_bias(self, rows, features):
        return initializers.initialize(self.bias_initializer, (rows,), features, rows)

    @property
    def samplewise(self) -> bool:
        """Sequences are independent unless the layer carries states between batches."""
        return not self.stateful

    # -- states -----------------------------------------------------------------------------
    @property
    def _carried(self):
        """The stateful layer's states carried from the last batch, or None."""
        if not self.stateful or self.buffers[self.batch_sized_buffers[0]].shape[0] == 0:
            return None
        return [self.buffers[key] for key in self.batch_sized_buffers]

    @_carried.setter
    def _carried(self, states):
        for key in self.batch_sized_buffers:
            self.buffers[key] = xp.zeros((0, self.units), dtype=self.dtype)
        for key, state in zip(self.batch_sized_buffers, states or ()):
            self.buffers[key] = state.astype(self.dtype)

    @property
    def needs_ordered_batches(self) -> bool:
        """True when batches continue each other (stateful), so they must not be shuffled."""
        return self.stateful

    @property
    def initial_state(self):
        return self._initial_state

    @initial_state.setter
    def initial_state(self, states):
        self.set_initial_state(states)

    def set_initial_state(self, states) -> None:
        """Fix the states every sequence starts from: a list of (U,) or (N, U) arrays, one per
        state (``[h]`` or ``[h, c]``); None returns to zeros."""
        self._initial_state = None if states is None else self._check_states(states, "initial state")

    def reset_states(self, states=None) -> None:
        """Stateful layers: forget the carried states (start again from the initial states), or
        carry ``states`` (list of (N, U) arrays) into the next batch."""
        if states is not None and not self.stateful:
            raise ValueError(f"layer {self.describe()} is not stateful; use set_initial_state()")
        checked = None if states is None else self._check_states(states, "state")
        if checked is not None and any(state.ndim != 2 for state in checked):
            raise ValueError(f"layer {self.describe()}: carried states must be (batch, {self.units}) "
                             "arrays, one row per sequence")
        self._carried = checked

    def _check_states(self, states, what):
        if not isinstance(states, (list, tuple)):
            states = [states]
        names = self.state_names
        if len(states) != len(names):
            raise ValueError(
                f"layer {self.describe()} has {len(names)} state(s) ({', '.join(names)}), got "
                f"{len(states)} {what} array(s)"
            )
        checked = []
        for state_name, state in zip(names, states):
            state = xp.asarray(state)
            if state.ndim not in (1, 2) or state.shape[-1] != self.units:
                raise ValueError(
                    f"layer {self.describe()}: {what} {state_name!r} has shape "
                    f"{tuple(state.shape)}, expected (batch, {self.units}) or ({self.units},)"
                )
            checked.append(state)
        return checked

    def _start_states(self, batch, dtype, initial_state):
        """The states the sequences of this batch start from, each (N, U)."""
        source = "initial_state"
        if initial_state is not None:
            states = self._check_states(initial_state, "initial state")
        elif self.stateful and self._carried is not None:
            states, source = self._carried, "carried state"
        elif self._initial_state is not None:
            states = self._initial_state
        else:
            return [xp.zeros((batch, self.units), dtype=dtype) for _ in self.state_names]
        for state_name, state in zip(self.state_names, states):
            if state.ndim == 2 and state.shape[0] != batch:
                hint = (" (a stateful layer needs the same batch size for every batch; call "
                        "reset_states() to start again)") if source == "carried state" else ""
                raise ValueError(
                    f"layer {self.describe()}: the {source} {state_name!r} is for "
                    f"{state.shape[0]} sequences but the batch has {batch}{hint}"
                )
        return [xp.broadcast_to(s, (batch, self.units)).astype(dtype) for s in states]

    # -- computation ------------------------------------------------------------------------
    def __call__(self, x, training=False, initial_state=None, mask=None):
        """Keras's call on arrays: builds on first use; with ``return_state`` returns
        ``[output, *states]``. On symbolic tensors (or an Input layer) it records a node."""
        if is_symbolic(x) or isinstance(x, Layer):  # a functional model's call: a node
            if self.return_state or initial_state is not None:
                raise ValueError(f"layer {self.describe()}: return_state and initial_state "
                                 "are for calls on arrays, not in functional models")
            return super().__call__(x, training)
        if not self.built:
            self.build(tuple(x.shape[1:]))
        output = self.forward(x, training=training, initial_state=initial_state, mask=mask)
        return [output, *self.states] if self.return_state else output

    def compute_mask(self, x, mask):
        """The output mask: the input mask with ``return_sequences``, else None."""
        return mask if self.return_sequences else None

    def check_mask(self, x, mask):
        """``mask`` as an (N, T) bool array, or a ValueError naming the layer and both shapes."""
        if mask is None:
            return None
        mask = xp.asarray(mask)
        if mask.shape != x.shape[:2]:
            raise ValueError(
                f"layer {self.describe()}: the mask must be (batch, time steps) = "
                f"{tuple(x.shape[:2])} for input of shape {tuple(x.shape)}, got a mask of "
                f"shape {tuple(mask.shape)}"
            )
        return mask.astype(bool, copy=False)

    def draw_recurrent_dropout_mask(self, batch, dtype):
        """One (N, U) inverted-dropout factor per sequence, from the seeded generator."""
        draws = batch_draws.rows_of(  # drawn for the whole global batch
            self, lambda size: backend.rng().random((size, self.units), dtype=np.float32), batch)
        keep = draws >= self.recurrent_dropout
        scale = 1.0 / (1.0 - self.recurrent_dropout)
        return backend.asarray(keep, dtype=dtype) * np.dtype(dtype).type(scale)

    def check_sequences(self, x) -> None:
        """Raise a clear ValueError unless ``x`` is (N, T, F) with the built T and F."""
        steps, features = self.input_shape
        if x.ndim != 3:
            hint = " (one sequence? add the batch axis: x[None])" if x.ndim == 2 else ""
            raise ValueError(
                f"layer {self.describe()} expects a 3-D input (batch, time steps, features) of "
                f"shape {format_shape(self.input_shape)}, got a {x.ndim}-D array of shape "
                f"{tuple(x.shape)}{hint}"
            )
        if x.shape[2] != features:
            raise ValueError(
                f"layer {self.describe()} expects {features} features per time step (axis -1), "
                f"got input of shape {tuple(x.shape)}"
            )
        if steps is not None and x.shape[1] != steps:
            relation = "shorter" if x.shape[1] < steps else "longer"
            raise ValueError(
                f"layer {self.describe()} was built for sequences of {steps} time steps, got "
                f"{x.shape[1]} ({relation}; input of shape {tuple(x.shape)})"
            )

    def forward(self, x, training=False, initial_state=None, mask=None):
        self.check_sequences(x)
        mask = self.check_mask(x, mask)
        batch = x.shape[0]
        kernel = self.params["kernel"]
        states = self._start_states(batch, kernel.dtype, initial_state)
        self.recurrent_dropout_mask = None
        if training and self.recurrent_dropout > 0:
            self.recurrent_dropout_mask = self.draw_recurrent_dropout_mask(batch, kernel.dtype)
        step_mask = None if mask is None else mask.T[::-1] if self.go_backwards else mask.T
        x_steps = x.transpose(1, 0, 2)
        if self.go_backwards:
            x_steps = x_steps[::-1]
        masks = {"mask": step_mask, "recurrent_mask": self.recurrent_dropout_mask}
        if self.projects_inputs:
            h, final, cache = self._recurrence(x_steps, states, masks)
        else:
            x_steps = xp.ascontiguousarray(x_steps, dtype=kernel.dtype)
            steps = x_steps.shape[0]
            xw = rnn_ops.buffer((steps * batch, kernel.shape[0]), kernel, self._workspace, "xw")
            xp.matmul(x_steps.reshape(-1, x_steps.shape[-1]), kernel.T, out=xw)
            if self.use_bias:
                xw += self.params["bias"]
            h, final, cache = self._recurrence(xw.reshape(steps, batch, -1), states, masks)
        self.states = [state.copy() for state in final]
        if self.stateful:
            self._carried = [state.copy() for state in final]
        output_mask = None
        if self.return_sequences and self.zero_output_for_mask and step_mask is not None:
            output_mask = step_mask.T[:, :, None].astype(kernel.dtype)
        self._cache = (x_steps, cache, output_mask)
        if self.return_sequences:
            outputs = xp.ascontiguousarray(h.transpose(1, 0, 2))
            return outputs if output_mask is None else outputs * output_mask
        return self.states[0].copy()

    def backward(self, grad, state_grads=None):
        """``grad``: (N, T, U) or (N, U) like the output; ``state_grads``: optional gradients
        with respect to the final states (list, None entries allowed). Fills ``grads`` and
        ``initial_state_grads``; returns the input gradient (N, T, F)."""
        if self._cache is None:
            raise ValueError(f"layer {self.describe()}: backward called without a forward pass")
        x_steps, cache, output_mask = self._cache
        final_grads = [None] * len(self.state_names)
        if state_grads is not None:
            if len(state_grads) != len(final_grads):
                raise ValueError(
                    f"layer {self.describe()} has {len(final_grads)} state(s) "
                    f"({', '.join(self.state_names)}), got {len(state_grads)} state gradient(s)"
                )
            final_grads = list(state_grads)
        if self.return_sequences:
            if output_mask is not None:
                grad = grad * output_mask
            dh_seq = grad.transpose(1, 0, 2)  # the LSTM copies it into its own layout
            if not self.projects_inputs:
                dh_seq = xp.ascontiguousarray(dh_seq)
        else:
            dh_seq = None
            final_grads[0] = grad if final_grads[0] is None else grad + final_grads[0]
        dxw, initial_grads, recurrent_grads = self._recurrence_backward(cache, dh_seq, final_grads)
        # (T * N, G * U); the LSTM's dxw is a gate-major view whose reshape is a view as well
        flat = dxw.reshape(-1, dxw.shape[-1])
        if not self.projects_inputs:
            self.grads["kernel"] = flat.T @ x_steps.reshape(-1, x_steps.shape[-1])
            if self.use_bias:
                self.grads["bias"] = flat.sum(axis=0)
        self.grads.update(recurrent_grads)
        self.initial_state_grads = initial_grads
        self._cache = None
        if not self.needs_input_grad:
            return None
        dx = (flat @ self.params["kernel"]).reshape(x_steps.shape)
        if self.go_backwards:
            dx = dx[::-1]
        return xp.ascontiguousarray(dx.transpose(1, 0, 2))

    def _recurrence(self, xw, states, masks):
        """``masks``: the keyword arguments ``mask`` and ``recurrent_mask`` of the kernels."""
        raise NotImplementedError

    def _recurrence_backward(self, cache, dh_seq, final_grads):
        raise NotImplementedError

    # -- configuration ----------------------------------------------------------------------
    def get_config(self):
        return {
            **super().get_config(),
            **recurrent_config(self),
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "stateful": self.stateful,
            "go_backwards": self.go_backwards,
            "recurrent_dropout": self.recurrent_dropout,
            "zero_output_for_mask": self.zero_output_for_mask,
        }


class SimpleRNN(_RNN):
    """Fully connected recurrence: ``h_t = activation(x_t W.T + h_{t-1} R.T + b)``."""

    def _recurrence(self, xw, states, masks):
        return rnn_ops.simple_rnn_forward(xw, states[0], self.params["recurrent_kernel"],
                                          self.activation, self._workspace, **masks)

    def _recurrence_backward(self, cache, dh_seq, final_grads):
        dxw, initial_grads, (d_recurrent,) = rnn_ops.simple_rnn_backward(cache, dh_seq, final_grads)
        return dxw, initial_grads, {"recurrent_kernel": d_recurrent}


class _GatedRNN(_RNN):
    """An RNN with gates: adds ``recurrent_activation`` (sigmoid by default)."""

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", **kwargs):
        super().__init__(units, activation, **kwargs)
        self.recurrent_activation = check_elementwise(recurrent_activation, "recurrent_activation")

    def get_config(self):
        return {**super().get_config(),
                "recurrent_activation": self.recurrent_activation.get_config()}


class LSTM(_GatedRNN):
    """Long short-term memory (Hochreiter & Schmidhuber), gates i, f, g, o::

        i, f, o = recurrent_activation(x_t W_k.T + h_{t-1} R_k.T + b_k),  k = i, f, o
        g = activation(x_t W_g.T + h_{t-1} R_g.T + b_g)
        c_t = f * c_{t-1} + i * g;   h_t = o * activation(c_t)

    ``unit_forget_bias=True`` (Keras's default) starts the forget-gate bias at 1.
    States ``[h, c]``.
    """

    gate_blocks = 4
    state_names = ("h", "c")
    projects_inputs = True  # one GEMM per step over [h_{t-1}, x_t, 1] (cnn.ops.rnn)

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", *,
                 unit_forget_bias=True, **kwargs):
        super().__init__(units, activation, recurrent_activation, **kwargs)
        self.unit_forget_bias = bool(unit_forget_bias)

    def _initial_bias(self, rows, features):
        bias = super()._initial_bias(rows, features)
        if self.unit_forget_bias:
            bias[self.units:2 * self.units] = 1
        return bias

    def _recurrence(self, x_steps, states, masks):
        return rnn_ops.lstm_forward(x_steps, states[0], states[1], self.params["kernel"],
                                    self.params["recurrent_kernel"], self.params.get("bias"),
                                    self.activation, self.recurrent_activation, self._workspace,
                                    **masks)

    def _recurrence_backward(self, cache, dh_seq, final_grads):
        dxw, initial_grads, grads = rnn_ops.lstm_backward(cache, dh_seq, final_grads)
        return dxw, initial_grads, dict(zip(("kernel", "recurrent_kernel", "bias"), grads))

    def get_config(self):
        return {**super().get_config(), "unit_forget_bias": self.unit_forget_bias}


class GRU(_GatedRNN):
    """Gated recurrent unit (Cho et al.), gates z (update), r (reset), n (candidate)::

        z, r = recurrent_activation(x_t W_k.T + b_k + h_{t-1} R_k.T + b'_k)
        n = activation(x_t W_n.T + b_n + r * (h_{t-1} R_n.T + b'_n))   reset_after=True
        n = activation(x_t W_n.T + b_n + (r * h_{t-1}) R_n.T)           reset_after=False
        h_t = z * h_{t-1} + (1 - z) * n

    ``reset_after=True`` (Keras's default, PyTorch's GRU) has the recurrent bias ``b'``
    (``recurrent_bias``). States ``[h]``.
    """

    gate_blocks = 3

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", *,
                 reset_after=True, **kwargs):
        super().__init__(units, activation, recurrent_activation, **kwargs)
        self.reset_after = bool(reset_after)

    def _build(self, input_shape):
        output_shape = super()._build(input_shape)
        if self.use_bias and self.reset_after:
            self.add_param("recurrent_bias", self._initial_bias(3 * self.units, input_shape[-1]))
        return output_shape

    def _recurrence(self, xw, states, masks):
        return rnn_ops.gru_forward(xw, states[0], self.params["recurrent_kernel"],
                                   self.params.get("recurrent_bias"), self.activation,
                                   self.recurrent_activation, self.reset_after, self._workspace,
                                   **masks)

    def _recurrence_backward(self, cache, dh_seq, final_grads):
        dxw, initial_grads, recurrent = rnn_ops.gru_backward(cache, dh_seq, final_grads)
        grads = {"recurrent_kernel": recurrent[0]}
        if "recurrent_bias" in self.params:
            grads["recurrent_bias"] = recurrent[1]
        return dxw, initial_grads, grads

    def get_config(self):
        return {**super().get_config(), "reset_after": self.reset_after}


RNN_LAYERS = (SimpleRNN, LSTM, GRU)  # what Bidirectional wraps

__all__ = ["SimpleRNN", "LSTM", "GRU", "RNN_LAYERS"]
