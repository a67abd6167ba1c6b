"""Data formats: ONNX's image and sequence ops (Conv, pooling, Resize, ...) are channels first,
(N, C, H, W) or (N, C, L). A ``channels_last`` layer's converter runs them between two
``Transpose`` nodes, (N, H, W, C) -> (N, C, H, W) before and back after; the same for the
(N, L, C) sequences of the 1-D layers."""

from __future__ import annotations

from cnn.layers.data_format import CHANNELS_FIRST, split_shape
from cnn.ops.shapes import window_output_shape


def to_channels_first_perm(rank: int) -> list[int]:
    """(N, *spatial, C) -> (N, C, *spatial) for ``rank`` spatial axes."""
    return [0, rank + 1, *range(1, rank + 1)]


def to_channels_last_perm(rank: int) -> list[int]:
    """(N, C, *spatial) -> (N, *spatial, C)."""
    return [0, *range(2, rank + 2), 1]


def in_channels_first(builder, layer, x: str, output: str, emit, rank: int = 2) -> None:
    """Call ``emit(x_cf, output_cf)``, which writes the channels-first op(s), with the
    ``Transpose`` nodes around it when ``layer.data_format`` is channels last."""
    if layer.data_format == CHANNELS_FIRST:
        emit(x, output)
        return
    x_cf = builder.node("Transpose", [x], perm=to_channels_first_perm(rank))
    y_cf = builder.unique("channels_first_output")
    emit(x_cf, y_cf)
    builder.node("Transpose", [y_cf], output, perm=to_channels_last_perm(rank))


def spatial_sizes(layer) -> tuple[int, ...]:
    """The spatial sizes of the layer's input, whatever its data format."""
    return split_shape(layer.input_shape, layer.data_format)[1]


def onnx_pads(pads, rank: int) -> list[int]:
    """cnn's 2-D kernel padding ``((top, bottom), (left, right))`` as ONNX ``pads``:
    ``[top, left, bottom, right]``, or ``[left, right]`` for a 1-D layer (whose padding is
    that of an image of height 1)."""
    (top, bottom), (left, right) = pads
    return [top, left, bottom, right] if rank == 2 else [left, right]


def window_pads(layer, window, strides, padding) -> list[int]:
    """The ONNX ``pads`` of a pooling window (``window``, ``strides``: one int per spatial
    axis) over the layer's input."""
    rank = len(window)
    lift = (lambda values: tuple(values)) if rank == 2 else (lambda values: (1, *values))
    _, pads = window_output_shape(lift(spatial_sizes(layer)), lift(window), lift(strides),
                                  padding)
    return onnx_pads(pads, rank)
