"""The training loop: ``fit``, ``evaluate``, ``predict`` and the ``*_on_batch`` steps.

``Model.fit(...)`` etc. call these with the model (through ``cnn.models.seam``). Concerns
have one home each, as in Keras: a data adapter (``cnn.training.data_adapters``) takes x, y,
sample_weight, class_weight, shuffle and batch_size; the epoch iterator
(``cnn.training.epoch_iterator``) the steps; this trainer takes epochs, validation,
callbacks, NaN handling and the strategy (``cnn.training.strategy``: who computes the
gradients). ``fit``, ``evaluate``, ``predict`` and validation all loop over the same
iterator, so there is one batching path.

One step: strategy.compute_gradients (forward, loss, backward) -> weight penalties ->
finite checks -> ``optimizer.apply_gradients``.
"""

from __future__ import annotations

import contextlib
import math
import sys
import warnings

import numpy as np

from cnn import backend, distributed, optimizers
from cnn.callbacks import CallbackList, History, ProgbarLogger
from cnn.training import data_checks, defaults, strategy as strategies
from cnn.training.data_adapters import Batch, get_adapter, per_input
from cnn.training.epoch_iterator import EpochIterator
from cnn.training.errors import NonFiniteLossError
from cnn.training.ranks import MPIRanks

PREDICT_BATCH_SIZE = 256


