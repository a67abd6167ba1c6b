"""Hold BatchNormalization against torch.nn.BatchNorm1d/2d (a benchmark-side check).

    pip install torch        # CPU build; never needed by cnn or its tests
    python benchmarks/batchnorm_vs_torch.py

Compares, in float64, the training-mode output and the gradients of the input, gamma and
beta, the moving mean, and the inference-mode output. Conventions differ on purpose: Keras's
``momentum=0.99`` is PyTorch's ``momentum=0.01``, and PyTorch's running variance is the
*unbiased* batch variance where ours (Keras's) is the biased one, so the moving variances
are compared after rescaling torch's update by (m - 1) / m.
"""

import sys

import numpy as np
import torch

from cnn.backend import floatx_scope
from cnn.layers import BatchNormalization


def check(batch_shape, torch_layer_class):
    rng = np.random.default_rng(0)
    channels = batch_shape[1]
    count = int(np.prod(batch_shape)) // channels
    with floatx_scope("float64"):
        ours = BatchNormalization(axis=1, momentum=0.9, epsilon=1e-3)
        ours.build(batch_shape[1:])
    theirs = torch_layer_class(channels, eps=1e-3, momentum=0.1).double()
    gamma, beta = rng.uniform(0.5, 1.5, channels), rng.normal(size=channels)
    ours.params["gamma"][...] = gamma
    ours.params["beta"][...] = beta
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(gamma))
        theirs.bias.copy_(torch.tensor(beta))

    x = rng.normal(2.0, 3.0, batch_shape)
    upstream = rng.standard_normal(batch_shape)
    y = ours.forward(x, training=True)
    dx = ours.backward(upstream)
    x_t = torch.tensor(x, requires_grad=True)
    y_t = theirs.train()(x_t)
    y_t.backward(torch.tensor(upstream))

    def rel(a, b):
        b = b.detach().numpy() if torch.is_tensor(b) else b
        return float(np.abs(a - b).max() / np.abs(b).max())

    torch_var_update = theirs.running_var.numpy() - 0.9  # 0.1 * unbiased batch variance
    results = {
        "training output": rel(y, y_t),
        "input gradient": rel(dx, x_t.grad),
        "gamma gradient": rel(ours.grads["gamma"], theirs.weight.grad),
        "beta gradient": rel(ours.grads["beta"], theirs.bias.grad),
        "moving mean": rel(ours.buffers["moving_mean"], theirs.running_mean),
        "moving variance": rel(ours.buffers["moving_variance"],
                               0.9 + torch_var_update * (count - 1) / count),
    }
    x2 = rng.normal(size=batch_shape)
    theirs.running_var.copy_(torch.tensor(ours.buffers["moving_variance"]))
    results["inference output"] = rel(ours.forward(x2, training=False),
                                      theirs.eval()(torch.tensor(x2)))
    return results


def main():
    failed = False
    for shape, cls in (((16, 5), torch.nn.BatchNorm1d), ((8, 3, 5, 4), torch.nn.BatchNorm2d)):
        for name, error in check(shape, cls).items():
            ok = error < 1e-10
            failed |= not ok
            print(f"{cls.__name__} {str(shape):<14} {name:<18} max relative difference "
                  f"{error:.1e}  {'ok' if ok else 'FAIL'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
