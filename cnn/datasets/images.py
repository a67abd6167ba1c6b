"""Your own images as model inputs: image files (PNG, JPEG, ... via Pillow) and ``.npy`` arrays.

    x = load_inputs("my_digit.png", model.input.input_shape)   # (1, 1, 28, 28) float32 in [0, 1]

Image files become grey ("L") for one-channel models and RGB for three-channel ones
(transparent pixels are put on white first), are padded with their background colour to the
model's aspect ratio so nothing is distorted, resized to the model's H x W and scaled to
[0, 1].

Inversion (``invert="auto"``, one-channel models only): MNIST and Fashion-MNIST images are
light on a black background, while a digit written on paper is dark on light. An image is
taken to be dark on light, and inverted (``255 - pixel``), when the median of its border
pixels (the outermost row or column on each side) is above 127.5. ``invert=True`` or
``False`` forces the choice. The median of the border is also the background colour used
for padding.

Cropping (``crop=True``): MNIST's digits were scaled to fit a 20 x 20 box centred in 28 x 28.
For a photo or scan of a digit with a wide margin, ``crop`` cuts the image to the bounding
box of its strokes (pixels that differ from the background by more than a quarter of the
largest difference) and adds a margin of a fifth of the box's longer side all round, so the
strokes fill the frame as MNIST's do.

``.npy`` arrays are used as they are (no inversion, resizing or cropping): shape (H, W),
(N, H, W) for one-channel models, (C, H, W) or (N, C, H, W); ``uint8`` values (or integers
in 0..255) are scaled by 1/255, floats are kept.
"""

from __future__ import annotations

import math
import os
import warnings
import zlib
from pathlib import Path

import numpy as np

MAX_IMAGE_PIXELS = 89_478_485  # Pillow's decompression-bomb limit: 1024 ** 3 // 4 // 3
_MARGIN = 0.2  # of the strokes' bounding box, all round: MNIST's 20-pixel box in 28 pixels


def load_inputs(path, input_shape, invert="auto", crop: bool = False) -> np.ndarray:
    """One image file, or a ``.npy`` array of one or more images, as (N, C, H, W) float32.

    Args:
        path: an image file Pillow reads, or a ``.npy`` file.
        input_shape: the model's input (C, H, W); C is 1 (grey) or 3 (RGB) for image files.
        invert: ``"auto"``, True or False (image files, one channel); see the module docstring.
        crop: cut an image file to its strokes with an MNIST-like margin.
    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: naming the file, when it is neither an image nor a ``.npy`` array, or
            its shape or dtype does not fit ``input_shape``.
    """
    path = Path(path)
    if path.suffix.lower() == ".npy":
        return _load_array(path, tuple(input_shape))
    return load_image(path, input_shape, invert, crop)[np.newaxis]


def load_image(path, input_shape, invert="auto", crop: bool = False) -> np.ndarray:
    """An image file as one (C, H, W) float32 input in [0, 1]; see the module docstring."""
    path = Path(path)
    channels, height, width = _image_shape(path, input_shape)
    if invert not in ("auto", True, False):
        raise ValueError(f"invert must be 'auto', True or False, got {invert!r}")
    pixels = _read_pixels(path, channels)
    if channels == 1 and (invert is True or (invert == "auto" and np.median(_border(pixels)) > 127.5)):
        pixels = 255 - pixels
    background = np.median(_border(pixels), axis=0)
    if crop:
        pixels = _crop_to_strokes(pixels, background)
        margin = round(_MARGIN * max(pixels.shape[:2]))
        pixels = _place(pixels, pixels.shape[0] + 2 * margin, pixels.shape[1] + 2 * margin, background)
    pixels = _pad_to_aspect(pixels, height / width, background)

    from PIL import Image

    resized = Image.fromarray(pixels).resize((width, height), Image.Resampling.LANCZOS)
    scaled = np.asarray(resized, dtype=np.float32) / np.float32(255)
    return scaled[np.newaxis] if channels == 1 else np.ascontiguousarray(scaled.transpose(2, 0, 1))


def _image_shape(path, input_shape):
    input_shape = tuple(int(size) for size in input_shape)
    if len(input_shape) != 3 or input_shape[0] not in (1, 3):
        raise ValueError(f"{path}: image files can feed models whose input is (1, H, W) or "
                         f"(3, H, W); this model's input is {input_shape}")
    return input_shape


