"""RandomFlip, RandomTranslation, RandomRotation: identity at inference, the resampling kernel
against its loop twin, an exact adjoint for backward, the statistics of the draws,
reproducibility, saving."""

import math

import numpy as np
import pytest

import cnn
from cnn.layers import (Conv2D, Dense, Flatten, Input, RandomFlip, RandomRotation,
                        RandomTranslation, deserialize, serialize)
from cnn.layers.augmentation import rotation_matrices
from cnn.models import Sequential
from cnn.ops.affine import affine_backward, affine_forward, sampling_taps
from cnn.ops.reference_conv import affine_sample_reference
from window_helpers import assert_round_trips, assert_seeded_draws_repeat, built, random

LAYERS = {
    "flip": lambda **kw: RandomFlip(**kw),
    "translation": lambda **kw: RandomTranslation(0.3, (-0.2, 0.4), **kw),
    "rotation": lambda **kw: RandomRotation(0.25, **kw),
    "rotation_constant_nearest": lambda **kw: RandomRotation(
        (-0.1, 0.3), fill_mode="constant", interpolation="nearest", fill_value=0.5, **kw),
}


@pytest.mark.parametrize("case", LAYERS)
def test_identity_at_inference(case):
    layer = built(LAYERS[case](seed=1), (2, 6, 5))
    x = random((3, 2, 6, 5))
    assert layer.forward(x, training=False) is x
    grad = random((3, 2, 6, 5), seed=1)
    assert layer.backward(grad) is grad


