"""Resampling channels-last images under per-image affine maps (for RandomTranslation and
RandomRotation), and the adjoint of that resampling.

``matrices[n]`` (2, 3) maps each output pixel ``(row, col, 1)`` of image ``n`` to the input
position it reads. That position is read by

* ``"bilinear"``: the four pixels around it, weighted by closeness;
* ``"nearest"``: the closest pixel (halves round to even).

A pixel index outside the image is folded back by ``fill_mode``: "reflect"
(d c b a | a b c d | d c b a), "wrap" (a b c d | a b c d), "nearest" (a a | a b c d | d d),
or "constant" (it reads ``fill_value``; bilinear weights still apply, as in TensorFlow).

The resampling is linear in the image, ``y = S x`` with a sparse S of at most four entries
per row; ``affine_backward`` applies ``S^T`` (each output's gradient added back onto the
pixels it read).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from cnn.backend import xp

FILL_MODES = ("reflect", "wrap", "nearest", "constant")
INTERPOLATIONS = ("bilinear", "nearest")


class SamplingTaps(NamedTuple):
    """Where each output pixel reads: K taps per pixel (1 nearest, 4 bilinear)."""

    indices: object  # (N, K, H * W) int, flat pixel indices into the input image
    weights: object  # (N, K, H * W) float, 0 for taps that read the fill value
    fill_weights: object  # (N, H * W) float: the weight given to ``fill_value``, or None
    fill_value: float


def sampling_taps(matrices, hw, interpolation="bilinear", fill_mode="reflect",
                  fill_value=0.0) -> SamplingTaps:
    """The taps of ``affine_forward`` for images of size ``hw`` under ``matrices`` (N, 2, 3)."""
    h, w = hw
    matrices = np.asarray(matrices, dtype=np.float64)
    rows, cols = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64),
                             indexing="ij")
    rows, cols = rows.reshape(1, -1), cols.reshape(1, -1)
    source_rows = matrices[:, 0, :1] * rows + matrices[:, 0, 1:2] * cols + matrices[:, 0, 2:]
    source_cols = matrices[:, 1, :1] * rows + matrices[:, 1, 1:2] * cols + matrices[:, 1, 2:]
    if interpolation == "nearest":
        taps = [(np.rint(source_rows), np.rint(source_cols), np.ones_like(source_rows))]
    else:
        top, left = np.floor(source_rows), np.floor(source_cols)
        down, right = source_rows - top, source_cols - left
        taps = [(top, left, (1 - down) * (1 - right)), (top, left + 1, (1 - down) * right),
                (top + 1, left, down * (1 - right)), (top + 1, left + 1, down * right)]
    indices, weights = [], []
    fill = np.zeros_like(source_rows)
    for tap_rows, tap_cols, weight in taps:
        r, inside_r = _fold(tap_rows.astype(np.int64), h, fill_mode)
        c, inside_c = _fold(tap_cols.astype(np.int64), w, fill_mode)
        inside = inside_r & inside_c
        indices.append(r * w + c)
        weights.append(np.where(inside, weight, 0.0))
        fill += np.where(inside, 0.0, weight)
    fill_weights = xp.asarray(fill) if fill_mode == "constant" and fill_value != 0 else None
    return SamplingTaps(xp.asarray(np.stack(indices, axis=1)),
                        xp.asarray(np.stack(weights, axis=1)), fill_weights, float(fill_value))


def affine_forward(x, taps: SamplingTaps):
    """x (N, H, W, C) -> y (N, H, W, C), each output pixel the weighted sum of its taps."""
    n, h, w, c = x.shape
    flat = x.reshape(n, h * w, c)
    weights = taps.weights.astype(x.dtype)
    y = xp.zeros_like(flat)
    for k in range(taps.indices.shape[1]):
        read = xp.take_along_axis(flat, taps.indices[:, k, :, None], axis=1)
        y += weights[:, k, :, None] * read
    if taps.fill_weights is not None:
        y += (taps.fill_weights * taps.fill_value).astype(x.dtype)[:, :, None]
    return y.reshape(x.shape)


def affine_backward(dy, taps: SamplingTaps):
    """The adjoint of ``affine_forward``: dy (N, H, W, C) -> dx (N, H, W, C)."""
    n, h, w, c = dy.shape
    flat = dy.reshape(n * h * w, c)
    dx = xp.zeros_like(flat)
    weights = taps.weights.astype(dy.dtype)
    offsets = (xp.arange(n) * (h * w))[:, None]
    for k in range(taps.indices.shape[1]):
        targets = (taps.indices[:, k] + offsets).reshape(-1)
        xp.add.at(dx, targets, weights[:, k].reshape(-1, 1) * flat)
    return dx.reshape(dy.shape)


def _fold(index, size, fill_mode):
    """Integer pixel indices mapped into [0, size) and where they were inside already
    (outside ones read the fill value in "constant" mode; otherwise all count as inside)."""
    inside = (index >= 0) & (index < size)
    if fill_mode == "constant":
        return np.clip(index, 0, size - 1), inside
    everywhere = np.ones_like(inside)
    if fill_mode == "nearest":
        return np.clip(index, 0, size - 1), everywhere
    if fill_mode == "wrap":
        return np.mod(index, size), everywhere
    period = np.mod(index, 2 * size)  # reflect
    return np.where(period < size, period, 2 * size - 1 - period), everywhere
