"""The seed's slow reference functions (``cnn/utils/standard.py``), same names, fixed.

These are oracles: plain loops and ``scipy.signal.convolve2d``, CPU and NumPy only. The
framework's kernels live in ``cnn.ops``. What changed from the seed:

* ``conv``: ``padding`` is an int amount of zeros on every side. The seed used it both as an
  index into ("valid", "same", "full") and as an amount when sizing the output, so it only
  worked for 3x3 kernels.
* ``max_pool`` starts from the first cell of each window, not from 0, so windows of negative
  values pool correctly. ``max_id`` is the row-major index ``i * kW + j``; the seed wrote
  ``i * kH + j``, which is wrong for non-square windows.
* ``conv_bp_standard``'s input gradient is the full convolution of delta with the kernel
  rotated by 180 degrees relative to the forward cross-correlation. The seed's ``conv_bp``
  left out that rotation, which is only right for symmetric kernels.
* Inputs that the pooling window does not tile lose their trailing rows and columns, as in the
  seed. The backward functions take an optional ``input_shape`` to pad the gradient back to
  the input's size with zeros.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import convolve2d


def conv(x, kernel, padding=0):
    """Cross-correlation (no kernel flip) with stride 1.

    Args:
        x (N, C, H, W): input.
        kernel (out_k, C, kH, kW): kernels.
        padding int: zeros added on every side.
    Returns:
        z (N, out_k, H + 2p - kH + 1, W + 2p - kW + 1).
    """
    n, c, h, w = x.shape
    out_k, _, kh, kw = kernel.shape
    p = padding
    x_padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    z = np.zeros((n, out_k, h + 2 * p - kh + 1, w + 2 * p - kw + 1), np.result_type(x, kernel))
    for i in range(n):
        for j in range(out_k):
            for ci in range(c):
                # convolve2d flips its kernel; flipping it first gives the cross-correlation.
                z[i, j] += convolve2d(x_padded[i, ci], kernel[j, ci, ::-1, ::-1], mode="valid")
    return z


def average_pool(x, kernel_shape):
    """Average pooling, stride = kernel: x (N, C, H, W) -> z (N, C, H // kH, W // kW)."""
    kh, kw = kernel_shape
    z = None
    for target in _window_cells(x, kernel_shape):
        z = target.copy() if z is None else z + target
    return z / (kh * kw)


def max_pool(x, kernel_shape):
    """Max pooling, stride = kernel.

    Args:
        x (N, C, H, W): input.
        kernel_shape (kH, kW): window.
    Returns:
        z (N, C, H // kH, W // kW): pooled values.
        max_id (N, C, H // kH, W // kW): row-major index ``i * kW + j`` of the first maximum
            within each window.
    """
    cells = _window_cells(x, kernel_shape)
    z = cells[0].copy()
    max_id = np.zeros(z.shape, dtype=np.int64)
    for index, target in enumerate(cells):
        mask = target > z  # strict: on a tie the earlier cell keeps the max
        max_id = np.where(mask, index, max_id)
        z = np.where(mask, target, z)
    return z, max_id


def pool(x, kernel_shape, mode=0):
    """Pooling: mode 0 average (returns z), mode 1 max (returns ``(z, max_id)``)."""
    if mode == 0:
        return average_pool(x, kernel_shape)
    return max_pool(x, kernel_shape)


def conv_bp_standard(x, z, error, kernel, activate_fcn_gradient):
    """Kernel gradient and input gradient of a stride-1, unpadded convolution layer.

    Args:
        x (N, C, H, W): the layer's input in the forward pass.
        z (N, out_k, out_h, out_w): the layer's pre-activation output ``conv(x, kernel)``.
        error (N, out_k, out_h, out_w): gradient with respect to the layer's activation.
        kernel (out_k, C, kH, kW): the kernels.
        activate_fcn_gradient: ``g(z)``, the activation's derivative (None for linear).
    Returns:
        grad (out_k, C, kH, kW): dL/dkernel averaged over the N samples, as the seed does.
        error_bp (N, C, H, W): dL/dx, summed, not averaged. It is the full convolution of
            ``delta = error * g(z)`` with the kernel, which flips the kernel relative to the
            forward cross-correlation. The seed's ``conv_bp`` used the unflipped kernel.
    """
    n, c, h, w = x.shape
    out_k, _, kh, kw = kernel.shape
    if error.shape != (n, out_k, h - kh + 1, w - kw + 1):
        raise ValueError(
            f"conv_bp_standard handles unpadded stride-1 convolutions only: error has shape "
            f"{error.shape}, expected {(n, out_k, h - kh + 1, w - kw + 1)} for input {x.shape} "
            f"and kernel {kernel.shape}"
        )
    delta = error if activate_fcn_gradient is None else error * activate_fcn_gradient(z)
    grad = np.zeros(kernel.shape, np.result_type(x, delta))
    error_bp = np.zeros(x.shape, np.result_type(delta, kernel))
    for i in range(n):
        for j in range(out_k):
            for ci in range(c):
                grad[j, ci] += convolve2d(x[i, ci], delta[i, j, ::-1, ::-1], mode="valid")
                error_bp[i, ci] += convolve2d(delta[i, j], kernel[j, ci], mode="full")
    return grad / n, error_bp


def average_pool_backward(error, kernel_shape, input_shape=None):
    """Backward of ``average_pool``.

    Args:
        error (N, C, out_h, out_w): gradient with respect to the pooled output.
        kernel_shape (kH, kW): window.
        input_shape: optional (N, C, H, W); pads the result with zeros to that size.
    Returns:
        error_bp (N, C, kH * out_h, kW * out_w), or ``input_shape``.
    """
    kh, kw = kernel_shape
    error_bp = error.repeat(kh, axis=-2).repeat(kw, axis=-1) / (kh * kw)
    return _pad_to(error_bp, input_shape)


def max_pool_backward(error, max_id, kernel_shape, input_shape=None):
    """Backward of ``max_pool``: each window's gradient goes to the cell ``max_id`` names.

    Args:
        error (N, C, out_h, out_w): gradient with respect to the pooled output.
        max_id (N, C, out_h, out_w): row-major window index ``i * kW + j`` of the maximum.
        kernel_shape (kH, kW): window.
        input_shape: optional (N, C, H, W); pads the result with zeros to that size.
    Returns:
        error_bp (N, C, kH * out_h, kW * out_w), or ``input_shape``.
    """
    out_h, out_w = error.shape[-2:]
    kh, kw = kernel_shape
    max_id = max_id.repeat(kh, axis=-2).repeat(kw, axis=-1)
    cell_index = np.tile(np.arange(kh * kw).reshape(kh, kw), (out_h, out_w))
    error_bp = error.repeat(kh, axis=-2).repeat(kw, axis=-1) * (max_id == cell_index)
    return _pad_to(error_bp, input_shape)


def _window_cells(x, kernel_shape):
    """Cell (i, j) of every window, row-major, each (N, C, H // kH, W // kW)."""
    kh, kw = kernel_shape
    out_h, out_w = x.shape[-2] // kh, x.shape[-1] // kw
    if out_h < 1 or out_w < 1:
        raise ValueError(f"pool window {tuple(kernel_shape)} is larger than the input {x.shape}")
    tiled = x[..., : out_h * kh, : out_w * kw]
    return [tiled[..., i::kh, j::kw] for i in range(kh) for j in range(kw)]


def _pad_to(error_bp, input_shape):
    if input_shape is None:
        return error_bp
    missing_h = input_shape[-2] - error_bp.shape[-2]
    missing_w = input_shape[-1] - error_bp.shape[-1]
    return np.pad(error_bp, ((0, 0),) * (error_bp.ndim - 2) + ((0, missing_h), (0, missing_w)))
