"""Distribution strategies: who computes a batch's gradients. The seam for parallel training.

A strategy has two methods that the trainer calls, and nothing else it relies on:

* ``compute_gradients(model, batch) -> Gradients``: the loss, per-output losses, outputs and
  gradients of the whole ``batch``, summed over whoever took part (the gradients are the
  model's layers' own arrays, so that weight penalties and the optimizer see them);
* ``run_inference(model, batch) -> Outputs``: the outputs (and, with targets, the losses)
  of a batch, without training.

and is a context manager around the fit (``scope()``), for its set-up and tear-down.

:class:`OneProcess` runs everything here. :class:`LocalWorkers` cuts every batch into
slices for worker processes on this machine (``cnn.training.workers``). An MPI strategy
(ranks on several machines) fits behind the same two methods.
"""

from __future__ import annotations

import contextlib
import weakref
from typing import NamedTuple

import numpy as np

from cnn import backend, replica
from cnn.layers.node import has_variable_axis
from cnn.models.model import Gradients
from cnn.training import workers as data_parallel


class Outputs(NamedTuple):
    """``run_inference``'s result: the outputs (one array per model output); the batch's
    mean loss and the mean of each output's loss (None without targets)."""

    outputs: list
    loss: float | None
    output_losses: list | None


class OneProcess:
    """Everything in this process: the model's own ``compute_gradients``."""

    def compute_gradients(self, model, batch) -> Gradients:
        return model.compute_gradients(batch.x, batch.y, batch.sample_weight)

    def run_inference(self, model, batch) -> Outputs:
        return run_inference(model, batch)

    def prepare(self, model) -> None:
        """Called once at the start of ``fit``, after the training seed is set."""

    def scope(self):
        return contextlib.nullcontext()

    def close(self) -> None:
        pass


def run_inference(model, batch) -> Outputs:
    """Forward in parts (``model.parts``), computing each output's loss from each part
    right after its forward (a fused loss reads the part's logits)."""
    n = batch.rows
    chunks: list[list] = [[] for _ in model.outputs]
    with_loss = batch.y is not None
    total = 0.0
    output_losses = [None if loss is None else 0.0 for loss in model.output_losses]
    for part in model.parts(n, batch.x):
        result = model.graph.forward([x[part] for x in batch.x], training=False)
        share = (part.stop - part.start) / n
        for k, output in enumerate(result):
            chunks[k].append(output)
            if not with_loss or batch.y[k] is None or model.output_losses[k] is None:
                continue
            weights = None if batch.sample_weight is None else batch.sample_weight[part]
            value = float(model.output_loss(k, output, batch.y[k][part], weights)) * share
            output_losses[k] += value
            total += value * model.loss_weights[k]
    outputs = [c[0] if len(c) == 1 else backend.xp.concatenate(c) for c in chunks]
    if not with_loss:
        return Outputs(outputs, None, None)
    return Outputs(outputs, total, output_losses)


class LocalWorkers(OneProcess):
    """``count`` processes share every batch: this one takes the first slice, ``count - 1``
    worker processes the others; their gradients are added here in slice order."""

    def __init__(self, pool):
        self.pool = pool

    def compute_gradients(self, model, batch) -> Gradients:
        pool = self.pool
        n = batch.rows
        mine, *theirs = data_parallel.slices(n, pool.count + 1)
        # The workers' random layers start where this process's do (and draw for the whole
        # batch, cnn.replica), so that every process uses the masks one process would.
        pool.start_step(model, batch, theirs, n,
                        (backend.rng().bit_generator.state, model.layer_states()))
        try:
            with replica.replica_slice(n, 0):
                own = model.compute_gradients(
                    [x[mine] for x in batch.x],
                    [None if y is None else y[mine] for y in batch.y],
                    None if batch.sample_weight is None else batch.sample_weight[mine], n)
        finally:
            results = pool.finish_step()  # read every answer, even after an error here
        loss, output_losses = own.loss, list(own.output_losses)
        outputs = [[o] for o in own.outputs]
        for worker_loss, worker_output_losses, worker_outputs, worker_grads in results:
            loss += worker_loss
            output_losses = [None if a is None else a + b
                             for a, b in zip(output_losses, worker_output_losses)]
            for chunks, output in zip(outputs, worker_outputs):
                chunks.append(output)
            for total, grad in zip(own.gradients, worker_grads):
                total += grad  # the layers' own gradient arrays (see compute_gradients)
        joined = [c[0] if len(c) == 1 else backend.xp.concatenate(c) for c in outputs]
        return Gradients(loss, output_losses, joined, own.gradients)

    def scope(self):
        # Each process takes its share of the BLAS threads: more would fight over the cores.
        return backend.limited_threads(self.pool.blas_threads)

    def close(self) -> None:
        self.pool.close()


# The worker pool each model keeps between fits that need the same set-up.
_IDLE_POOLS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def for_fit(model, workers, batch_size: int, timeout=None):
    """The strategy for ``fit(workers=...)`` with batches of up to ``batch_size`` samples;
    ``timeout``: the seconds to wait for a worker (None: ``workers.step_timeout()``)."""
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    if timeout is not None:
        data_parallel.checked_timeout(timeout, "worker_timeout")
    if workers == 1:
        return OneProcess()
    if backend.backend_name() != "numpy":
        raise ValueError(f"workers={workers} needs the numpy backend (not "
                         f"{backend.backend_name()!r}); train with workers=1")
    rowwise = [layer.describe() for layer in model.layers if not layer.samplewise]
    if rowwise:
        raise ValueError(
            f"workers={workers} cuts every batch into slices, but layer {rowwise[0]} does "
            "not treat samples independently (batch statistics or state carried across "
            "samples); train it with workers=1"
        )
    if has_variable_axis([*model.input_shapes, *model.output_shapes]):
        raise ValueError(f"workers={workers} hands batches over in shared arrays of fixed "
                         "shapes, but the model has a variable-length (None) axis; train it "
                         "with workers=1")
    capacity = -(-batch_size // workers)
    threads = max(1, backend.get_num_threads() // workers)
    losses = [None if loss is None else loss.get_config() for loss in model.output_losses]
    key = (workers, capacity, threads, repr(model.get_config()), repr(losses),
           repr(model.loss_weights))
    pool = _IDLE_POOLS.get(model)
    if pool is not None and (pool.key != key or not pool.alive()):
        close_workers(model)
        pool = None
    if pool is None:
        pool = data_parallel.WorkerPool(model, workers - 1, capacity, threads, key, timeout)
        _IDLE_POOLS[model] = pool
        weakref.finalize(model, pool.close)  # with the model, or at the program's exit
    pool.timeout = timeout
    return LocalWorkers(pool)


def idle_pool(model):
    """The worker pool ``model`` keeps from its last ``fit(workers=...)``, or None."""
    return _IDLE_POOLS.get(model)


def close_workers(model) -> None:
    """End the worker processes that ``fit(workers=...)`` keeps for ``model``."""
    pool = _IDLE_POOLS.pop(model, None)
    if pool is not None:
        pool.close()
