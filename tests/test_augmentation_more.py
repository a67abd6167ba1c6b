"""RandomZoom, RandomContrast, RandomBrightness, RandomCrop: numerical gradients of the drawn
transformation, values against loop references and PyTorch, identity at inference, seeded
and per-global-sample draws, training, saving, argument errors."""

import math

import numpy as np
import pytest

import cnn
from cnn import replica
from cnn.layers import (Conv2D, Dense, Flatten, Input, RandomBrightness, RandomContrast,
                        RandomCrop, RandomZoom, batch_draws, deserialize, serialize)
from cnn.models import Sequential
from cnn.ops.reference_conv import affine_sample_reference
from cnn.utils.gradient_check import gradient_error, numerical_gradient
from helpers import check_layer_gradients
from window_helpers import assert_round_trips, assert_seeded_draws_repeat, built, random

FORMATS = ["channels_first", "channels_last"]
LAYERS = {
    "zoom": lambda **kw: RandomZoom(0.4, **kw),
    "zoom_two_axes_constant": lambda **kw: RandomZoom(
        (-0.5, -0.1), (0.2, 0.6), fill_mode="constant", fill_value=0.5, **kw),
    "zoom_nearest_wrap": lambda **kw: RandomZoom(0.3, fill_mode="wrap", interpolation="nearest",
                                                 **kw),
    "contrast": lambda **kw: RandomContrast(0.5, value_range=(-1.5, 1.5), **kw),
    "contrast_pair": lambda **kw: RandomContrast((0.2, 0.9), value_range=(-1.0, 2.0), **kw),
    "brightness": lambda **kw: RandomBrightness(0.3, value_range=(-1.5, 1.5), **kw),
    "brightness_pair": lambda **kw: RandomBrightness((-0.1, 0.4), value_range=(-2, 2), **kw),
    "crop": lambda **kw: RandomCrop(4, 3, **kw),
}
INFERENCE_IDENTITY = [case for case in LAYERS if not case.startswith("crop")]


def image_shape(data_format, c=2, h=6, w=5):
    return (c, h, w) if data_format == "channels_first" else (h, w, c)


def check_drawn_gradients(layer, x, seed=0):
    """Backward against central differences of ``sum(forward(x, training=True) * r)`` with
    the draws held fixed (the layer's generator put back before every forward)."""
    state = layer.get_state()
    y = layer.forward(x, training=True)
    r = np.random.default_rng(seed).standard_normal(y.shape)
    dx = layer.backward(r.copy())

    def objective():
        layer.set_state(state)
        return float((layer.forward(x, training=True) * r).sum())

    error = gradient_error(dx, numerical_gradient(objective, x))
    assert error < 1e-6, f"{layer.describe()}: relative error {error:.2e}"


@pytest.mark.parametrize("case", LAYERS)
@pytest.mark.parametrize("data_format", FORMATS)
def test_backward_matches_numerical_gradients(case, data_format):
    shape = image_shape(data_format)
    layer = built(LAYERS[case](seed=2, data_format=data_format), shape)
    check_drawn_gradients(layer, random((3, *shape)))


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("target", [(4, 3), (3, 5), (8, 4), (6, 5)])
def test_crop_inference_and_small_input_gradients(data_format, target):
    shape = image_shape(data_format)
    layer = built(RandomCrop(*target, seed=1, data_format=data_format), shape)
    check_layer_gradients(layer, random((2, *shape)), training=False)
    if target[0] > 6 or target[1] > 5:  # smaller than the target: training resizes too
        check_layer_gradients(layer, random((2, *shape)), training=True)


@pytest.mark.parametrize("case", INFERENCE_IDENTITY)
def test_identity_at_inference(case):
    layer = built(LAYERS[case](seed=1), (2, 6, 5))
    x, grad = random((3, 2, 6, 5)), random((3, 2, 6, 5), seed=1)
    assert layer.forward(x, training=False) is x
    assert layer.backward(grad) is grad


# -- values against loop references -------------------------------------------------------

