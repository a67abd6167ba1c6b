"""A forward pass without training over a batch, with its losses: what ``evaluate``,
``predict`` and validation compute, in this process or in a worker process."""

from __future__ import annotations

from typing import NamedTuple

from cnn import backend


class Outputs(NamedTuple):
    """``run_inference``'s result: the outputs (one array per model output); the batch's
    mean loss and the mean of each output's loss (None without targets)."""

    outputs: list
    loss: float | None
    output_losses: list | None


def run_inference(model, batch) -> Outputs:
    """Forward in parts (``model.parts``, sized by the activations inference holds),
    computing each output's loss from each part right after its forward (a fused loss reads
    the part's logits)."""
    n = batch.rows
    chunks: list[list] = [[] for _ in model.outputs]
    with_loss = batch.y is not None
    total = 0.0
    output_losses = [None if loss is None else 0.0 for loss in model.output_losses]
    for part in model.parts(n, batch.x, training=False):
        result = model.graph.forward([x[part] for x in batch.x], training=False)
        share = (part.stop - part.start) / n
        for k, output in enumerate(result):
            chunks[k].append(output)
            if not with_loss or batch.y[k] is None or model.output_losses[k] is None:
                continue
            weights = None if batch.sample_weight is None else batch.sample_weight[part]
            value = float(model.output_loss(k, output, batch.y[k][part], weights)) * share
            output_losses[k] += value
            total += value * model.loss_weights[k]
    outputs = [c[0] if len(c) == 1 else backend.xp.concatenate(c) for c in chunks]
    if not with_loss:
        return Outputs(outputs, None, None)
    return Outputs(outputs, total, output_losses)
