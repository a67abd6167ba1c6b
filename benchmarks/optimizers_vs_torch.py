"""Hold every cnn optimizer against torch.optim on the same gradients (a benchmark-side check).

    pip install torch        # CPU build; never needed by cnn or its tests
    python benchmarks/optimizers_vs_torch.py

Each pair starts from the same float64 parameters and receives the same 50 random gradients;
the script prints the largest relative difference of the parameters after every step and
fails if it exceeds 1e-10. Hyper-parameters are given explicitly on both sides (the two
libraries' defaults differ: see cnn/optimizers.py).
"""

import sys

import numpy as np
import torch

from cnn import optimizers as cnn_optim
from cnn import schedules

STEPS = 50
TOLERANCE = 1e-10

CASES = [
    ("SGD", lambda: cnn_optim.SGD(0.05),
     lambda p: torch.optim.SGD(p, lr=0.05)),
    ("SGD momentum + weight decay", lambda: cnn_optim.SGD(0.05, momentum=0.9, weight_decay=0.01),
     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=0.01)),
    ("SGD Nesterov", lambda: cnn_optim.SGD(0.05, momentum=0.9, nesterov=True),
     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True)),
    ("Adam", lambda: cnn_optim.Adam(0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-8),
     lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.9, 0.999), eps=1e-8)),
    ("Adam + L2 weight decay", lambda: cnn_optim.Adam(0.01, epsilon=1e-8, weight_decay=0.1),
     lambda p: torch.optim.Adam(p, lr=0.01, eps=1e-8, weight_decay=0.1)),
    ("AdamW", lambda: cnn_optim.AdamW(0.01, epsilon=1e-8, weight_decay=0.1),
     lambda p: torch.optim.AdamW(p, lr=0.01, eps=1e-8, weight_decay=0.1)),
    ("RMSprop", lambda: cnn_optim.RMSprop(0.01, rho=0.99, epsilon=1e-8),
     lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.99, eps=1e-8)),
    ("RMSprop centered + momentum",
     lambda: cnn_optim.RMSprop(0.01, rho=0.9, momentum=0.5, epsilon=1e-8, centered=True),
     lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, momentum=0.5, eps=1e-8, centered=True)),
    ("Adagrad", lambda: cnn_optim.Adagrad(0.1, initial_accumulator_value=0.1, epsilon=1e-10),
     lambda p: torch.optim.Adagrad(p, lr=0.1, initial_accumulator_value=0.1, eps=1e-10)),
    ("Adadelta", lambda: cnn_optim.Adadelta(1.0, rho=0.9, epsilon=1e-6),
     lambda p: torch.optim.Adadelta(p, lr=1.0, rho=0.9, eps=1e-6)),
    ("Nadam (Keras 3, momentum_decay=1)", lambda: cnn_optim.Nadam(0.01, epsilon=1e-8),
     lambda p: torch.optim.NAdam(p, lr=0.01, eps=1e-8, momentum_decay=1.0)),
    ("Nadam (torch's momentum_decay)",
     lambda: cnn_optim.Nadam(0.002, epsilon=1e-8, momentum_decay=0.004),
     lambda p: torch.optim.NAdam(p, lr=0.002, eps=1e-8, momentum_decay=0.004)),
    ("Adam + step decay (StepLR)",
     lambda: cnn_optim.Adam(schedules.StepDecay(0.01, 10, 0.5), epsilon=1e-8),
     lambda p: torch.optim.Adam(p, lr=0.01, eps=1e-8)),
]


def compare(name, make_ours, make_theirs, rng):
    shapes = [(4, 3), (5,)]
    ours = [rng.standard_normal(s) for s in shapes]
    theirs = [torch.tensor(p.copy(), requires_grad=True) for p in ours]
    optimizer, reference = make_ours(), make_theirs(theirs)
    scheduler = torch.optim.lr_scheduler.StepLR(reference, 10, 0.5) if "StepLR" in name else None
    worst = 0.0
    for _ in range(STEPS):
        grads = [rng.standard_normal(s) for s in shapes]
        optimizer.apply_gradients(ours, [g.copy() for g in grads])
        for tensor, g in zip(theirs, grads):
            tensor.grad = torch.tensor(g)
        reference.step()
        if scheduler is not None:
            scheduler.step()
        for mine, tensor in zip(ours, theirs):
            other = tensor.detach().numpy()
            worst = max(worst, float(np.abs(mine - other).max() / np.abs(other).max()))
    return worst


def main():
    torch.set_default_dtype(torch.float64)
    rng = np.random.default_rng(0)
    failed = False
    for name, make_ours, make_theirs in CASES:
        worst = compare(name, make_ours, make_theirs, rng)
        ok = worst < TOLERANCE
        failed |= not ok
        print(f"{name:<32} max relative difference over {STEPS} steps: {worst:.1e}"
              f"  {'ok' if ok else 'FAIL'}")
    print(f"torch {torch.__version__}, numpy {np.__version__}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
