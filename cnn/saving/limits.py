"""Sane limits on what a model file may declare, checked before anything is allocated.

A model file is untrusted input: its architecture is a list of numbers that the loader turns
into arrays. These checks run on the architecture (the JSON config of our format, the
``init_params`` of the original implementation's files) *before* the layer they concern is
built, so that a 30 KB file cannot make the loader allocate terabytes. docs/SECURITY.md lists
the limits and why they are far above any model this library can train.
"""

from __future__ import annotations

import math
import re

import numpy as np

MAX_PARAMETERS = 2 ** 31        # weight and buffer elements of the whole model
MAX_SIZE = 2 ** 24              # any one size: units, filters, a kernel side, a shape entry
MAX_SAMPLE_ELEMENTS = 2 ** 28   # elements of one sample: the input and every layer's output
MAX_RANK = 8                    # axes of a sample or of a weight array
MAX_LAYERS = 10_000             # layers of a model (nested ones included)
MAX_CONFIG_CHARS = 2 ** 26      # characters of a JSON config
MAX_JSON_DEPTH = 64             # nesting of a JSON config
MAX_ITERATIONS = 2 ** 62        # optimizer steps and epochs
MAX_FILE_BYTES = 2 ** 34        # bytes of a model file (16 GiB: 2**31 float32 weights and
#                                 the two Adam slots of each, with room to spare)

# Config keys that hold sizes: positive integers (or lists of them) of at most MAX_SIZE.
SIZE_KEYS = ("units", "filters", "kernel_size", "strides", "pool_size", "input_shape",
             "dilation_rate", "input_dim", "output_dim", "num_heads", "key_dim", "value_dim",
             "size", "n", "sequence_length", "depth_multiplier")
# Config keys that hold non-negative integers (or nested lists of them).
NON_NEGATIVE_KEYS = ("padding", "cropping", "output_padding")
# Config keys that hold random seeds: any integer that NumPy accepts as one.
SEED_KEYS = ("seed",)
MAX_SEED = 2 ** 64 - 1
_PARAMETRISED = re.compile(r"(?P<name>[A-Za-z_]\w*)\((?P<argument>[^()]*)\)")


def integer(value, what: str, minimum: int = 1, maximum: int = MAX_SIZE) -> int:
    """``value`` as an int in [minimum, maximum]; floats (1.5, and also 8.0) and bools are
    refused: a size is written as an integer by every writer of these files."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    if not minimum <= value <= maximum:
        raise ValueError(f"{what} must be an integer in [{minimum}, {maximum}], got {value!r}")
    return int(value)


def sizes(values, what: str, minimum: int = 1, maximum: int = MAX_SIZE,
          variable: bool = False) -> tuple[int | None, ...]:
    """An int or a list of at most MAX_RANK ints, each in [minimum, maximum]; with
    ``variable``, list entries may be None (a variable axis of a shape)."""
    if not isinstance(values, (list, tuple, np.ndarray)):
        return (integer(values, what, minimum, maximum),)
    if len(values) > MAX_RANK:
        raise ValueError(f"{what} has {len(values)} entries; at most {MAX_RANK} are allowed")
    return tuple(None if v is None and variable else integer(v, f"{what}[{i}]", minimum, maximum)
                 for i, v in enumerate(values))


def sample_shape(shape, what: str) -> tuple[int | None, ...]:
    """A shape of one sample (no batch axis): 1 to MAX_RANK sizes (None: a variable axis,
    counted as 1), at most MAX_SAMPLE_ELEMENTS elements."""
    if not isinstance(shape, (list, tuple, np.ndarray)) or len(shape) == 0:
        raise ValueError(f"{what} must be a non-empty list of integers, got {shape!r}")
    result = sizes(shape, what, maximum=MAX_SAMPLE_ELEMENTS, variable=True)
    elements = math.prod(1 if size is None else size for size in result)
    if elements > MAX_SAMPLE_ELEMENTS:
        raise ValueError(f"{what} {list(result)} has {elements} elements per sample; at most "
                         f"{MAX_SAMPLE_ELEMENTS} are allowed")
    return result


def activation(value, what: str = "activation") -> None:
    """Refuse a parametrised activation whose argument is not a finite number
    (``"leaky_relu(nan)"``, ``"elu(inf)"``)."""
    if not isinstance(value, str):
        return
    match = _PARAMETRISED.fullmatch(value.strip())
    if match is None:
        return
    try:
        argument = float(match["argument"])
    except ValueError:
        raise ValueError(f"{what} {value!r}: the argument is not a number") from None
    if not math.isfinite(argument):
        raise ValueError(f"{what} {value!r}: the argument must be a finite number")


def finite_json_float(text: str) -> float:
    """``parse_float`` for ``json.loads``: numbers that overflow to infinity are refused."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is not finite")
    return value


def non_finite_json_constant(name: str):
    """``parse_constant`` for ``json.loads``: NaN, Infinity and -Infinity are refused."""
    raise ValueError(f"{name} is not a finite number")


def infinite_json_constant(name: str) -> float:
    """``parse_constant`` for ``json.loads`` that accepts Infinity and -Infinity, not NaN."""
    if name == "NaN":
        raise ValueError("NaN is not a number allowed here")
    return float(name)


def json_depth(value, limit: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of a parsed JSON value; a ValueError beyond ``limit``."""
    depth, level = 0, [value]
    while level:
        depth += 1
        if depth > limit:
            raise ValueError(f"the JSON config is nested more than {limit} levels deep")
        level = [child for item in level if isinstance(item, (list, dict))
                 for child in (item.values() if isinstance(item, dict) else item)]
    return depth


def parameter_budget(count: int, total: int, what: str) -> int:
    """``total + count``, refused beyond MAX_PARAMETERS (``what`` names the layer)."""
    if total + count > MAX_PARAMETERS:
        raise ValueError(f"{what} would bring the model to {total + count} weight elements; "
                         f"at most {MAX_PARAMETERS} are allowed")
    return total + count