# -- fit ------------------------------------------------------------------------------------
def fit(model, x=None, y=None, batch_size=None, epochs=1, verbose=1, callbacks=None,
        validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
        sample_weight=None, initial_epoch=None, steps_per_epoch=None, validation_steps=None,
        validation_batch_size=None, seed=None, workers=None, worker_timeout=None) -> History:
    """Train ``model``; returns a History (a dict of per-epoch lists: loss, metrics, val_*).

    Args:
        x: inputs: an array (N, *input_shape) of any real dtype (cast per batch; a
            ``numpy.memmap`` is read from its file batch by batch), a list or dict of arrays
            for several inputs; a tuple ``(x, y[, sample_weight])``; a generator or iterable
            of such tuples; or a sequence (``__len__`` + ``__getitem__(i)`` -> a batch).
        y: targets (arrays only): one-hot / values (N, *output_shape), or integer class ids
            (N,); a list or dict (by output name) for several outputs.
        batch_size: samples per step for arrays (default 32); the last batch may be smaller.
        epochs: how many epochs to train in this call. Numbering continues from the
            epochs already trained (``model.epoch``), so calling fit twice, or fit after
            ``load_model``, continues training.
        initial_epoch: Keras's form: train from epoch ``initial_epoch`` up to ``epochs``.
        verbose: 0 silent, 1 progress bar, 2 one line per epoch.
        shuffle: reshuffle the training samples (a sequence's batches) every epoch
            (refused for a model whose recurrent layers carry state across batches).
        validation_split: fraction of the samples (arrays), taken from the end before
            shuffling, held out for validation.
        validation_data: ``(x_val, y_val[, sample_weight])``, a generator or a sequence.
        steps_per_epoch / validation_steps: batches per epoch from a generator or sequence
            (default: until it ends / its length). A generator is not restarted: each epoch
            takes the next batches; when it runs out, training stops with a warning.
        callbacks: list of ``cnn.callbacks.Callback``.
        class_weight: ``{class id: weight}`` multiplying each sample's loss (one output).
        sample_weight: (N,) weights of the samples' losses.
        seed: seeds shuffling and dropout of this and later fits; by default drawn once
            from the global generator (``cnn.set_seed``). Epoch ``e`` always uses the
            generator ``default_rng([seed, e])``, so resumed training repeats exactly.
        workers: processes that share each batch (``cnn.training.strategy.LocalWorkers``):
            1 trains here alone; ``W`` > 1 starts ``W - 1`` worker processes, each training
            a slice of every batch (every layer must treat samples independently). None,
            the default: the environment variable ``CNN_WORKERS`` (an int, or ``auto``),
            else one process per usable core as far as the batch size and the amount of
            data pay for it, and one process for a model the workers cannot run
            (``cnn.training.defaults``; verbose runs print the choice). Each process runs
            one BLAS thread, or its share of those chosen with ``cnn.set_num_threads`` or
            a thread variable in the environment. Results equal one process's up to float
            rounding, random layers (Dropout, augmentation) included; validation runs on
            the same processes. A worker that dies or stops answering raises
            ``cnn.training.workers.WorkerError`` within ``worker_timeout`` seconds.
        worker_timeout: seconds to wait for a worker's answer before giving up on it
            (default: the environment variable ``CNN_WORKER_TIMEOUT``, else 60).
    The history holds, per epoch, ``loss``, the metrics (with several outputs
    ``<output>_loss`` and ``<output>_<metric>``), ``val_*`` when validating and
    ``learning_rate``, the optimizer's rate at the epoch's last step.
    Raises:
        NonFiniteLossError: the loss or a gradient became NaN/inf; the message says at
            which epoch and batch, and the weights are those of the last good step. The
            step is first reported to the callbacks' ``on_batch_end`` with that loss (NaN
            for a bad gradient); if one sets ``model.stop_training`` (``TerminateOnNaN``
            does), training ends there without raising, the epoch's logs carrying it.
    """
    model.require_compiled("fit")
    optimizers.check_trainable(model.dtype)
    batch_size = data_checks.check_batch_size(batch_size, 32)
    first_epoch, last_epoch = _epoch_range(model, epochs, initial_epoch)
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
    ordered = [layer.describe() for layer in model.layers
               if getattr(layer, "needs_ordered_batches", False)]
    if shuffle and ordered:
        raise ValueError(
            f"layer {ordered[0]} carries its state from one batch to the next, so the "
            "batches must stay in order: pass shuffle=False"
        )
    adapter = get_adapter(model, x, y, sample_weight, class_weight, batch_size, shuffle,
                          steps_per_epoch, "fit")
    validation = None
    if validation_data is not None:
        validation = _validation_adapter(model, validation_data, validation_steps,
                                         validation_batch_size or max(batch_size,
                                                                      PREDICT_BATCH_SIZE))
    elif validation_split:
        if not hasattr(adapter, "split"):
            raise ValueError("validation_split needs arrays; give validation_data for a "
                             "generator or sequence")
        adapter, validation = adapter.split(validation_split)
        validation.batch_size = validation_batch_size or max(batch_size, PREDICT_BATCH_SIZE)
    iterator = EpochIterator(adapter)
    samples = getattr(adapter, "samples", None)
    work = None if samples is None else samples * (last_epoch - first_epoch)
    strategy, plan = strategy_for(model, workers, batch_rows(adapter, batch_size), work, "fit",
                                  worker_timeout)
    _say(plan, verbose)
    if model.train_seed is None:
        model.train_seed = int(seed if seed is not None else backend.rng().integers(2**31))
    elif seed is not None:
        model.train_seed = int(seed)
    strategy.prepare(model)

    history = History()
    default_callbacks = [ProgbarLogger(verbose)] if verbose else []
    callback_list = CallbackList(
        _for_this_rank(default_callbacks + list(callbacks or [])) + [history], model,
        {"epochs": last_epoch, "steps": iterator.num_batches, "samples": samples,
         "batch_size": batch_size, "verbose": verbose},
    )
    model.history = history
    model.stop_training = False
    model.running_callbacks = callback_list
    try:
        with backend.limited_threads(plan.threads), strategy.scope():
            _train_epochs(model, strategy, iterator, first_epoch, last_epoch, validation,
                          callback_list)
    except BaseException:
        strategies.close_workers(model)  # a worker may be mid-step or gone: start afresh
        raise
    finally:
        model.running_callbacks = None
    return history


def batch_rows(adapter, batch_size: int) -> int | None:
    """The largest batch of ``adapter``'s data: ``batch_size`` (or fewer samples) for arrays,
    None for a Sequence or generator, whose batches are of its own size."""
    samples = getattr(adapter, "samples", None)
    if not hasattr(adapter, "batch_size"):
        return None
    return min(batch_size, samples or batch_size)


