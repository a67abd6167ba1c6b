"""Model: a stack of layers with the seed's API (add_layer, compile, fit, predict, evaluate,
summary, save) and Keras's conveniences (optimizers, validation, callbacks, sample weights).

Data flows one way: ``fit`` -> ``layer.forward`` -> loss -> ``layer.backward`` ->
``optimizer.apply_gradients``. Batches are drawn by index from the caller's arrays and cast to
the model's float type one batch at a time, so no copy of the whole data set is made.
"""

from __future__ import annotations

import math
import weakref
from contextlib import nullcontext

import numpy as np

from cnn import backend, losses, metrics as metrics_module, optimizers, regularizers
from cnn.backend import xp
from cnn.callbacks import CallbackList, History, ProgbarLogger
from cnn.layers.base import ActivatedLayer, Layer, deserialize, format_shape, serialize
from cnn.layers.core import Input, choose
from cnn.models import data
from cnn.training import workers as data_parallel

PREDICT_BATCH_SIZE = 256
# A batch runs in parts whose largest activation takes at most this much memory, so that the
# activations stay in the CPU cache between layers (2 MB of L2 per core on the machine where
# this was tuned: 1.3-1.4x faster at batch 256 for the seed network, 1.25x at 128 for LeNet).
PART_BYTES = 2 << 20


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss or gradient; the weights were not updated.

    ``loss`` is the non-finite loss, or NaN when the loss was finite but a gradient was not.
    """

    def __init__(self, message, loss=math.nan):
        super().__init__(message)
        self.loss = loss


class Model:
    """A feed-forward stack of layers.

    Args:
        input_layer: an ``Input`` (or a shape tuple); may be omitted when the first layer
            declares ``input_shape``.
        name: the model's name (shown by ``summary``, stored by ``save``).
    """

    def __init__(self, input_layer=None, name: str = "cnn"):
        if input_layer is not None and not isinstance(input_layer, Input):
            input_layer = Input(input_layer)
        self.input = input_layer
        self.name = name
        self.layers: list[Layer] = []
        self.cur_output_shape = None if input_layer is None else input_layer.input_shape
        self.dtype = backend.floatx()
        self.optimizer = None
        self.loss = None
        self.metrics: list = []
        self.stop_training = False
        self.history: History | None = None
        self.epoch = 0
        self.train_seed: int | None = None
        self.class_names: list[str] | None = None  # optional, saved with the model
        self._fused = False
        self._worker_pool = None  # the pool of the fit that is running, if it has workers
        self._idle_workers = None  # kept between fits that need the same set-up

    # -- building ---------------------------------------------------------------------------
    @property
    def lr(self):
        """The seed's attribute: the optimizer's current learning rate."""
        return None if self.optimizer is None else self.optimizer.current_learning_rate()

    @property
    def input_shape(self):
        return None if self.input is None else (None, *self.input.input_shape)

    @property
    def output_shape(self):
        return None if self.cur_output_shape is None else (None, *self.cur_output_shape)

    def add_layer(self, layer: Layer) -> None:
        """Append ``layer``, inferring its input shape from the current output shape."""
        if not isinstance(layer, Layer):
            raise ValueError(f"add_layer expects a cnn layer, got {layer!r}")
        if isinstance(layer, Input):
            if self.input is not None or self.layers:
                raise ValueError("an Input layer can only start a model")
            self.input = layer
            self.cur_output_shape = layer.input_shape
            return
        if layer.built or any(layer is other for other in self.layers):
            raise ValueError(f"layer {layer.describe()} already belongs to a model")
        if self.input is None:
            if layer.input_shape is None:
                raise ValueError(
                    f"the first layer {layer.describe()} needs an input shape: start the model "
                    "with Input(shape) or pass input_shape= to the layer"
                )
            self.input = Input(layer.input_shape)
            self.cur_output_shape = self.input.input_shape
        layer.name = layer.name or self._unique_name(layer.default_name())
        if any(other.name == layer.name for other in self.layers):
            raise ValueError(f"the model already has a layer named {layer.name!r}")
        self.cur_output_shape = layer.build(self.cur_output_shape)
        self.layers.append(layer)
        self._refresh_training_graph()

    add = add_layer

    def _unique_name(self, base: str) -> str:
        taken = {layer.name for layer in self.layers}
        if base not in taken:
            return base
        index = 1
        while f"{base}_{index}" in taken:
            index += 1
        return f"{base}_{index}"

    def _refresh_training_graph(self) -> None:
        """Which layers need input gradients, and whether the loss fuses with the output."""
        first_trainable = next(
            (i for i, layer in enumerate(self.layers) if layer.trainable_params()), len(self.layers)
        )
        for i, layer in enumerate(self.layers):
            layer.needs_input_grad = i > first_trainable
        last = self.layers[-1] if self.layers else None
        self._fused = bool(
            self.loss is not None
            and isinstance(last, ActivatedLayer)
            and self.loss.fuses_with(last.activation.name)
        )
        for layer in self.layers:
            if isinstance(layer, ActivatedLayer):
                layer.keep_preactivation = self._fused and layer is last

    # -- compile ----------------------------------------------------------------------------
    def compile(self, learning_rate=None, loss_fcn=None, accuracy_fcn=None, *, optimizer=None,
                loss=None, metrics=None) -> None:
        """Choose the optimizer, the loss and the metrics.

        Seed form: ``compile(0.01, "cross_tropy")`` (plain SGD with that learning rate;
        ``accuracy_fcn`` names one metric). Keras form: ``compile(optimizer="adam",
        loss="categorical_crossentropy", metrics=["accuracy"])``; ``compile("adam", ...)``
        works too. Without metrics, classification losses get ``accuracy`` and the seed's
        ``"MSE"`` gets the seed's ``"MAE"``; pass ``metrics=[]`` for none.
        """
        if isinstance(learning_rate, (str, optimizers.Optimizer, dict)):
            optimizer = choose(learning_rate, optimizer, "learning_rate", "optimizer")
            learning_rate = None
        if learning_rate is not None:
            optimizers._check_positive("learning_rate", learning_rate)
        if optimizer is None:
            optimizer = optimizers.SGD(learning_rate if learning_rate is not None else 0.01)
        else:
            optimizer = optimizers.get(optimizer, learning_rate)
        loss = losses.get(choose(loss_fcn, loss, "loss_fcn", "loss", "cross_tropy"))
        if metrics is None and accuracy_fcn is None:
            metrics = _default_metrics(loss)
        elif metrics is None:
            metrics = [accuracy_fcn]
        elif accuracy_fcn is not None:
            raise ValueError("give metrics either as accuracy_fcn (seed) or metrics= (Keras)")
        if isinstance(metrics, (str, metrics_module.Metric)):
            metrics = [metrics]
        self.optimizer = optimizer
        self.loss = loss
        self.metrics = [metrics_module.get(m) for m in metrics]
        if self.layers:
            self._refresh_training_graph()

    def _require_compiled(self, action: str) -> None:
        if not self.layers:
            raise ValueError(f"cannot {action}: the model has no layers; add layers first")
        if self.loss is None:
            raise ValueError(f"cannot {action} before compile(): call model.compile(...) first")

    # -- forward and backward ---------------------------------------------------------------
    def forward(self, x, training: bool = False):
        """Run one batch (N, *input_shape) through all layers."""
        a = x
        for layer in self.layers:
            a = layer.forward(a, training=training)
        return a

    def _mean_loss(self, output, targets, weights):
        """Mean loss over the batch (0-d array), from the fused logits when fused."""
        if self._fused:
            per_sample = self.loss.per_sample_from_logits(self.layers[-1].z, targets)
        else:
            per_sample = self.loss.per_sample(output, targets)
        return losses.reduce_mean(per_sample, weights)

    def _loss_and_output_grad(self, output, targets, weights):
        """Mean loss (0-d array) and its gradient w.r.t. the output (or the fused logits)."""
        n = output.shape[0]
        if self._fused:
            grad = self.loss.gradient_from_logits(self.layers[-1].z, output, targets)
        else:
            grad = self.loss.gradient(output, targets)
        if weights is None:
            grad *= grad.dtype.type(1.0 / n)
        else:
            scale = (weights / n).astype(grad.dtype).reshape(n, *([1] * (grad.ndim - 1)))
            grad *= scale
        return self._mean_loss(output, targets, weights), grad

    def _backward(self, grad) -> None:
        layers = self.layers
        if self._fused:
            grad = layers[-1].backward_linear(grad)
            layers = layers[:-1]
        for layer in reversed(layers):
            if grad is None:
                break
            grad = layer.backward(grad)

    def _regularization_loss(self) -> float:
        """The weight penalties of all layers (``cnn.regularizers``), added to the loss."""
        return sum(regularizers.penalty(layer) for layer in self.layers)

    @property
    def trainable_weights(self) -> list:
        """The arrays the optimizer updates, in the order of its state."""
        return [value for layer in self.layers for _, value in layer.trainable_params()]

    def _gradients(self) -> list:
        return [layer.grads[key] for layer in self.layers for key, _ in layer.trainable_params()]

    def _train_step(self, x, targets, weights):
        """One optimizer step on a batch; returns (loss value, output).

        With worker processes (``fit(workers=...)``) the batch is cut into one slice per
        process; the workers' gradients are added to this process's in slice order.
        """
        n = x.shape[0]
        pool = self._worker_pool
        if pool is None:
            loss_value, outputs, grads = self._slice_gradients(x, targets, weights, n)
        else:
            mine, *theirs = data_parallel.slices(n, pool.count + 1)
            pool.start_step(self, x, targets, weights, theirs, n,
                            int(backend.rng().integers(2**62)))
            try:
                loss_value, outputs, grads = self._slice_gradients(
                    x[mine], targets[mine], None if weights is None else weights[mine], n)
            finally:
                results = pool.finish_step()  # read every answer, even after an error here
            for worker_loss, worker_outputs, worker_grads in results:
                loss_value += worker_loss
                outputs.append(worker_outputs)
                for total, grad in zip(grads, worker_grads):
                    total += grad  # the layers' own gradient arrays (see _slice_gradients)
        loss_value += self._regularization_loss()
        if not math.isfinite(loss_value):
            raise NonFiniteLossError(f"the loss became {loss_value}", loss_value)
        for layer in self.layers:
            regularizers.add_gradients(layer)
        grads = self._gradients()
        # One dot product per array (no temporaries) is NaN/inf exactly when an entry is.
        if grads and not math.isfinite(sum(float(xp.vdot(g, g)) for g in grads)):
            raise NonFiniteLossError("a gradient became NaN or infinite")
        self.optimizer.apply_gradients(self.trainable_weights, grads)
        return loss_value, outputs[0] if len(outputs) == 1 else xp.concatenate(outputs)

    def _slice_gradients(self, x, targets, weights, n):
        """Forward and backward on a slice of a batch of ``n`` samples.

        Returns ``(loss, outputs, gradients)``: the slice's share of the batch's mean loss
        (a float, without the weight penalties), its outputs (a list of one array per part),
        and the gradients of that share, in ``_gradients`` order: the layers' own gradient
        arrays (after several parts, their sums, set as the layers' gradients). A slice runs in parts (see ``_parts``), each part's
        loss weighted by its share of the batch, so the shares of all slices add up to the
        batch's mean loss and gradients.
        """
        loss_value, outputs, grads = 0.0, [], None
        parts = self._parts(x.shape[0])
        for part in parts:
            output = self.forward(x[part], training=True)
            part_weights = None if weights is None else weights[part]
            value, grad = self._loss_and_output_grad(output, targets[part], part_weights)
            share = (part.stop - part.start) / n
            loss_value += float(value) * share
            if not math.isfinite(loss_value):
                raise NonFiniteLossError(f"the loss became {loss_value}", loss_value)
            if share != 1:
                grad *= grad.dtype.type(share)
            self._backward(grad)
            grads = self._add_gradients(grads, copy=len(parts) > 1)
            outputs.append(output)
        if len(parts) > 1:
            self._set_gradients(grads)
        return loss_value, outputs, grads

    def _parts(self, n):
        """Slices splitting a batch of ``n`` samples into about equal parts whose largest
        activation takes at most ``PART_BYTES``; the whole batch when a layer is not
        ``samplewise`` (a result for one sample would depend on the others)."""
        if not all(layer.samplewise for layer in self.layers):
            return [slice(0, n)]
        shapes = [self.input.input_shape] + [layer.output_shape[1:] for layer in self.layers]
        per_sample = max(int(np.prod(shape)) for shape in shapes) * np.dtype(self.dtype).itemsize
        count = min(n, max(1, -(-n * per_sample // PART_BYTES)))
        bounds = [n * i // count for i in range(count + 1)]
        return [slice(start, stop) for start, stop in zip(bounds[:-1], bounds[1:])]

    def _add_gradients(self, total, copy):
        """The layers' gradients added to ``total`` (None at the first part)."""
        grads = self._gradients()
        if total is None:
            return [g.copy() for g in grads] if copy else grads
        for running, g in zip(total, grads):
            running += g
        return total

    def _set_gradients(self, grads) -> None:
        pairs = [(layer, key) for layer in self.layers for key, _ in layer.trainable_params()]
        for (layer, key), g in zip(pairs, grads):
            layer.grads[key] = g

    def train_on_batch(self, x, y, sample_weight=None) -> dict:
        """One optimizer step on one batch; returns that batch's loss and metrics."""
        self._require_compiled("train")
        optimizers.check_trainable(self.dtype)
        x = data.check_inputs(x, self.input.input_shape)
        targets = data.prepare_targets(y, x.shape[0], self.cur_output_shape, self.loss, self.dtype)
        weights = data.sample_weights(x.shape[0], sample_weight)
        loss_value, output = self._train_step(self._to_batch(x), backend.asarray(targets),
                                              self._weights(weights))
        logs = {"loss": loss_value}
        for metric in self.metrics:
            metric.reset()
            metric.update(output, backend.asarray(targets), self._weights(weights))
            logs[metric.name] = metric.result()
        return logs

    def _to_batch(self, x):
        return backend.asarray(x, dtype=self.dtype)

    def _weights(self, weights):
        return None if weights is None else backend.asarray(weights, dtype=self.dtype)

    # -- fit --------------------------------------------------------------------------------
    def fit(self, x, y, batch_size=32, epochs=1, verbose=1, shuffle=True, validation_split=0.0,
            validation_data=None, callbacks=None, initial_epoch=None, class_weight=None,
            sample_weight=None, seed=None, workers=1) -> History:
        """Train; returns a History (a dict of per-epoch lists: loss, metrics, val_*).

        Args:
            x: inputs (N, *input_shape), any real dtype (cast per batch).
            y: targets: one-hot / values (N, *output_shape), or integer class ids (N,).
            batch_size: samples per step; the last, smaller batch is used too.
            epochs: how many epochs to train in this call. Numbering continues from the
                epochs already trained (``model.epoch``), so calling fit twice, or fit after
                ``load_model``, continues training.
            initial_epoch: Keras's form: train from epoch ``initial_epoch`` up to ``epochs``.
            verbose: 0 silent, 1 progress bar, 2 one line per epoch.
            shuffle: reshuffle the training samples every epoch (refused for a model whose
                recurrent layers carry state across batches: ``Recurrent``, ``stateful=True``).
            validation_split: fraction of the samples, taken from the end before shuffling,
                held out for validation.
            validation_data: ``(x_val, y_val)`` or ``(x_val, y_val, sample_weight)``.
            callbacks: list of ``cnn.callbacks.Callback``.
            class_weight: ``{class id: weight}`` multiplying each sample's loss.
            sample_weight: (N,) weights of the samples' losses.
            seed: seeds shuffling and dropout of this and later fits; by default drawn once
                from the global generator (``cnn.set_seed``). Epoch ``e`` always uses the
                generator ``default_rng([seed, e])``, so resumed training repeats exactly.
            workers: processes that share each batch (data parallelism on the cores of this
                machine, ``cnn.training.workers``): 1 trains here alone; ``W`` > 1 starts
                ``W - 1`` worker processes, each training a slice of every batch. Every
                layer must treat samples independently (not ``BatchNormalization`` or a
                stateful recurrent layer). While it trains, each process uses its share
                of the BLAS threads (``cnn.get_num_threads() // W``, at least 1), so on a
                2-core machine ``workers=2`` runs one thread per process. Results are
                reproducible for a given ``workers``, and equal to one process's up to
                float rounding, except the random draws (dropout), which each process
                makes from its own stream.
        The history holds, per epoch, ``loss``, the metrics, ``val_*`` when validating and
        ``learning_rate``, the optimizer's rate at the epoch's last step.
        Raises:
            NonFiniteLossError: the loss or a gradient became NaN/inf; the message says at
                which epoch and batch, and the weights are those of the last good step. The
                step is first reported to the callbacks' ``on_batch_end`` with that loss (NaN
                for a bad gradient); if one sets ``model.stop_training`` (``TerminateOnNaN``
                does), training ends there without raising, the epoch's logs carrying it.
        """
        self._require_compiled("fit")
        optimizers.check_trainable(self.dtype)
        batch_size = data.check_batch_size(batch_size, 32)
        first_epoch, last_epoch = self._epoch_range(epochs, initial_epoch)
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
        ordered = [layer.describe() for layer in self.layers
                   if getattr(layer, "needs_ordered_batches", False)]
        if shuffle and ordered:
            raise ValueError(
                f"layer {ordered[0]} carries its state from one batch to the next, so the "
                "batches must stay in order: pass shuffle=False"
            )
        x = data.check_inputs(x, self.input.input_shape)
        targets = data.prepare_targets(y, x.shape[0], self.cur_output_shape, self.loss, self.dtype)
        weights = data.sample_weights(x.shape[0], sample_weight, class_weight, targets)
        (x, targets, weights), validation = self._split_validation(
            x, targets, weights, validation_split, validation_data
        )
        pool = self._workers_for(workers, min(batch_size, x.shape[0]))
        n = x.shape[0]
        steps = -(-n // batch_size)
        if self.train_seed is None:
            self.train_seed = int(seed if seed is not None else backend.rng().integers(2**31))
        elif seed is not None:
            self.train_seed = int(seed)

        history = History()
        default_callbacks = [ProgbarLogger(verbose)] if verbose else []
        callback_list = CallbackList(
            default_callbacks + list(callbacks or []) + [history],
            self,
            {"epochs": last_epoch, "steps": steps, "samples": n, "batch_size": batch_size,
             "verbose": verbose},
        )
        self.history = history
        self.stop_training = False
        self._worker_pool = pool
        # Each process takes its share of the BLAS threads: more would fight over the cores.
        threads = nullcontext() if pool is None else backend.limited_threads(pool.blas_threads)
        try:
            with threads:
                self._train_epochs(first_epoch, last_epoch, x, targets, weights, batch_size,
                                   shuffle, validation, callback_list)
        except BaseException:
            self.close_workers()  # a worker may be mid-step or gone: start afresh next time
            raise
        finally:
            self._worker_pool = None
        return history

    def _train_epochs(self, first_epoch, last_epoch, x, targets, weights, batch_size, shuffle,
                      validation, callback_list) -> None:
        callback_list.on_train_begin({})
        for epoch in range(first_epoch, last_epoch):
            epoch_rng = np.random.default_rng([self.train_seed, epoch])
            with backend.using_rng(epoch_rng):
                logs = self._run_epoch(epoch, x, targets, weights, batch_size, shuffle,
                                       epoch_rng, callback_list)
            if validation is not None:
                logs.update(self._validation_logs(validation, batch_size))
            if self.optimizer.last_learning_rate is not None:
                logs["learning_rate"] = self.optimizer.last_learning_rate
            self.epoch = epoch + 1
            callback_list.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        callback_list.on_train_end({})

    def _workers_for(self, count, batch_size):
        """The worker pool for ``fit(workers=count)`` with batches of up to ``batch_size``
        samples (None for one process): the idle pool of an earlier fit if it serves the
        same model, loss and batch size, else a new one."""
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
            raise ValueError(f"workers must be an int >= 1, got {count!r}")
        if count == 1:
            return None
        if backend.backend_name() != "numpy":
            raise ValueError(f"workers={count} needs the numpy backend (not "
                             f"{backend.backend_name()!r}); train with workers=1")
        rowwise = [layer.describe() for layer in self.layers if not layer.samplewise]
        if rowwise:
            raise ValueError(
                f"workers={count} cuts every batch into slices, but layer {rowwise[0]} does "
                "not treat samples independently (batch statistics or state carried across "
                "samples); train it with workers=1"
            )
        capacity = -(-batch_size // count)
        threads = max(1, backend.get_num_threads() // count)
        key = (count, capacity, threads, repr(self.get_config()), repr(self.loss.get_config()))
        pool = self._idle_workers
        if pool is not None and (pool.key != key or not pool.alive()):
            self.close_workers()
            pool = None
        if pool is None:
            pool = data_parallel.WorkerPool(self, count - 1, capacity, threads, key)
            self._idle_workers = pool
            weakref.finalize(self, pool.close)  # with the model, or at the program's exit
        return pool

    def __getstate__(self):
        """Copies and pickles of a model leave its worker processes behind."""
        state = dict(self.__dict__)
        state["_worker_pool"] = state["_idle_workers"] = None
        return state

    def close_workers(self) -> None:
        """End the worker processes that ``fit(workers=...)`` keeps between calls."""
        pool, self._idle_workers = self._idle_workers, None
        if pool is not None:
            pool.close()

    def _epoch_range(self, epochs, initial_epoch):
        for name, value in (("epochs", epochs), ("initial_epoch", initial_epoch)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                                      or value < 0):
                raise ValueError(f"{name} must be an int >= 0, got {value!r}")
        if initial_epoch is None:
            return self.epoch, self.epoch + int(epochs)
        if epochs < initial_epoch:
            raise ValueError(f"epochs ({epochs}) must be >= initial_epoch ({initial_epoch})")
        return int(initial_epoch), int(epochs)

    def _split_validation(self, x, targets, weights, validation_split, validation_data):
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError("validation_data must be (x_val, y_val) or (x_val, y_val, sample_weight)")
            x_val = data.check_inputs(validation_data[0], self.input.input_shape, "validation x")
            y_val = data.prepare_targets(validation_data[1], x_val.shape[0], self.cur_output_shape,
                                         self.loss, self.dtype, "validation y")
            w_val = data.sample_weights(x_val.shape[0],
                                        validation_data[2] if len(validation_data) == 3 else None)
            return (x, targets, weights), (x_val, y_val, w_val)
        if not validation_split:
            return (x, targets, weights), None
        if not 0.0 < float(validation_split) < 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split!r}")
        n = x.shape[0]
        split_at = int(n * (1.0 - float(validation_split)))
        if split_at == 0 or split_at == n:
            raise ValueError(f"validation_split={validation_split} leaves an empty set of {n} samples")
        part = lambda a, s: None if a is None else a[s]  # noqa: E731
        train = tuple(part(a, slice(0, split_at)) for a in (x, targets, weights))
        validation = tuple(part(a, slice(split_at, None)) for a in (x, targets, weights))
        return train, validation

    def _run_epoch(self, epoch, x, targets, weights, batch_size, shuffle, rng, callback_list):
        n = x.shape[0]
        steps = -(-n // batch_size)
        order = rng.permutation(n) if shuffle else None
        self.reset_states()
        loss_total, seen = 0.0, 0.0
        for metric in self.metrics:
            metric.reset()
        callback_list.on_epoch_begin(epoch, {})
        logs = {}
        for step in range(steps):
            index = slice(step * batch_size, min((step + 1) * batch_size, n))
            if order is not None:
                index = order[index]
            xb = self._to_batch(x[index])
            yb = backend.asarray(targets[index], dtype=self.dtype)
            wb = self._weights(None if weights is None else weights[index])
            callback_list.on_batch_begin(step, {})
            try:
                loss_value, output = self._train_step(xb, yb, wb)
            except NonFiniteLossError as exc:
                # Callbacks see the bad loss; one may stop training quietly (TerminateOnNaN).
                logs = {**logs, "loss": exc.loss}
                callback_list.on_batch_end(step, logs)
                if self.stop_training:
                    return logs
                raise NonFiniteLossError(
                    f"{exc} at epoch {epoch + 1}, batch {step + 1}/{steps}; training stopped and "
                    "the weights are those after the last good step (try a lower learning rate, "
                    "gradient clipping, or check the inputs; with a TerminateOnNaN callback, "
                    "fit stops without raising)", exc.loss
                ) from None
            loss_total += loss_value * xb.shape[0]
            seen += xb.shape[0]
            for metric in self.metrics:
                metric.update(output, yb, wb)
            logs = {"loss": loss_total / seen, **{m.name: m.result() for m in self.metrics}}
            callback_list.on_batch_end(step, logs)
            if self.stop_training:
                break
        return dict(logs)

    def _validation_logs(self, validation, batch_size):
        x_val, y_val, w_val = validation
        results = self._evaluate_prepared(x_val, y_val, w_val, max(batch_size, PREDICT_BATCH_SIZE))
        return {f"val_{key}": value for key, value in results.items()}

    def reset_states(self) -> None:
        """Reset the carried states of recurrent layers (``fit`` does it at each epoch start)."""
        for layer in self.layers:
            if hasattr(layer, "reset_states"):
                layer.reset_states()

    # -- inference --------------------------------------------------------------------------
    def predict(self, x, batch_size=None, verbose=0):
        """Outputs for all samples, computed ``batch_size`` (default 256) at a time.

        Returns a NumPy array (N, *output_shape) in the model's float type.
        """
        if not self.layers:
            raise ValueError("cannot predict: the model has no layers")
        batch_size = data.check_batch_size(batch_size, PREDICT_BATCH_SIZE)
        x = data.check_inputs(x, self.input.input_shape)
        n = x.shape[0]
        out = np.empty((n, *self.cur_output_shape), dtype=self.dtype)
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            batch = self._to_batch(x[start:stop])
            for part in self._parts(stop - start):
                out[start + part.start:start + part.stop] = backend.to_numpy(
                    self.forward(batch[part]))
        return out

    def predict_classes(self, x, batch_size=None):
        """Class ids (N,): argmax of the outputs (threshold 0.5 for a single output unit)."""
        output = self.predict(x, batch_size=batch_size)
        flat = output.reshape(output.shape[0], -1)
        if flat.shape[1] == 1:
            return (flat[:, 0] > 0.5).astype(np.int64)
        return flat.argmax(axis=1)

    def evaluate(self, x, y, batch_size=None, verbose=0, sample_weight=None, return_dict=False):
        """``(metric, loss)`` on the given data, in batches, as the seed returns it.

        The metric is the first compiled metric (``accuracy`` by default); with no metrics
        the loss alone is returned; ``return_dict=True`` gives every value by name.
        """
        self._require_compiled("evaluate")
        batch_size = data.check_batch_size(batch_size, PREDICT_BATCH_SIZE)
        x = data.check_inputs(x, self.input.input_shape)
        targets = data.prepare_targets(y, x.shape[0], self.cur_output_shape, self.loss, self.dtype)
        weights = data.sample_weights(x.shape[0], sample_weight)
        results = self._evaluate_prepared(x, targets, weights, batch_size)
        if return_dict:
            return results
        if not self.metrics:
            return results["loss"]
        return results[self.metrics[0].name], results["loss"]

    def _evaluate_prepared(self, x, targets, weights, batch_size) -> dict:
        n = x.shape[0]
        loss_total = 0.0
        for metric in self.metrics:
            metric.reset()
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            xb = self._to_batch(x[start:stop])
            yb = backend.asarray(targets[start:stop], dtype=self.dtype)
            wb = self._weights(None if weights is None else weights[start:stop])
            for part in self._parts(stop - start):
                output = self.forward(xb[part])
                wp = None if wb is None else wb[part]
                loss_value = self._mean_loss(output, yb[part], wp)
                loss_total += float(loss_value) * (part.stop - part.start)
                for metric in self.metrics:
                    metric.update(output, yb[part], wp)
        results = {"loss": loss_total / n + self._regularization_loss()}
        results.update({metric.name: metric.result() for metric in self.metrics})
        return results

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

    # -- description ------------------------------------------------------------------------
    def summary(self, print_fn=print) -> None:
        """Print the seed's table: layer, output shape, parameter count, total."""
        rule, double = "_" * 65, "=" * 65
        lines = [f"model name: {self.name}", rule,
                 f"{'Layer':<29}{'Output Shape':<26}{'Param #':<10}", double]
        for layer in self.layers:
            kind, shape, params = layer.summary()
            label = kind if layer.name == self._default_label(layer) else f"{layer.name} ({kind})"
            lines += [f"{label:<29}{format_shape(shape[1:]):<26}{params:<10}", rule]
        trainable = sum(int(np.prod(p.shape)) for layer in self.layers for _, p in layer.trainable_params())
        total = self.count_params()
        lines += [double, f"Total params: {total}"]
        if trainable != total:
            lines += [f"Trainable params: {trainable}", f"Non-trainable params: {total - trainable}"]
        lines.append(rule)
        print_fn("\n".join(lines))

    def _default_label(self, layer):
        """Names the model generated itself are not shown (the seed showed the type only)."""
        base = layer.default_name()
        return layer.name if layer.name == base or layer.name.startswith(base + "_") else None

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "input_shape": list(self.input.input_shape) if self.input else None,
            "dtype": self.dtype,
            "layers": [serialize(layer) for layer in self.layers],
            "class_names": None if self.class_names is None else [str(n) for n in self.class_names],
        }

    def compile_config(self) -> dict | None:
        if self.loss is None:
            return None
        return {
            "optimizer": self.optimizer.get_config(),
            "loss": self.loss.get_config(),
            "metrics": [metric.get_config() for metric in self.metrics],
        }

    @classmethod
    def from_config(cls, config: dict, compile_config: dict | None = None) -> "Model":
        """Rebuild a model from ``get_config()`` (in its ``dtype``) and ``compile_config()``."""
        with backend.floatx_scope(config.get("dtype", backend.floatx())):
            model = cls._empty(Input(config["input_shape"]), config.get("name", "cnn"))
            for spec in config["layers"]:
                model.add_layer(deserialize(spec))
        model.class_names = config.get("class_names")
        if compile_config:
            model.compile(optimizer=optimizers.get(compile_config["optimizer"]),
                          loss=losses.get(compile_config["loss"]),
                          metrics=[metrics_module.get(m) for m in compile_config["metrics"]])
        return model

    @classmethod
    def _empty(cls, input_layer, name):
        return cls(input_layer, name)

    def save(self, path) -> None:
        """Write the model (architecture, weights, compile and training state) to ``path``."""
        from cnn.saving.h5_format import save_model

        save_model(self, path)

    def save_weights(self, path) -> None:
        """Write the weights alone (HDF5, ``cnn.saving.weights_file``) to ``path``."""
        from cnn.saving.weights_file import save_weights

        save_weights(self, path)

    def load_weights(self, path, by_name: bool = False, skip_mismatch: bool = False) -> None:
        """Set the weights from a ``save_weights`` (or ``save``) file: by layer order, or by
        layer name with ``by_name=True`` (``skip_mismatch`` skips layers that do not fit)."""
        from cnn.saving.weights_file import load_weights

        load_weights(self, path, by_name=by_name, skip_mismatch=skip_mismatch)

    def __repr__(self):
        return f"<Model {self.name!r}: {len(self.layers)} layers, {self.count_params()} params>"


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
    def _empty(cls, input_layer, name):
        return cls([input_layer], name)
