"""MNIST (LeCun, Cortes and Burges; CC BY-SA 3.0): 60,000 training and 10,000 test digits.

    (x_train, y_train), (x_test, y_test) = mnist.load_data()

Images (N, 1, 28, 28) float32 in [0, 1] (``dtype="uint8"`` for raw pixels 0..255), labels
(N,) int64 digits 0..9. The four IDX files are looked for in ``path``, ``$CNN_DATA``, the
cache ``~/.cache/cnn/mnist`` and ``/usr/share/datasets/mnist``; failing those they are
downloaded (12 MB) into the cache and checked against the SHA-256 digests below, which
TensorFlow Datasets publishes for these mirror files. For a small offline sample bundled
with the package see ``cnn.datasets.mnist_sample``.
"""

from __future__ import annotations

from cnn.datasets import idx_dataset

CLASS_NAMES = tuple(str(d) for d in range(10))

DATASET = idx_dataset.IdxDataset(
    name="mnist",
    sha256={
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    mirrors=(
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
    ),
    system_dirs=("/usr/share/datasets/mnist",),
)
NAME = DATASET.name

#: ``load_data(path=None, dtype="float32", *, download=True, base_url=None, verbose=1)``;
#: see ``cnn.datasets.idx_dataset.IdxDataset.load_data``.
load_data = DATASET.load_data
