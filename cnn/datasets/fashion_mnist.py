"""Fashion-MNIST (Zalando Research, MIT licence): 60,000 training and 10,000 test images of
clothing in 10 classes (``CLASS_NAMES``).

    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()

Images (N, 1, 28, 28) float32 in [0, 1] (``dtype="uint8"`` for raw pixels 0..255), labels
(N,) int64 class ids. The four IDX files are looked for in ``path``, ``$CNN_DATA``, the cache
``~/.cache/cnn/fashion-mnist`` and Debian's copy (``apt-get install dataset-fashion-mnist``
puts it in ``/usr/share/datasets/fashion-mnist``); failing those they are downloaded (31 MB)
into the cache and checked against the SHA-256 digests below, which TensorFlow Datasets
publishes for Zalando's files. (Debian's files hold the same data but not the same bytes:
its packaging rewrote their gzip headers.)
"""

from __future__ import annotations

from cnn.datasets import idx_dataset

CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot")

DATASET = idx_dataset.IdxDataset(
    name="fashion-mnist",
    sha256={
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
    mirrors=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
    ),
    system_dirs=("/usr/share/datasets/fashion-mnist",),
)
NAME = DATASET.name

#: ``load_data(path=None, dtype="float32", *, download=True, base_url=None, verbose=1)``;
#: see ``cnn.datasets.idx_dataset.IdxDataset.load_data``.
load_data = DATASET.load_data
