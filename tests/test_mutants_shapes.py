"""What the mutation run of 2026-12-01 found unchecked in cnn.ops.shapes (docs/TESTING.md)."""

from __future__ import annotations

import re

import pytest

from cnn.ops.shapes import (check_padding, effective_kernel, pair, transposed_axis,
                             window_output_shape)


def test_padding_as_a_pair_of_ints_is_per_axis():
    """``(rows, cols)``: the same amount before and after, per axis (Keras's ZeroPadding2D)."""
    assert check_padding((1, 2)) == ((1, 1), (2, 2))
    assert check_padding((0, (1, 3))) == ((0, 0), (1, 3))
    assert window_output_shape((5, 5), (3, 3), (1, 1), check_padding((1, 2))) == (
        (5, 7), ((1, 1), (2, 2)))


def test_negative_amounts_are_refused():
    for padding in ((-1, 2), ((0, 1), (2, -1)), -1):
        with pytest.raises(ValueError, match="padding"):
            check_padding(padding)


def test_padding_errors_say_what_is_accepted():
    with pytest.raises(ValueError, match=r"unknown padding 'sane'; valid paddings: valid, same, "
                                         r"full, an int, or \(\(top, bottom\), \(left, right\)\)"):
        check_padding("sane")
    with pytest.raises(ValueError, match=r"padding must be >= 0, got -1"):
        check_padding(-1)
    with pytest.raises(ValueError, match=r"padding must be one of valid, same, full, an int, a "
                                         r"pair of ints or \(\(top, bottom\), \(left, right\)\); "
                                         r"got \(1, 2, 3\)"):
        check_padding((1, 2, 3))


# -- found by the run of 2026-12-01 17:15 (pair, effective_kernel) --------------------------

def test_pair_normalises_ints_and_pairs():
    assert pair(1, "strides") == (1, 1)
    assert pair(3, "kernel_size") == (3, 3)
    assert pair((2, 5), "kernel_size") == (2, 5)
    assert pair([4, 1], "pool_size") == (4, 1)
    assert pair((2.0, 3), "strides") == (2, 3)  # integral floats, as int() reads them
    assert all(type(v) is int for v in pair((2.0, 3), "strides"))


@pytest.mark.parametrize("value", [True, (1, 2, 3), (2,), (2.5, 2), None])
def test_pair_refuses_what_is_not_an_int_or_a_pair_of_ints(value):
    with pytest.raises(ValueError, match=r"^kernel_size must be an int or a pair of ints, "
                                         rf"got {re.escape(repr(value))}$"):
        pair(value, "kernel_size")


@pytest.mark.parametrize("value", ["33", "ab", ("3", "x"), b"22"])
def test_pair_refuses_strings(value):
    """``"33"`` was read as ``(3, 3)``, and ``"ab"`` failed in ``int()`` without naming the
    argument."""
    with pytest.raises(ValueError, match=r"^kernel_size must be an int or a pair of ints"):
        pair(value, "kernel_size")


@pytest.mark.parametrize("value", [0, -1, (0, 2), (3, -1)])
def test_pair_refuses_amounts_below_one(value):
    with pytest.raises(ValueError, match=rf"^strides must be positive, got "
                                         rf"{re.escape(repr(value))}$"):
        pair(value, "strides")


def test_effective_kernel_is_the_dilated_span():
    """``(k - 1) * d + 1``: PyTorch's and Keras's span of a dilated window."""
    assert effective_kernel((3, 3)) == (3, 3)
    assert effective_kernel((3, 2), (2, 3)) == (5, 4)
    assert effective_kernel((1, 4), (5, 1)) == (1, 4)
    assert all(type(v) is int for v in effective_kernel((3, 2), (2, 3)))


# -- transposed_axis against Keras's and TensorFlow's formulas ------------------------------

def keras_transposed_length(n, k, s, padding, output_padding, d):
    """Keras's ``deconv_output_length`` (keras/src/utils/conv_utils.py), transcribed."""
    k = k + (k - 1) * (d - 1)
    if output_padding is None:
        return n * s + max(k - s, 0) if padding == "valid" else n * s
    pad = k // 2 if padding == "same" else 0
    return (n - 1) * s + k - 2 * pad + output_padding


def tensorflow_same_crop(n, span, s, out):
    """The cut before the kept cells of a "same" transposed convolution to ``out`` cells in
    TensorFlow, where it is the adjoint of the "same" convolution of ``out`` cells to ``n``:
    that convolution's padding before, ``total // 2``. None where no such convolution gives
    ``n`` cells (TensorFlow refuses that output shape)."""
    if -(-out // s) != n:
        return None
    return max((n - 1) * s + span - out, 0) // 2


GRID = [(n, k, s, d, padding, output_padding)
        for n in range(1, 7) for k in range(1, 6) for s in range(1, 4) for d in (1, 2)
        for padding in ("valid", "same") for output_padding in (None, *range(s))]


def test_transposed_axis_is_keras_and_tensorflow_everywhere():
    compared_crops = 0
    for n, k, s, d, padding, output_padding in GRID:
        out, crop = transposed_axis(n, k, s, padding, output_padding, d)
        case = (n, k, s, d, padding, output_padding)
        assert out == keras_transposed_length(n, k, s, padding, output_padding, d), case
        want = 0 if padding == "valid" else tensorflow_same_crop(n, (k - 1) * d + 1, s, out)
        if want is not None:
            assert crop == want, case
            compared_crops += 1
        assert type(out) is int and type(crop) is int
    assert compared_crops > 0.9 * len(GRID)


def test_transposed_axis_defaults_to_no_dilation_and_keras_output_padding():
    for n, k, s, padding in [(4, 3, 2, "valid"), (5, 4, 1, "same"), (3, 2, 3, "valid")]:
        assert transposed_axis(n, k, s, padding) == transposed_axis(n, k, s, padding, None, 1)


@pytest.mark.parametrize("output_padding, strides", [(2, 2), (3, 2), (-1, 2), (1, 1)])
def test_transposed_axis_refuses_output_padding_outside_0_to_strides(output_padding, strides):
    with pytest.raises(ValueError, match=rf"^output_padding must be in \[0, strides\); got "
                                         rf"output_padding {output_padding} with strides "
                                         rf"{strides}$"):
        transposed_axis(4, 3, strides, "same", output_padding)
