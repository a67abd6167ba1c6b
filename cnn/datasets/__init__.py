"""Data loaders.

- ``mnist``, ``fashion_mnist``: the full data sets from local IDX files (``load_data()``).
- ``mnist_sample``: 5,000 real MNIST digits bundled with the package (``load_data()``).
- ``idx``: the IDX format of the original MNIST files (``read_idx``, ``write_idx``).
- ``matfile``: the seed's ``MNISTData.mat`` layout (``load_mat``, ``save_mat``).
"""

from cnn.datasets import fashion_mnist, idx, matfile, mnist, mnist_sample

__all__ = ["fashion_mnist", "idx", "matfile", "mnist", "mnist_sample"]
