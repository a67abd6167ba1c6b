"""Data-parallel training on the cores of one machine: ``fit(..., workers=W)``.

Each batch is cut into W contiguous slices. The calling process trains on the first slice
and W - 1 worker processes on the others, each with its own copy of the model; the gradients
are added up in slice order and the caller's optimizer takes one step, so the step is the
one the whole batch would give (up to the order of float additions). One step:

1. the caller writes the current weights and each worker's slice (inputs, targets, sample
   weights) into shared memory and sends the worker ``("step", rows, batch size, seed)``;
2. everybody runs forward and backward on its slice, the loss divided by the whole batch's
   size, so that the slices' gradients add up to the batch's;
3. each worker leaves its gradients and outputs in shared memory and answers with its part
   of the loss; the caller adds the gradients and updates the weights.

Why processes and not threads: NumPy releases the GIL inside its kernels, but the Python
around them does not, and at the seed network's batch of 32 two threads were slower than
one (``benchmarks/RESULTS.md``). Processes pay a copy of the weights per step (0.8 MB for the
seed network) and two pipe messages.

Processes start with ``fork`` where the platform has it (Linux), else ``spawn``; with
``spawn`` the script that calls ``fit`` must keep its training under
``if __name__ == "__main__":``, as for any Python multiprocessing. The workers stay up
between ``fit`` calls that need the same set-up, and end with the model
(``Model.close_workers()``), or with the program.
"""

from __future__ import annotations

import multiprocessing
import signal
import traceback
from multiprocessing import shared_memory

import numpy as np

from cnn import backend
from cnn.models.model import Model
from cnn.training.errors import NonFiniteLossError

_ALIGN = 64  # bytes; every shared array starts on a cache line
# How worker processes start: "fork" is fast and needs no guard in the user's script.
START_METHOD = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"


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
            self.block.unlink()


def slices(n: int, count: int) -> list[slice]:
    """``count`` contiguous slices of ``range(n)``, sizes differing by at most one, the larger
    ones first (the caller's slice is never smaller than a worker's)."""
    size, extra = divmod(n, count)
    bounds = [0]
    for i in range(count):
        bounds.append(bounds[-1] + size + (1 if i < extra else 0))
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


class WorkerPool:
    """``count`` worker processes training slices of batches of up to ``capacity`` samples
    of ``model`` with ``blas_threads`` BLAS threads each (see the module docstring). ``key``
    says which set-up the pool serves."""

    def __init__(self, model, count: int, capacity: int, blas_threads: int, key):
        self.count = count
        self.blas_threads = blas_threads
        self.key = key
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
        setup = {
            "config": model.get_config(),
            "losses": [None if loss is None else loss.get_config() for loss in model.output_losses],
            "loss_weights": list(model.loss_weights),
            "blas_threads": blas_threads,
            "weights": (shared_weights.name, shared_weights.spec),
        }
        self.connections, self.processes = [], []
        try:
            for io in self.io:
                mine, theirs = context.Pipe()
                process = context.Process(target=_serve, args=(theirs, setup, (io.name, io.spec)),
                                          daemon=True, name="cnn-training-worker")
                process.start()
                theirs.close()
                self.connections.append(mine)
                self.processes.append(process)
            for index in range(count):
                self._receive(index)  # "ready", or the reason the worker could not start
        except BaseException:
            self.close()
            raise
        self._pending: list[int] = []

    # -- one step ---------------------------------------------------------------------------
    def start_step(self, model, batch, worker_slices, n, seed) -> None:
        """Hand each worker its slice of ``batch`` (``worker_slices``, one per worker; an
        empty slice leaves that worker out of this step)."""
        for live, shared in zip(model_weights(model), self.shared_weights.arrays.values()):
            np.copyto(shared, live)
        self._pending = []
        weights = batch.sample_weight
        for index, part in enumerate(worker_slices):
            rows = part.stop - part.start
            if rows == 0:
                continue
            io = self.io[index]
            for i, x in enumerate(batch.x):
                io[f"x{i}"][:rows] = backend.to_numpy(x[part])
            for k, target in enumerate(batch.y):
                if target is not None:
                    io[f"t{k}"][:rows] = backend.to_numpy(target[part])
            if weights is not None:
                io["sample_weights"][:rows] = backend.to_numpy(weights[part])
            self.connections[index].send(("step", rows, n, weights is not None, seed + index))
            self._pending.append(index)

    def finish_step(self) -> list[tuple]:
        """Wait for the workers of this step: ``(loss part, output loss parts, outputs,
        gradients)`` for each, in slice order, as views of shared memory valid until the
        next step."""
        pending, self._pending = self._pending, []
        results, error = [], None
        for index in pending:  # every answer is read, so that the next step starts clean
            try:
                loss, output_losses, rows = self._receive(index)
            except Exception as exc:  # noqa: BLE001 (raised below, once all have answered)
                error = error or exc
                continue
            io = self.io[index]
            grads = [io[f"g{i}"] for i in range(self.gradient_count)]
            outputs = [io[f"o{k}"][:rows] for k in range(self.output_count)]
            results.append((loss, output_losses, outputs, grads))
        if error is not None:
            raise error
        return results

    def _receive(self, index):
        connection, process = self.connections[index], self.processes[index]
        try:
            kind, payload = connection.recv()
        except (EOFError, OSError):
            process.join(timeout=1)
            raise RuntimeError(f"training worker {index + 1} (pid {process.pid}) died "
                               f"(exit code {process.exitcode})") from None
        if kind == "non-finite":
            raise NonFiniteLossError(*payload)
        if kind == "error":
            raise RuntimeError(f"training worker {index + 1} failed:\n{payload}")
        return payload

    # -- lifetime ---------------------------------------------------------------------------
    def alive(self) -> bool:
        return bool(self.processes) and all(p.is_alive() for p in self.processes)

    def close(self) -> None:
        """Stop the workers and free the shared memory (idempotent)."""
        for connection in self.connections:
            try:
                connection.send(("stop",))
            except (OSError, ValueError):
                pass
        for process in self.processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
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


def model_weights(model) -> list:
    """Every parameter and buffer of ``model``, layer by layer (the order the pool shares)."""
    return [store[key] for store, key in _weight_slots(model)]


def _serve(connection, setup, io_spec) -> None:
    """A worker process: build the model, then answer steps until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the caller's to handle
    try:
        backend.set_num_threads(setup["blas_threads"])
        model = Model.from_config(setup["config"])
        model.compile(optimizer="sgd", loss=setup["losses"], metrics=[[] for _ in setup["losses"]],
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
    connection.send(("ready", None))
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            break
        if message[0] == "stop":
            break
        try:
            _, rows, n, weighted, seed = message
            with backend.using_rng(np.random.default_rng(seed)):
                result = model.compute_gradients(
                    [x[:rows] for x in inputs],
                    [None if loss is None else t[:rows]
                     for t, loss in zip(targets, model.output_losses)],
                    io["sample_weights"][:rows] if weighted else None, n)
            for target, grad in zip(gradients, result.gradients):
                np.copyto(target, grad)
            for target, output in zip(outputs, result.outputs):
                target[:rows] = output
            connection.send(("done", (result.loss, result.output_losses, rows)))
        except NonFiniteLossError as exc:
            connection.send(("non-finite", (str(exc), exc.loss)))
        except BaseException:
            connection.send(("error", traceback.format_exc()))
    connection.close()


def _weight_slots(model):
    """``(dict, key)`` of every parameter and buffer, in ``model_weights`` order."""
    return [(store, key) for layer in model.layers
            for store in (layer.params, layer.buffers) for key in store]