def strategy_for(model, workers, rows, samples, purpose, worker_timeout=None):
    """``(strategy, defaults.Plan)``: MPI ranks when the script runs under ``mpiexec``
    (``cnn.distributed.init()``), else this process alone or with local worker processes
    (``workers``; see ``strategy.choose``)."""
    world = distributed.world()
    if world.size == 1:
        return strategies.choose(model, workers, rows, samples, purpose, worker_timeout)
    requested = defaults.requested_workers(workers)
    if requested not in (None, 1):
        raise ValueError(f"workers={requested} starts local worker processes, which cannot run "
                         f"inside an MPI rank ({world.size} ranks already share each batch); "
                         "leave workers at 1 under mpiexec")
    ordered = [layer.describe() for layer in model.layers
               if getattr(layer, "needs_ordered_batches", False)]
    if ordered and purpose == "fit":
        raise ValueError(f"layer {ordered[0]} carries its state from one batch to the next "
                         f"(stateful), which cannot be split across {world.size} MPI ranks; "
                         "train it in one process")
    plan = defaults.Plan(1, defaults.threads_per_process(1), defaults.usable_cores(), rows,
                         automatic=requested is None,
                         reason=f"{world.size} MPI ranks share each batch")
    return MPIRanks(world), plan


def _say(plan, verbose) -> None:
    """Print the plan's line to stderr in verbose runs (on rank 0 under MPI), where notices
    go, so that the progress output on stdout stays as it was."""
    if verbose and distributed.is_chief():
        print(plan.describe(), file=sys.stderr, flush=True)


def _for_this_rank(callbacks: list) -> list:
    """Under MPI, the callbacks that print or write files (``chief_only``) run on rank 0."""
    if distributed.is_chief():
        return callbacks
    return [c for c in callbacks if not getattr(c, "chief_only", False)]


def _validation_adapter(model, data, steps, batch_size):
    if isinstance(data, (tuple, list)):
        if len(data) not in (2, 3):
            raise ValueError("validation_data must be (x_val, y_val) or "
                             "(x_val, y_val, sample_weight)")
        return get_adapter(model, data[0], data[1], data[2] if len(data) == 3 else None,
                           batch_size=batch_size, purpose="evaluate", label="validation ")
    return get_adapter(model, data, steps=steps, purpose="evaluate")


def _epoch_range(model, epochs, initial_epoch):
    for name, value in (("epochs", epochs), ("initial_epoch", initial_epoch)):
        if value is not None and (isinstance(value, bool)
                                  or not isinstance(value, (int, np.integer)) or value < 0):
            raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    if initial_epoch is None:
        return model.epoch, model.epoch + int(epochs)
    if epochs < initial_epoch:
        raise ValueError(f"epochs ({epochs}) must be >= initial_epoch ({initial_epoch})")
    return int(initial_epoch), int(epochs)


def _train_epochs(model, strategy, iterator, first_epoch, last_epoch, validation,
                  callback_list) -> None:
    callback_list.on_train_begin({})
    if model.resume_state is not None:  # callbacks' state saved with the model
        callback_list.set_states(model.resume_state.get("callbacks", {}))
        model.resume_state = None
    for epoch in range(first_epoch, last_epoch):
        epoch_rng = np.random.default_rng([model.train_seed, epoch])
        with backend.using_rng(epoch_rng):
            logs = _run_epoch(model, strategy, iterator, epoch, epoch_rng, callback_list)
        if iterator.exhausted:
            warnings.warn(f"the training data ran out at epoch {epoch + 1}: training stops "
                          "(give steps_per_epoch that the generator can serve every epoch)",
                          stacklevel=4)
            model.stop_training = True
            if not logs:
                break
        if validation is not None:
            results = _evaluate_batches(model, strategy, EpochIterator(validation))
            logs.update({f"val_{key}": value for key, value in results.items()})
        if model.optimizer.last_learning_rate is not None:
            logs["learning_rate"] = model.optimizer.last_learning_rate
        model.epoch = epoch + 1
        callback_list.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callback_list.on_train_end({})


