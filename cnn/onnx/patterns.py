"""Groups of nodes that compute one activation, found before the walk and replaced by one
node of the activation's name (the importer then treats them as one op):

* exact GELU below opset 20, as torch.onnx and cnn write it: ``Div(x, sqrt 2)`` (or
  ``Mul(x, 1/sqrt 2)``) -> ``Erf`` -> ``Add(., 1)`` -> ``Mul(x, .)`` -> ``Mul(., 0.5)``
  (the two products in either order) becomes ``Gelu(x)``;
* SiLU: ``Sigmoid(x)`` -> ``Mul(x, .)`` becomes ``Silu(x)`` (a name only the importer uses).

Only nodes whose intermediate tensors nobody else reads are grouped.
"""

from __future__ import annotations

import math

import numpy as np
from onnx import helper

SILU = "Silu"


def fuse_activations(nodes, constants: dict, graph_outputs: set) -> list:
    """``nodes`` with each GELU and SiLU group replaced by one node (order kept)."""
    producer = {out: node for node in nodes for out in node.output}
    readers: dict[str, list] = {}
    for node in nodes:
        for name in node.input:
            readers.setdefault(name, []).append(node)

    def sole_reader(name):
        found = readers.get(name, [])
        if len(found) != 1 or name in graph_outputs:
            return None
        return found[0]

    def constant(name, value):
        array = constants.get(name)
        return array is not None and array.size == 1 and math.isclose(
            float(np.ravel(array)[0]), value, rel_tol=1e-6)

    def other(node, name):
        a, b = node.input
        return b if a == name else a if b == name else None

    replaced, dropped = {}, set()
    for node in nodes:
        if node.op_type == "Erf":
            group = _gelu_group(node, producer, sole_reader, constant, other)
            if group is not None:
                x, members, last = group
                replaced[id(last)] = helper.make_node("Gelu", [x], list(last.output),
                                                      name=members[0].name)
                dropped.update(id(m) for m in members if m is not last)
        elif node.op_type == "Sigmoid":
            mul = sole_reader(node.output[0])
            if (mul is not None and mul.op_type == "Mul"
                    and other(mul, node.output[0]) == node.input[0]):
                replaced[id(mul)] = helper.make_node(SILU, [node.input[0]], list(mul.output),
                                                     name=node.name)
                dropped.add(id(node))
    return [replaced.get(id(n), n) for n in nodes if id(n) not in dropped]


def _gelu_group(erf, producer, sole_reader, constant, other):
    """``(x, member nodes, last node)`` of the GELU around ``erf``, or None."""
    scaled = erf.input[0]
    scale = producer.get(scaled)
    if scale is None or sole_reader(scaled) is not erf:
        return None
    if scale.op_type == "Div" and constant(scale.input[1], math.sqrt(2.0)):
        x = scale.input[0]
    elif scale.op_type == "Mul":
        x = next((a for a, b in (scale.input, scale.input[::-1])
                  if constant(b, 1 / math.sqrt(2.0))), None)
        if x is None:
            return None
    else:
        return None
    add = sole_reader(erf.output[0])
    if add is None or add.op_type != "Add" or not constant(other(add, erf.output[0]), 1.0):
        return None
    first = sole_reader(add.output[0])
    if first is None or first.op_type != "Mul":
        return None
    factor = other(first, add.output[0])
    second = sole_reader(first.output[0])
    if second is None or second.op_type != "Mul":
        return None
    remaining = other(second, first.output[0])
    if not ((factor == x and constant(remaining, 0.5)) or
            (constant(factor, 0.5) and remaining == x)):
        return None
    return x, [scale, erf, add, first, second], second
