"""Embedding: integer ids -> dense vectors, with Keras's ``mask_zero``; PositionEmbedding: a
learned vector per position (see its class).

Input: integer ids of any shape (N, *S) (float arrays holding whole numbers are accepted, as a
model hands its inputs over in its float type); output (N, *S, output_dim). The weight
``embeddings`` (input_dim, output_dim) is looked up row by row; its gradient adds up the output
gradients of every occurrence of an id. No gradient flows to the ids (backward returns None).

``mask_zero=True``: id 0 is padding; the output mask (``compute_mask``) is ``ids != 0``, which
a model hands to the layers after (recurrent layers then skip those steps). Id 0 still has a
row, so ``input_dim`` counts it (vocabulary size + 1), as in Keras.
"""

from __future__ import annotations

import numpy as np

from cnn import backend, initializers
from cnn.backend import xp
from cnn.layers.base import Layer
from cnn.utils import checks

KERAS_UNIFORM_LIMIT = 0.05  # Keras's "uniform" initializer: U(-0.05, 0.05)


def embedding_lookup_backward(ids, grad, input_dim):
    """``d table``: (input_dim, D), the sum of ``grad[..., :]`` (*S, D) over each id's places."""
    table = xp.zeros((input_dim, grad.shape[-1]), dtype=grad.dtype)
    xp.add.at(table, ids.reshape(-1), grad.reshape(-1, grad.shape[-1]))
    return table


class Embedding(Layer):
    """Turns ids in ``[0, input_dim)`` into vectors of ``output_dim`` numbers.

    Args:
        input_dim: vocabulary size (largest id + 1).
        output_dim: size of each vector.
        embeddings_initializer: ``"uniform"`` (Keras's default, U(-0.05, 0.05)) or any
            ``cnn.initializers`` name.
        mask_zero: id 0 is padding and masked (see the module docstring).
    """

    samplewise = True
    supports_masking = True
    variable_length = True  # ids of any length: Input((None,))

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform", *,
                 mask_zero=False, input_shape=None, input_length=None, name=None,
                 trainable=True):
        if input_shape is None and input_length is not None:
            input_shape = (input_length,)
        super().__init__(input_shape=input_shape, name=name, trainable=trainable)
        self.input_dim = checks.count("input_dim", input_dim, minimum=1)
        self.output_dim = checks.count("output_dim", output_dim, minimum=1)
        if embeddings_initializer != "uniform":
            initializers.get(embeddings_initializer)
        if not isinstance(embeddings_initializer, str):
            raise ValueError("embeddings_initializer must be a name, so that it can be saved")
        self.embeddings_initializer = embeddings_initializer
        self.mask_zero = bool(mask_zero)
        self._ids = None

    def _build(self, input_shape):
        shape = (self.input_dim, self.output_dim)
        if self.embeddings_initializer == "uniform":
            table = backend.rng().uniform(-KERAS_UNIFORM_LIMIT, KERAS_UNIFORM_LIMIT, size=shape)
        else:
            table = initializers.initialize(self.embeddings_initializer, shape, self.input_dim,
                                            self.output_dim)
        self.add_param("embeddings", table)
        return (*input_shape, self.output_dim)

    def ids(self, x):
        """``x`` as an int64 id array, or a ValueError naming the layer and the bad value."""
        if x.dtype == bool or not np.issubdtype(x.dtype, np.number):
            raise ValueError(f"layer {self.describe()} takes integer ids, got dtype {x.dtype}")
        ids = x.astype(np.int64)
        if not np.issubdtype(x.dtype, np.integer) and not bool(xp.all(ids == x)):
            raise ValueError(f"layer {self.describe()} takes integer ids, got non-whole numbers")
        if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= self.input_dim):
            bad = int(ids.min()) if int(ids.min()) < 0 else int(ids.max())
            raise ValueError(f"layer {self.describe()}: id {bad} is outside [0, {self.input_dim})"
                             f" (input_dim={self.input_dim})")
        return ids

    def forward(self, x, training=False):
        self.check_input(x)
        self._ids = self.ids(x)
        return self.params["embeddings"][self._ids]

    def backward(self, grad):
        if self._ids is None:
            raise ValueError(f"layer {self.describe()}: backward called without a forward pass")
        self.grads["embeddings"] = embedding_lookup_backward(self._ids, grad, self.input_dim)
        return None

    def compute_mask(self, x, mask=None):
        """``x != 0`` with ``mask_zero``, else None."""
        return xp.asarray(x) != 0 if self.mask_zero else None

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim,
                "output_dim": self.output_dim,
                "embeddings_initializer": self.embeddings_initializer,
                "mask_zero": self.mask_zero}


class PositionEmbedding(Layer):
    """A learned vector per position (keras_hub's ``PositionEmbedding``): on (N, T, D) it
    returns the first T rows of its table ``embeddings`` (sequence_length, D), broadcast to
    (N, T, D), to be added to token embeddings (``Add()([tokens, PositionEmbedding(T)(tokens)])``).

    The output does not depend on the input's values, so no gradient flows to the input
    (backward returns zeros); the table's gradient is the output gradient summed over the batch.
    """

    samplewise = True
    supports_masking = True
    variable_length = True  # any number of steps up to sequence_length, checked per batch

    def __init__(self, sequence_length, initializer="glorot_uniform", *, input_shape=None,
                 name=None, trainable=True):
        super().__init__(input_shape=input_shape, name=name, trainable=trainable)
        self.sequence_length = checks.count("sequence_length", sequence_length, minimum=1)
        initializers.get(initializer)
        if not isinstance(initializer, str):
            raise ValueError("initializer must be a name, so that it can be saved")
        self.initializer = initializer

    def _build(self, input_shape):
        if len(input_shape) == 2 and input_shape[1] is None:
            self.refuse_variable(input_shape, "its features (axis -1)")
        if len(input_shape) != 2 or (input_shape[0] or 0) > self.sequence_length:
            raise ValueError(f"layer {self.describe()} needs input (batch, steps <= "
                             f"{self.sequence_length}, features), got (None, "
                             f"{', '.join(map(str, input_shape))})")
        shape = (self.sequence_length, input_shape[1])
        self.add_param("embeddings", initializers.initialize(self.initializer, shape, shape[0],
                                                             shape[1]))
        return input_shape

    def forward(self, x, training=False):
        self.check_input(x)
        steps = x.shape[1]
        if steps > self.sequence_length:
            raise ValueError(f"layer {self.describe()} has positions for sequences of up to "
                             f"{self.sequence_length} steps, got a batch of {steps} steps "
                             f"(input of shape {tuple(x.shape)}); the time axis is variable "
                             "but cannot go beyond sequence_length")
        return xp.broadcast_to(self.params["embeddings"][:steps], x.shape).copy()

    def backward(self, grad):
        table = xp.zeros_like(self.params["embeddings"])
        table[:grad.shape[1]] = grad.sum(axis=0)
        self.grads["embeddings"] = table
        return xp.zeros_like(grad) if self.needs_input_grad else None

    def get_config(self):
        return {**super().get_config(), "sequence_length": self.sequence_length,
                "initializer": self.initializer}


__all__ = ["Embedding", "PositionEmbedding"]