def zoom_reference(x, zoom_h, zoom_w, interpolation, fill_mode, fill_value):
    """Each output pixel (p, q) reads centre + (p - centre) * zoom, by the loop resampler."""
    n, _, h, w = x.shape
    matrices = []
    for k in range(n):
        centre_r, centre_c = (h - 1) / 2, (w - 1) / 2
        matrices.append([[zoom_h[k], 0.0, centre_r - centre_r * zoom_h[k]],
                         [0.0, zoom_w[k], centre_c - centre_c * zoom_w[k]]])
    return affine_sample_reference(x, np.array(matrices), interpolation, fill_mode, fill_value)


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("width_factor", [None, (0.1, 0.5)])
def test_zoom_matches_the_loop_reference(data_format, width_factor):
    x = random((4, 3, 7, 6))
    layer = built(RandomZoom((-0.4, 0.3), width_factor, fill_mode="reflect", seed=5,
                             data_format=data_format), image_shape(data_format, 3, 7, 6))
    given = x if data_format == "channels_first" else x.transpose(0, 2, 3, 1)
    y = layer.forward(given, training=True)
    y = y if data_format == "channels_first" else y.transpose(0, 3, 1, 2)
    rng = np.random.default_rng(5)  # the layer's draws: the height's, then the width's
    zoom_h = 1 + rng.uniform(-0.4, 0.3, 4)
    zoom_w = zoom_h if width_factor is None else 1 + rng.uniform(*width_factor, 4)
    np.testing.assert_allclose(y, zoom_reference(x, zoom_h, zoom_w, "bilinear", "reflect", 0),
                               atol=1e-12)


@pytest.mark.parametrize("fill_mode, padding_mode", [("constant", "zeros"),
                                                     ("nearest", "border")])
def test_zoom_matches_torch_grid_sample(fill_mode, padding_mode):
    torch = pytest.importorskip("torch", reason="PyTorch's grid_sample is the zoom's oracle")
    x = random((5, 2, 9, 7))
    layer = built(RandomZoom(0.6, (-0.3, 0.8), fill_mode=fill_mode, seed=6), (2, 9, 7))
    y = layer.forward(x, training=True)
    rng = np.random.default_rng(6)
    zoom_h, zoom_w = 1 + rng.uniform(-0.6, 0.6, 5), 1 + rng.uniform(-0.3, 0.8, 5)
    theta = np.zeros((5, 2, 3))  # normalized (x = column, y = row) coordinates about the centre
    theta[:, 0, 0], theta[:, 1, 1] = zoom_w, zoom_h
    grid = torch.nn.functional.affine_grid(torch.tensor(theta), (5, 2, 9, 7), align_corners=True)
    want = torch.nn.functional.grid_sample(torch.tensor(x), grid, mode="bilinear",
                                           padding_mode=padding_mode, align_corners=True)
    np.testing.assert_allclose(y, want.numpy(), atol=1e-10)
    grad = random(y.shape, seed=2)
    xt = torch.tensor(x, requires_grad=True)
    torch.nn.functional.grid_sample(xt, grid, mode="bilinear", padding_mode=padding_mode,
                                    align_corners=True).backward(torch.tensor(grad))
    np.testing.assert_allclose(layer.backward(grad), xt.grad.numpy(), atol=1e-10)


def test_zoom_keeps_the_aspect_ratio_and_positive_zooms_out():
    layer = built(RandomZoom((0.5, 0.5), fill_mode="constant", interpolation="nearest", seed=0),
                  (1, 9, 9))
    x = np.zeros((1, 1, 9, 9))
    x[0, 0, 0, 8] = 1.0  # top-right corner, 4 rows and columns from the centre
    y = layer.forward(x, training=True)
    # zoom 1.5 both ways: output (p, q) reads 4 + (p - 4) * 1.5; the corner lands 4 / 1.5 from
    # the centre (rounded 2.67 -> 3), the same on both axes: the content shrank
    assert y.sum() == 1.0 and y[0, 0, 1, 7] == 1.0
    both = built(RandomZoom(0.4, seed=3), (1, 6, 6))
    matrices = both.draw_matrices(200, 6, 6)
    np.testing.assert_array_equal(matrices[:, 0, 0], matrices[:, 1, 1])
    assert matrices[:, 0, 0].min() >= 0.6 and matrices[:, 0, 0].max() <= 1.4
    assert abs(matrices[:, 0, 0].std() - 0.8 / math.sqrt(12)) < 0.03  # uniform in [0.6, 1.4]