class _Means:
    """Running means of the loss values and the metrics over the batches of an epoch."""

    def __init__(self, model):
        self.model = model
        self.entries = model.log_names()
        self.totals = {name: 0.0 for name, _, metric in self.entries if metric is None}
        self.seen = 0
        for metric in model.metrics:
            metric.reset()

    def add(self, rows, loss, output_losses, outputs, batch: Batch) -> None:
        self.seen += rows
        for name, k, metric in self.entries:
            if metric is None:
                value = loss if k is None else output_losses[k]
                self.totals[name] += value * rows
            elif batch.y[k] is not None:
                metric.update(outputs[k], batch.y[k], batch.sample_weight)

    def logs(self, extra_loss: float = 0.0) -> dict:
        logs = {}
        for name, _, metric in self.entries:
            if metric is None:
                logs[name] = self.totals[name] / self.seen + (extra_loss if name == "loss" else 0)
            else:
                logs[name] = metric.result()
        return logs


def _run_epoch(model, strategy, iterator, epoch, rng, callback_list) -> dict:
    model.reset_states()
    means = _Means(model)
    callback_list.on_epoch_begin(epoch, {})
    logs = {}
    for step, batch in iterator.enumerate_epoch(rng):
        callback_list.on_batch_begin(step, {})
        try:
            loss_value, result = train_step(model, strategy, batch)
        except NonFiniteLossError as exc:
            # Callbacks see the bad loss; one may stop training quietly (TerminateOnNaN).
            logs = {**logs, "loss": exc.loss}
            callback_list.on_batch_end(step, logs)
            if model.stop_training:
                return logs
            steps = iterator.num_batches
            raise NonFiniteLossError(
                f"{exc} at epoch {epoch + 1}, batch {step + 1}"
                f"{'' if steps is None else f'/{steps}'}; training stopped and the weights "
                "are those after the last good step (try a lower learning rate, gradient "
                "clipping, or check the inputs; with a TerminateOnNaN callback, fit stops "
                "without raising)", exc.loss
            ) from None
        means.add(batch.rows, loss_value, result.output_losses, result.outputs, batch)
        logs = means.logs()
        callback_list.on_batch_end(step, logs)
        if model.stop_training:
            break
    return dict(logs)


def train_step(model, strategy, batch: Batch):
    """One optimizer step on a batch; returns ``(loss with penalties, Gradients)``."""
    result = strategy.compute_gradients(model, batch)
    loss_value = result.loss + model.regularization_loss()
    if not math.isfinite(loss_value):
        raise NonFiniteLossError(f"the loss became {loss_value}", loss_value)
    grads = model.add_regularization_gradients()
    # One dot product per array (no temporaries) is NaN/inf exactly when an entry is.
    if grads and not math.isfinite(sum(float(backend.xp.vdot(g, g)) for g in grads)):
        raise NonFiniteLossError("a gradient became NaN or infinite")
    model.optimizer.apply_gradients(model.trainable_weights, grads)
    return loss_value, result


# -- evaluate and predict -------------------------------------------------------------------
def evaluate(model, x=None, y=None, batch_size=None, verbose=0, sample_weight=None,
             steps=None, return_dict=False, callbacks=None, workers=None):
    """Loss and metrics of ``model`` on data (arrays, tuples, a generator or a sequence,
    as for ``fit``), in batches of ``batch_size`` (default 256).

    Returns, in the order ``model.metrics_names`` gives: after a Keras-form compile the
    loss alone without metrics, else ``[loss, *metrics]`` (with several outputs the
    outputs' losses come after the total); after a seed-form compile
    (``compile(0.01, "cross_tropy")``) the seed's ``(metric, loss)``. ``return_dict=True``:
    every value by name. ``workers``: processes sharing each batch, as for ``fit`` (large
    inputs run on every core by default; the same values up to float rounding).
    """
    model.require_compiled("evaluate")
    batch_size = data_checks.check_batch_size(batch_size, PREDICT_BATCH_SIZE)
    adapter = get_adapter(model, x, y, sample_weight, batch_size=batch_size, steps=steps,
                          purpose="evaluate")
    with _inference(model, adapter, batch_size, workers, "evaluate", verbose) as strategy:
        results = _evaluate_batches(model, strategy, EpochIterator(adapter))
    return _ordered(model, results, return_dict)


