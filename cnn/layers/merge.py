"""Merge layers: Add, Subtract, Multiply, Average, Maximum and Concatenate (Keras's names).

Each is called on a list of tensors of the same shape (``Concatenate``: the same shape but
along ``axis``): ``y = Add()([a, b])``. ``build`` gets the list of shapes (batch axis
excluded), ``forward`` a list of arrays (N, ...), ``backward`` returns one gradient per
input, in order. ``Subtract`` takes exactly two inputs.

Variable axes (None), as Keras: None matches any size, and an axis that is None in any input
is None in the output (``(None, None, 8)`` and ``(None, 5, 8)`` give ``(None, None, 8)``);
each batch's arrays must then agree on it, which is checked (the error names the layer).

Masks, as Keras 3: a merge passes sequence masks (N, T) on. The output's mask is the OR of the
inputs' masks when every input has one, else None (an input without a mask is all real steps,
so the OR would be all True). ``Concatenate`` along the steps joins the masks (an unmasked
input's steps all real); along another axis it is the OR, all True where an input has none.
``Maximum`` also lets only real steps compete: at a step where some inputs are real it is the
maximum over those, where none is, over all.
"""

from __future__ import annotations

from cnn.backend import xp
from cnn.layers.base import Layer, format_shape
from cnn.layers.node import has_variable_axis


class _Merge(Layer, register=False):
    """Shared checks: a list of at least ``min_inputs`` inputs of one shape."""

    samplewise = True
    variable_length = True
    supports_masking = True
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

    def compute_mask(self, x, mask):
        """The OR of the inputs' (N, T) masks when all have one, else None."""
        return either_mask(mask)

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


def either_mask(masks):
    """The elementwise OR of a list of (N, T) boolean masks; None if any of them is None."""
    if masks is None or any(m is None for m in masks):
        return None
    return xp.logical_or.reduce(xp.stack([xp.asarray(m, dtype=bool) for m in masks]))


def real_steps(mask, x):
    """A boolean array that broadcasts against ``x`` (N, T, ...): True at real steps
    (everywhere when ``mask`` is None)."""
    if mask is None:
        return xp.ones((1,) * x.ndim, dtype=bool)
    mask = xp.asarray(mask, dtype=bool)
    return mask.reshape(mask.shape + (1,) * (x.ndim - mask.ndim))


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
    """The elementwise maximum; a tie sends the gradient to the first of the tied inputs.

    With masks (Keras 3), only the inputs whose step is real compete at that step (all of
    them where none is real)."""

    accepts_mask = True

    def forward(self, x, training=False, mask=None):
        stacked = xp.stack(x)
        if mask is None or all(m is None for m in mask):
            self.winner = stacked.argmax(axis=0)
            return stacked.max(axis=0)
        real = xp.stack([xp.broadcast_to(real_steps(m, a), a.shape) for m, a in zip(mask, x)])
        competes = real | ~real.any(axis=0)
        lowest = xp.asarray(-xp.inf, dtype=stacked.dtype)
        self.winner = xp.where(competes, stacked, lowest).argmax(axis=0)
        return xp.take_along_axis(stacked, self.winner[None], axis=0)[0]

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
        if any(len(s) + 1 != rank for s in shapes) or not -rank < self.axis < rank:
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

    def compute_mask(self, x, mask):
        """Along the steps (axis 1): the inputs' masks joined, an unmasked input's steps all
        real. Along another axis: the OR, all True where an input has no mask (Keras 3)."""
        if mask is None or all(m is None for m in mask):
            return None
        if self.sample_axis == 0:
            return xp.concatenate([xp.ones(a.shape[:2], dtype=bool) if m is None
                                   else xp.asarray(m, dtype=bool) for m, a in zip(mask, x)],
                                  axis=1)
        if any(m is None for m in mask):
            return xp.ones(x[0].shape[:2], dtype=bool)
        return either_mask(mask)

    def backward(self, grad):
        sizes = self._batch_sizes or self.sizes
        bounds = [sum(sizes[:i + 1]) for i in range(len(sizes) - 1)]
        return xp.split(grad, bounds, axis=self.sample_axis + 1)

    def get_config(self):
        return {"axis": self.axis, "name": self.name}


MERGE_LAYERS = (Add, Subtract, Multiply, Average, Maximum, Concatenate)

__all__ = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Concatenate"]
