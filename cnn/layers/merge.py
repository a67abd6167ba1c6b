"""Merge layers: Add, Subtract, Multiply, Average, Maximum and Concatenate (Keras's names).

Each is called on a list of tensors of the same shape (``Concatenate``: the same shape but
along ``axis``): ``y = Add()([a, b])``. ``build`` gets the list of shapes (batch axis
excluded), ``forward`` a list of arrays (N, ...), ``backward`` returns one gradient per
input, in order. ``Subtract`` takes exactly two inputs.
"""

from __future__ import annotations

from cnn.backend import xp
from cnn.layers.base import Layer, format_shape


class _Merge(Layer, register=False):
    """Shared checks: a list of at least ``min_inputs`` inputs of one shape."""

    samplewise = True
    min_inputs = 2
    max_inputs = None

    def __init__(self, *, name=None):
        super().__init__(name=name)

    def _build(self, input_shape):
        self._check_count(input_shape)
        shapes = [tuple(s) for s in input_shape]
        if any(shape != shapes[0] for shape in shapes):
            listed = ", ".join(format_shape(s) for s in shapes)
            raise ValueError(f"layer {self.describe()} needs inputs of one shape, got {listed}")
        return shapes[0]

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

    def _build(self, input_shape):
        self._check_count(input_shape)
        shapes = [tuple(s) for s in input_shape]
        rank = len(shapes[0]) + 1
        if any(len(s) + 1 != rank for s in shapes) or not -rank <= self.axis < rank:
            raise ValueError(f"layer {self.describe()} cannot join shapes "
                             f"{', '.join(format_shape(s) for s in shapes)} on axis {self.axis}")
        self.sample_axis = (self.axis % rank) - 1
        others = [s[:self.sample_axis] + s[self.sample_axis + 1:] for s in shapes]
        if any(o != others[0] for o in others):
            raise ValueError(f"layer {self.describe()} needs inputs that agree on every axis but "
                             f"{self.axis}, got {', '.join(format_shape(s) for s in shapes)}")
        self.sizes = [s[self.sample_axis] for s in shapes]
        out = list(shapes[0])
        out[self.sample_axis] = sum(self.sizes)
        return tuple(out)

    def forward(self, x, training=False):
        return xp.concatenate(x, axis=self.sample_axis + 1)

    def backward(self, grad):
        bounds = [sum(self.sizes[:i + 1]) for i in range(len(self.sizes) - 1)]
        return xp.split(grad, bounds, axis=self.sample_axis + 1)

    def get_config(self):
        return {"axis": self.axis, "name": self.name}


__all__ = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Concatenate"]
