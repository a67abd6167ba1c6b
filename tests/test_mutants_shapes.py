"""What the mutation run of 2026-12-01 found unchecked in cnn.ops.shapes (docs/TESTING.md)."""

from __future__ import annotations

import pytest

from cnn.ops.shapes import check_padding, window_output_shape


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