@pytest.mark.parametrize("data_format", FORMATS)
def test_contrast_matches_the_loop_reference(data_format):
    x = random((4, 3, 5, 6)) * 2
    layer = built(RandomContrast((0.6, 0.4), value_range=(-2.5, 3.0), seed=7,
                                 data_format=data_format), image_shape(data_format, 3, 5, 6))
    y = layer.forward(x if data_format == "channels_first" else x.transpose(0, 2, 3, 1),
                      training=True)
    y = y if data_format == "channels_first" else y.transpose(0, 3, 1, 2)
    factors = np.random.default_rng(7).uniform(1 - 0.4, 1 + 0.6, 4)  # sorted: (0.4, 0.6)
    want = np.empty_like(x)
    for n in range(4):
        for c in range(3):
            mean = sum(x[n, c, p, q] for p in range(5) for q in range(6)) / 30
            for p in range(5):
                for q in range(6):
                    value = (x[n, c, p, q] - mean) * factors[n] + mean
                    want[n, c, p, q] = min(max(value, -2.5), 3.0)
    np.testing.assert_allclose(y, want, atol=1e-12)
    assert np.any(want == 3.0) and np.any(want == -2.5)  # the clip was exercised


@pytest.mark.parametrize("data_format", FORMATS)
def test_brightness_matches_the_loop_reference(data_format):
    x = random((5, 2, 4, 3))
    layer = built(RandomBrightness((-0.3, 0.2), value_range=(2.0, -2.0), seed=8,
                                   data_format=data_format), image_shape(data_format, 2, 4, 3))
    y = layer.forward(x if data_format == "channels_first" else x.transpose(0, 2, 3, 1),
                      training=True)
    y = y if data_format == "channels_first" else y.transpose(0, 3, 1, 2)
    deltas = np.random.default_rng(8).uniform(-0.3, 0.2, 5) * 4.0  # the range (-2, 2), sorted
    want = np.empty_like(x)
    for index in np.ndindex(x.shape):
        want[index] = min(max(x[index] + deltas[index[0]], -2.0), 2.0)
    np.testing.assert_allclose(y, want, atol=1e-12)
    assert np.any(np.abs(want) == 2.0)


def bilinear_resize_reference(image, height, width):
    """(C, h, w) -> (C, height, width), half-pixel centres, reads clamped to the edges."""
    c, h, w = image.shape
    out = np.zeros((c, height, width))
    for p in range(height):
        for q in range(width):
            row = min(max((p + 0.5) * h / height - 0.5, 0), h - 1)
            col = min(max((q + 0.5) * w / width - 0.5, 0), w - 1)
            top, left = math.floor(row), math.floor(col)
            bottom, right = min(top + 1, h - 1), min(left + 1, w - 1)
            dr, dc = row - top, col - left
            out[:, p, q] = ((1 - dr) * (1 - dc) * image[:, top, left]
                            + (1 - dr) * dc * image[:, top, right]
                            + dr * (1 - dc) * image[:, bottom, left]
                            + dr * dc * image[:, bottom, right])
    return out


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("target", [(4, 5), (7, 5), (2, 9)])  # also a side equal to the input's
def test_crop_training_windows_match_the_loop_reference(data_format, target):
    x = random((6, 2, 7, 9))
    height, width = target
    layer = built(RandomCrop(height, width, seed=9, data_format=data_format),
                  image_shape(data_format, 2, 7, 9))
    y = layer.forward(x if data_format == "channels_first" else x.transpose(0, 2, 3, 1),
                      training=True)
    y = y if data_format == "channels_first" else y.transpose(0, 3, 1, 2)
    starts = np.random.default_rng(9).integers(0, [8 - height, 10 - width], size=(6, 2))
    want = np.zeros((6, 2, height, width))
    for n, (top, left) in enumerate(starts):
        for p in range(height):
            for q in range(width):
                want[n, :, p, q] = x[n, :, top + p, left + q]
    np.testing.assert_array_equal(y, want)
    assert len({tuple(s) for s in starts}) > 1  # the images got different windows


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("size, target, window", [
    ((7, 9), (4, 5), ((0, 7), (0, 8))),  # 7 x 8.75 -> rows 0:7, columns 0:8 resized
    ((7, 9), (3, 9), ((2, 3), (0, 9))),  # the window is the target: no resize
    ((5, 4), (8, 6), ((0, 5), (0, 3))),  # smaller than the target: upsampled
    ((6, 6), (2, 5), ((2, 2), (0, 6)))])  # 2.4 x 6: rows 2:4, all columns
