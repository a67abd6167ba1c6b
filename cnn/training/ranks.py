"""The MPI strategy: every rank computes a slice of every global batch.

Semantics (those of Horovod and ChainerMN, made exact):

* at the start of ``fit`` rank 0 broadcasts the weights, the buffers (moving statistics),
  the optimizer's state and the training seed, so every rank starts from rank 0's model;
* every rank reads the same data and walks the same (identically shuffled) global batches,
  and computes rows ``slices(n, size)[rank]`` of each: the batches are split, not the data
  set, so every rank takes the same steps and an uneven last batch cannot deadlock;
* one flat allreduce per step carries the gradients, the loss sums and the outputs (each
  rank writes its rows of a zeroed global output buffer), so every rank sees the global
  batch's loss, metrics and gradients and takes the same optimizer step;
* layers that look across samples see the global batch (``cnn.replica``):
  BatchNormalization sums its statistics over all ranks, Dropout draws its masks for the
  global batch and keeps its rows. N ranks therefore take the step one process takes, up
  to the order of float additions;
* ``evaluate``, ``predict`` and validation split each batch the same way and add up;
* a batch with fewer samples than there are ranks (a small last batch) is computed whole
  by every rank, which then agree without communicating.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np

from cnn import backend, replica
from cnn.distributed import FlatBuffer
from cnn.models.model import Gradients
from cnn.training.data_adapters import Batch
from cnn.training.strategy import OneProcess, Outputs, run_inference
from cnn.training.workers import slices


class MPIRanks:
    """The ranks of ``world`` (a ``cnn.distributed`` world of more than one process)."""

    def __init__(self, world):
        self.world = world
        self._buffers: dict = {}

    # -- set-up -----------------------------------------------------------------------------
    def scope(self):
        return contextlib.nullcontext(self)

    def prepare(self, model) -> None:
        self.synchronize(model)

    def synchronize(self, model) -> None:
        """Give every rank rank 0's weights, buffers, optimizer state and training seed."""
        world = self.world
        chief = world.rank == 0
        weights = world.broadcast_object(model.get_weights() if chief else None)
        model.set_weights(weights)
        state = world.broadcast_object(model.optimizer.get_state() if chief else None)
        if len(state) > 1:  # slots exist on rank 0 (a resumed or continued model)
            model.optimizer.set_state(state, model.trainable_weights)
        else:
            model.optimizer.iterations = state["iterations"]
        model.train_seed = world.broadcast_object(model.train_seed if chief else None)

    def close(self) -> None:
        self._buffers.clear()

    # -- steps ------------------------------------------------------------------------------
    def own_rows(self, n: int) -> slice:
        return slices(n, self.world.size)[self.world.rank]

    def compute_gradients(self, model, batch: Batch) -> Gradients:
        n = batch.rows
        if n < self.world.size:  # a batch too small to give every rank a row
            return OneProcess().compute_gradients(model, batch)
        rows = self.own_rows(n)
        local = _rows(batch, rows)
        with replica.replica_slice(n, rows.start, self.world.allreduce_sum, synchronized=True):
            try:
                own = model.compute_gradients(local.x, local.y, local.sample_weight, n)
            except FloatingPointError:
                # A NaN on this rank's slice: say so through the sum (every rank then sees a
                # non-finite loss and stops at the same step) instead of leaving the others
                # waiting in the allreduce.
                own = None
        gradients = model.gradients()
        flat = self._buffer("train", model, n, [g.shape for g in gradients])
        views = flat.views()
        grad_views, output_views = views[:len(gradients)], views[len(gradients):]
        flat.buffer[...] = 0
        if own is None:
            flat.scalars[0] = math.nan
        else:
            for view, grad in zip(grad_views, own.gradients):
                view[...] = grad
            for view, output in zip(output_views, own.outputs):
                view[rows] = output
            flat.scalars[...] = [own.loss, *[0.0 if v is None else v for v in own.output_losses]]
        self.world.allreduce_sum(flat.buffer)
        for grad, view in zip(gradients, grad_views):
            grad[...] = view
        loss, *output_losses = (float(v) for v in flat.scalars)
        output_losses = [None if kind is None else value
                         for kind, value in zip(model.output_losses, output_losses)]
        outputs = [backend.asarray(view.copy()) for view in output_views]
        return Gradients(loss, output_losses, outputs, gradients)

    def run_inference(self, model, batch: Batch) -> Outputs:
        n = batch.rows
        if n < self.world.size:
            return run_inference(model, batch)
        rows = self.own_rows(n)
        local = _rows(batch, rows)
        with replica.replica_slice(n, rows.start, self.world.allreduce_sum, synchronized=True):
            own = run_inference(model, local)
        flat = self._buffer("infer", model, n, [])
        flat.buffer[...] = 0
        with_loss = batch.y is not None
        for view, output in zip(flat.views(), own.outputs):
            view[rows] = output
        share = (rows.stop - rows.start) / n
        if with_loss:
            flat.scalars[...] = [own.loss * share,
                                 *[0.0 if v is None else v * share for v in own.output_losses]]
        self.world.allreduce_sum(flat.buffer)
        outputs = [backend.asarray(view.copy()) for view in flat.views()]
        if not with_loss:
            return Outputs(outputs, None, None)
        loss, *output_losses = (float(v) for v in flat.scalars)
        return Outputs(outputs, loss, [None if kind is None else value for kind, value in
                                       zip(model.output_losses, output_losses)])

    def _buffer(self, purpose, model, n, gradient_shapes) -> FlatBuffer:
        """The flat buffer of one step: gradients, outputs of the global batch, losses."""
        output_shapes = [(n, *shape) for shape in model.output_shapes]
        key = (purpose, n, tuple(map(tuple, gradient_shapes)), tuple(output_shapes))
        if key not in self._buffers:
            extra = 1 + len(model.output_losses)
            self._buffers[key] = FlatBuffer([*gradient_shapes, *output_shapes],
                                            np.dtype(model.dtype), extra)
        return self._buffers[key]


def _rows(batch: Batch, rows: slice) -> Batch:
    return Batch([x[rows] for x in batch.x],
                 None if batch.y is None else [None if y is None else y[rows] for y in batch.y],
                 None if batch.sample_weight is None else batch.sample_weight[rows])
