"""cnn: a readable deep-learning framework on NumPy with the Keras-like API of the seed."""

from cnn.backend import (
    floatx,
    get_num_threads,
    image_data_format,
    set_backend,
    set_floatx,
    set_image_data_format,
    set_num_threads,
    set_seed,
)

__version__ = "0.1.0"

# The loop and saving register themselves with cnn.models (cnn.models.seam) on import, so
# that Model.fit / save work whichever module the user imports first.
import cnn.training  # noqa: E402,F401
import cnn.saving  # noqa: E402,F401

__all__ = [
    "floatx", "get_num_threads", "image_data_format", "set_backend", "set_floatx",
    "set_image_data_format", "set_num_threads", "set_seed",
    "__version__",
]
