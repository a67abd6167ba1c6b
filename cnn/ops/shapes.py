"""Output sizes and padding amounts of sliding-window operations (convolution, pooling).

Padding modes, per spatial axis of size ``n`` with window ``k`` and stride ``s``:

* ``"valid"``: no padding; ``out = (n - k) // s + 1``; trailing rows the window cannot reach
  are dropped (as in Keras and PyTorch).
* ``"same"``: ``out = ceil(n / s)``; the total padding ``max((out - 1) * s + k - n, 0)`` is
  split with the extra row at the end (Keras/TensorFlow convention).
* ``"full"``: ``k - 1`` zeros on both sides; ``out = (n + k - 2) // s + 1``.
* an int ``p`` or a pair ``(before, after)``: explicit zero padding.

A dilated window (dilation ``d``) spans ``(k - 1) * d + 1`` cells (``effective_kernel``); the
rules above apply to that span, as in Keras and PyTorch.
"""

from __future__ import annotations

PADDING_MODES = ("valid", "same", "full")


def pair(value, name: str) -> tuple[int, int]:
    """Normalise an int or a 2-sequence of positive ints to ``(height, width)``."""
    not_a_pair = f"{name} must be an int or a pair of ints, got {value!r}"
    if isinstance(value, (int,)) and not isinstance(value, bool):
        result = (value, value)
    elif isinstance(value, (str, bytes)):  # else "33" would read as (3, 3)
        raise ValueError(not_a_pair)
    else:
        try:
            result = tuple(int(v) for v in value)
        except (TypeError, ValueError):  # ValueError: int("x")
            raise ValueError(not_a_pair) from None
        if len(result) != 2 or any(int(v) != v for v in value):
            raise ValueError(not_a_pair)
    if any(v < 1 for v in result):
        raise ValueError(f"{name} must be positive, got {value!r}")
    return result


def effective_kernel(kernel, dilation=(1, 1)) -> tuple[int, ...]:
    """The span of a dilated window: ``(k - 1) * d + 1`` per axis."""
    return tuple((k - 1) * d + 1 for k, d in zip(kernel, dilation))


def check_padding(padding):
    """Validate a padding argument; return it lower-cased (mode) or as explicit amounts."""
    if isinstance(padding, str):
        mode = padding.lower()
        if mode not in PADDING_MODES:
            raise ValueError(
                f"unknown padding {padding!r}; valid paddings: {', '.join(PADDING_MODES)}, "
                "an int, or ((top, bottom), (left, right))"
            )
        return mode
    if isinstance(padding, int) and not isinstance(padding, bool):
        if padding < 0:
            raise ValueError(f"padding must be >= 0, got {padding}")
        return ((padding, padding), (padding, padding))
    try:
        rows, cols = padding
        result = tuple(_explicit_axis(p) for p in (rows, cols))
    except (TypeError, ValueError):
        raise ValueError(
            f"padding must be one of {', '.join(PADDING_MODES)}, an int, a pair of ints "
            f"or ((top, bottom), (left, right)); got {padding!r}"
        ) from None
    return result


def _explicit_axis(p):
    if isinstance(p, int):
        before = after = p
    else:
        before, after = (int(v) for v in p)
    if before < 0 or after < 0:
        raise ValueError("negative padding")
    return (before, after)


def axis_padding(n: int, k: int, s: int, padding) -> tuple[int, int, int]:
    """Padding and output size along one axis.

    Args:
        n: input size; k: window size; s: stride;
        padding: a mode name (already checked) or an explicit ``(before, after)`` pair.
    Returns:
        ``(pad_before, pad_after, out_size)``; ``out_size`` may be < 1 (callers raise).
    """
    if padding == "valid":
        before = after = 0
    elif padding == "same":
        out = -(-n // s)
        total = max((out - 1) * s + k - n, 0)
        before = total // 2
        after = total - before
    elif padding == "full":
        before = after = k - 1
    else:
        before, after = padding
    out = (n + before + after - k) // s + 1
    return before, after, out


def window_output_shape(hw, kernel, stride, padding):
    """Output ``(out_h, out_w)`` and ``((top, bottom), (left, right))`` padding of a 2-D window.

    ``padding`` is a mode name or explicit amounts as returned by ``check_padding``.
    """
    mode = padding if isinstance(padding, str) else None
    h = axis_padding(hw[0], kernel[0], stride[0], mode or padding[0])
    w = axis_padding(hw[1], kernel[1], stride[1], mode or padding[1])
    return (h[2], w[2]), ((h[0], h[1]), (w[0], w[1]))


def transposed_axis(n: int, k: int, s: int, padding: str, output_padding=None,
                    dilation: int = 1) -> tuple[int, int]:
    """Output size and crop of a transposed convolution along one axis, as in Keras.

    The full result of a transposed convolution has ``(n - 1) * s + span`` cells (``span``
    the dilated kernel). Keras keeps ``out`` of them from cell ``crop`` on (zeros past the
    end when ``out`` reaches beyond it):

    * ``"valid"``: ``crop = 0``, ``out = (n - 1) * s + span + output_padding``, where
      ``output_padding`` defaults to ``max(span, s) - span`` (so ``out = n * s`` at least);
    * ``"same"``: ``out = n * s`` without ``output_padding``, else
      ``(n - 1) * s + span % 2 + output_padding``; the cut is split as a forward "same"
      convolution pads, the odd cell at the end.

    Returns ``(out, crop)``. Raises ValueError unless ``0 <= output_padding < s``.
    """
    span = (k - 1) * dilation + 1
    if output_padding is not None and not 0 <= output_padding < s:
        raise ValueError(f"output_padding must be in [0, strides); got output_padding "
                         f"{output_padding} with strides {s}")
    if padding == "valid":
        extra = max(span, s) - span if output_padding is None else output_padding
        return (n - 1) * s + span + extra, 0
    total = s + span - 2 if output_padding is None else span + span % 2 - 2 + output_padding
    before = min(total // 2 + total % 2, span - 1)  # zeros before the flipped kernel
    return (n - 1) * s + 2 - span + total, span - 1 - before