@pytest.mark.parametrize("case", LAYERS)
@pytest.mark.parametrize("data_format", ["channels_first", "channels_last"])
def test_backward_is_the_exact_adjoint_of_the_drawn_transformation(case, data_format):
    shape = (2, 6, 5) if data_format == "channels_first" else (6, 5, 2)
    layer = built(LAYERS[case](seed=2, data_format=data_format), shape)
    twin = built(LAYERS[case](seed=2, data_format=data_format), shape)  # the same draws
    x, r = random((4, *shape)), random((4, *shape), seed=1)
    y = layer.forward(x, training=True)
    dx = layer.backward(r.copy())
    fill = twin.forward(np.zeros_like(x), training=True)  # the constant part (fill_value)
    assert abs(float(((y - fill) * r).sum()) - float((x * dx).sum())) < 1e-9
    assert y.shape == x.shape and not np.allclose(y, x)


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("fill_mode", ["reflect", "wrap", "nearest", "constant"])
def test_resampling_matches_the_loop_reference(interpolation, fill_mode):
    rng = np.random.default_rng(3)
    matrices = rng.normal(0, 0.6, (3, 2, 3)) + np.array([[1.0, 0, 0], [0, 1.0, 0]])
    matrices[:, :, 2] *= 5
    x = rng.standard_normal((3, 2, 5, 6))
    taps = sampling_taps(matrices, (5, 6), interpolation, fill_mode, fill_value=0.7)
    y = affine_forward(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), taps)
    want = affine_sample_reference(x, matrices, interpolation, fill_mode, fill_value=0.7)
    np.testing.assert_allclose(y.transpose(0, 3, 1, 2), want, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    dx = affine_backward(dy, taps)
    zero_taps = sampling_taps(matrices, (5, 6), interpolation, fill_mode, fill_value=0.0)
    x_last = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    assert abs(float((affine_forward(x_last, zero_taps) * dy).sum())
               - float((x_last * dx).sum())) < 1e-9


def test_rotation_matrix_turns_counter_clockwise():
    image = np.zeros((1, 5, 5, 1))
    image[0, 0, 4, 0] = 1.0  # top-right corner
    taps = sampling_taps(rotation_matrices(np.array([math.pi / 2]), 5, 5), (5, 5), "nearest",
                         "constant")
    rotated = affine_forward(image, taps)
    assert rotated[0, 0, 0, 0] == 1.0 and rotated.sum() == 1.0  # now the top-left corner


def test_flip_statistics_and_exactness():
    layer = built(RandomFlip("horizontal", seed=4), (1, 3, 4))
    x = np.broadcast_to(np.arange(12.0).reshape(1, 1, 3, 4), (4000, 1, 3, 4)).copy()
    y = layer.forward(x, training=True)
    flipped = np.all(y == x[:, :, :, ::-1], axis=(1, 2, 3))
    unchanged = np.all(y == x, axis=(1, 2, 3))
    assert np.all(flipped ^ unchanged)
    assert abs(flipped.mean() - 0.5) < 0.03  # 4000 draws: 3 sigma is 0.024
    both = built(RandomFlip(seed=5), (1, 3, 4)).forward(x, training=True)
    kinds = [np.all(both == x[:, :, ::a, ::b], axis=(1, 2, 3)).mean()
             for a, b in ((1, 1), (1, -1), (-1, 1), (-1, -1))]
    assert sum(kinds) == pytest.approx(1.0) and all(abs(k - 0.25) < 0.03 for k in kinds)


def test_translation_statistics():
    h = w = 21
    layer = built(RandomTranslation((-0.2, 0.2), (0.0, 0.3), fill_mode="constant",
                                    interpolation="nearest", seed=6), (1, h, w))
    x = np.zeros((3000, 1, h, w))
    x[:, 0, 10, 5] = 1.0
    y = layer.forward(x, training=True)
    assert np.all(y.sum(axis=(1, 2, 3)) == 1.0)  # nearest, no pixel lost: a pure shift
    rows, cols = np.nonzero(y[:, 0])[1:]
    down, right = rows - 10, cols - 5
    assert down.min() >= -round(0.2 * h) and down.max() <= round(0.2 * h)
    assert right.min() >= 0 and right.max() <= round(0.3 * w)
    assert abs(down.mean()) < 0.2 and abs(right.mean() - 0.15 * w) < 0.2
    assert down.std() == pytest.approx(0.4 * h / math.sqrt(12), rel=0.05)  # uniform


def test_rotation_statistics():
    size = 41
    layer = built(RandomRotation(0.1, fill_mode="constant", seed=7), (1, size, size))
    x = np.zeros((2000, 1, size, size))
    x[:, 0, 20, 35] = 1.0  # 15 pixels right of the centre
    y = layer.forward(x, training=True)[:, 0]
    grid_r, grid_c = np.mgrid[:size, :size]
    mass = y.sum(axis=(1, 2))
    centre_r = (y * grid_r).sum(axis=(1, 2)) / mass
    centre_c = (y * grid_c).sum(axis=(1, 2)) / mass
    angles = np.arctan2(-(centre_r - 20), centre_c - 20) / (2 * math.pi)
    assert np.all(np.abs(angles) <= 0.1 + 1e-3)
    assert abs(angles.mean()) < 0.005
    assert angles.std() == pytest.approx(0.2 / math.sqrt(12), rel=0.05)


@pytest.mark.parametrize("case", LAYERS)
def test_seeded_draws_repeat(case):
    assert_seeded_draws_repeat(LAYERS[case])


def test_a_model_with_augmentation_trains_reproducibly_and_predicts_deterministically():
    def train():
        cnn.set_seed(0)
        model = Sequential([Input((8, 8, 1)), RandomFlip("horizontal", data_format="channels_last"),
                            RandomTranslation(0.1, 0.1, data_format="channels_last"),
                            RandomRotation(0.05, data_format="channels_last"),
                            Conv2D(2, 3, data_format="channels_last"), Flatten(), Dense(2)])
        model.compile(optimizer="adam", loss="mse")
        rng = np.random.default_rng(0)
        x = rng.random((32, 8, 8, 1)).astype(np.float32)
        model.fit(x, rng.random((32, 2)).astype(np.float32), epochs=2, batch_size=8, verbose=0,
                  seed=1)
        return model, x

    first, x = train()
    second, _ = train()
    np.testing.assert_array_equal(first.predict(x), second.predict(x))
    np.testing.assert_array_equal(first.predict(x), first.predict(x))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="mode must be one of horizontal"):
        RandomFlip("diagonal")
    with pytest.raises(ValueError, match=r"height_factor must lie in \[-1, 1\]"):
        RandomTranslation(1.5, 0.1)
    with pytest.raises(ValueError, match="fill_mode must be one of"):
        RandomRotation(0.1, fill_mode="mirror")
    with pytest.raises(ValueError, match="interpolation must be one of"):
        RandomRotation(0.1, interpolation="cubic")
    with pytest.raises(ValueError, match=r"needs input of shape \(channels, height, width\)"):
        RandomFlip().build((28, 28))


@pytest.mark.parametrize("case", LAYERS)
def test_configs_and_files_round_trip(case, tmp_path):
    layer = LAYERS[case](seed=9, data_format="channels_last")
    rebuilt = deserialize(serialize(layer))
    assert rebuilt.get_config() == layer.get_config()
    assert_round_trips([LAYERS[case](seed=9)], (1, 6, 6), tmp_path)


@pytest.mark.parametrize("case", LAYERS)
def test_float32_stays_float32(case):
    layer = LAYERS[case](seed=1)
    layer.build((2, 6, 5))
    x = random((2, 2, 6, 5)).astype(np.float32)
    y = layer.forward(x, training=True)
    assert y.dtype == layer.backward(np.ones_like(y)).dtype == np.float32
