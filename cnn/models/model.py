"""Model: a graph of layers (``cnn.models.graph``) with compile settings and the math of a step.

Three ways to make one, all the same graph underneath:

* functional (Keras): ``x = Input((784,)); y = Dense(10)(x); Model(inputs=x, outputs=y)``,
  with lists or dicts of inputs and outputs;
* the seed's: ``model = Model(Input((1, 28, 28)), "name"); model.add_layer(Conv2D(...))``;
* ``Sequential([Input(...), Conv2D(...), ...])``.

This module owns the graph, the weights, compile, the losses of the outputs and the public
per-batch step ``compute_gradients`` (the loss, outputs and gradients of a slice of a batch),
which the training loop and its worker processes call. ``fit``, ``evaluate``, ``predict`` and
``save`` are methods that hand the model to the loop and saving packages through
``cnn.models.seam``; this package imports neither.
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import numpy as np

from cnn import backend, losses, metrics as metrics_module, optimizers, regularizers, replica
from cnn.layers import batch_draws
from cnn.layers.base import ActivatedLayer, Layer
from cnn.layers.core import Input, choose
from cnn.layers.node import (SymbolicTensor, has_variable_axis, is_symbolic, sample_elements,
                             variable_size)
from cnn.models import config as model_config
from cnn.models import seam
from cnn.models.graph import Graph
from cnn.models.summary import summary_lines
from cnn.utils import checks

# A batch runs in parts whose largest activation takes at most this much memory, so that the
# activations stay in the CPU cache between layers (2 MB of L2 per core on the machine where
# this was tuned: 1.3-1.4x faster at batch 256 for the seed network, 1.25x at 128 for LeNet).
PART_BYTES = 2 << 20


class Gradients(NamedTuple):
    """What ``Model.compute_gradients`` returns for a slice of a batch.

    loss: the slice's share of the batch's total loss (float, without weight penalties);
    output_losses: the share of each output's loss (None for an output without loss);
    outputs: the slice's outputs, one array per model output;
    gradients: the share of the gradients, in ``trainable_weights`` order.
    """

    loss: float
    output_losses: list
    outputs: list
    gradients: list


class Model:
    """A DAG of layers between input and output tensors.

    Args:
        inputs: functional form: an ``Input`` (or its tensor), a list or a dict of them.
            Seed form: the ``Input`` layer (or a shape tuple) the stack starts from; may be
            omitted when the first added layer declares ``input_shape``.
        outputs: functional form: the output tensor, a list or a dict of them (the dict's
            keys then name the outputs). Seed form: the model's name (``Model(input, "x")``).
        name: the model's name (shown by ``summary``, stored by ``save``).
    """

    def __init__(self, inputs=None, outputs=None, name: str | None = None, *, input_layer=None):
        inputs = choose(input_layer, inputs, "input_layer", "inputs")
        if outputs is None or isinstance(outputs, str):
            name = choose(outputs, name, "name", "name", "cnn")
            outputs = None
        self.name = name if name is not None else "model"
        self.dtype = backend.floatx()
        self.graph: Graph | None = None
        self.input_keys = self.output_keys = None  # dict keys when given as dicts
        self.is_stack = outputs is None
        self.optimizer = None
        self.output_losses: list = []
        self.loss_weights: list = []
        self.output_metrics: list = []
        self.seed_compiled = False
        self.stop_training = False
        self.history = None
        self.epoch = 0
        self.train_seed: int | None = None
        self.class_names: list[str] | None = None  # optional, saved with the model
        self.resume_state: dict | None = None  # callbacks' state read from a file
        self.running_callbacks = None  # the CallbackList of the fit that is running
        self.fused_outputs: tuple = ()
        if self.is_stack:
            self._stack_input = None
            if inputs is not None:
                self.add_layer(inputs if isinstance(inputs, Input) else Input(inputs))
        else:
            self._connect(inputs, outputs)

    # -- building ---------------------------------------------------------------------------
    def _connect(self, inputs, outputs) -> None:
        self.input_keys, input_list = _flatten("inputs", inputs)
        self.output_keys, output_list = _flatten("outputs", outputs)
        self.graph = Graph(input_list, output_list)
        self._name_layers()
        self._refresh_training_graph()

    def _name_layers(self) -> None:
        taken: dict[str, Layer] = {}
        everything = [t.layer for t in self.graph.inputs] + self.graph.layers
        for layer in everything:
            if layer.name is not None:
                if layer.name in taken and taken[layer.name] is not layer:
                    raise ValueError(f"the model has two layers named {layer.name!r}; layer "
                                     "names must be unique")
                taken[layer.name] = layer
        for layer in everything:
            if layer.name is None:
                layer.name = _unique_name(layer.default_name(), taken)
                taken[layer.name] = layer

    def add_layer(self, layer: Layer) -> None:
        """Append ``layer`` to a stack model, inferring its input shape from the current
        output (the seed's form; ``add`` is Keras's spelling)."""
        if not isinstance(layer, Layer):
            raise ValueError(f"add_layer expects a cnn layer, got {layer!r}")
        if not self.is_stack and len(self.outputs) != 1:
            raise ValueError("add_layer extends a model with one output; this one has "
                             f"{len(self.outputs)}")
        if isinstance(layer, Input):
            if self.graph is not None or self._stack_input is not None:
                raise ValueError("an Input layer can only start a model")
            self._stack_input = layer
            return
        if layer.built or any(layer is other for other in self.layers):
            raise ValueError(f"layer {layer.describe()} already belongs to a model")
        if self.graph is None:
            start = self._stack_input
            if start is None:
                if layer.input_shape is None:
                    raise ValueError(
                        f"the first layer {layer.describe()} needs an input shape: start the "
                        "model with Input(shape) or pass input_shape= to the layer")
                start = self._stack_input = Input(layer.input_shape)
            inputs, current = [start.symbolic_output()], start.symbolic_output()
        else:
            inputs, current = self.graph.inputs, self.graph.outputs[0]
        if layer.name is not None and any(other.name == layer.name for other in self.layers):
            raise ValueError(f"the model already has a layer named {layer.name!r}")
        output = layer(current)
        self.graph = Graph(inputs, [output])
        self._name_layers()
        self._refresh_training_graph()

    add = add_layer

    def _refresh_training_graph(self) -> None:
        """Which outputs fuse their activation with their loss (softmax + cross-entropy)."""
        fused = []
        for index, tensor in enumerate(self.outputs):
            layer = tensor.layer
            loss = self.output_losses[index] if index < len(self.output_losses) else None
            if isinstance(layer, ActivatedLayer):
                layer.keep_preactivation = False
            if (loss is not None and isinstance(layer, ActivatedLayer)
                    and loss.fuses_with(layer.activation.name)
                    and len(self.graph.model_nodes(layer)) == 1
                    and self.graph.consumers.get(tensor.id, 0) == 0
                    and sum(t is tensor for t in self.outputs) == 1):
                fused.append(index)
        for index in fused:
            self.outputs[index].layer.keep_preactivation = True
        self.fused_outputs = tuple(fused)

    # -- structure --------------------------------------------------------------------------
    @property
    def layers(self) -> list[Layer]:
        """The layers in the order they run, without the Input layers."""
        return [] if self.graph is None else list(self.graph.layers)

    @property
    def inputs(self) -> list[SymbolicTensor]:
        return [] if self.graph is None else list(self.graph.inputs)

    @property
    def outputs(self) -> list[SymbolicTensor]:
        return [] if self.graph is None else list(self.graph.outputs)

    @property
    def input_layers(self) -> list[Input]:
        if self.graph is None:
            return [] if self._stack_input is None else [self._stack_input]
        return [t.layer for t in self.graph.inputs]

    @property
    def input(self):
        """The Input layer (a list of them for several inputs); None before any."""
        layers = self.input_layers
        if not layers:
            return None
        return layers[0] if len(layers) == 1 else layers

    @property
    def input_names(self) -> list[str]:
        return list(self.input_keys) if self.input_keys else [l.name for l in self.input_layers]

    @property
    def output_names(self) -> list[str]:
        """The outputs' names: the dict's keys, else the names of the layers producing them."""
        if self.output_keys:
            return list(self.output_keys)
        return [t.layer.name for t in self.outputs]

    @property
    def input_shapes(self) -> list[tuple]:
        """Each input's sample shape (without the batch axis)."""
        return [layer.input_shape for layer in self.input_layers]

    @property
    def output_shapes(self) -> list[tuple]:
        """Each output's sample shape; the input's for a stack without layers."""
        if self.graph is None:
            return list(self.input_shapes)
        return [t.sample_shape for t in self.graph.outputs]

    @property
    def input_shape(self):
        shapes = [(None, *s) for s in self.input_shapes]
        return None if not shapes else shapes[0] if len(shapes) == 1 else shapes

    @property
    def output_shape(self):
        shapes = [(None, *s) for s in self.output_shapes]
        return None if not shapes else shapes[0] if len(shapes) == 1 else shapes

    @property
    def cur_output_shape(self):
        """The seed's attribute: the (single) output's sample shape."""
        shapes = self.output_shapes
        return None if not shapes else shapes[0] if len(shapes) == 1 else shapes

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """A layer by ``name`` or by ``index`` in ``layers`` (Keras's signature)."""
        if (name is None) == (index is None):
            raise ValueError("give get_layer exactly one of name= or index=")
        if index is not None:
            layers = self.layers
            if isinstance(index, bool) or not isinstance(index, (int, np.integer)) \
                    or not -len(layers) <= index < len(layers):
                raise ValueError(f"index {index!r} is out of range: the model has "
                                 f"{len(layers)} layers")
            return layers[index]
        for layer in [*self.input_layers, *self.layers]:
            if layer.name == name:
                return layer
        known = ", ".join(layer.name for layer in [*self.input_layers, *self.layers])
        raise ValueError(f"no layer named {name!r}; the model has: {known or 'none'}")

    @property
    def lr(self):
        """The seed's attribute: the optimizer's current learning rate."""
        return None if self.optimizer is None else self.optimizer.current_learning_rate()

    # -- compile ----------------------------------------------------------------------------
    def compile(self, learning_rate=None, loss_fcn=None, accuracy_fcn=None, *, optimizer=None,
                loss=None, metrics=None, loss_weights=None) -> None:
        """Choose the optimizer, the loss(es) and the metrics.

        Seed form: ``compile(0.01, "cross_tropy")`` (plain SGD with that learning rate;
        ``accuracy_fcn`` names one metric): ``evaluate`` then returns the seed's
        ``(metric, loss)``. Keras form: ``compile(optimizer="adam",
        loss="categorical_crossentropy", metrics=["accuracy"])`` (``compile("adam", ...)``
        too): ``evaluate`` returns the loss, or ``[loss, *metrics]``. ``metrics_names`` says
        the order either way.

        With several outputs, ``loss`` is one loss for all, a list (one per output) or a dict
        by output name (an output left out gets none); ``loss_weights`` a list or dict of
        factors (default 1); ``metrics`` a flat list (for every output), a list of lists or
        a dict. Without metrics, classification losses get ``accuracy`` and the seed's
        ``"MSE"`` gets the seed's ``"MAE"``; pass ``metrics=[]`` for none.
        """
        keras_positional = isinstance(learning_rate, (str, optimizers.Optimizer, dict))
        self.seed_compiled = not keras_positional and (
            learning_rate is not None or loss_fcn is not None or accuracy_fcn is not None)
        if keras_positional:
            optimizer = choose(learning_rate, optimizer, "learning_rate", "optimizer")
            learning_rate = None
        if learning_rate is not None and not callable(learning_rate):
            checks.positive("learning_rate", learning_rate)
        if optimizer is None:
            optimizer = optimizers.SGD(learning_rate if learning_rate is not None else 0.01)
        else:
            optimizer = optimizers.get(optimizer, learning_rate)
        count = max(1, len(self.outputs))
        names = self.output_names or ["output"]
        loss = choose(loss_fcn, loss, "loss_fcn", "loss", "cross_tropy")
        output_losses = [None if spec is None else losses.get(spec)
                         for spec in _per_output(loss, names, "loss", broadcast=True)]
        if all(spec is None for spec in output_losses):
            raise ValueError("compile needs a loss for at least one output")
        weights = [1.0] * count if loss_weights is None else _per_output(
            loss_weights, names, "loss_weights", broadcast=False, fill=0.0)
        if metrics is None and accuracy_fcn is None:
            per_output = [_default_metrics(spec) for spec in output_losses]
        elif metrics is None:
            per_output = [[accuracy_fcn] for _ in range(count)]
        elif accuracy_fcn is not None:
            raise ValueError("give metrics either as accuracy_fcn (seed) or metrics= (Keras)")
        else:
            per_output = _metrics_per_output(metrics, names)
        self.optimizer = optimizer
        self.output_losses = output_losses
        self.loss_weights = [float(w) for w in weights]
        self.output_metrics = _metric_objects(per_output)
        if self.graph is not None:
            self._refresh_training_graph()

    @property
    def loss(self):
        """The compiled loss (a list of them, one per output, for several outputs)."""
        if not self.output_losses:
            return None
        return self.output_losses[0] if len(self.output_losses) == 1 else list(self.output_losses)

    @property
    def metrics(self) -> list:
        """Every compiled metric object, output by output."""
        return [metric for group in self.output_metrics for metric in group]

    def log_names(self) -> list[tuple[str, int | None, object]]:
        """``(log name, output index, metric or None for a loss)`` of every value ``fit`` and
        ``evaluate`` report, Keras's names: ``loss`` (the total) first; with several outputs
        ``<output>_loss`` for each, then ``<output>_<metric>``; one output: the metric names."""
        names = self.output_names
        several = len(names) > 1
        entries = [("loss", None, None)]
        if several:
            entries += [(f"{names[k]}_loss", k, None) for k, loss in
                        enumerate(self.output_losses) if loss is not None]
        for k, group in enumerate(self.output_metrics):
            entries += [(f"{names[k]}_{m.name}" if several else m.name, k, m) for m in group]
        return entries

    @property
    def metrics_names(self) -> list[str]:
        """The order of ``evaluate``'s values: Keras's ``[loss, ...]`` after a Keras-form
        compile, the seed's ``[metric, loss]`` after a seed-form compile (see ``compile``)."""
        names = [name for name, _, _ in self.log_names()]
        metric_names = [name for name, _, metric in self.log_names() if metric is not None]
        if self.seed_compiled:
            return [metric_names[0], "loss"] if metric_names else ["loss"]
        return names

    def require_compiled(self, action: str) -> None:
        """Raise a ValueError saying why the model cannot ``action`` (no layers, no compile)."""
        if not self.layers:
            raise ValueError(f"cannot {action}: the model has no layers; add layers first")
        if not self.output_losses:
            raise ValueError(f"cannot {action} before compile(): call model.compile(...) first")

    # -- forward and backward ---------------------------------------------------------------
    def forward(self, x, training: bool = False):
        """Run one batch through the graph: an array (N, *input_shape), or a list with one
        per input; returns an array, or a list with one per output."""
        if self.graph is None:
            raise ValueError("the model has no layers")
        xs = x if isinstance(x, (list, tuple)) else [x]
        if len(xs) != len(self.inputs):
            raise ValueError(f"the model has {len(self.inputs)} inputs, got {len(xs)} arrays")
        for layer, array in zip(self.input_layers, xs):
            layer.check_input(array)
        outputs = self.graph.forward(list(xs), training)
        return outputs[0] if len(outputs) == 1 else outputs

    def compute_gradients(self, x, targets, sample_weight=None, batch_size=None) -> Gradients:
        """Forward and backward on a slice of a batch of ``batch_size`` samples (default:
        the slice is the batch): the public step that the training loop, its worker
        processes and other strategies call.

        Args:
            x: the slice's inputs: a list of arrays (n, *input_shape), one per input (an
                array for one input), in the model's float type.
            targets: one array (n, *output_shape) per output (an array for one output),
                prepared as ``fit`` does (one-hot for a categorical cross-entropy).
            sample_weight: (n,) weights of the samples' losses, or None.
            batch_size: the size of the whole batch the slice belongs to: losses and
                gradients are divided by it, so that the slices of a batch add up to the
                batch's mean loss and gradients.
        Returns:
            :class:`Gradients`. The gradients are the layers' own arrays (after several
            parts, their sums, set as the layers' gradients), valid until the next step.
        A slice runs in parts (see ``parts``), each weighted by its share of the batch.
        """
        xs = list(x) if isinstance(x, (list, tuple)) else [x]
        ts = list(targets) if isinstance(targets, (list, tuple)) else [targets]
        rows = xs[0].shape[0]
        n = rows if batch_size is None else batch_size
        loss_value = 0.0
        output_losses = [None if loss is None else 0.0 for loss in self.output_losses]
        outputs: list[list] = [[] for _ in self.outputs]
        grads = None
        parts = self.parts(rows, xs)
        split = len(parts) > 1
        global_size, offset = replica.current().rows(rows)
        with batch_draws.shared_over_parts(split):  # random layers draw once per batch
            for part in parts:
                with batch_draws.part(global_size, offset + part.start, split):
                    result = self.graph.forward([a[part] for a in xs], training=True)
                weights = None if sample_weight is None else sample_weight[part]
                share = (part.stop - part.start) / n
                output_grads = []
                for k, output in enumerate(result):
                    outputs[k].append(output)
                    if self.output_losses[k] is None or self.loss_weights[k] == 0:
                        output_grads.append(None)
                        continue
                    value, grad = self._loss_and_output_grad(k, output, ts[k][part], weights)
                    output_losses[k] += float(value) * share
                    loss_value += float(value) * share * self.loss_weights[k]
                    factor = share * self.loss_weights[k]
                    if factor != 1:
                        grad *= grad.dtype.type(factor)
                    output_grads.append(grad)
                self.graph.backward(output_grads, self.fused_outputs)
                grads = self._add_gradients(grads, copy=len(parts) > 1)
        if len(parts) > 1:
            self._set_gradients(grads)
        joined = [chunks[0] if len(chunks) == 1 else backend.xp.concatenate(chunks)
                  for chunks in outputs]
        return Gradients(loss_value, output_losses, joined, grads)

    def output_loss(self, index: int, output, target, sample_weight=None):
        """The mean loss of output ``index`` over a batch (0-d array), computed from the
        fused logits when that output is fused (read right after ``forward``)."""
        self.check_target_length(index, output, target)
        loss = self.output_losses[index]
        if index in self.fused_outputs:
            per_sample = loss.per_sample_from_logits(self.outputs[index].layer.z, target)
        else:
            per_sample = loss.per_sample(output, target)
        return losses.reduce_mean(per_sample, sample_weight)

    def check_target_length(self, index: int, output, target) -> None:
        """For an output with a variable (None) axis, whose targets were checked without
        knowing the batch's length: a ValueError unless ``target`` has ``output``'s shape."""
        if has_variable_axis(self.outputs[index].sample_shape) and \
                tuple(output.shape) != tuple(target.shape):
            raise ValueError(
                f"output {self.output_names[index]!r} is {tuple(output.shape)} for this batch "
                f"but its targets are {tuple(target.shape)}: on a variable-length axis "
                f"(output shape {(None, *self.outputs[index].sample_shape)}) the targets must "
                "have the length the model gives the batch")

    def _loss_and_output_grad(self, index, output, target, weights):
        """Mean loss (0-d array) of output ``index`` and its gradient w.r.t. the output
        (or the fused logits)."""
        self.check_target_length(index, output, target)
        loss = self.output_losses[index]
        n = output.shape[0]
        if index in self.fused_outputs:
            grad = loss.gradient_from_logits(self.outputs[index].layer.z, output, target)
        else:
            grad = loss.gradient(output, target)
        if weights is None:
            grad *= grad.dtype.type(1.0 / n)
        else:
            scale = (weights / n).astype(grad.dtype).reshape(n, *([1] * (grad.ndim - 1)))
            grad *= scale
        return self.output_loss(index, output, target, weights), grad

    def parts(self, n: int, xs=None, training: bool = True) -> list[slice]:
        """Slices splitting a batch of ``n`` samples into about equal parts whose largest
        activation takes at most ``PART_BYTES``; the whole batch when a layer is not
        ``samplewise`` (a result for one sample would depend on the others). ``xs``, the
        batch's inputs, give the size of variable (None) axes (their longest length stands
        for every variable axis; without ``xs``, 1). ``training=False``: only the
        activations an inference pass holds count (``Graph.inference_tensors``)."""
        if not all(layer.samplewise for layer in self.layers):
            return [slice(0, n)]
        steps = 1 if xs is None else variable_size(self.input_shapes, xs)
        tensors = self.graph.tensors() if training else self.graph.inference_tensors()
        sizes = [sample_elements(t.sample_shape, steps) for t in tensors]
        per_sample = max(sizes) * np.dtype(self.dtype).itemsize
        count = min(n, max(1, -(-n * per_sample // PART_BYTES)))
        bounds = [n * i // count for i in range(count + 1)]
        return [slice(start, stop) for start, stop in zip(bounds[:-1], bounds[1:])]

    def gradients(self) -> list:
        """The layers' current gradients, in ``trainable_weights`` order."""
        return [layer.grads[key] for layer in self.layers for key, _ in layer.trainable_params()]

    def _add_gradients(self, total, copy):
        """The layers' gradients added to ``total`` (None at the first part)."""
        grads = self.gradients()
        if total is None:
            return [g.copy() for g in grads] if copy else grads
        for running, g in zip(total, grads):
            running += g
        return total

    def _set_gradients(self, grads) -> None:
        pairs = [(layer, key) for layer in self.layers for key, _ in layer.trainable_params()]
        for (layer, key), g in zip(pairs, grads):
            layer.grads[key] = g

    def regularization_loss(self) -> float:
        """The weight penalties of all layers (``cnn.regularizers``), added to the loss."""
        return sum(regularizers.penalty(layer) for layer in self.layers)

    def add_regularization_gradients(self) -> list:
        """Add the penalties' gradients to the layers' gradients; returns ``gradients()``."""
        for layer in self.layers:
            regularizers.add_gradients(layer)
        return self.gradients()

    @property
    def trainable_weights(self) -> list:
        """The arrays the optimizer updates, in the order of its state."""
        return [value for layer in self.layers for _, value in layer.trainable_params()]

    def reset_states(self) -> None:
        """Reset the carried states of recurrent layers (``fit`` does it at each epoch start)."""
        for layer in self.layers:
            if hasattr(layer, "reset_states"):
                layer.reset_states()

    # -- the loop (cnn.training) and saving (cnn.saving), reached through the seam -----------
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose=1, **kwargs):
        """Train; see ``cnn.training.trainer.fit`` for every argument."""
        return seam.loop().fit(self, x, y, batch_size=batch_size, epochs=epochs,
                               verbose=verbose, **kwargs)

    def evaluate(self, x=None, y=None, batch_size=None, verbose=0, **kwargs):
        """Loss and metrics on data, ordered as ``metrics_names`` says (see
        ``cnn.training.trainer.evaluate``)."""
        return seam.loop().evaluate(self, x, y, batch_size=batch_size, verbose=verbose,
                                    **kwargs)

    def predict(self, x, batch_size=None, verbose=0, **kwargs):
        """Outputs for all samples (see ``cnn.training.trainer.predict``)."""
        return seam.loop().predict(self, x, batch_size=batch_size, verbose=verbose, **kwargs)

    def predict_classes(self, x, batch_size=None, workers=None):
        """Class ids (N,): argmax of the outputs (threshold 0.5 for a single output unit)."""
        output = self.predict(x, batch_size=batch_size, workers=workers)
        flat = output.reshape(output.shape[0], -1)
        if flat.shape[1] == 1:
            return (flat[:, 0] > 0.5).astype(np.int64)
        return flat.argmax(axis=1)

    def train_on_batch(self, x, y, sample_weight=None) -> dict:
        """One optimizer step on one batch; returns that batch's loss and metrics."""
        return seam.loop().train_on_batch(self, x, y, sample_weight=sample_weight)

    def test_on_batch(self, x, y, sample_weight=None, return_dict=False):
        return seam.loop().test_on_batch(self, x, y, sample_weight=sample_weight,
                                         return_dict=return_dict)

    def predict_on_batch(self, x):
        return seam.loop().predict_on_batch(self, x)

    def __call__(self, x, training: bool = False):
        """``model(x)`` on arrays: the outputs in inference mode, as ``predict``."""
        if is_symbolic(x) or isinstance(x, Layer):
            raise TypeError("calling a model on symbolic tensors (nesting models) is not "
                            "supported; call its layers instead")
        if training:
            raise ValueError("model(x, training=True) is not supported; use fit or "
                             "train_on_batch")
        return self.predict(x)

    def close_workers(self) -> None:
        """End the worker processes that ``fit(workers=...)`` keeps between calls."""
        seam.loop().close_workers(self)

    def save(self, path) -> None:
        """Write the model (architecture, weights, compile and training state) to ``path``."""
        seam.save_model()(self, path)

    def save_weights(self, path) -> None:
        """Write the weights alone (HDF5, ``cnn.saving.weights_file``) to ``path``."""
        seam.weights_io()[0](self, path)

    def load_weights(self, path, by_name: bool = False, skip_mismatch: bool = False) -> None:
        """Set the weights from a ``save_weights`` (or ``save``) file: by layer order, or by
        layer name with ``by_name=True`` (``skip_mismatch`` skips layers that do not fit)."""
        seam.weights_io()[1](self, path, by_name=by_name, skip_mismatch=skip_mismatch)

    # -- weights ----------------------------------------------------------------------------
    def get_weights(self) -> list[np.ndarray]:
        """All layers' weights in layer order (each layer: params, then buffers)."""
        return [w for layer in self.layers for w in layer.get_weights()]

    def set_weights(self, weights) -> None:
        weights = list(weights)
        expected = sum(len(layer.weight_names()) for layer in self.layers)
        if len(weights) != expected:
            raise ValueError(f"model has {expected} weight arrays, got {len(weights)}")
        start = 0
        for layer in self.layers:
            count = len(layer.weight_names())
            layer.set_weights(weights[start:start + count])
            start += count

    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self.layers)

    def layer_states(self) -> dict:
        """``{layer name: state}`` of the layers that keep state besides weights (a
        Dropout's own generator), for exact resumes."""
        states = {}
        for layer in self.layers:
            state = layer.get_state()
            if state is not None:
                states[layer.name] = state
        return states

    def set_layer_states(self, states: dict) -> None:
        for name, state in states.items():
            self.get_layer(name=name).set_state(state)

    # -- description ------------------------------------------------------------------------
    def summary(self, print_fn=print) -> None:
        """Print a table of the layers: the seed's (layer, output shape, parameters) for a
        stack, with a "Connected to" column for a functional model."""
        print_fn("\n".join(summary_lines(self)))

    def get_config(self) -> dict:
        """The architecture as JSON-able values (``cnn.models.config``)."""
        return model_config.model_config(self)

    def compile_config(self) -> dict | None:
        if not self.output_losses:
            return None
        names = self.output_names
        several = len(names) > 1
        config = {
            "optimizer": self.optimizer.get_config(),
            "loss": (self.output_losses[0].get_config() if not several else
                     [None if loss is None else loss.get_config() for loss in self.output_losses]),
            "metrics": ([m.get_config() for m in self.output_metrics[0]] if not several else
                        [[m.get_config() for m in group] for group in self.output_metrics]),
            "seed_form": self.seed_compiled,
        }
        if several:
            config["loss_weights"] = list(self.loss_weights)
        return config

    @classmethod
    def from_config(cls, config: dict, compile_config: dict | None = None) -> "Model":
        """Rebuild a model from ``get_config()`` (in its ``dtype``) and ``compile_config()``.
        Configs written before functional models (a stack of layers) load too."""
        with backend.floatx_scope(config.get("dtype", backend.floatx())):
            model = model_config.build_model(config, cls.stack, Model)
        model.class_names = config.get("class_names")
        if compile_config:
            model.compile_from_config(compile_config)
        return model

    def compile_from_config(self, compile_config: dict) -> None:
        """Compile as ``compile_config()`` says (files without ``seed_form`` were written
        when ``evaluate`` always returned the seed's order, which they keep)."""
        loss = compile_config["loss"]
        metrics = compile_config["metrics"]
        self.compile(optimizer=optimizers.get(compile_config["optimizer"]),
                     loss=loss, metrics=metrics, loss_weights=compile_config.get("loss_weights"))
        self.seed_compiled = bool(compile_config.get("seed_form", True))

    @classmethod
    def stack(cls, input_layer, name):
        """An empty stack model starting at ``input_layer`` (the seed's form)."""
        return cls(input_layer, name)

    def __repr__(self):
        return f"<Model {self.name!r}: {len(self.layers)} layers, {self.count_params()} params>"


def _flatten(what: str, structure):
    """``(dict keys or None, list of tensors)`` from a tensor, list or dict of tensors."""
    if isinstance(structure, dict):
        if not structure:
            raise ValueError(f"model {what} must not be empty")
        for key in structure:
            if not isinstance(key, str):
                raise TypeError(f"the keys of the {what} dict must be names (str), got {key!r}")
        return list(structure), list(structure.values())
    if isinstance(structure, (list, tuple)):
        if not structure:
            raise ValueError(f"model {what} must not be empty")
        return None, list(structure)
    if structure is None:
        raise ValueError(f"Model(...) needs {what}")
    return None, [structure]


def _unique_name(base: str, taken) -> str:
    if base not in taken:
        return base
    index = 1
    while f"{base}_{index}" in taken:
        index += 1
    return f"{base}_{index}"


def _per_output(value, names: list, what: str, broadcast: bool, fill=None) -> list:
    """One entry per output from a single value (``broadcast``), a list or a dict by name."""
    if isinstance(value, dict) and not (what == "loss" and "name" in value):
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise ValueError(f"{what} names {', '.join(map(repr, unknown))}, but the model's "
                             f"outputs are {', '.join(map(repr, names))}")
        return [value.get(name, fill) for name in names]
    if isinstance(value, (list, tuple)):
        if len(value) != len(names):
            raise ValueError(f"{what} has {len(value)} entries, but the model has "
                             f"{len(names)} outputs ({', '.join(names)})")
        return list(value)
    if broadcast or len(names) == 1:
        return [value] * len(names) if broadcast else [value]
    raise ValueError(f"{what} must be a list or dict with one entry per output "
                     f"({', '.join(names)}), got {value!r}")


def _metrics_per_output(metrics, names: list) -> list:
    if isinstance(metrics, (str, metrics_module.Metric)):
        metrics = [metrics]
    if isinstance(metrics, dict):
        per_output = _per_output(metrics, names, "metrics", broadcast=False, fill=[])
        return [[m] if isinstance(m, (str, metrics_module.Metric, dict)) else list(m)
                for m in per_output]
    metrics = list(metrics)
    nested = metrics and all(isinstance(m, (list, tuple)) for m in metrics)
    if nested:
        return [list(m) for m in _per_output(metrics, names, "metrics", broadcast=False)]
    return [list(metrics) for _ in names]


def _metric_objects(per_output: list) -> list:
    """Metric objects, one per output and name: an instance given for several outputs is
    copied, since a metric accumulates its own state."""
    groups, seen = [], set()
    for specs in per_output:
        group = []
        for spec in specs:
            metric = metrics_module.get(spec)
            if id(metric) in seen:
                metric = copy.deepcopy(metric)
            seen.add(id(metric))
            group.append(metric)
        groups.append(group)
    return groups


def _default_metrics(loss) -> list:
    if isinstance(loss, (losses.CategoricalCrossentropy, losses.BinaryCrossentropy)):
        return ["accuracy"]
    if isinstance(loss, losses.SeedMeanSquaredError):
        return ["MAE"]
    if isinstance(loss, losses.MeanSquaredError):
        return ["mae"]
    return []


class Sequential(Model):
    """Keras's form: ``Sequential([Input((1, 28, 28)), Conv2D(8, 3), ...], name=...)``."""

    def __init__(self, layers=None, name: str = "sequential"):
        super().__init__(None, name)
        for layer in layers or []:
            self.add_layer(layer)

    @classmethod
    def stack(cls, input_layer, name):
        return cls([input_layer], name)
