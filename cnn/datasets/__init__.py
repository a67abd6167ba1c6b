"""Data loaders.

- ``mnist``, ``fashion_mnist``: the full data sets (``load_data()``), read from local IDX
  files or downloaded once into ``~/.cache/cnn`` and checked against pinned SHA-256 digests.
- ``mnist_sample``: 5,000 real MNIST digits bundled with the package (``load_data()``).
- ``idx``: the IDX format of the original MNIST files (``read_idx``, ``write_idx``).
- ``idx_dataset``: where a data set of four IDX files is looked for, and how it is fetched.
- ``download``: downloading with mirrors, retries, SHA-256 checks and atomic writes.
- ``matfile``: the seed's ``MNISTData.mat`` layout (``load_mat``, ``save_mat``).
- ``images``: your own image files and ``.npy`` arrays as model inputs (``load_inputs``).
"""

from cnn.datasets import download, fashion_mnist, idx, idx_dataset, images, matfile, mnist, mnist_sample
from cnn.datasets.matfile import load_mat

__all__ = ["download", "fashion_mnist", "idx", "idx_dataset", "images", "load_mat", "matfile", "mnist",
           "mnist_sample"]