def test_crop_inference_is_the_centred_window_resized(data_format, size, target, window):
    x = random((3, 2, *size))
    layer = built(RandomCrop(*target, data_format=data_format), image_shape(data_format, 2,
                                                                             *size))
    assert layer.central_window() == window
    given = x if data_format == "channels_first" else x.transpose(0, 2, 3, 1)
    y = layer.forward(given, training=False)
    assert y.shape == (3, *layer.output_shape[1:])
    y = y if data_format == "channels_first" else y.transpose(0, 3, 1, 2)
    (top, rows), (left, cols) = window
    want = np.stack([bilinear_resize_reference(image[:, top:top + rows, left:left + cols],
                                               *target) for image in x])
    np.testing.assert_allclose(y, want, atol=1e-12)
    torch = pytest.importorskip("torch", reason="PyTorch's interpolate is the resize oracle")
    xt = torch.tensor(x[:, :, top:top + rows, left:left + cols])
    resized = torch.nn.functional.interpolate(xt, size=target, mode="bilinear",
                                              align_corners=False)
    np.testing.assert_allclose(y, resized.numpy(), atol=1e-12)
    if size[0] < target[0] or size[1] < target[1]:  # training on a small input: the same
        np.testing.assert_allclose(layer.forward(given, training=True), layer.forward(given),
                                   atol=0)


def test_crop_output_shape_in_the_model_and_summary():
    model = Sequential([Input((10, 12, 3)), RandomCrop(6, 8, data_format="channels_last"),
                        Flatten(), Dense(2)])
    assert model.layers[0].output_shape == (None, 6, 8, 3)
    lines = []
    model.summary(print_fn=lines.append)
    assert "(None, 6, 8, 3)" in lines[0]


# -- draws --------------------------------------------------------------------------------

@pytest.mark.parametrize("case", LAYERS)
def test_seeded_draws_repeat(case):
    a = assert_seeded_draws_repeat(LAYERS[case])
    other = built(LAYERS[case](seed=9), (1, 6, 6)).forward(random((5, 1, 6, 6)), training=True)
    assert not np.array_equal(a, other)  # another seed, other draws


@pytest.mark.parametrize("case", LAYERS)
def test_each_global_sample_gets_its_draw_whatever_the_pieces(case):
    """A batch computed in two parts (``batch_draws.part``, here the later part first), or
    one process's slice of it (``replica.replica_slice``, as a worker or MPI rank computes
    it), transforms every image as the whole batch does, forward and backward."""
    x = random((7, 2, 6, 5))
    whole = built(LAYERS[case](seed=4), (2, 6, 5))
    y = whole.forward(x, training=True)
    grad = random(y.shape, seed=3)
    dx = whole.backward(grad)
    parts = built(LAYERS[case](seed=4), (2, 6, 5))
    outputs, grads = {}, {}
    with batch_draws.shared_over_parts():
        for start, stop in ((3, 7), (0, 3)):
            with batch_draws.part(7, start):
                outputs[start] = parts.forward(x[start:stop], training=True)
                grads[start] = parts.backward(grad[start:stop])
    np.testing.assert_array_equal(np.concatenate([outputs[0], outputs[3]]), y)
    np.testing.assert_array_equal(np.concatenate([grads[0], grads[3]]), dx)
    rank = built(LAYERS[case](seed=4), (2, 6, 5))
    with replica.replica_slice(7, 4):
        np.testing.assert_array_equal(rank.forward(x[4:], training=True), y[4:])
        np.testing.assert_array_equal(rank.backward(grad[4:]), dx[4:])


