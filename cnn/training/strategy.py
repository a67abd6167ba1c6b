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
(ranks on several machines) fits behind the same two methods. ``choose`` picks the strategy
of a call from the user's ``workers`` or the defaults (``cnn.training.defaults``).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import weakref

from cnn import backend, replica
from cnn.layers.node import has_variable_axis
from cnn.models.model import Gradients, Model, Sequential
from cnn.training import defaults, workers as data_parallel
from cnn.training.data_adapters import Batch
from cnn.training.inference import Outputs, run_inference


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


class LocalWorkers(OneProcess):
    """``count`` processes share every batch: this one takes the first slice, ``count - 1``
    worker processes the others; their gradients are added here in slice order."""

    def __init__(self, pool, sized_by_data: bool = False):
        self.pool = pool
        # True when the data makes its batches (a Sequence or generator), whose size the
        # pool learns from the batches: it grows at the first one larger than it holds.
        self.sized_by_data = sized_by_data

    def make_room(self, model, rows: int, purpose: str) -> None:
        """With ``sized_by_data``, restart the workers with room for batches of ``rows``
        when theirs is smaller."""
        pool = self.pool
        if self.sized_by_data and -(-rows // (pool.count + 1)) > pool.capacity:
            close_workers(model)
            self.pool = _pool(model, pool.count + 1, rows, pool.blas_threads, purpose,
                              pool.timeout)

    def compute_gradients(self, model, batch) -> Gradients:
        n = batch.rows
        self.make_room(model, n, "fit")
        pool = self.pool
        if pool.synchronized and n <= pool.count:
            # A batch too small to give every process a row (a small last batch): every
            # slice must take part in the sums, so this process computes it whole.
            return OneProcess.compute_gradients(self, model, batch)
        mine, *theirs = data_parallel.slices(n, pool.count + 1)
        # The workers' random layers start where this process's do (and draw for the whole
        # batch, cnn.replica), so that every process uses the masks one process would.
        pool.start_step(model, batch, theirs, n,
                        (backend.rng().bit_generator.state, model.layer_states()))
        # The moving statistics change in the forward pass: a failed step must leave them.
        buffers = [value for layer in model.layers for value in layer.buffers.values()]
        saved = [value.copy() for value in buffers] if pool.synchronized else []
        try:
            own, results = self._step_slices(model, batch, mine, n)
        except BaseException:
            for value, before in zip(buffers, saved):
                value[...] = before
            raise
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

    def _step_slices(self, model, batch, mine, n):
        """This process's slice ``mine`` of a training step the workers have started, and
        then the workers' answers (``WorkerPool.finish_step``), read even after an error."""
        pool = self.pool
        failed = False
        pool.begin_slice()
        try:
            # With batch statistics, the slices add up their sums (pool.allreduce_sum).
            with replica.replica_slice(n, 0, pool.allreduce_sum, pool.synchronized):
                own = model.compute_gradients(
                    [x[mine] for x in batch.x],
                    [None if y is None else y[mine] for y in batch.y],
                    None if batch.sample_weight is None else batch.sample_weight[mine], n)
        except BaseException as exc:
            failed = True
            pool.abandon_step(exc)  # no worker may wait for this slice's sums
            raise
        finally:
            results = pool.finish_step(failed)
        return own, results

    def run_inference(self, model, batch) -> Outputs:
        """The outputs and mean losses of ``batch``, its slices run by every process (in
        chunks of what the workers' shared memory holds), gathered in order."""
        self.make_room(model, batch.rows, "predict")
        step = self.pool.capacity * (self.pool.count + 1)
        if batch.rows <= step:
            return self._run_slices(model, batch)
        parts = [self._run_slices(model, _rows(batch, slice(start, start + step)))
                 for start in range(0, batch.rows, step)]
        return _joined(parts, [len(part.outputs[0]) for part in parts])

    def _run_slices(self, model, batch) -> Outputs:
        pool = self.pool
        mine, *theirs = data_parallel.slices(batch.rows, pool.count + 1)
        pool.start_inference(model, batch, theirs)
        try:
            own = run_inference(model, _rows(batch, mine))
        finally:
            results = pool.finish_step()  # read every answer, even after an error here
        parts = [own] + [Outputs(outputs, loss, output_losses)
                         for loss, output_losses, outputs, _ in results]
        return _joined(parts, [part.stop - part.start for part in [mine, *theirs]
                               if part.stop > part.start])

    def close(self) -> None:
        self.pool.close()


def _rows(batch, part: slice) -> Batch:
    """The rows ``part`` of ``batch``."""
    return Batch([x[part] for x in batch.x],
                 None if batch.y is None else [None if y is None else y[part] for y in batch.y],
                 None if batch.sample_weight is None else batch.sample_weight[part])


def _joined(parts: list, rows: list) -> Outputs:
    """One ``Outputs`` from those of consecutive slices of ``rows`` samples each: the outputs
    concatenated, the mean losses weighted by the slices' sizes."""
    n = sum(rows)
    outputs = [backend.xp.concatenate(chunks) if len(chunks) > 1 else chunks[0]
               for chunks in zip(*(part.outputs for part in parts))]
    if parts[0].loss is None:
        return Outputs(outputs, None, None)
    loss = sum(part.loss * count / n for part, count in zip(parts, rows))
    output_losses = [None if values[0] is None else
                     sum(value * count / n for value, count in zip(values, rows))
                     for values in zip(*(part.output_losses for part in parts))]
    return Outputs(outputs, loss, output_losses)


# The worker pool each model keeps between calls that need the same set-up.
_IDLE_POOLS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def refusal(model, purpose: str) -> str | None:
    """Why worker processes cannot run ``model`` for ``purpose`` (``"fit"``, or ``"evaluate"``
    / ``"predict"``), or None. Training needs every layer to treat samples independently
    (``Layer.samplewise``) or to add up its batch statistics over the slices
    (``replica_synchronized``: BatchNormalization, through ``cnn.replica``); inference only
    that no layer carries state from batch to batch (BatchNormalization uses its moving
    statistics there)."""
    if backend.backend_name() != "numpy":
        return f"worker processes need the numpy backend (not {backend.backend_name()!r})"
    if has_variable_axis([*model.input_shapes, *model.output_shapes]):
        return ("the worker processes take batches in shared arrays of fixed shapes, and the "
                "model has a variable-length (None) axis")
    for layer in model.layers:
        if purpose == "fit" and not (layer.samplewise or synchronized(layer)):
            return (f"layer {layer.describe()} does not treat samples independently (state "
                    "carried across samples, or batch statistics not summed over the slices)")
        if purpose != "fit" and not getattr(layer, "samplewise_in_inference", layer.samplewise):
            return f"layer {layer.describe()} carries its state from one batch to the next"
    return None


def synchronized(layer) -> bool:
    """True when ``layer`` looks across samples only through sums over the slices of a
    batch (``cnn.replica``), so that slices computed apart give the whole batch's step."""
    return bool(getattr(layer, "replica_synchronized", False))


def needs_synchronization(model) -> bool:
    """True when some layer of ``model`` adds up its batch statistics over the slices."""
    return any(not layer.samplewise and synchronized(layer) for layer in model.layers)


def default_refusal(model) -> str | None:
    """Why the default keeps ``model`` in one process although worker processes could run
    it when asked explicitly, or None."""
    if type(model) not in (Model, Sequential):
        return (f"the model is a {type(model).__name__}, a subclass of Model, and the worker "
                "processes rebuild the model from its config, without its own code")
    if data_parallel.START_METHOD != "fork":
        return (f"worker processes start with {data_parallel.START_METHOD!r} here, which "
                "needs an `if __name__ == \"__main__\":` guard in the script: pass workers=W")
    if multiprocessing.current_process().daemon:
        return "this process is a daemon, which may not start processes"
    return None


def choose(model, workers, rows: int | None, samples, purpose: str, timeout=None):
    """``(strategy, defaults.Plan)`` for a call (``purpose``: ``"fit"``, ``"evaluate"`` or
    ``"predict"``) with batches of up to ``rows`` samples (None: the data makes them, a
    Sequence or generator), ``samples`` in all (None: unknown). ``workers``: the user's
    count (None: ``CNN_WORKERS``, else the default's choice); ``timeout``: the seconds to
    wait for a worker (None: ``workers.step_timeout()``).

    Raises:
        ValueError: a bad count, or an explicit count > 1 for a model the worker processes
            cannot run.
    """
    requested = defaults.requested_workers(workers)
    if timeout is not None:
        data_parallel.step_timeout(timeout)  # checks it now, before any worker starts
    cores = defaults.usable_cores()
    if requested is not None:
        plan = defaults.Plan(requested, defaults.threads_per_process(requested), cores, rows,
                             automatic=False)
        if requested == 1:
            return OneProcess(), plan
        reason = refusal(model, purpose)
        if reason is not None:
            raise ValueError(f"workers={requested} cuts every batch into slices, but {reason}; "
                             f"{'train' if purpose == 'fit' else 'run'} it with workers=1")
        return LocalWorkers(_pool(model, requested, rows, plan.threads, purpose, timeout),
                            rows is None), plan

    count = defaults.automatic_processes(cores, rows, samples)
    if count == 1:  # the same data gives the same choice, whatever ran before
        reason = (f"{cores} core is usable" if cores == 1 else
                  f"batches of {rows} leave less than {defaults.MIN_SLICE_ROWS} samples a "
                  "process" if rows is not None and rows < 2 * defaults.MIN_SLICE_ROWS else
                  f"{samples} samples are too few to pay for starting worker processes")
    else:
        reason = refusal(model, purpose) or default_refusal(model)
    if reason is None:
        threads = defaults.threads_per_process(count)
        try:
            pool = _pool(model, count, rows, threads, purpose, timeout)
        except (data_parallel.WorkerError, OSError) as exc:
            reason = f"the worker processes could not start ({str(exc).splitlines()[0]})"
        else:
            return (LocalWorkers(pool, rows is None),
                    defaults.Plan(count, threads, cores, rows, True))
    return OneProcess(), defaults.Plan(1, defaults.threads_per_process(1), cores, rows, True,
                                       reason)


def _pool(model, processes: int, rows: int, threads: int, purpose: str, timeout):
    """The model's worker pool for ``processes`` processes and batches of ``rows`` (None:
    ``defaults.DATA_BATCH_ROWS`` at first): the idle one when it fits (training: the same
    batch capacity; inference: any), else a new one."""
    capacity = -(-(rows or defaults.DATA_BATCH_ROWS) // processes)
    compiled = [None if loss is None else loss.get_config() for loss in model.output_losses]
    key = (processes, threads, repr(model.get_config()), repr(compiled),
           repr(model.loss_weights))
    pool = _IDLE_POOLS.get(model)
    if pool is not None and (pool.key != key or not pool.alive()
                             or (purpose == "fit" and pool.capacity != capacity)):
        close_workers(model)
        pool = None
    if pool is None:
        pool = data_parallel.WorkerPool(model, processes - 1, capacity, threads, key, timeout,
                                        needs_synchronization(model))
        _IDLE_POOLS[model] = pool
        weakref.finalize(model, pool.close)  # with the model, or at the program's exit
    pool.timeout = timeout
    return pool


def idle_pool(model):
    """The worker pool ``model`` keeps from its last call on worker processes, or None."""
    return _IDLE_POOLS.get(model)


def close_workers(model) -> None:
    """End the worker processes that ``fit(workers=...)`` keeps for ``model``."""
    pool = _IDLE_POOLS.pop(model, None)
    if pool is not None:
        pool.close()
