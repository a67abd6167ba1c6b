"""Image and sequence layouts of the window layers (convolution, pooling, resizing).

The kernels in ``cnn.ops`` work on (N, C, H, W) arrays in any memory order, and they store
their results channels last. A layer with ``data_format="channels_last"`` therefore hands
them a transposed *view* of its (N, H, W, C) input and returns a view of their output: no
copy either way, in forward or backward.

``data_format=None`` takes ``cnn.image_data_format()`` when the layer is created (2-D layers)
or ``"channels_last"`` (1-D layers, whose inputs are (N, steps, features) like the recurrent
layers'). A saved layer stores the resolved value; a config without one (files written
before the option existed) means channels first.

Spatial ranks: 2 for images ((C, H, W) or (H, W, C) per sample), 1 for sequences ((C, L)
or (L, C)); a 1-D array is seen by the kernels as an image of height 1.
"""

from __future__ import annotations

from cnn import backend
from cnn.layers.base import format_shape

CHANNELS_FIRST = "channels_first"
CHANNELS_LAST = "channels_last"
DATA_FORMATS = (CHANNELS_FIRST, CHANNELS_LAST)
IMAGE_CHANNEL_COUNTS = (1, 3, 4)  # grey, RGB, RGBA: what an image's channel axis usually holds

_LAYOUTS = {
    (2, CHANNELS_FIRST): "(channels, height, width)",
    (2, CHANNELS_LAST): "(height, width, channels)",
    (1, CHANNELS_FIRST): "(channels, steps)",
    (1, CHANNELS_LAST): "(steps, channels)",
}


def resolve(data_format, rank=2) -> str:
    """``data_format`` checked, or the default for ``rank`` spatial axes when None."""
    if data_format is None:
        return backend.image_data_format() if rank == 2 else CHANNELS_LAST
    if data_format not in DATA_FORMATS:
        raise ValueError(f"unknown data_format {data_format!r}; valid: {', '.join(DATA_FORMATS)}")
    return data_format


def layout(data_format, rank=2) -> str:
    """``"(height, width, channels)"`` and the like, for messages."""
    return _LAYOUTS[(rank, data_format)]


def split_shape(input_shape, data_format):
    """A sample's shape -> ``(channels, spatial sizes)``."""
    if data_format == CHANNELS_FIRST:
        return input_shape[0], tuple(input_shape[1:])
    return input_shape[-1], tuple(input_shape[:-1])


def join_shape(channels, spatial, data_format) -> tuple:
    """Inverse of ``split_shape``."""
    spatial = tuple(spatial)
    return (channels, *spatial) if data_format == CHANNELS_FIRST else (*spatial, channels)


def to_nchw(x, data_format, rank=2):
    """A batch in ``data_format`` -> an (N, C, H, W) view for the kernels (H = 1 when 1-D)."""
    if rank == 1:
        x = x[:, :, None, :] if data_format == CHANNELS_FIRST else x[:, None, :, :]
        return x if data_format == CHANNELS_FIRST else x.transpose(0, 3, 1, 2)
    return x if data_format == CHANNELS_FIRST else x.transpose(0, 3, 1, 2)


def from_nchw(y, data_format, rank=2):
    """Inverse of ``to_nchw``: an (N, C, H, W) kernel result -> a view in ``data_format``."""
    if rank == 1:
        y = y[:, :, 0, :]
        return y if data_format == CHANNELS_FIRST else y.transpose(0, 2, 1)
    return y if data_format == CHANNELS_FIRST else y.transpose(0, 2, 3, 1)


def spatial_axes(data_format, rank=2) -> tuple:
    """The spatial axes of a batch (batch axis 0)."""
    first = 2 if data_format == CHANNELS_FIRST else 1
    return tuple(range(first, first + rank))


def layout_hint(input_shape, data_format) -> str:
    """A sentence for errors when a 3-D ``input_shape`` looks like the other layout."""
    if len(input_shape) != 3:
        return ""
    first, last = input_shape[0], input_shape[-1]
    if data_format == CHANNELS_FIRST:
        small, large, other = last, first, CHANNELS_LAST
    else:
        small, large, other = first, last, CHANNELS_FIRST
    if small not in IMAGE_CHANNEL_COUNTS or large <= max(IMAGE_CHANNEL_COUNTS):
        return ""
    return (f"; this looks like {other.replace('_', '-')} data {layout(other)}: pass "
            f"data_format={other!r} or call cnn.set_image_data_format({other!r})")


def require_input(layer, input_shape, rank=2) -> None:
    """Raise naming ``layer`` unless ``input_shape`` has ``rank`` spatial axes and channels."""
    if len(input_shape) != rank + 1:
        raise ValueError(
            f"layer {layer.describe()} needs input of shape "
            f"{layout(layer.data_format, rank)} per sample, got {format_shape(input_shape)}"
        )


def does_not_fit(layer, what, input_shape) -> ValueError:
    """The error for a window (``what``, e.g. "a 3x3 kernel with strides (1, 1)") that does
    not fit ``input_shape``, with the layout hint when the layout looks wrong."""
    return ValueError(
        f"layer {layer.describe()}: {what} does not fit the input {format_shape(input_shape)} "
        f"read as {layout(layer.data_format, len(input_shape) - 1)}"
        f"{layout_hint(input_shape, layer.data_format)}"
    )


def config_with_default(config: dict) -> dict:
    """A saved config; one without ``data_format`` was written channels first."""
    return {"data_format": CHANNELS_FIRST, **config}
