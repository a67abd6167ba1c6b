"""Data-parallel training and inference on the cores of one machine: ``fit(..., workers=W)``,
and by default (``cnn.training.defaults``).

Each batch is cut into W contiguous slices. The calling process trains on the first slice
and W - 1 worker processes on the others, each with its own copy of the model; the gradients
are added up in slice order and the caller's optimizer takes one step, so the step is the
one the whole batch would give (up to the order of float additions). One step:

1. the caller writes the current weights and each worker's slice (inputs, targets, sample
   weights) into shared memory and sends the worker ``("step", rows, batch size, first row,
   ...)`` with the caller's generator state and its layers' generator states;
2. everybody runs forward and backward on its slice inside ``cnn.replica.replica_slice``,
   the loss divided by the whole batch's size, so that the slices' gradients add up to the
   batch's; random layers (Dropout, the augmentation layers) start from the caller's
   generator states and draw for the whole batch, keeping their slice's rows, so that the
   masks are those of one process; layers with batch statistics (BatchNormalization) add up
   their sums over the slices with ``WorkerPool.allreduce_sum``
   (``cnn.training.slice_allreduce``: in slice order, so bit-identical in every process);
3. each worker leaves its gradients and outputs in shared memory and answers with its part
   of the loss; the caller adds the gradients and updates the weights.

Inference (``evaluate``, ``predict``, validation) goes the same way with an ``("infer", rows,
...)`` message: each process runs its slice forward with ``training=False`` and its mean
losses, the workers leave their outputs in shared memory, and the caller gathers them in
slice order.

Why processes and not threads: NumPy releases the GIL inside its kernels, but the Python
around them does not, and at the seed network's batch of 32 two threads were slower than
one (``benchmarks/RESULTS.md``). Processes pay a copy of the weights per step (0.8 MB for the
seed network) and two pipe messages.

Processes start with ``fork`` where the platform has it (Linux), else ``spawn``; with
``spawn`` the script that calls ``fit`` must keep its training under
``if __name__ == "__main__":``, as for any Python multiprocessing. The workers stay up
between ``fit`` calls that need the same set-up, and end with the model
(``Model.close_workers()``), or with the program.

Faults: every wait for a worker watches its pipe and its process together
(``multiprocessing.connection.wait``) with a timeout (``step_timeout()``: ``fit(worker_timeout=...)``,
or else the environment variable ``CNN_WORKER_TIMEOUT``, or else ``STEP_TIMEOUT`` seconds), so a worker that dies, is
killed or stops (SIGSTOP) at any moment gives a :class:`WorkerError` naming it (number and
pid) within that time, never a hang; the caller then ends the pool (``fit`` does) and the
next ``fit`` starts fresh workers. A worker whose caller dies (its parent process changes,
or the pipe closes) unlinks the shared memory and exits.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
import traceback
from multiprocessing import connection as mp_connection
from multiprocessing import shared_memory

import numpy as np

from cnn import backend, replica
from cnn.models.model import Model
from cnn.training.data_adapters import Batch
from cnn.training.errors import NonFiniteLossError
from cnn.training.inference import run_inference
from cnn.training.slice_allreduce import SharedSlots, StepAborted
from cnn.utils import checks

_ALIGN = 64  # bytes; every shared array starts on a cache line
# How worker processes start: "fork" is fast and needs no guard in the user's script.
START_METHOD = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
# Seconds the caller waits for a worker's answer (to a step, or at start-up) before it gives
# up on it; the environment variable CNN_WORKER_TIMEOUT overrides it.
STEP_TIMEOUT = 60.0
# How often (seconds) an idle worker checks that its caller is still alive.
PARENT_CHECK_INTERVAL = 1.0


class WorkerError(RuntimeError):
    """A worker process died, stopped answering or failed; the message names it."""


def step_timeout(seconds=None) -> float:
    """The seconds to wait for a worker: ``seconds`` (``fit(worker_timeout=...)``) if given,
    else the environment variable ``CNN_WORKER_TIMEOUT`` if set, else ``STEP_TIMEOUT``."""
    if seconds is not None:
        return checks.positive("worker_timeout", seconds)
    value = os.environ.get("CNN_WORKER_TIMEOUT")
    if value is None:
        return float(STEP_TIMEOUT)
    return checks.positive("CNN_WORKER_TIMEOUT", value)


class SharedArrays:
    """Named NumPy arrays laid out in one block of shared memory.

    ``spec`` maps names to ``(shape, dtype)``. The creating process owns the block
    (``close(unlink=True)``); another process attaches with ``SharedArrays(spec, name=...)``.
    """

    def __init__(self, spec: dict, name: str | None = None):
        self.spec = {key: (tuple(shape), np.dtype(dtype).str) for key, (shape, dtype) in spec.items()}
        offsets, size = {}, 0
        for key, (shape, dtype) in self.spec.items():
            offsets[key] = size
            nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
            size += -(-nbytes // _ALIGN) * _ALIGN
        if name is None:
            self.block = shared_memory.SharedMemory(create=True, size=max(size, _ALIGN))
        else:
            # Attaching registers the name with the resource tracker that the creator
            # shares with its children: a set, so the creator's unlink clears it.
            self.block = shared_memory.SharedMemory(name=name)
        self.arrays = {
            key: np.ndarray(shape, dtype=dtype, buffer=self.block.buf, offset=offsets[key])
            for key, (shape, dtype) in self.spec.items()
        }

    @property
    def name(self) -> str:
        return self.block.name

    def __getitem__(self, key):
        return self.arrays[key]

    def close(self, unlink: bool = False) -> None:
        self.arrays = {}
        try:
            self.block.close()
        except BufferError:  # a view is still in use somewhere; the mapping goes with it
            pass
        if unlink:
            try:
                self.block.unlink()
            except FileNotFoundError:  # already unlinked (by a worker whose caller died)
                pass


def slices(n: int, count: int) -> list[slice]:
    """``count`` contiguous slices of ``range(n)``, sizes differing by at most one, the larger
    ones first (the caller's slice is never smaller than a worker's)."""
    size, extra = divmod(n, count)
    bounds = [0]
    for i in range(count):
        bounds.append(bounds[-1] + size + (1 if i < extra else 0))
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


class WorkerPool:
    """``count`` worker processes training (or running forward on) slices of up to
    ``capacity`` samples of ``model``'s batches with ``blas_threads`` BLAS threads each (see
    the module docstring). ``key``
    says which set-up the pool serves; ``timeout``: the seconds to wait for a worker (None:
    ``step_timeout()``, read at every wait). ``synchronized``: the slices of a training step
    add up their layers' batch statistics (``allreduce_sum``, ``cnn.replica``) among the
    caller and the workers (``cnn.training.slice_allreduce``)."""

    def __init__(self, model, count: int, capacity: int, blas_threads: int, key,
                 timeout=None, synchronized: bool = False):
        self.count = count
        self.synchronized = synchronized
        self.fault = None  # the WorkerError that a wait inside allreduce_sum gave up with
        self.capacity = capacity
        self.timeout = timeout
        self.blas_threads = blas_threads
        self.key = key
        self.broken = False  # a worker died or stopped answering: close() kills at once
        self.gradient_count = len(model.trainable_weights)
        dtype = np.dtype(model.dtype)
        shared_weights = SharedArrays({f"w{i}": (w.shape, w.dtype)
                                       for i, w in enumerate(model_weights(model))})
        self.input_count = len(model.inputs)
        self.output_count = len(model.outputs)
        io_spec = {
            **{f"x{i}": ((capacity, *shape), dtype) for i, shape in enumerate(model.input_shapes)},
            **{f"t{k}": ((capacity, *shape), dtype) for k, shape in enumerate(model.output_shapes)},
            "sample_weights": ((capacity,), dtype),
            **{f"o{k}": ((capacity, *shape), dtype) for k, shape in enumerate(model.output_shapes)},
            **{f"g{i}": (g.shape, g.dtype) for i, g in enumerate(model.trainable_weights)},
        }
        self.shared_weights = shared_weights
        self.io = [SharedArrays(io_spec) for _ in range(count)]
        context = multiprocessing.get_context(START_METHOD)
        self.slots = (SharedSlots(count + 1, allreduce_elements(model), dtype, context)
                      if synchronized else None)
        self.participant = (self.slots.participant(0, self.watch_allreduce)
                            if synchronized else None)
        setup = {
            "config": model.get_config(),
            "losses": [None if loss is None else loss.get_config() for loss in model.output_losses],
            "loss_weights": list(model.loss_weights),
            "blas_threads": blas_threads,
            "weights": (shared_weights.name, shared_weights.spec),
            "parent": os.getpid(),
        }
        self.connections, self.processes = [], []
        try:
            for index, io in enumerate(self.io):
                mine, theirs = context.Pipe()
                arguments = (theirs, setup, (io.name, io.spec), (self.slots, index + 1))
                process = context.Process(target=_serve, args=arguments, daemon=True,
                                          name="cnn-training-worker")
                process.start()
                theirs.close()
                self.connections.append(mine)
                self.processes.append(process)
            limit = step_timeout(self.timeout)
            deadline = time.monotonic() + limit
            for index in range(count):
                self._receive(index, deadline, limit)  # "ready", or why the worker could not start
        except BaseException:
            self.close(force=True)
            raise
        self._pending: list[int] = []

    # -- one step ---------------------------------------------------------------------------
    def start_step(self, model, batch, worker_slices, n, generator_states) -> None:
        """Hand each worker its slice of ``batch`` (``worker_slices``, one per worker; an
        empty slice leaves that worker out of this step) to train on. ``generator_states``:
        the caller's generator state and its layers' states (``Model.layer_states()``) at
        the start of the step, for the workers' random layers."""
        if self.synchronized:
            self.participant.reset()
        self._hand_out(model, batch, worker_slices, lambda part, weighted: (
            "step", part.stop - part.start, n, part.start, weighted, generator_states))

    def start_inference(self, model, batch, worker_slices) -> None:
        """Hand each worker its slice of ``batch`` to run forward on (``training=False``),
        with its losses when ``batch`` has targets; the answers come with ``finish_step``,
        each loss the mean over the worker's slice."""
        with_targets = None if batch.y is None else [y is not None for y in batch.y]
        self._hand_out(model, batch, worker_slices, lambda part, weighted: (
            "infer", part.stop - part.start, with_targets, weighted))

    def _hand_out(self, model, batch, worker_slices, message_for) -> None:
        """Copy the weights and each worker's slice into shared memory and send each worker
        ``message_for(slice, weighted)``."""
        for live, shared in zip(model_weights(model), self.shared_weights.arrays.values()):
            np.copyto(shared, live)
        self._pending = []
        weights = batch.sample_weight
        for index, part in enumerate(worker_slices):
            rows = part.stop - part.start
            if rows == 0:
                continue
            if rows > self.capacity:
                raise ValueError(f"a slice of {rows} samples does not fit the worker's "
                                 f"{self.capacity}")
            io = self.io[index]
            for i, x in enumerate(batch.x):
                io[f"x{i}"][:rows] = backend.to_numpy(x[part])
            for k, target in enumerate(batch.y or ()):
                if target is not None:
                    io[f"t{k}"][:rows] = backend.to_numpy(target[part])
            if weights is not None:
                io["sample_weights"][:rows] = backend.to_numpy(weights[part])
            try:
                self.connections[index].send(message_for(part, weights is not None))
            except OSError:  # the worker closed its end: it is gone or going
                self._pending = []
                raise self._death(index) from None
            self._pending.append(index)

    def finish_step(self, caller_failed: bool = False) -> list[tuple]:
        """Wait for the workers of this step: ``(loss part, output loss parts, outputs,
        gradients)`` for each, in slice order, as views of shared memory valid until the
        next step. ``caller_failed``: the caller's own slice raised (and reports it), so
        workers that left the step for that reason are no error here."""
        pending, self._pending = self._pending, []
        if self.fault is not None:  # a worker was lost inside allreduce_sum: wait no more
            raise self.fault
        results, error, aborted = [], None, False
        limit = step_timeout(self.timeout)
        deadline = time.monotonic() + limit
        for index in pending:  # every answer is read, so that the next step starts clean
            try:
                answer = self._receive(index, deadline, limit)
            except Exception as exc:  # noqa: BLE001 (raised below, once all have answered)
                error = error or exc
                continue
            if answer is None:  # left the step because another process failed
                aborted = True
                continue
            loss, output_losses, rows = answer
            io = self.io[index]
            grads = [io[f"g{i}"] for i in range(self.gradient_count)]
            outputs = [io[f"o{k}"][:rows] for k in range(self.output_count)]
            results.append((loss, output_losses, outputs, grads))
        if error is not None:
            raise error
        if aborted and not caller_failed:
            raise WorkerError("a training worker left the step because another process of "
                              "the step failed")
        return results

    # -- the sums of a training step's slices (cnn.replica) -------------------------------
    def allreduce_sum(self, buffer):
        """``buffer`` summed over the slices of the running step, in place (the caller's
        side of ``cnn.training.slice_allreduce``)."""
        return self.participant.allreduce_sum(buffer)

    def begin_slice(self) -> None:
        """The caller starts computing its slice of a step."""
        if self.synchronized:
            self.participant.begin_step()

    def abandon_step(self, error: BaseException) -> None:
        """The caller's slice failed with ``error``: the workers waiting in
        ``allreduce_sum`` leave the step (a failure that came from them is theirs to report)."""
        if self.synchronized and not isinstance(error, StepAborted):
            self.participant.abort()

    def watch_allreduce(self, missing, waited: float) -> None:
        """While the caller waits in ``allreduce_sum`` for the slices ``missing``: the
        WorkerError of a worker that died, or of one missing after the step timeout."""
        for index, process in enumerate(self.processes):
            if process.exitcode is not None:
                self.fault = self._death(index)
                raise self.fault
        limit = step_timeout(self.timeout)
        if waited > limit:
            self.broken = True
            self.fault = self._silence(missing[0] - 1 if missing else 0, limit)
            raise self.fault

    def _receive(self, index, deadline, limit):
        """Worker ``index``'s next answer, waiting until ``deadline`` (``time.monotonic()``;
        ``limit`` seconds after the wait began) on its pipe and its process at once."""
        connection, process = self.connections[index], self.processes[index]
        timeout = max(0.0, deadline - time.monotonic())
        if not mp_connection.wait([connection, process.sentinel], timeout):
            self.broken = True
            raise self._silence(index, limit)
        if not connection.poll():
            raise self._death(index)
        try:
            kind, payload = connection.recv()
        except (EOFError, OSError):
            raise self._death(index) from None
        if kind == "non-finite":
            raise NonFiniteLossError(*payload)
        if kind == "aborted":
            return None
        if kind == "error":
            raise WorkerError(f"training worker {index + 1} (pid {process.pid}) failed:\n"
                              f"{payload}")
        return payload

    def _silence(self, index, limit) -> WorkerError:
        process = self.processes[index]
        return WorkerError(
            f"training worker {index + 1} (pid {process.pid}) did not answer within "
            f"{limit:.3g} s (stopped, stuck or overloaded; set CNN_WORKER_TIMEOUT to "
            "wait longer); its processes are ended and the weights are those after the "
            "last good step")

    def _death(self, index) -> WorkerError:
        self.broken = True
        process = self.processes[index]
        process.join(timeout=1)
        how = (f"killed by signal {-process.exitcode}" if process.exitcode and
               process.exitcode < 0 else f"exit code {process.exitcode}")
        return WorkerError(f"training worker {index + 1} (pid {process.pid}) died ({how}); "
                           "the weights are those after the last good step")

    # -- lifetime ---------------------------------------------------------------------------
    def alive(self) -> bool:
        return bool(self.processes) and all(p.is_alive() for p in self.processes)

    def close(self, force: bool = False) -> None:
        """Stop the workers and free the shared memory (idempotent). ``force``: kill them at
        once (after a fault, when one may be stopped or mid-step)."""
        force = force or self.broken
        if not force:
            for connection in self.connections:
                try:
                    connection.send(("stop",))
                except (OSError, ValueError):
                    pass
            for process in self.processes:
                process.join(timeout=5)
        for process in self.processes:
            if process.is_alive():
                process.kill()  # SIGKILL also ends a stopped (SIGSTOP) process
                process.join(timeout=5)
        for connection in self.connections:
            try:
                connection.close()
            except OSError:
                pass
        self.connections, self.processes = [], []
        for block in [*self.io, self.shared_weights]:
            if block is not None:
                block.close(unlink=True)
        self.io, self.shared_weights = [], None

    def shared_memory_names(self) -> list[str]:
        """The names of the pool's shared memory blocks (under /dev/shm on Linux)."""
        blocks = [*self.io, self.shared_weights]
        return [block.name for block in blocks if block is not None]


