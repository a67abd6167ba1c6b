"""The DAG of layer calls between a model's input and output tensors, and its one runner.

``Graph(inputs, outputs)`` checks the connections (every output reachable from the inputs,
every input used, no cycle), orders the nodes topologically, and runs them:

* ``forward(xs, training)``: arrays for the inputs -> arrays for the outputs, node by node;
  each tensor also carries an optional mask (see ``cnn.layers.base``);
* ``backward(output_grads)``: the gradients of the loss w.r.t. the outputs -> every layer's
  ``grads``, nodes in reverse order; where a tensor feeds several layers, their gradients add.

A layer called several times (shared weights) keeps what its ``forward`` stored for one call
only, so the runner snapshots the layer's attributes after each of its calls and restores
them before that call's backward; its parameter gradients are summed over the calls.

A mask reaching a layer that neither passes masks on (``supports_masking``) nor reads them
(``accepts_mask``), e.g. ``Conv1D`` or ``MaxPooling1D`` after ``Embedding(mask_zero=True)``,
is dropped there: the layers after it see none. As Keras 3 does, a UserWarning says so, once
per layer and graph.
"""

from __future__ import annotations

import warnings

from cnn.layers.base import Layer
from cnn.layers.core import Input
from cnn.layers.node import SymbolicTensor