@pytest.mark.parametrize("make", [lambda: RandomZoom(0.2, data_format="channels_last"),
                                  lambda: RandomContrast(0.3, value_range=(-3, 3),
                                                         data_format="channels_last"),
                                  lambda: RandomBrightness(0.1, value_range=(-3, 3),
                                                           data_format="channels_last"),
                                  lambda: RandomCrop(6, 6, data_format="channels_last")],
                         ids=["zoom", "contrast", "brightness", "crop"])
def test_a_model_trains_through_the_layer(make):
    """The layer sits after a convolution, so its backward carries the convolution's
    gradient; the loss falls and seeded runs repeat."""
    def train():
        cnn.set_seed(0)
        model = Sequential([Input((8, 8, 1)), Conv2D(2, 1, data_format="channels_last"), make(),
                            Flatten(), Dense(1)])
        model.compile(optimizer="adam", loss="mse")
        rng = np.random.default_rng(0)
        x = rng.random((32, 8, 8, 1)).astype(np.float32)
        y = x.mean(axis=(1, 2, 3))[:, None] * 3
        history = model.fit(x, y, epochs=15, batch_size=8, verbose=0, seed=1)
        return model, history, x

    first, history, x = train()
    second, _, _ = train()
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    np.testing.assert_array_equal(first.predict(x), second.predict(x))
    assert any(np.any(w != 0) for w in first.layers[0].get_weights())


# -- saving, arguments, dtypes ------------------------------------------------------------

@pytest.mark.parametrize("case", LAYERS)
def test_configs_and_files_round_trip(case, tmp_path):
    layer = LAYERS[case](seed=9, data_format="channels_last")
    rebuilt = deserialize(serialize(layer))
    assert rebuilt.get_config() == layer.get_config()
    assert type(rebuilt) is type(layer)
    assert_round_trips([LAYERS[case](seed=9)], (1, 6, 6), tmp_path)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"height_factor must lie in \[-1, 1\]"):
        RandomZoom(1.5)
    with pytest.raises(ValueError, match=r"width_factor must be a number or a \(lower, upper\)"):
        RandomZoom(0.1, (0.1, 0.2, 0.3))
    with pytest.raises(ValueError, match="fill_mode must be one of"):
        RandomZoom(0.1, fill_mode="mirror")
    with pytest.raises(ValueError, match="interpolation must be one of"):
        RandomZoom(0.1, interpolation="bicubic")
    with pytest.raises(ValueError, match=r"factor must lie in \[0, 1\]"):
        RandomContrast(-0.2)
    with pytest.raises(ValueError, match=r"factor must lie in \[0, 1\]"):
        RandomContrast((0.1, 1.5))
    with pytest.raises(ValueError, match=r"factor must be a number or a \(lower, upper\)"):
        RandomContrast("strong")
    with pytest.raises(ValueError, match=r"factor must lie in \[-1, 1\]"):
        RandomBrightness(2.0)
    with pytest.raises(ValueError, match="value_range must be a pair"):
        RandomBrightness(0.1, value_range=(0, 1, 2))
    with pytest.raises(ValueError, match="value_range must be a pair"):
        RandomContrast(0.1, value_range=(1.0, 1.0))
    with pytest.raises(ValueError, match="value_range must be a pair"):
        RandomContrast(0.1, value_range=5)
    with pytest.raises(ValueError, match="RandomCrop height must be a positive int"):
        RandomCrop(0, 4)
    with pytest.raises(ValueError, match="RandomCrop width must be a positive int"):
        RandomCrop(4, 2.5)
    with pytest.raises(ValueError, match="seed must be an int"):
        RandomCrop(4, 4, seed="one")
    with pytest.raises(ValueError, match=r"needs input of shape \(channels, height, width\)"):
        RandomCrop(4, 4).build((28, 28))


@pytest.mark.parametrize("case", LAYERS)
@pytest.mark.parametrize("training", [True, False])
def test_float32_stays_float32(case, training):
    layer = LAYERS[case](seed=1)
    layer.build((2, 6, 5))
    x = random((2, 2, 6, 5)).astype(np.float32)
    y = layer.forward(x, training=training)
    assert y.dtype == layer.backward(np.ones_like(y)).dtype == np.float32
