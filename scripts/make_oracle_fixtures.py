"""Write tests/fixtures/oracles/windows.json: convolution and pooling results computed by
PyTorch, with the padding of each case taken from PyTorch itself or from Keras/TensorFlow's
documented formula, never from ``cnn``.

The tests (tests/test_oracles.py) read the committed file, so CI needs no torch. Re-run
after changing a case: ``python scripts/make_oracle_fixtures.py`` (needs torch and scipy).

Conventions, as documented:

* ``"same"`` (TensorFlow, "Convolution" in the tf.nn docs, used by Keras):
  ``out = ceil(n / s)``, ``pad_total = max((out - 1) * s + k - n, 0)``,
  ``pad_before = pad_total // 2``, ``pad_after = pad_total - pad_before``: the extra row of an
  odd total goes at the END. For stride 1 the script checks that PyTorch's own
  ``padding="same"`` agrees.
* ``"valid"``: no padding, ``out = floor((n - k) / s) + 1`` (torch.nn.Conv2d's formula with
  padding 0, dilation 1).
* ``"full"``: ``k - 1`` on both sides, checked against ``scipy.signal.correlate2d(mode="full")``.
* explicit padding: zeros, as ``torch.nn.functional.pad``.
* pooling: padded cells never win a max and are not counted in an average (Keras "same",
  PyTorch ``count_include_pad=False``); ``ceil_mode`` cases are PyTorch's own rule.
* dilated output sizes: ``floor((n + 2p - d (k - 1) - 1) / s) + 1`` from torch.nn.Conv2d,
  computed by running torch.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import scipy.signal
import torch
import torch.nn.functional as F

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "oracles" / "windows.json"
RNG = np.random.default_rng(2024)  # reset by build(), so that every build gives the same file


def tf_same(n, k, s):
    """TensorFlow's documented "SAME" padding: (before, after, out)."""
    out = math.ceil(n / s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2, out


def pads_for(spec, hw, kernel, stride):
    if spec == "valid":
        return [[0, 0], [0, 0]]
    if spec == "same":
        return [list(tf_same(n, k, s)[:2]) for n, k, s in zip(hw, kernel, stride)]
    if spec == "full":
        return [[k - 1, k - 1] for k in kernel]
    if isinstance(spec, int):
        return [[spec, spec], [spec, spec]]
    return [list(p) for p in spec]


def tensor(a, grad=False):
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


def conv_case(name, hw, kernel, stride, spec, channels=2, filters=3, batch=2):
    x = RNG.standard_normal((batch, channels, *hw))
    w = RNG.standard_normal((filters, channels, *kernel))
    b = RNG.standard_normal(filters)
    pads = pads_for(spec, hw, kernel, stride)
    xt, wt, bt = tensor(x, True), tensor(w, True), tensor(b, True)
    padded = F.pad(xt, (pads[1][0], pads[1][1], pads[0][0], pads[0][1]))
    y = F.conv2d(padded, wt, bt, stride=tuple(stride))
    if spec == "same" and tuple(stride) == (1, 1):
        with warnings.catch_warnings():  # "may require a zero-padded copy": it does
            warnings.simplefilter("ignore", UserWarning)
            torch_same = F.conv2d(xt, wt, bt, padding="same")
        assert torch.equal(torch_same, y), f"{name}: PyTorch's 'same' puts the extra row elsewhere"
    if spec == "full" and tuple(stride) == (1, 1):
        expected = scipy.signal.correlate2d(x[0, 0], w[0, 0], mode="full")
        full_pads = tuple(k - 1 for k in kernel)
        single = F.conv2d(tensor(x[:1, :1]), tensor(w[:1, :1]), padding=full_pads)
        assert np.allclose(single.numpy()[0, 0], expected), f"{name}: full correlation differs"
    for axis, (n, k, s) in enumerate(zip(hw, kernel, stride)):
        if spec == "valid":
            assert y.shape[2 + axis] == (n - k) // s + 1
        if spec == "same":
            assert y.shape[2 + axis] == math.ceil(n / s)
    dy = RNG.standard_normal(tuple(y.shape))
    y.backward(tensor(dy))
    return {
        "name": name, "input_hw": list(hw), "kernel": list(kernel), "stride": list(stride),
        "padding": spec, "pads": pads, "out_hw": list(y.shape[2:]),
        "x": x.tolist(), "w": w.tolist(), "b": b.tolist(), "y": y.detach().numpy().tolist(),
        "dy": dy.tolist(), "dx": xt.grad.numpy().tolist(), "dw": wt.grad.numpy().tolist(),
        "db": bt.grad.numpy().tolist(),
    }


def pool_case(name, mode, hw, pool, stride, spec, channels=2, batch=2, ceil_mode=False):
    """spec: "valid", "same" (TF formula) or an int (symmetric, PyTorch's own padding)."""
    x = RNG.standard_normal((batch, channels, *hw))
    xt = tensor(x, True)
    if ceil_mode:
        pads = pads_for("same", hw, pool, stride)  # all after: what ceil mode's last window reads
        op = F.max_pool2d if mode == "max" else F.avg_pool2d
        y = op(xt, pool, stride, ceil_mode=True)
        same = [tf_same(n, k, s) for n, k, s in zip(hw, pool, stride)]
        # these cases are chosen where ceil mode's windows are Keras "same"'s windows
        assert all(before == 0 for before, _, _ in same), name
        assert list(y.shape[2:]) == [out for _, _, out in same], name
        spec = "same"
    elif isinstance(spec, int):
        pads = [[spec, spec], [spec, spec]]
        if mode == "max":
            y = F.max_pool2d(xt, pool, stride, padding=spec)
        else:
            y = F.avg_pool2d(xt, pool, stride, padding=spec, count_include_pad=False)
    else:
        pads = pads_for(spec, hw, pool, stride)
        order = (pads[1][0], pads[1][1], pads[0][0], pads[0][1])
        if mode == "max":
            y = F.max_pool2d(F.pad(xt, order, value=-math.inf), pool, stride)
        else:
            sums = F.avg_pool2d(F.pad(xt, order), pool, stride, divisor_override=1)
            counts = F.avg_pool2d(F.pad(torch.ones_like(xt), order), pool, stride,
                                  divisor_override=1)
            y = sums / counts
    dy = RNG.standard_normal(tuple(y.shape))
    y.backward(tensor(dy))
    return {
        "name": name, "mode": mode, "input_hw": list(hw), "pool": list(pool),
        "stride": list(stride), "padding": spec, "pads": pads, "ceil_mode": ceil_mode,
        "out_hw": list(y.shape[2:]), "x": x.tolist(), "y": y.detach().numpy().tolist(),
        "dy": dy.tolist(), "dx": xt.grad.numpy().tolist(),
    }


def dilated_sizes():
    cases = []
    for n, k, s, d, p in [(9, 3, 1, 2, 0), (10, 3, 2, 2, 1), (11, 2, 1, 3, 2), (8, 3, 3, 2, 2),
                          (7, 3, 1, 3, 0), (12, 5, 2, 2, 4)]:
        x = torch.zeros(1, 1, n, n, dtype=torch.float64)
        w = torch.zeros(1, 1, k, k, dtype=torch.float64)
        out = F.conv2d(x, w, stride=s, dilation=d, padding=p).shape[2]
        cases.append({"n": n, "k": k, "stride": s, "dilation": d, "padding": p, "out": out})
    return cases


def build() -> dict:
    """Every case, computed afresh (the same numbers each time)."""
    global RNG
    RNG = np.random.default_rng(2024)
    conv = [
        conv_case("valid 3x3", (6, 5), (3, 3), (1, 1), "valid"),
        conv_case("valid strided, trailing rows dropped", (8, 7), (3, 2), (2, 3), "valid"),
        conv_case("same odd kernel", (5, 6), (3, 3), (1, 1), "same"),
        conv_case("same even kernel (extra row at the end)", (5, 6), (2, 4), (1, 1), "same"),
        conv_case("same strided odd input", (7, 8), (3, 3), (2, 2), "same"),
        conv_case("same strided even kernel", (7, 6), (4, 2), (2, 3), "same"),
        conv_case("same stride > kernel", (9, 9), (2, 2), (3, 3), "same"),
        conv_case("full", (4, 5), (3, 2), (1, 1), "full"),
        conv_case("full strided", (6, 5), (3, 3), (2, 2), "full"),
        conv_case("explicit int", (5, 5), (3, 3), (1, 1), 1),
        conv_case("explicit asymmetric strided", (6, 7), (3, 2), (2, 2), [[2, 0], [1, 3]]),
    ]
    pool = [
        pool_case("max valid tiled", "max", (6, 4), (2, 2), (2, 2), "valid"),
        pool_case("max valid floor (odd input)", "max", (7, 5), (2, 2), (2, 2), "valid"),
        pool_case("max overlapping", "max", (7, 7), (3, 3), (2, 2), "valid"),
        pool_case("max same odd input (extra at the end)", "max", (5, 7), (2, 2), (2, 2), "same"),
        pool_case("max same overlapping", "max", (6, 7), (3, 3), (2, 2), "same"),
        pool_case("max padded 1", "max", (6, 5), (3, 3), (2, 2), 1),
        pool_case("max ceil mode", "max", (5, 8), (2, 3), (2, 3), None, ceil_mode=True),
        pool_case("avg valid tiled", "avg", (4, 6), (2, 2), (2, 2), "valid"),
        pool_case("avg overlapping", "avg", (7, 6), (3, 2), (2, 1), "valid"),
        pool_case("avg same odd input", "avg", (5, 5), (2, 2), (2, 2), "same"),
        pool_case("avg same overlapping", "avg", (7, 6), (3, 3), (2, 2), "same"),
        pool_case("avg padded 1 (padding not counted)", "avg", (5, 6), (3, 3), (2, 2), 1),
        pool_case("avg ceil mode", "avg", (8, 5), (3, 2), (3, 2), None, ceil_mode=True),
    ]
    return {"generator": "scripts/make_oracle_fixtures.py", "torch": torch.__version__,
            "conv": conv, "pool": pool, "dilated_sizes": dilated_sizes()}


def main():
    data = build()
    conv, pool = data["conv"], data["pool"]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(data, indent=None, separators=(",", ":")) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes): {len(conv)} conv, {len(pool)} pool cases")


if __name__ == "__main__":
    main()