class Graph:
    """Nodes in topological order between ``inputs`` and ``outputs`` (lists of tensors).

    Attributes:
        inputs, outputs: the lists given.
        nodes: the non-input nodes, every node after the nodes it reads.
        layers: the layers of those nodes, each once, in the order of their first node.
        readers: ``{tensor id: [nodes that read it]}``, a node once per input it reads it as;
            ``consumers`` counts them.
        pooled_pairs: ``{node id: pooling node}`` computed in one pass in inference.
    Raises:
        TypeError: an input or output is not a symbolic tensor.
        ValueError: an input is not an ``Input``'s tensor, an output is not reachable from
            the inputs, an input reaches no output, or the nodes form a cycle.
    """

    def __init__(self, inputs: list, outputs: list):
        self.inputs = [_check_tensor(t, "input") for t in inputs]
        self.outputs = [_check_tensor(t, "output") for t in outputs]
        if not self.inputs or not self.outputs:
            raise ValueError("a model needs at least one input and one output tensor")
        for tensor in self.inputs:
            if not isinstance(tensor.layer, Input):
                raise ValueError(f"model inputs must be Input tensors, but {tensor!r} comes "
                                 f"from layer {tensor.layer.describe()}")
        if len({t.id for t in self.inputs}) != len(self.inputs):
            raise ValueError("the same Input is given twice as a model input")
        self.nodes = _topological_nodes(self.inputs, self.outputs)
        used = {t.id for node in self.nodes for t in node.inputs} | {t.id for t in self.outputs}
        for tensor in self.inputs:
            if tensor.id not in used:
                raise ValueError(f"input {tensor.layer.describe()} reaches no output of the "
                                 "model: remove it from inputs or connect it")
        self.layers: list[Layer] = []
        calls: dict[int, int] = {}
        for node in self.nodes:
            if id(node.layer) not in calls:
                self.layers.append(node.layer)
            calls[id(node.layer)] = calls.get(id(node.layer), 0) + 1
        self.shared = {key for key, count in calls.items() if count > 1}
        self.readers: dict[int, list] = {}  # tensor id -> the nodes reading it, once a read
        for node in self.nodes:
            for tensor in node.inputs:
                self.readers.setdefault(tensor.id, []).append(node)
        self.consumers = {key: len(nodes) for key, nodes in self.readers.items()}
        self._snapshots: dict[int, dict] = {}
        self._dropped_masks: set[int] = set()  # layers already warned about
        self.pooled_pairs = self._pooled_pairs()

    def model_nodes(self, layer) -> list:
        """The nodes of ``layer`` that belong to this graph, in their order of creation."""
        mine = {node.id for node in self.nodes} | {t.node.id for t in self.inputs}
        return [node for node in layer.inbound_nodes if node.id in mine]

    def _pooled_pairs(self) -> dict:
        """``{node id: pooling node}`` for each node whose layer computes the pooling after
        it in one pass in inference (``pools_on_the_fly``, ``forward_pooled``): the pooling
        node is the only reader of its output, which is no model output, and neither layer
        is shared."""
        outputs = {t.id for t in self.outputs}
        pairs = {}
        for node in self.nodes:
            after = self.readers.get(node.output.id, [])
            if (len(after) == 1 and node.output.id not in outputs
                    and hasattr(node.layer, "pools_on_the_fly")
                    and hasattr(after[0].layer, "tiled_window")
                    and not {id(node.layer), id(after[0].layer)} & self.shared
                    and node.layer.pools_on_the_fly(after[0].layer)):
                pairs[node.id] = after[0]
        return pairs

    def tensors(self) -> list:
        """Every tensor of the graph: the inputs, then each node's output."""
        return [*self.inputs, *(node.output for node in self.nodes)]

    def inference_tensors(self) -> list:
        """``tensors()`` less those an inference pass never holds: the outputs of the
        nodes that compute the pooling after them in one pass (``pooled_pairs``), whose
        outputs ``forward_pooled`` keeps a chunk of samples at a time."""
        skipped = {node.output.id for node in self.nodes if node.id in self.pooled_pairs}
        return [t for t in self.tensors() if t.id not in skipped]

    # -- running ----------------------------------------------------------------------------
    def forward(self, xs: list, training: bool = False) -> list:
        """Arrays (N, *shape) for each input -> arrays for each output, in order."""
        values = {t.id: x for t, x in zip(self.inputs, xs)}
        masks: dict[int, object] = {}
        remaining = dict(self.consumers)
        keep = {t.id for t in self.outputs}
        self._snapshots = {}
        for node in self.nodes:
            if node.output.id in values:  # computed with the node before it (pooled_pairs)
                continue
            args = [values[t.id] for t in node.inputs]
            arg_masks = [masks.get(t.id) for t in node.inputs]
            x = args if node.multi_input else args[0]
            mask = arg_masks if node.multi_input else arg_masks[0]
            layer = node.layer
            if any(m is not None for m in arg_masks):
                self._warn_if_dropped(layer)
            pool = None if training or mask is not None else self.pooled_pairs.get(node.id)
            if pool is not None:  # inference: the pooling's output, in one pass
                values[pool.output.id] = layer.forward_pooled(x, pool.layer)
                out = None
            else:
                out = layer.call_forward(x, training, mask)
            out_mask = layer.compute_mask(x, mask)
            if out_mask is not None:
                masks[node.output.id] = out_mask
            if out is not None:
                values[node.output.id] = out
            if id(layer) in self.shared:
                self._snapshots[node.id] = dict(layer.__dict__)
            for t in node.inputs:  # let go of what no later node reads
                remaining[t.id] -= 1
                if remaining[t.id] == 0 and t.id not in keep:
                    values.pop(t.id, None)
        return [values[t.id] for t in self.outputs]

    def _warn_if_dropped(self, layer) -> None:
        """Warn (once) that ``layer``, given a masked input, drops the mask."""
        if layer.supports_masking or layer.accepts_mask or id(layer) in self._dropped_masks:
            return
        self._dropped_masks.add(id(layer))
        warnings.warn(f"layer {layer.describe()} was passed an input with a mask, but it does "
                      "not support masking and drops the mask: the layers after it see none "
                      "(as in Keras 3)", UserWarning, stacklevel=3)

    def backward(self, output_grads: list, linear_outputs=()) -> None:
        """Fill every trainable layer's ``grads`` from the gradients w.r.t. the outputs
        (one array or None per output). Outputs whose index is in ``linear_outputs`` carry
        the gradient w.r.t. their layer's pre-activation (a loss fused with the activation):
        their layer runs ``backward_linear``."""
        needs_grad = self._needs_grad()
        grads: dict[int, object] = {}
        stored: set[int] = set()  # ids of the arrays in ``grads``: none is stored twice

        def add(tensor, grad):
            if tensor.id in grads:
                old = grads[tensor.id]
                stored.discard(id(old))
                grad = old + grad  # not in place: ``old`` may be a layer's own array
            elif id(grad) in stored:
                grad = grad.copy()  # a layer may overwrite the gradient it is handed
            grads[tensor.id] = grad
            stored.add(id(grad))

        linear = {self.outputs[i].node.id for i in linear_outputs}
        for tensor, grad in zip(self.outputs, output_grads):
            if grad is not None:
                add(tensor, grad)
        sums: dict[int, dict] = {}
        for node in reversed(self.nodes):
            grad = grads.pop(node.output.id, None)
            if grad is None or not needs_grad[node.output.id]:
                continue
            stored.discard(id(grad))
            layer = node.layer
            shared = id(layer) in self.shared
            if shared:
                layer.__dict__.update(self._snapshots[node.id])
            layer.needs_input_grad = any(needs_grad[t.id] for t in node.inputs)
            result = layer.backward_linear(grad) if node.id in linear else layer.backward(grad)
            if shared:
                _add_layer_grads(sums, layer)
            if not layer.needs_input_grad:
                continue
            results = result if node.multi_input else [result]
            for tensor, input_grad in zip(node.inputs, results):
                if input_grad is not None and needs_grad[tensor.id]:
                    add(tensor, input_grad)
        for layer in self.layers:
            if id(layer) in sums:
                layer.grads.update(sums[id(layer)])
        self._snapshots = {}

    def _needs_grad(self) -> dict[int, bool]:
        """Whether the loss's gradient w.r.t. each tensor is needed: a trainable weight lies
        on the way to it from the inputs."""
        needs = {t.id: False for t in self.inputs}
        for node in self.nodes:
            needs[node.output.id] = bool(node.layer.trainable_params()) or any(
                needs[t.id] for t in node.inputs)
        return needs


