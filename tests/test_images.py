"""Tests for cnn.datasets.images: image files and .npy arrays as model inputs."""

import re

import numpy as np
import pytest
from PIL import Image

from cnn.datasets.images import load_image, load_inputs

MNIST_INPUT = (1, 28, 28)


def digit_like(height=28, width=28):
    """A light bar on black, like an MNIST "1"."""
    pixels = np.zeros((height, width), dtype=np.uint8)
    pixels[height // 4: 3 * height // 4, width // 2 - 2: width // 2 + 2] = 255
    return pixels


def test_light_on_dark_png_is_kept(tmp_path):
    Image.fromarray(digit_like()).save(tmp_path / "d.png")
    x = load_inputs(tmp_path / "d.png", MNIST_INPUT)
    assert x.shape == (1, 1, 28, 28) and x.dtype == np.float32
    assert np.array_equal(x[0, 0], digit_like() / np.float32(255))


def test_dark_on_light_png_is_inverted(tmp_path):
    Image.fromarray(255 - digit_like()).save(tmp_path / "paper.png")
    x = load_inputs(tmp_path / "paper.png", MNIST_INPUT)
    assert np.array_equal(x[0, 0], digit_like() / np.float32(255))
    kept = load_inputs(tmp_path / "paper.png", MNIST_INPUT, invert=False)
    assert np.array_equal(kept[0, 0], 1 - digit_like() / np.float32(255))
    forced = load_inputs(tmp_path / "paper.png", MNIST_INPUT, invert=True)
    assert np.array_equal(forced, x)


def test_colour_jpeg_is_grey_scaled_and_resized(tmp_path):
    rgb = np.zeros((112, 112, 3), dtype=np.uint8)
    rgb[20:90, 50:62] = (255, 0, 0)  # a red bar: grey value 76
    Image.fromarray(rgb).save(tmp_path / "bar.jpg", quality=95)
    x = load_inputs(tmp_path / "bar.jpg", MNIST_INPUT)
    assert x.shape == (1, 1, 28, 28)
    assert x[0, 0, 14, 14] == pytest.approx(76 / 255, abs=0.05)
    assert x[0, 0, 2, 2] == pytest.approx(0, abs=0.02)


def test_a_wide_image_is_padded_not_stretched(tmp_path):
    wide = np.zeros((28, 56), dtype=np.uint8)
    wide[:, 24:32] = 255  # a vertical bar, 8 pixels wide
    Image.fromarray(wide).save(tmp_path / "wide.png")
    x = load_inputs(tmp_path / "wide.png", MNIST_INPUT)[0, 0]
    assert x[:5].max() < 0.02 and x[-5:].max() < 0.02  # padding above and below (rows 0-6, 21-27)
    assert x[9:19, 14].min() > 0.9
    lit_columns = np.flatnonzero(x[14] > 0.5)
    assert 3 <= len(lit_columns) <= 5  # 8 pixels halved, not squeezed further


def test_transparent_png_is_put_on_white(tmp_path):
    rgba = np.zeros((28, 28, 4), dtype=np.uint8)
    rgba[5:23, 12:16] = (0, 0, 0, 255)  # black strokes on a transparent background
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    x = load_inputs(tmp_path / "t.png", MNIST_INPUT)[0, 0]
    # On white it is dark-on-light, so it is inverted: strokes light, background black.
    assert x[14, 13] == 1.0 and x[0, 0] == 0.0


def test_crop_frames_the_strokes_like_mnist(tmp_path):
    page = np.full((300, 300), 255, dtype=np.uint8)
    page[40:100, 200:230] = 0  # a small dark stroke far from the centre
    Image.fromarray(page).save(tmp_path / "page.png")
    x = load_inputs(tmp_path / "page.png", MNIST_INPUT, crop=True)[0, 0]
    rows = np.flatnonzero(x.max(axis=1) > 0.5)
    # Cropped to the 60-pixel-high stroke with a margin of a fifth of it: 60 of 84 pixels.
    assert 18 <= len(rows) <= 22 and 2 <= rows[0] <= 6
    assert abs((rows[0] + rows[-1]) / 2 - 13.5) <= 1
    uncropped = load_inputs(tmp_path / "page.png", MNIST_INPUT)[0, 0]
    assert (uncropped > 0.5).sum() < (x > 0.5).sum() / 4


def test_crop_of_a_blank_image_keeps_it(tmp_path):
    Image.fromarray(np.zeros((10, 10), dtype=np.uint8)).save(tmp_path / "blank.png")
    assert load_inputs(tmp_path / "blank.png", MNIST_INPUT, crop=True).max() == 0


def test_three_channel_models_get_rgb(tmp_path):
    rgb = np.zeros((8, 8, 3), dtype=np.uint8)
    rgb[..., 1] = 200
    Image.fromarray(rgb).save(tmp_path / "green.png")
    x = load_image(tmp_path / "green.png", (3, 4, 4))
    assert x.shape == (3, 4, 4)
    assert np.allclose(x[1], 200 / 255) and np.allclose(x[[0, 2]], 0)


@pytest.mark.parametrize("shape, batch", [((28, 28), 1), ((1, 28, 28), 1), ((5, 28, 28), 5), ((5, 1, 28, 28), 5)])
def test_npy_shapes(tmp_path, shape, batch):
    array = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    np.save(tmp_path / "a.npy", array)
    x = load_inputs(tmp_path / "a.npy", MNIST_INPUT)
    assert x.shape == (batch, 1, 28, 28) and x.dtype == np.float32
    assert np.array_equal(x.reshape(-1), array.reshape(-1) / np.float32(255))


def test_npy_floats_are_kept(tmp_path):
    array = np.linspace(0, 1, 784, dtype=np.float64).reshape(28, 28)
    np.save(tmp_path / "f.npy", array)
    assert np.allclose(load_inputs(tmp_path / "f.npy", MNIST_INPUT)[0, 0], array)


@pytest.mark.parametrize("array, message", [
    (np.zeros((28, 27)), "shape (28, 27) does not fit"),
    (np.zeros((2, 3, 28, 28)), "does not fit the model's input (1, 28, 28)"),
    (np.full((28, 28), 300), "0..255"),
    (np.zeros((28, 28), dtype=bool), "dtype bool"),
])
def test_npy_errors_name_the_file(tmp_path, array, message):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        load_inputs(tmp_path / "bad.npy", MNIST_INPUT)
    assert str(tmp_path / "bad.npy") in str(error.value)


def test_unreadable_files(tmp_path):
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(ValueError, match="not an image file") as error:
        load_inputs(tmp_path / "notes.png", MNIST_INPUT)
    assert str(tmp_path / "notes.png") in str(error.value)
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(ValueError, match="not a readable .npy array"):
        load_inputs(tmp_path / "bad.npy", MNIST_INPUT)
    with pytest.raises(FileNotFoundError):
        load_inputs(tmp_path / "absent.png", MNIST_INPUT)


def test_models_that_do_not_take_images(tmp_path):
    Image.fromarray(digit_like()).save(tmp_path / "d.png")
    with pytest.raises(ValueError, match=r"\(1, H, W\) or \(3, H, W\); this model's input is \(784,\)"):
        load_inputs(tmp_path / "d.png", (784,))
    with pytest.raises(ValueError, match="invert"):
        load_inputs(tmp_path / "d.png", MNIST_INPUT, invert="sometimes")
