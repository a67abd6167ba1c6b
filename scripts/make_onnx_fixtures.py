"""Write tests/fixtures/onnx/: small networks trained briefly in PyTorch, exported with
``torch.onnx.export``, with the inputs and PyTorch's outputs, so that the import tests
(tests/test_onnx_import.py) need neither torch nor a training run.

    PYTHONPATH=. python scripts/make_onnx_fixtures.py [--out tests/fixtures/onnx]

For each fixture NAME it writes ``NAME.onnx`` (the legacy TorchScript exporter, which writes
the Shape/Gather/ConstantOfShape plumbing around recurrent ops that the importer must
recognize; the dynamo exporter needs onnxscript) and ``NAME.npz`` with ``x`` (inputs) and
``y`` (what the trained PyTorch module, in eval mode, computed from them).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnn.datasets import mnist_sample

STEPS = 60


class ConvNet(nn.Module):
    """Conv/BN/ReLU/max-pool, a strided padded conv, global mean, Linear/BN/GELU/Dropout/
    Linear (torch.onnx folds a BatchNorm2d into the Conv before it; a BatchNorm1d after a
    Linear stays a BatchNormalization node)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, (3, 5), stride=2, padding=(1, 2))
        self.fc1 = nn.Linear(16, 32)
        self.bn2 = nn.BatchNorm1d(32)
        self.drop = nn.Dropout(0.2)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.bn1(self.conv1(x))))
        x = torch.relu(self.conv2(x)).mean((2, 3))
        return self.fc2(self.drop(nn.functional.gelu(self.bn2(self.fc1(x)))))


class Pooling(nn.Module):
    """ZeroPad2d, padded average pooling that counts the zeros, max pooling, adaptive
    average pooling (GlobalAveragePool), Flatten, Linear, Softmax."""

    def __init__(self):
        super().__init__()
        self.pad = nn.ZeroPad2d((1, 2, 0, 1))
        self.conv = nn.Conv2d(1, 6, 5, stride=2)
        self.avg = nn.AvgPool2d(3, stride=2, padding=1)
        self.max = nn.MaxPool2d(2, stride=1)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, 10)

    def forward(self, x):
        x = self.max(self.avg(torch.tanh(self.conv(self.pad(x)))))
        return torch.softmax(self.fc(torch.flatten(self.gap(x), 1)), dim=-1)


class Activations(nn.Module):
    """x.view(N, -1), then Linear layers with every activation torch.onnx writes as one op
    or as the SiLU pattern."""

    def __init__(self):
        super().__init__()
        sizes = [784, 64, 48, 32, 32, 24, 16, 10]
        self.fcs = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))
        self.acts = [torch.tanh, nn.functional.silu, nn.functional.elu,
                     lambda t: nn.functional.leaky_relu(t, 0.2), nn.functional.softplus,
                     torch.sigmoid, lambda t: t]

    def forward(self, x):
        x = x.view(x.size(0), -1)
        for fc, act in zip(self.fcs, self.acts):
            x = act(fc(x))
        return x


class Residual(nn.Module):
    """A residual block (``x + conv(relu(conv(x)))``) and a ``torch.cat`` of two branches:
    what torch.onnx writes as Add and Concat of activations."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 6, 3, padding=1)
        self.conv1 = nn.Conv2d(6, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1)
        self.side = nn.Conv2d(6, 4, 1)
        self.fc = nn.Linear(10, 10)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = x + self.conv2(torch.relu(self.conv1(x)))
        joined = torch.cat([x, torch.relu(self.side(x))], dim=1)
        return self.fc(joined.mean((2, 3)))


class Recurrent(nn.Module):
    """An LSTM or GRU (batch_first); its last step (``[:, -1]``) or whole sequence into a
    Linear (Gemm for (N, U), MatMul + Add per step for (N, T, U))."""

    def __init__(self, cell, sequences):
        super().__init__()
        self.rnn = cell(3, 8, batch_first=True)
        self.fc = nn.Linear(8, 2)
        self.sequences = sequences

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.fc(y if self.sequences else y[:, -1])


class Conv1dNet(nn.Module):
    """Conv1d (dilated, "same" pads) with LeakyReLU, a strided Conv1d with ELU, Flatten,
    Linear: (N, 4, 12) sequences, channels first as torch has them."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv1d(4, 6, 3, dilation=2, padding=2)
        self.conv2 = nn.Conv1d(6, 5, 2, stride=2)
        self.fc = nn.Linear(30, 2)

    def forward(self, x):
        x = nn.functional.leaky_relu(self.conv1(x), 0.1)
        return self.fc(torch.flatten(nn.functional.elu(self.conv2(x)), 1))