def _add_layer_grads(sums: dict, layer) -> None:
    total = sums.setdefault(id(layer), {})
    for key, _ in layer.trainable_params():
        grad = layer.grads[key]
        total[key] = grad.copy() if key not in total else total[key] + grad


def _check_tensor(value, what: str) -> SymbolicTensor:
    if isinstance(value, Layer):
        try:
            value = value.symbolic_output()
        except TypeError:
            raise TypeError(f"model {what}s must be symbolic tensors (what calling a layer on "
                            f"an Input returns), got the layer {value.describe()}") from None
    if not isinstance(value, SymbolicTensor):
        raise TypeError(f"model {what}s must be symbolic tensors (Input(...) or what calling "
                        f"a layer on one returns), got {type(value).__name__}: {value!r:.80}")
    return value


def _topological_nodes(inputs: list, outputs: list) -> list:
    """The nodes between ``inputs`` and ``outputs``, each after the nodes it reads
    (depth-first from the outputs, without recursion)."""
    input_ids = {t.id for t in inputs}
    done: set[int] = set()
    active: set[int] = set()
    order = []
    for output in outputs:
        stack = [(output.node, False)]
        while stack:
            node, expanded = stack.pop()
            if node.id in done:
                continue
            if expanded:
                active.discard(node.id)
                done.add(node.id)
                if node.output.id not in input_ids:
                    order.append(node)
                continue
            if node.id in active:
                raise ValueError(f"the layer calls form a cycle through {node.layer.describe()}")
            if node.output.id in input_ids:
                done.add(node.id)
                continue
            if not node.inputs:
                raise ValueError(
                    f"output {output.layer.describe()} is not reachable from the model's "
                    f"inputs: it depends on {node.layer.describe()} with shape "
                    f"{node.output.shape}, which is not among them"
                )
            active.add(node.id)
            stack.append((node, True))
            for tensor in reversed(node.inputs):
                if tensor.node.id in active:
                    raise ValueError("the layer calls form a cycle through "
                                     f"{tensor.layer.describe()}")
                stack.append((tensor.node, False))
    return order
