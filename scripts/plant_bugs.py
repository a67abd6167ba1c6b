"""Plant known bugs one at a time in a copy of the checkout and check that the tests catch them.

Each bug is one textual edit of the source (it must apply exactly once); the named test
files run against the copy and must FAIL. Prints one line per bug and exits 1 if any bug
survives. Usage (from the checkout; about a minute on a quiet machine)::

    python scripts/plant_bugs.py            # every bug
    python scripts/plant_bugs.py same_front # only the named ones

The first three are the bugs issue 17 found surviving the whole suite; the others are bugs
of the same shape in the code those tests guard. See docs/TESTING.md.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# name: (file, original text, planted text, test files that must fail)
BUGS = {
    "checker_compares_itself": (
        "cnn/utils/gradient_check.py", "np.linalg.norm(a - b) / denom",
        "np.linalg.norm(b - b) / denom", ["tests/test_gradient_check.py"]),
    "same_front": (
        "cnn/ops/shapes.py", "        before = total // 2\n        after = total - before",
        "        after = total // 2\n        before = total - after",
        ["tests/test_oracles.py"]),
    "forget_bias_on_input_gate": (
        "cnn/layers/rnn.py", "bias[self.units:2 * self.units] = 1", "bias[:self.units] = 1",
        ["tests/test_initializer_conventions.py"]),
    "checker_compares_itself_and_batchnorm_backward_wrong": (
        "cnn/utils/gradient_check.py", "np.linalg.norm(a - b) / denom",
        "np.linalg.norm(b - b) / denom", ["tests/test_reference_norm.py"]),
    "batchnorm_backward_drops_mean_term": (
        "cnn/layers/normalization.py", "        dx -= self._broadcast(gain * sum_grad / count)\n",
        "", ["tests/test_reference_norm.py"]),
    "lstm_forget_gradient_uses_new_cell": (
        "cnn/ops/rnn.py", "xp.multiply(dc, c[t], out=d[:, u:2 * u])",
        "xp.multiply(dc, c[t + 1], out=d[:, u:2 * u])", ["tests/test_reference_rnn.py"]),
    "gru_reset_before_drops_reset_in_state_gradient": (
        "cnn/ops/rnn.py", "xp.multiply(d_rh, reset, out=dmemo[t])",
        "xp.multiply(d_rh, 1.0, out=dmemo[t])", ["tests/test_reference_rnn.py"]),
    "fused_sigmoid_bce_not_averaged": (
        "cnn/losses.py", "        return (a - self.smooth(target)) / _feature_count(z)",
        "        return (a - self.smooth(target))", ["tests/test_model_gradients.py"]),
    "leaky_relu_backward_default_alpha": (
        "cnn/ops/activations.py", "grad * grad.dtype.type(alpha))",
        "grad * grad.dtype.type(0.01))", ["tests/test_model_gradients.py"]),
}
# the second edit of the combined bug
EXTRA = {"checker_compares_itself_and_batchnorm_backward_wrong":
         BUGS["batchnorm_backward_drops_mean_term"]}


def plant(copy: Path, edit) -> None:
    path = copy / edit[0]
    text = path.read_text()
    if text.count(edit[1]) != 1:
        raise SystemExit(f"{edit[0]}: the text to replace occurs {text.count(edit[1])} times")
    path.write_text(text.replace(edit[1], edit[2]))


def caught(name: str) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "copy"
        shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".git", "runs", "mutants",
                                                                  "__pycache__", "*.egg-info"))
        plant(copy, BUGS[name])
        if name in EXTRA:
            plant(copy, EXTRA[name])
        env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": str(copy)}
        result = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p",
                                 "no:cacheprovider", *BUGS[name][3]], cwd=copy, env=env,
                                capture_output=True, text=True, timeout=900)
        return result.returncode == 1  # tests failed (not: collection error, usage error)


def main(names) -> int:
    survivors = []
    for name in names or BUGS:
        status = "caught" if caught(name) else "SURVIVED"
        print(f"{status:9s} {name} ({', '.join(BUGS[name][3])})", flush=True)
        if status != "caught":
            survivors.append(name)
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
