"""The usual PyTorch training loop, shared by the benchmarks.

It imports no cnn, so that a benchmark's PyTorch script pays only for what a PyTorch user's
script would load (``bench_main_command.py`` runs one in its own process).
"""

from __future__ import annotations


def train_epoch(net, optimizer, x, y, batch_size: int) -> tuple[float, float]:
    """One shuffled epoch of ``x`` (N, ...) float32 and class ids ``y`` (N,) int64 with
    cross-entropy; returns the epoch's mean loss and accuracy, as ``fit`` logs them."""
    import torch

    loss_fn = torch.nn.CrossEntropyLoss()
    net.train()
    order = torch.randperm(x.shape[0])
    loss_total, correct = 0.0, 0
    for begin in range(0, x.shape[0], batch_size):
        index = order[begin:begin + batch_size]
        xb, yb = x[index], y[index]
        out = net(xb)
        loss = loss_fn(out, yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss_total += loss.item() * xb.shape[0]
        correct += int((out.argmax(1) == yb).sum())
    return loss_total / x.shape[0], correct / x.shape[0]
