"""cnn.utils.to_categorical: Keras's shapes and dtype, and clear errors."""

import numpy as np
import pytest

from cnn.utils import to_categorical


def test_ids_become_one_hot_rows_in_float32():
    out = to_categorical([0, 2, 1, 2])
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.eye(3)[[0, 2, 1, 2]])


@pytest.mark.parametrize("shape, expected", [((6,), (6, 5)), ((6, 1), (6, 5)), ((2, 3), (2, 3, 5)),
                                             ((2, 3, 1), (2, 3, 5)), ((), (5,))])
def test_shapes_follow_keras(shape, expected):
    ids = np.arange(int(np.prod(shape))).reshape(shape) % 5
    out = to_categorical(ids, num_classes=5, dtype="float64")
    assert out.shape == expected and out.dtype == np.float64
    np.testing.assert_array_equal(out.argmax(axis=-1), ids.reshape(expected[:-1]))
    np.testing.assert_array_equal(out.sum(axis=-1), 1)


def test_whole_floats_and_bools_are_ids():
    np.testing.assert_array_equal(to_categorical(np.array([1.0, 0.0])), [[0, 1], [1, 0]])
    np.testing.assert_array_equal(to_categorical(np.array([True, False]), 3),
                                  [[0, 1, 0], [1, 0, 0]])


@pytest.mark.parametrize("y, num_classes, match", [
    ([0, 3], 3, r"class id 3 is out of range for num_classes=3 \(valid ids 0..2\)"),
    ([0, -1], None, "class ids must be >= 0, got -1"),
    ([0.5, 1.0], None, "not whole numbers"),
    ([0, np.nan], None, "not whole numbers"),
    (["a", "b"], None, "needs integer class ids, got dtype <U1"),
    ([0, 1], 0, "num_classes must be a positive int, got 0"),
    ([0, 1], 2.0, "num_classes must be a positive int"),
    (np.zeros(0, dtype=int), None, "empty array needs num_classes"),
])
def test_bad_ids_are_named(y, num_classes, match):
    with pytest.raises(ValueError, match=match):
        to_categorical(y, num_classes)
