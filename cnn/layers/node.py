"""Symbolic tensors and nodes: what calling a layer on a symbolic tensor records.

``x = Input((784,))`` gives an ``Input`` layer whose ``output`` is a :class:`SymbolicTensor`;
``h = Dense(10)(x)`` builds the Dense layer from ``x``'s shape, records a :class:`Node`
(the layer, the tensors it was called on) and returns the node's output tensor. A model is
the DAG of nodes between its input and output tensors (``cnn.models.graph``). It lives with the layers because calling a layer records it..

Shapes: ``tensor.shape`` includes the batch axis as ``None`` (Keras's ``KerasTensor``),
``tensor.sample_shape`` excludes it. A sample axis may be ``None`` too: a variable length
(``Input((None, 8))``: sequences of any number of steps), fixed only by each batch.
"""

from __future__ import annotations

import itertools

_IDS = itertools.count()


class SymbolicTensor:
    """A placeholder for the array a layer will produce: its sample shape and its producer.

    Attributes:
        sample_shape: shape without the batch axis, e.g. ``(1, 28, 28)``.
        node: the :class:`Node` that produces it (an ``Input`` layer's node for inputs).
    """

    def __init__(self, sample_shape: tuple, node: "Node"):
        self.sample_shape = tuple(sample_shape)
        self.node = node
        self.id = next(_IDS)

    @property
    def shape(self) -> tuple:
        return (None, *self.sample_shape)

    @property
    def layer(self):
        """The layer that produces this tensor."""
        return self.node.layer

    @property
    def name(self) -> str:
        return self.node.layer.name or type(self.node.layer).__name__

    def __repr__(self):
        return f"<SymbolicTensor shape={self.shape} from {self.node.layer.describe()}>"

    def __array__(self, *args, **kwargs):
        raise TypeError(f"{self!r} is symbolic: it has no values until a Model runs it "
                        "(build a Model(inputs, outputs) and call model.predict)")


class Node:
    """One call of ``layer`` on ``inputs`` (a list of symbolic tensors; empty for an Input).

    ``multi_input`` tells whether the layer was called on a list (its ``build``, ``forward``
    and ``backward`` then take and give lists) or on a single tensor.
    """

    def __init__(self, layer, inputs: list, multi_input: bool, output_shape: tuple):
        self.layer = layer
        self.inputs = list(inputs)
        self.multi_input = multi_input
        self.output = SymbolicTensor(output_shape, self)
        self.id = next(_IDS)
        layer.inbound_nodes.append(self)

    def __repr__(self):
        sources = ", ".join(t.name for t in self.inputs) or "none"
        return f"<Node {self.layer.describe()} <- {sources}>"


def has_variable_axis(shape) -> bool:
    """Whether a sample shape (or any of a list of them) has a variable (None) axis."""
    if isinstance(shape, list):
        return any(has_variable_axis(s) for s in shape)
    return shape is not None and any(size is None for size in shape)


def shape_matches(actual, expected) -> bool:
    """Whether the concrete sample shape ``actual`` fits ``expected``, where a None axis of
    ``expected`` takes any size."""
    actual, expected = tuple(actual), tuple(expected)
    return len(actual) == len(expected) and all(
        want is None or size == want for size, want in zip(actual, expected))


def shapes_compatible(a, b) -> bool:
    """Whether two sample shapes can describe the same array (None matches any size)."""
    a, b = tuple(a), tuple(b)
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))


def variable_size(shapes, arrays) -> int:
    """The largest size that ``arrays`` (batches, one per sample shape of ``shapes``) have on
    the variable (None) axes of ``shapes``; 1 when there are none."""
    sizes = [array.shape[1 + axis] for shape, array in zip(shapes, arrays)
             for axis, size in enumerate(shape) if size is None]
    return max(sizes, default=1)


def sample_elements(shape, variable: int = 1) -> int:
    """The number of elements of one sample of ``shape``, a None axis counted as
    ``variable``."""
    count = 1
    for size in shape:
        count *= variable if size is None else size
    return count


def is_symbolic(value) -> bool:
    """Whether ``value`` is a symbolic tensor or a list/tuple made only of them."""
    if isinstance(value, SymbolicTensor):
        return True
    return isinstance(value, (list, tuple)) and bool(value) and all(
        isinstance(v, SymbolicTensor) for v in value)