class ImageOps(nn.Module):
    """Conv2d + PReLU (one slope per channel), a depthwise Conv2d (groups = channels), max
    pooling, ConvTranspose2d (DCGAN's kernel 4, stride 2, padding 1: Keras's "same"),
    Upsample (bilinear and nearest), Softmax over the channels, global mean, Linear. (A
    padding that Keras's "valid"/"same" cannot express, such as kernel 3, stride 2, padding 1,
    output_padding 1, is refused by the importer.)"""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.prelu = nn.PReLU(4, init=0.2)
        self.depthwise = nn.Conv2d(4, 8, 3, padding=1, groups=4)
        self.pool = nn.MaxPool2d(4)
        self.deconv = nn.ConvTranspose2d(8, 3, 4, stride=2, padding=1)
        self.bilinear = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.nearest = nn.Upsample(scale_factor=(1, 2), mode="nearest")
        self.fc = nn.Linear(3, 10)

    def forward(self, x):
        x = self.pool(self.depthwise(self.prelu(self.conv(x))))
        x = self.nearest(self.bilinear(torch.tanh(self.deconv(x))))
        return self.fc(torch.softmax(x, dim=1).mean((2, 3)))


class EmbeddingNet(nn.Module):
    """Embedding of int64 ids, LayerNorm (the LayerNormalization op from opset 17), Flatten,
    Linear."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(20, 8)
        self.norm = nn.LayerNorm(8)
        self.fc = nn.Linear(48, 2)

    def forward(self, ids):
        return self.fc(torch.flatten(self.norm(self.embedding(ids)), 1))


def train(module, x, y, loss_fn, steps=STEPS, lr=3e-3):
    """A brief Adam training, so that the weights are no longer their initial values."""
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(module.parameters(), lr=lr)
    module.train()
    for step in range(steps):
        index = torch.randint(0, len(x), (32,))
        optimizer.zero_grad()
        loss = loss_fn(module(x[index]), y[index])
        loss.backward()
        optimizer.step()
    module.eval()
    return loss.item()


def export(module, x, path, opset):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, x[:1], str(path), dynamo=False, opset_version=opset,
                          input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})


def sequences(count, generator):
    """(count, 7, 3) random walks; targets: the sign of each coordinate's sum (classes)."""
    x = torch.randn(count, 7, 3, generator=generator)
    return x, (x.sum(dim=1)[:, :2] > 0).float()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "tests"
                                             / "fixtures" / "onnx"))
    parser.add_argument("--only", nargs="*", help="write only these fixtures (names without "
                                                  "_opsetN)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    (x_train, y_train), (x_test, _) = mnist_sample.load_data()
    images, labels = torch.from_numpy(x_train[:1000]), torch.from_numpy(y_train[:1000])
    test_images = torch.from_numpy(x_test[:16])
    seq_x, seq_y = sequences(512, generator)
    test_seq = torch.randn(16, 7, 3, generator=generator)
    cross_entropy = nn.CrossEntropyLoss()
    conv_x = torch.randn(512, 4, 12, generator=generator)
    conv_y = (conv_x[:, 0].sum(dim=1) > 0).long()
    test_conv = torch.randn(16, 4, 12, generator=generator)
    ids = torch.randint(0, 20, (512, 6), generator=generator)
    id_labels = (ids[:, 0] > ids[:, 5]).long()
    test_ids = torch.randint(0, 20, (16, 6), generator=generator)

    def from_probabilities(p, t):
        return nn.functional.nll_loss(torch.log(p + 1e-9), t)

    def per_step(p, t):
        return nn.functional.mse_loss(p, t[:, None, :].expand_as(p))

    fixtures = [
        ("torch_convnet", ConvNet(), images, labels, cross_entropy, test_images, (13, 17)),
        ("torch_pooling", Pooling(), images, labels, from_probabilities, test_images, (13,)),
        ("torch_activations", Activations(), images, labels, cross_entropy, test_images, (17,)),
        ("torch_lstm", Recurrent(nn.LSTM, False), seq_x, seq_y, nn.functional.mse_loss,
         test_seq, (13, 17)),
        ("torch_gru_sequences", Recurrent(nn.GRU, True), seq_x, seq_y, per_step, test_seq,
         (13,)),
        ("torch_residual", Residual(), images, labels, cross_entropy, test_images, (13, 17)),
        ("torch_conv1d", Conv1dNet(), conv_x, conv_y, cross_entropy, test_conv, (13, 17)),
        ("torch_image_ops", ImageOps(), images, labels, cross_entropy, test_images, (13, 17)),
        ("torch_embedding", EmbeddingNet(), ids, id_labels, cross_entropy, test_ids, (17,)),
    ]
    for name, module, x, y, loss_fn, test_x, opsets in fixtures:
        if args.only and name not in args.only:
            continue
        loss = train(module, x, y, loss_fn)
        with torch.no_grad():
            expected = module(test_x).numpy()
        for opset in opsets:
            stem = f"{name}_opset{opset}"
            export(module, test_x, out / f"{stem}.onnx", opset)
            np.savez_compressed(out / f"{stem}.npz", x=test_x.numpy(), y=expected)
            print(f"wrote {stem}.onnx/.npz (final training loss {loss:.4f})")


if __name__ == "__main__":
    main()
