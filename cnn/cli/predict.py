"""``cnn predict MODEL INPUT...``: classify image files and ``.npy`` arrays.

Prints one line per image: the input, then the most likely class with its probability
(``--top K`` shows the K most likely).
"""

from __future__ import annotations

import numpy as np

from cnn.cli.modelfile import class_names, read_model
from cnn.datasets.images import load_inputs


def run(args) -> int:
    model = read_model(args.model)
    names = class_names(model)
    invert = {"auto": "auto", "yes": True, "no": False}[args.invert]
    top = min(args.top, len(names))
    for path in args.inputs:
        x = load_inputs(path, model.input.input_shape, invert=invert, crop=args.crop)
        outputs = model.predict(x, workers=args.workers)
        for index, scores in enumerate(outputs):
            label = str(path) if len(outputs) == 1 else f"{path}[{index}]"
            print(f"{label}: {_describe(scores, names, top)}")
    return 0


def _describe(scores, names, top) -> str:
    """``7 (97.1%)`` or, for outputs that are not probabilities, ``7 (score 3.2)``."""
    probabilities = bool(np.all(scores >= 0) and abs(float(scores.sum()) - 1.0) < 1e-3)
    best = np.argsort(scores)[::-1][:top]
    return ", ".join(f"{names[i]} ({scores[i]:.1%})" if probabilities else f"{names[i]} (score {scores[i]:.3g})"
                     for i in best)
