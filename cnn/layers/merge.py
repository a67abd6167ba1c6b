"""Merge layers: Add, Subtract, Multiply, Average, Maximum and Concatenate (Keras's names).

Each is called on a list of tensors of the same shape (``Concatenate``: the same shape but
along ``axis``): ``y = Add()([a, b])``. ``build`` gets the list of shapes (batch axis
excluded), ``forward`` a list of arrays (N, ...), ``backward`` returns one gradient per
input, in order. ``Subtract`` takes exactly two inputs.

Variable axes (None), as Keras: None matches any size, and an axis that is None in any input
is None in the output (``(None, None, 8)`` and ``(None, 5, 8)`` give ``(None, None, 8)``);
each batch's arrays must then agree on it, which is checked (the error names the layer).
"""

from __future__ import annotations

from cnn.backend import xp
from cnn.layers.base import Layer, format_shape
from cnn.layers.node import has_variable_axis


class _Merge(Layer, register=False):
    """Shared checks: a list of at least ``min_inputs`` inputs of one shape."""

    samplewise = True
    variable_length = True
    min_inputs = 2
    max_inputs = None
    joined_axis = None  # the sample axis along which the inputs may differ (Concatenate)

    def __init__(self, *, name=None):
        super().__init__(name=name)

    def _build(self, input_shape):
        self._check_count(input_shape)
        shapes = [tuple(s) for s in input_shape]
        merged = merged_shape(shapes)
        if merged is None:
            listed = ", ".join(format_shape(s) for s in shapes)
            raise ValueError(f"layer {self.describe()} needs inputs of one shape, got {listed}")
        return merged

    def call_forward(self, x, training, mask=None):
        """``forward``, after checking that the arrays agree on the variable axes."""
        if has_variable_axis(self.input_shape):
            shapes = [tuple(a.shape[1:]) for a in x]
            others = [_without(s, self.joined_axis) for s in shapes]
            if any(o != others[0] for o in others):
                listed = ", ".join(str(tuple(a.shape)) for a in x)
                raise ValueError(f"layer {self.describe()}: the inputs of this batch differ on "
                                 f"a variable axis (None in {self.input_shape}): got arrays "
                                 f"of shapes {listed}")
        return super().call_forward(x, training, mask)

    def _check_count(self, input_shape):
        if not isinstance(input_shape, list):
            raise ValueError(f"layer {self.describe()} merges a list of tensors: call it as "
                             f"{type(self).__name__}()([a, b])")
        count = len(input_shape)
        if count < self.min_inputs or (self.max_inputs is not None and count > self.max_inputs):
            wanted = (f"exactly {self.min_inputs}" if self.max_inputs == self.min_inputs
                      else f"at least {self.min_inputs}")
            raise ValueError(f"layer {self.describe()} needs {wanted} inputs, got {count}")

    def get_config(self):
        return {"name": self.name}


def merged_shape(shapes):
    """The shape of the merge of sample shapes that agree, None standing for any size (and
    making the merged axis None); None when they do not agree (other rank or a fixed size
    that differs)."""
    if any(len(s) != len(shapes[0]) for s in shapes):
        return None
    merged = []
    for sizes in zip(*shapes):
        known = {size for size in sizes if size is not None}
        if len(known) > 1:
            return None
        merged.append(None if None in sizes else sizes[0])
    return tuple(merged)


def _without(shape, axis):
    return shape if axis is None else shape[:axis] + shape[axis + 1:]


class Add(_Merge):
    """The sum of its inputs."""

    def forward(self, x, training=False):
        total = x[0] + x[1]
        for more in x[2:]:
            total += more
        return total

    def backward(self, grad):
        return [grad] * len(self.input_shape)


class Subtract(_Merge):
    """``a - b`` for inputs ``[a, b]``."""

    max_inputs = 2

    def forward(self, x, training=False):
        return x[0] - x[1]

    def backward(self, grad):
        return [grad, -grad]


class Multiply(_Merge):
    """The elementwise product of its inputs."""

    def forward(self, x, training=False):
        self.inputs = list(x)
        product = x[0] * x[1]
        for more in x[2:]:
            product = product * more
        return product

    def backward(self, grad):
        inputs, self.inputs = self.inputs, None
        grads = []
        for i in range(len(inputs)):
            g = grad
            for j, other in enumerate(inputs):
                if j != i:
                    g = g * other
            grads.append(g)
        return grads


class Average(_Merge):
    """The mean of its inputs."""

    def forward(self, x, training=False):
        total = x[0] + x[1]
        for more in x[2:]:
            total += more
        total *= total.dtype.type(1.0 / len(x))
        return total

    def backward(self, grad):
        share = grad * grad.dtype.type(1.0 / len(self.input_shape))
        return [share] * len(self.input_shape)


class Maximum(_Merge):
    """The elementwise maximum; a tie sends the gradient to the first of the tied inputs."""

    def forward(self, x, training=False):
        stacked = xp.stack(x)
        self.winner = stacked.argmax(axis=0)
        return stacked.max(axis=0)

    def backward(self, grad):
        winner, self.winner = self.winner, None
        return [grad * (winner == i) for i in range(len(self.input_shape))]


class Concatenate(_Merge):
    """Joins its inputs along ``axis`` (default -1; axis 0 is the batch and is refused).

    Shapes: inputs (N, ..., d_i, ...) that agree except on ``axis`` -> (N, ..., sum d_i, ...).
    """

    def __init__(self, axis=-1, *, name=None):
        super().__init__(name=name)
        if isinstance(axis, bool) or not isinstance(axis, int) or axis == 0:
            raise ValueError(f"Concatenate axis must be a non-zero int (0 is the batch axis), "
                             f"got {axis!r}")
        self.axis = axis
        self._batch_sizes = None  # the sizes along axis of the last forward's inputs

    def _build(self, input_shape):
        self._check_count(input_shape)
        shapes = [tuple(s) for s in input_shape]
        rank = len(shapes[0]) + 1
        if any(len(s) + 1 != rank for s in shapes) or not -rank <= self.axis < rank:
            raise ValueError(f"layer {self.describe()} cannot join shapes "
                             f"{', '.join(format_shape(s) for s in shapes)} on axis {self.axis}")
        self.sample_axis = self.joined_axis = (self.axis % rank) - 1
        others = merged_shape([_without(s, self.sample_axis) for s in shapes])
        if others is None:
            raise ValueError(f"layer {self.describe()} needs inputs that agree on every axis but "
                             f"{self.axis}, got {', '.join(format_shape(s) for s in shapes)}")
        self.sizes = [s[self.sample_axis] for s in shapes]
        out = list(others)
        joined = None if None in self.sizes else sum(self.sizes)
        out.insert(self.sample_axis, joined)
        return tuple(out)

    def forward(self, x, training=False):
        self._batch_sizes = [a.shape[self.sample_axis + 1] for a in x]
        return xp.concatenate(x, axis=self.sample_axis + 1)

    def backward(self, grad):
        sizes = self._batch_sizes or self.sizes
        bounds = [sum(sizes[:i + 1]) for i in range(len(sizes) - 1)]
        return xp.split(grad, bounds, axis=self.sample_axis + 1)

    def get_config(self):
        return {"axis": self.axis, "name": self.name}


__all__ = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Concatenate"]