def _read_pixels(path, channels) -> np.ndarray:
    """(h, w) uint8 grey or (h, w, 3) uint8 RGB, transparency flattened onto white.

    An image of more than ``MAX_IMAGE_PIXELS`` pixels is refused from its header, before it
    is decoded (Pillow's decompression-bomb limit, made an error instead of a warning), and
    a truncated or damaged file is named in the error.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise ValueError(f"{path}: the image is {width} x {height} pixels; images "
                                     f"of at most {MAX_IMAGE_PIXELS} pixels are read (a larger "
                                     "one may be a decompression bomb)")
                image = ImageOps.exif_transpose(image)
                if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                    rgba = image.convert("RGBA")
                    image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
                return np.array(image.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
    except UnidentifiedImageError:
        raise ValueError(f"{path}: not an image file that Pillow can read (PNG, JPEG, ...), "
                         f"nor a .npy array") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ValueError(f"{path}: the image is too large to read safely ({exc}); images of "
                         f"at most {MAX_IMAGE_PIXELS} pixels are read") from None
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except ValueError as exc:
        if str(exc).startswith(f"{path}: "):
            raise
        raise ValueError(f"{path}: a damaged or truncated image file ({exc})") from None
    except (OSError, SyntaxError, EOFError, zlib.error) as exc:
        raise ValueError(f"{path}: a damaged or truncated image file ({exc})") from None


def _border(pixels) -> np.ndarray:
    """The outermost rows and columns' pixels: (k,) grey or (k, 3) RGB."""
    return np.concatenate([pixels[0], pixels[-1], pixels[1:-1, 0], pixels[1:-1, -1]]).astype(np.float64)


def _crop_to_strokes(pixels, background) -> np.ndarray:
    difference = np.abs(pixels.astype(np.float64) - background)
    if difference.ndim == 3:
        difference = difference.max(axis=2)
    strokes = difference > difference.max() / 4
    if difference.max() == 0 or not strokes.any():
        return pixels  # a blank image: nothing to crop to
    rows, columns = np.flatnonzero(strokes.any(axis=1)), np.flatnonzero(strokes.any(axis=0))
    return pixels[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1]


def _pad_to_aspect(pixels, aspect, background) -> np.ndarray:
    """Pad evenly with ``background`` until height / width == ``aspect`` (to the pixel)."""
    height, width = pixels.shape[:2]
    if height / width < aspect:
        return _place(pixels, round(width * aspect), width, background)
    return _place(pixels, height, round(height / aspect), background)


def _place(pixels, height, width, background) -> np.ndarray:
    """``pixels`` centred on a ``height`` x ``width`` canvas of ``background``."""
    canvas = np.empty((height, width, *pixels.shape[2:]), dtype=np.uint8)
    canvas[...] = np.round(background).astype(np.uint8)
    top, left = (height - pixels.shape[0]) // 2, (width - pixels.shape[1]) // 2
    canvas[top:top + pixels.shape[0], left:left + pixels.shape[1]] = pixels
    return canvas


def _check_npy_header(path) -> None:
    """Refuse a .npy file whose header declares more data than the file holds, before
    NumPy allocates the declared array."""
    with open(path, "rb") as stream:
        try:
            version = np.lib.format.read_magic(stream)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read_header(stream)
        except ValueError:
            return  # not a valid .npy file: np.load names the problem
        available = os.fstat(stream.fileno()).st_size - stream.tell()
    needed = math.prod(shape) * dtype.itemsize
    if needed > available:
        raise ValueError(f"{path}: the .npy header declares an array of shape {shape} "
                         f"({needed} bytes), but the file holds {available} bytes of data")


def _load_array(path, input_shape) -> np.ndarray:
    if path.is_file():
        _check_npy_header(path)
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"{path}: not a readable .npy array ({exc})") from None
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{path}: holds several arrays (.npz); save one array with np.save")
    batch = _as_batch(array, input_shape)
    if batch is None:
        raise ValueError(f"{path}: an array of shape {array.shape} does not fit the model's input "
                         f"{input_shape}; expected (H, W), (N, H, W), (C, H, W) or (N, C, H, W) "
                         f"with (C, H, W) = {input_shape}")
    if batch.dtype.kind in "ui":
        if batch.size and (batch.min() < 0 or batch.max() > 255):
            raise ValueError(f"{path}: integer pixels must lie in 0..255, got {batch.min()}..{batch.max()}")
        return batch.astype(np.float32) / np.float32(255)
    if batch.dtype.kind != "f":
        raise ValueError(f"{path}: pixels must be numbers (uint8 or float), got dtype {array.dtype}")
    return batch.astype(np.float32)


def _as_batch(array, input_shape):
    """(N, C, H, W) view of ``array``, or None when its shape does not fit."""
    channels, spatial = input_shape[0], input_shape[1:]
    if array.ndim == 4 and array.shape[1:] == input_shape:
        return array
    if array.ndim == 3 and array.shape == input_shape:
        return array[np.newaxis]
    if channels == 1 and array.ndim == 3 and array.shape[1:] == spatial:
        return array[:, np.newaxis]
    if channels == 1 and array.ndim == 2 and array.shape == spatial:
        return array[np.newaxis, np.newaxis]
    return None