def model_weights(model) -> list:
    """Every parameter and buffer of ``model``, layer by layer (the order the pool shares)."""
    return [store[key] for store, key in _weight_slots(model)]


def allreduce_elements(model) -> int:
    """The most values one ``allreduce_sum`` of ``model``'s layers may carry: a layer's
    sums are per channel (BatchNormalization: two per channel, or one per channel and the
    count), so a layer's parameters and buffers together, plus one, bound them."""
    sizes = [sum(int(np.size(value)) for store in (layer.params, layer.buffers)
                 for value in store.values()) for layer in model.layers]
    return max(sizes, default=0) + 1


def _serve(connection, setup, io_spec, synchronization) -> None:
    """A worker process: build the model, then answer steps until told to stop.
    ``synchronization``: ``(SharedSlots, this worker's slice number)``, the slots being
    None when the steps' slices do not add up their statistics."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the caller's to handle
    try:
        backend.set_num_threads(setup["blas_threads"])
        model = Model.from_config(setup["config"])
        if setup["losses"]:  # a model that was never compiled only predicts
            model.compile(optimizer="sgd", loss=setup["losses"],
                          metrics=[[] for _ in setup["losses"]],
                          loss_weights=setup["loss_weights"])
        weights = SharedArrays(setup["weights"][1], name=setup["weights"][0])
        io = SharedArrays(io_spec[1], name=io_spec[0])
        for value, (store, key) in zip(weights.arrays.values(), _weight_slots(model)):
            store[key] = value  # the layers read the caller's weights where it writes them
        gradients = [io[key] for key in io.arrays if key.startswith("g")]
        inputs = [io[f"x{i}"] for i in range(len(model.inputs))]
        targets = [io[f"t{k}"] for k in range(len(model.outputs))]
        outputs = [io[f"o{k}"] for k in range(len(model.outputs))]
    except BaseException:
        connection.send(("error", traceback.format_exc()))
        connection.close()
        return
    slots, slice_index = synchronization
    participant = (None if slots is None else
                   slots.participant(slice_index, _caller_watch(setup["parent"])))
    connection.send(("ready", None))
    blocks = (weights, io)
    while True:
        message = _next_message(connection, setup["parent"])
        if message is None:  # the caller is gone: nobody else will free the shared memory
            _unlink(blocks)
            break
        if message[0] == "stop":
            break
        if message[0] == "infer":
            reply = _infer(model, message, inputs, targets, io["sample_weights"], outputs)
        else:
            reply = _train(model, message, inputs, targets, io["sample_weights"], outputs,
                           gradients, participant)
        try:
            connection.send(reply)
        except OSError:  # the caller died during the step
            _unlink(blocks)
            break
    connection.close()


def _train(model, message, inputs, targets, sample_weights, outputs, gradients,
           participant) -> tuple:
    """A worker's part of a training step: its slice's gradients and outputs into shared
    memory; the reply to send. ``participant``: its side of the step's ``allreduce_sum``
    (``cnn.training.slice_allreduce``), or None."""
    try:
        _, rows, n, start, weighted, (generator_state, layer_states) = message
        model.set_layer_states(layer_states)
        if participant is None:
            synchronized = replica.replica_slice(n, start)
        else:
            participant.begin_step()
            synchronized = replica.replica_slice(n, start, participant.allreduce_sum,
                                                 synchronized=True)
        with backend.using_rng(generator_from(generator_state)), synchronized:
            result = model.compute_gradients(
                [x[:rows] for x in inputs],
                [None if loss is None else t[:rows]
                 for t, loss in zip(targets, model.output_losses)],
                sample_weights[:rows] if weighted else None, n)
        for target, grad in zip(gradients, result.gradients):
            np.copyto(target, grad)
        for target, output in zip(outputs, result.outputs):
            target[:rows] = output
        return ("done", (result.loss, result.output_losses, rows))
    except StepAborted:
        return ("aborted", None)
    except BaseException as exc:
        if participant is not None:
            participant.abort()  # the others must not wait for this slice's sums
        if isinstance(exc, NonFiniteLossError):
            return ("non-finite", (str(exc), exc.loss))
        return ("error", traceback.format_exc())


def _caller_watch(parent: int):
    """A worker's watch while it waits in ``allreduce_sum``: give up once the caller is
    gone (this process handed to another parent)."""
    def watch(missing, waited):
        if os.getppid() != parent:
            raise WorkerError("the caller of this training worker is gone")
    return watch


def _infer(model, message, inputs, targets, sample_weights, outputs) -> tuple:
    """A worker's part of an inference batch: its slice's outputs into shared memory; the
    reply (the slice's mean losses) to send."""
    try:
        _, rows, with_targets, weighted = message
        y = None if with_targets is None else [t[:rows] if wanted else None
                                               for t, wanted in zip(targets, with_targets)]
        result = run_inference(model, Batch([x[:rows] for x in inputs], y,
                                            sample_weights[:rows] if weighted else None))
        for target, output in zip(outputs, result.outputs):
            target[:rows] = output
        return ("done", (result.loss, result.output_losses, rows))
    except BaseException:
        return ("error", traceback.format_exc())


def _next_message(connection, parent: int):
    """The caller's next message, or None once the caller has died (the pipe closed, or
    this process was handed to another parent)."""
    while True:
        try:
            if connection.poll(PARENT_CHECK_INTERVAL):
                return connection.recv()
        except (EOFError, OSError):
            return None
        if os.getppid() != parent:
            return None


def _unlink(blocks) -> None:
    for block in blocks:
        block.close(unlink=True)


def generator_from(state: dict) -> np.random.Generator:
    """A NumPy generator at ``state`` (a ``bit_generator.state`` dict)."""
    bit_generator = getattr(np.random, state["bit_generator"])()
    bit_generator.state = state
    return np.random.Generator(bit_generator)


def _weight_slots(model):
    """``(dict, key)`` of every parameter and buffer, in ``model_weights`` order."""
    return [(store, key) for layer in model.layers
            for store in (layer.params, layer.buffers) for key in store]
