"""The one place where the array library and the default float type are chosen.

Every module that does array math imports ``xp`` from here::

    from cnn.backend import xp
    y = xp.maximum(x, 0)

``xp`` forwards attribute access to the active array module (NumPy by default, CuPy after
``set_backend("cupy")``), so switching the backend does not require re-importing anything.

The default float type is float32 (``floatx()``); gradient checks switch to float64 with
``set_floatx("float64")`` or the ``floatx_scope`` context manager.

Image layers read their default layout from ``image_data_format()`` when they are created:
``"channels_first"`` (N, C, H, W) unless ``set_image_data_format("channels_last")`` was called.

Random numbers come from one ``numpy.random.Generator`` (``rng()``), seeded by ``set_seed``;
initialisers, shuffling and dropout all draw from it, so a seeded run is reproducible.

``set_num_threads(n)`` limits the BLAS library behind NumPy's matrix products to ``n`` threads
(through threadpoolctl); on 2 cores one thread can beat two for small matrices, and a machine
shared with other work is often faster with fewer threads. The element-wise NumPy operations
always run on one thread. Without it (and without a thread variable in the environment),
``fit``, ``evaluate`` and ``predict`` run one BLAS thread per process while they run
(``cnn.training.defaults``); importing cnn leaves the library's threads as they are.
"""

from __future__ import annotations

import contextlib
import importlib
from types import ModuleType

import numpy

_VALID_FLOATX = ("float16", "float32", "float64")
_VALID_BACKENDS = ("numpy", "cupy")
_VALID_IMAGE_DATA_FORMATS = ("channels_first", "channels_last")

_state = {
    "module": numpy,
    "name": "numpy",
    "floatx": "float32",
    "rng": numpy.random.default_rng(),
    "seed": None,
    "thread_limiter": None,
    "thread_limit": None,
    "blas_controller": None,
    "image_data_format": "channels_first",
}


class _ArrayModule:
    """Forwards ``xp.<name>`` to the active array module (numpy or cupy)."""

    def __getattr__(self, name):
        return getattr(_state["module"], name)

    def __repr__(self):
        return f"<cnn array module: {_state['name']}>"


xp = _ArrayModule()


def backend_name() -> str:
    """Name of the active array module: ``"numpy"`` or ``"cupy"``."""
    return _state["name"]


def array_module() -> ModuleType:
    """The active array module itself (for code that needs the real module object)."""
    return _state["module"]


def set_backend(name: str) -> None:
    """Select the array module by name (``"numpy"`` or ``"cupy"``)."""
    if name not in _VALID_BACKENDS:
        raise ValueError(f"unknown backend {name!r}; valid backends: {', '.join(_VALID_BACKENDS)}")
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise ImportError(f"backend {name!r} is not installed: {exc}") from exc
    _state["module"] = module
    _state["name"] = name


def floatx() -> str:
    """The default float dtype name for parameters and activations (``"float32"``)."""
    return _state["floatx"]


def set_floatx(dtype) -> None:
    """Set the default float dtype: ``"float16"``, ``"float32"`` or ``"float64"``."""
    name = numpy.dtype(dtype).name
    if name not in _VALID_FLOATX:
        raise ValueError(f"unsupported float dtype {dtype!r}; valid: {', '.join(_VALID_FLOATX)}")
    _state["floatx"] = name


@contextlib.contextmanager
def floatx_scope(dtype):
    """Temporarily use another default float dtype (``with floatx_scope("float64"): ...``)."""
    previous = floatx()
    set_floatx(dtype)
    try:
        yield
    finally:
        set_floatx(previous)


def image_data_format() -> str:
    """The layout image layers assume when not given ``data_format``: ``"channels_first"``
    ((N, C, H, W), the default) or ``"channels_last"`` ((N, H, W, C), Keras's default)."""
    return _state["image_data_format"]


def set_image_data_format(data_format: str) -> None:
    """Set the default layout of image layers created from now on (layers keep theirs)."""
    if data_format not in _VALID_IMAGE_DATA_FORMATS:
        raise ValueError(f"unknown image data format {data_format!r}; valid: "
                         f"{', '.join(_VALID_IMAGE_DATA_FORMATS)}")
    _state["image_data_format"] = data_format


def set_seed(seed: int | None) -> None:
    """Seed the generator used for initialisation, shuffling and dropout."""
    _state["seed"] = seed
    _state["rng"] = numpy.random.default_rng(seed)


def rng() -> numpy.random.Generator:
    """The shared random generator (always a NumPy generator, also under CuPy)."""
    return _state["rng"]


def to_numpy(a):
    """Return ``a`` as a NumPy array (copies from the GPU under CuPy)."""
    if _state["name"] == "cupy" and hasattr(a, "get"):
        return a.get()
    return numpy.asarray(a)


def asarray(a, dtype=None):
    """Convert to an array of the active module, by default in ``floatx()``."""
    return _state["module"].asarray(a, dtype=dtype or floatx())


def erf(x):
    """The error function on the active backend (used by the exact GELU)."""
    if _state["name"] == "cupy":
        from cupyx.scipy.special import erf as _erf
    else:
        from scipy.special import erf as _erf
    return _erf(x)


@contextlib.contextmanager
def using_rng(generator: numpy.random.Generator):
    """Draw from ``generator`` inside the block (``fit`` uses one generator per epoch)."""
    previous = _state["rng"]
    _state["rng"] = generator
    try:
        yield generator
    finally:
        _state["rng"] = previous


def set_num_threads(threads: int | None) -> None:
    """Use at most ``threads`` BLAS threads for matrix products; None restores the default.

    Applies to the BLAS libraries loaded in this process (NumPy's OpenBLAS or MKL); a no-op
    for the GPU backend.
    """
    import threadpoolctl

    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or threads < 1):
        raise ValueError(f"threads must be a positive int or None, got {threads!r}")
    previous = _state["thread_limiter"]
    if previous is not None:
        previous.restore_original_limits()
        _state["thread_limiter"] = None
    _state["thread_limit"] = threads
    if threads is not None:
        _state["thread_limiter"] = threadpoolctl.threadpool_limits(limits=threads,
                                                                   user_api="blas")


def thread_limit() -> int | None:
    """The BLAS threads chosen with ``set_num_threads`` (None: not chosen, or restored)."""
    return _state["thread_limit"]


@contextlib.contextmanager
def limited_threads(threads: int):
    """Use at most ``threads`` BLAS threads inside the block, then restore the limits.

    Every ``fit``, ``evaluate`` and ``predict`` runs inside one, so it reuses one
    ``threadpoolctl.ThreadpoolController`` (finding the loaded libraries takes milliseconds;
    limiting them through it, a fraction of one)."""
    import threadpoolctl

    if _state["blas_controller"] is None:
        _state["blas_controller"] = threadpoolctl.ThreadpoolController()
    with _state["blas_controller"].limit(limits=threads, user_api="blas"):
        yield


def get_num_threads() -> int:
    """The number of threads the BLAS library uses now (the smallest, if several are loaded)."""
    import threadpoolctl

    counts = [info["num_threads"] for info in threadpoolctl.threadpool_info()
              if info["user_api"] == "blas"]
    return min(counts) if counts else 1
