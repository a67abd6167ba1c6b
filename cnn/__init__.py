"""cnn: a readable deep-learning framework on NumPy with the Keras-like API of the seed."""

from cnn.backend import floatx, set_backend, set_floatx, set_seed

__version__ = "0.1.0"

__all__ = ["floatx", "set_backend", "set_floatx", "set_seed", "__version__"]