@contextlib.contextmanager
def _inference(model, adapter, batch_size, workers, purpose, verbose):
    """The strategy for ``evaluate`` or ``predict`` on ``adapter``'s data in batches of up
    to ``batch_size``, inside its BLAS thread limit; worker processes that fail are ended."""
    samples = getattr(adapter, "samples", None)
    strategy, plan = strategy_for(model, workers, batch_rows(adapter, batch_size), samples,
                                  purpose)
    _say(plan, verbose)
    try:
        with backend.limited_threads(plan.threads):
            yield strategy
    except BaseException:
        if isinstance(strategy, strategies.LocalWorkers):
            strategies.close_workers(model)  # a worker may be mid-batch or gone
        raise


def _ordered(model, results: dict, return_dict: bool):
    if return_dict:
        return results
    names = model.metrics_names
    if len(names) == 1:
        return results[names[0]]
    values = [results[name] for name in names]
    return tuple(values) if model.seed_compiled else values


def _evaluate_batches(model, strategy, iterator) -> dict:
    means = _Means(model)
    for _, batch in iterator.enumerate_epoch(None):
        result = strategy.run_inference(model, batch)
        means.add(batch.rows, result.loss, result.output_losses, result.outputs, batch)
    if means.seen == 0:
        raise ValueError("there was no data to evaluate (the generator yielded no batch)")
    return means.logs(extra_loss=model.regularization_loss())


def predict(model, x, batch_size=None, verbose=0, steps=None, callbacks=None, workers=None):
    """Outputs for all samples, computed ``batch_size`` (default 256) at a time; ``workers``
    as for ``evaluate``.

    Returns a NumPy array (N, *output_shape) in the model's float type; a list of them for
    several outputs (a dict for outputs given as a dict).
    """
    if not model.layers:
        raise ValueError("cannot predict: the model has no layers")
    batch_size = data_checks.check_batch_size(batch_size, PREDICT_BATCH_SIZE)
    adapter = get_adapter(model, x, batch_size=batch_size, steps=steps, purpose="predict")
    chunks: list[list] = [[] for _ in model.outputs]
    with _inference(model, adapter, batch_size, workers, "predict", verbose) as strategy:
        for _, batch in EpochIterator(adapter).enumerate_epoch(None):
            result = strategy.run_inference(model, Batch(batch.x, None, None))
            for k, output in enumerate(result.outputs):
                chunks[k].append(backend.to_numpy(output))
    if not chunks[0]:
        raise ValueError("there was no data to predict (the generator yielded no batch)")
    outputs = [data_checks.join_predictions(c, name)
               for c, name in zip(chunks, model.output_names)]
    return _structured(model, outputs)


def _structured(model, outputs: list):
    if model.output_keys:
        return dict(zip(model.output_keys, outputs))
    return outputs[0] if len(outputs) == 1 else outputs


# -- single batches -------------------------------------------------------------------------
def _one_batch(model, x, y, sample_weight) -> Batch:
    adapter = get_adapter(model, x, y, sample_weight, batch_size=None, purpose="evaluate")
    adapter.batch_size = adapter.samples
    return next(adapter.batches(None))


def train_on_batch(model, x, y, sample_weight=None) -> dict:
    """One optimizer step on one batch; returns that batch's loss and metrics by name."""
    model.require_compiled("train")
    optimizers.check_trainable(model.dtype)
    batch = _one_batch(model, x, y, sample_weight)
    means = _Means(model)
    loss_value, result = train_step(model, strategies.OneProcess(), batch)
    means.add(batch.rows, loss_value, result.output_losses, result.outputs, batch)
    return means.logs()


def test_on_batch(model, x, y, sample_weight=None, return_dict=False):
    model.require_compiled("evaluate")
    batch = _one_batch(model, x, y, sample_weight)
    means = _Means(model)
    result = strategies.OneProcess().run_inference(model, batch)
    means.add(batch.rows, result.loss, result.output_losses, result.outputs, batch)
    return _ordered(model, means.logs(extra_loss=model.regularization_loss()), return_dict)


def predict_on_batch(model, x):
    return predict(model, x, batch_size=max(1, len(per_input(model, x)[0])))


def close_workers(model) -> None:
    strategies.close_workers(model)


__all__ = ["fit", "evaluate", "predict", "train_on_batch", "test_on_batch",
           "predict_on_batch", "close_workers", "train_step"]
