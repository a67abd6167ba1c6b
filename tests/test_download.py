"""Tests for cnn.datasets.download and the download path of the IDX loaders.

A real HTTP server on 127.0.0.1 serves small fixture IDX files; per request it can answer
normally, cut the transfer short, corrupt the bytes or fail with an HTTP status. No test
needs the internet.
"""

import gzip
import hashlib
import io
import json
import os
import socket
import threading
from pathlib import Path
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from cnn.datasets import download as download_module
from cnn.datasets import fashion_mnist, idx_dataset, mnist
from cnn.datasets import verification
from cnn.datasets.download import DownloadError, download, file_sha256
from cnn.datasets.idx import write_idx


def _fixture_files(tmp_path_factory):
    """The four files of a tiny MNIST-like data set, gzipped, as {name: bytes}."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, 6, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, 3, dtype=np.uint8),
    }
    directory = tmp_path_factory.mktemp("fixture-idx")
    files = {}
    for stem, array in arrays.items():
        write_idx(directory / f"{stem}.gz", array, compress=True)
        files[f"{stem}.gz"] = (directory / f"{stem}.gz").read_bytes()
    return files, arrays


class FixtureServer:
    """Serves ``files`` under ``/data/``; anything else is 404.

    ``plan[name]`` is a list of behaviours used up one per request for that file: "ok",
    "truncate" (Content-Length of the whole file, half the bytes, then the connection
    closes), "corrupt" (whole length, one byte changed) or an HTTP status code. With the
    list empty the file is served normally. ``requests`` records every requested path.
    """

    def __init__(self, files):
        self.files = files
        self.plan = {}
        self.requests = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                name = self.path.rsplit("/", 1)[-1]
                if not self.path.startswith("/data/") or name not in server.files:
                    self.send_error(404)
                    return
                steps = server.plan.get(name, [])
                behaviour = steps.pop(0) if steps else "ok"
                if isinstance(behaviour, int):
                    self.send_error(behaviour)
                    return
                body = server.files[name]
                if behaviour == "corrupt":
                    body = body[:-1] + bytes([body[-1] ^ 0xFF])
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if behaviour == "truncate" else body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/data/"
        self.root = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def fixture_files(tmp_path_factory):
    return _fixture_files(tmp_path_factory)


@pytest.fixture
def server(fixture_files):
    served = FixtureServer(fixture_files[0])
    yield served
    served.close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache directory, and no $CNN_DATA, so nothing is found locally."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("CNN_DATA", raising=False)
    return tmp_path / "xdg" / "cnn"


@pytest.fixture
def no_sleep(monkeypatch):
    delays = []
    monkeypatch.setattr(download_module.time, "sleep", delays.append)
    return delays


def fixture_dataset(fixture_files, **changes):
    files, _ = fixture_files
    digests = {name: hashlib.sha256(content).hexdigest() for name, content in files.items()}
    digests.update(changes)
    return idx_dataset.IdxDataset(name="fixture-digits", sha256=digests)


def files_in(directory):
    """The data files under ``directory`` (not the record of verified digests)."""
    if not directory.exists():
        return []
    return sorted(p.name for p in directory.rglob("*")
                  if p.is_file() and p.name != verification.RECORD_NAME)


def free_port_url():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/data/"


# ---------------------------------------------------------------- through the loaders


def test_load_downloads_verifies_and_caches(server, cache, fixture_files, no_sleep):
    dataset = fixture_dataset(fixture_files)
    (x_train, y_train), (x_test, y_test) = dataset.load_data(base_url=server.url, verbose=0)
    arrays = fixture_files[1]
    assert x_train.shape == (6, 1, 28, 28) and x_train.dtype == np.float32
    assert np.array_equal(x_train[:, 0], arrays["train-images-idx3-ubyte"] / np.float32(255))
    assert np.array_equal(y_test, arrays["t10k-labels-idx1-ubyte"]) and y_test.dtype == np.int64
    assert files_in(cache) == sorted(fixture_files[0])
    assert (cache / "fixture-digits" / verification.RECORD_NAME).is_file()
    assert sorted(server.requests) == sorted(f"/data/{name}" for name in fixture_files[0])
    for name, content in fixture_files[0].items():
        assert (cache / "fixture-digits" / name).read_bytes() == content


def test_second_load_is_a_cache_hit(server, cache, fixture_files):
    dataset = fixture_dataset(fixture_files)
    first = dataset.load_data(base_url=server.url, verbose=0, dtype="uint8")
    requests = len(server.requests)
    second = dataset.load_data(base_url=server.url, verbose=0, dtype="uint8")
    assert len(server.requests) == requests == 4
    assert np.array_equal(first[0][0], second[0][0])


def test_only_missing_files_are_downloaded(server, cache, fixture_files):
    directory = cache / "fixture-digits"
    directory.mkdir(parents=True)
    (directory / "t10k-labels-idx1-ubyte.gz").write_bytes(fixture_files[0]["t10k-labels-idx1-ubyte.gz"])
    fixture_dataset(fixture_files).load_data(base_url=server.url, verbose=0)
    assert "/data/t10k-labels-idx1-ubyte.gz" not in server.requests and len(server.requests) == 3


def test_failed_download_says_how_to_work_offline(cache, fixture_files, no_sleep):
    with pytest.raises(DownloadError, match="cannot connect") as error:
        fixture_dataset(fixture_files).load_data(base_url=free_port_url(), verbose=0, retries=0)
    assert "Without a network, copy the four files" in str(error.value)
    assert str(cache / "fixture-digits") in str(error.value)


def test_checksum_mismatch_is_a_clear_error_and_leaves_nothing(server, cache, fixture_files, no_sleep):
    dataset = fixture_dataset(fixture_files, **{"train-images-idx3-ubyte.gz": "0" * 64})
    with pytest.raises(DownloadError, match="SHA-256 mismatch: expected 0{64}, got [0-9a-f]{64}") as error:
        dataset.load_data(base_url=server.url, verbose=0)
    assert "train-images-idx3-ubyte.gz" in str(error.value)
    assert isinstance(error.value, OSError)
    assert files_in(cache) == []
    assert no_sleep == []  # a mismatch is not retried on the same mirror


def test_corrupted_transfer_is_rejected(server, cache, fixture_files):
    server.plan["train-images-idx3-ubyte.gz"] = ["corrupt"]
    with pytest.raises(DownloadError, match="SHA-256 mismatch"):
        fixture_dataset(fixture_files).load_data(base_url=server.url, verbose=0)
    assert files_in(cache) == []


def test_pinned_digests_are_checked_by_the_public_loaders(server, cache):
    # The fixture files are not MNIST: the pinned digests must reject them.
    with pytest.raises(DownloadError, match="SHA-256 mismatch") as error:
        mnist.load_data(base_url=server.url, verbose=0)
    assert "train-images-idx3-ubyte.gz" in str(error.value)
    assert files_in(cache) == []


def test_pinned_digests_look_like_sha256():
    for dataset in (mnist.DATASET, fashion_mnist.DATASET):
        assert sorted(dataset.sha256) == sorted(f"{stem}.gz" for stem in idx_dataset.FILES.values())
        assert all(len(d) == 64 and int(d, 16) >= 0 for d in dataset.sha256.values())
        assert dataset.mirrors and all(url.endswith("/") for url in dataset.mirrors)


def test_truncated_transfer_is_retried(server, cache, fixture_files, no_sleep):
    server.plan["train-labels-idx1-ubyte.gz"] = ["truncate"]
    fixture_dataset(fixture_files).load_data(base_url=server.url, verbose=0, backoff=0.5)
    assert server.requests.count("/data/train-labels-idx1-ubyte.gz") == 2
    assert no_sleep == [0.5]
    assert files_in(cache) == sorted(fixture_files[0])


def test_truncated_every_time_fails_and_keeps_nothing(server, cache, fixture_files, no_sleep):
    server.plan["train-images-idx3-ubyte.gz"] = ["truncate"] * 3
    with pytest.raises(DownloadError, match=r"truncated transfer: \d+ of \d+ bytes"):
        fixture_dataset(fixture_files).load_data(base_url=server.url, verbose=0, retries=2)
    assert server.requests.count("/data/train-images-idx3-ubyte.gz") == 3
    assert no_sleep == [1.0, 2.0]  # backoff doubles
    assert files_in(cache) == []


def test_server_error_is_retried_then_succeeds(server, tmp_path, fixture_files, no_sleep):
    name = "t10k-labels-idx1-ubyte.gz"
    server.plan[name] = [503, 500]
    target = download(name, server.url, tmp_path / name, hashlib.sha256(fixture_files[0][name]).hexdigest())
    assert target.read_bytes() == fixture_files[0][name]
    assert server.requests.count(f"/data/{name}") == 3 and len(no_sleep) == 2


def test_persistent_server_error_names_every_attempt(server, tmp_path, fixture_files, no_sleep):
    name = "t10k-labels-idx1-ubyte.gz"
    server.plan[name] = [500] * 5
    with pytest.raises(DownloadError) as error:
        download(name, server.url, tmp_path / "out" / name, "0" * 64, retries=1)
    message = str(error.value)
    assert message.count("HTTP 500") == 1 and "HTTP 500 Internal Server Error (2 attempts)" in message
    assert name in message
    assert files_in(tmp_path / "out") == []


def test_not_found_moves_on_to_the_next_mirror(server, tmp_path, fixture_files, no_sleep):
    name = "t10k-labels-idx1-ubyte.gz"
    mirrors = [server.root + "missing/", free_port_url(), server.url]
    target = download(name, mirrors, tmp_path / name, hashlib.sha256(fixture_files[0][name]).hexdigest(),
                      retries=1, timeout=5)
    assert target.read_bytes() == fixture_files[0][name]
    assert server.requests == [f"/missing/{name}", f"/data/{name}"]  # a 404 is not retried
    assert len(no_sleep) == 1  # the refused connection was retried once


def test_all_mirrors_failing_reports_each(server, tmp_path, no_sleep):
    with pytest.raises(DownloadError) as error:
        download("nothing.gz", [server.root + "a/", free_port_url()], tmp_path / "x.gz", "0" * 64,
                 retries=0, timeout=5)
    message = str(error.value)
    assert "HTTP 404" in message and "cannot connect" in message and "nothing.gz" in message


def test_download_progress_on_a_non_terminal(server, tmp_path, fixture_files):
    name = "train-images-idx3-ubyte.gz"
    stream = io.StringIO()
    download(name, server.url, tmp_path / name, hashlib.sha256(fixture_files[0][name]).hexdigest(),
             progress=stream)
    text = stream.getvalue()
    assert "\r" not in text
    assert text.startswith(f"downloading {server.url}{name}\n")
    size = f"{len(fixture_files[0][name]) / 1000:.1f} kB"
    assert f"\n{size}/{size} [{'=' * 30}] - " in text
    assert text.endswith((" kB/s\n", " MB/s\n", " GB/s\n"))


def test_no_download_when_disabled(cache, fixture_files):
    with pytest.raises(FileNotFoundError, match="download=False") as error:
        fixture_dataset(fixture_files).load_data(download=False)
    assert str(cache / "fixture-digits") in str(error.value)


def test_bad_dtype_fails_before_any_download(server, cache, fixture_files):
    with pytest.raises(ValueError, match="dtype"):
        fixture_dataset(fixture_files).load_data(dtype="int32", base_url=server.url)
    assert server.requests == []


def test_file_sha256(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert file_sha256(path) == hashlib.sha256(b"abc").hexdigest()


def test_debian_fashion_mnist_holds_the_same_data_as_the_pinned_files():
    """Debian re-wrote the gzip headers (no file name, its own time stamp), so its files are
    exactly one "<name>\\0" field shorter than Zalando's, whose sizes TFDS publishes."""
    directory = fashion_mnist.DATASET.system_dirs[0]
    published_sizes = {"train-images-idx3-ubyte.gz": 26421880, "train-labels-idx1-ubyte.gz": 29515,
                       "t10k-images-idx3-ubyte.gz": 4422102, "t10k-labels-idx1-ubyte.gz": 5148}
    for name, size in published_sizes.items():
        path = Path(directory) / name
        if not path.exists():
            pytest.skip("Debian's dataset-fashion-mnist is not installed")
        assert path.stat().st_size == size - len(name.removesuffix(".gz")) - 1
        with gzip.open(path) as stream:
            assert stream.read(3) == b"\x00\x00\x08"


# ---------------------------------------------------------------- the cache is verified


def test_the_cache_is_hashed_once_and_the_result_remembered(server, cache, fixture_files,
                                                           monkeypatch):
    dataset = fixture_dataset(fixture_files)
    dataset.load_data(base_url=server.url, verbose=0)
    record = json.loads((cache / "fixture-digits" / "verified.json").read_text())
    assert sorted(record) == sorted(fixture_files[0])
    hashed = []
    monkeypatch.setattr(verification, "file_sha256",
                        lambda path: hashed.append(path) or file_sha256(path))
    dataset.load_data(base_url=server.url, verbose=0)
    assert hashed == []
    touched = cache / "fixture-digits" / "train-labels-idx1-ubyte.gz"
    os.utime(touched, ns=(0, 0))
    dataset.load_data(base_url=server.url, verbose=0)
    assert hashed == [touched]


def test_a_damaged_cached_file_is_downloaded_again(server, cache, fixture_files, capsys):
    dataset = fixture_dataset(fixture_files)
    dataset.load_data(base_url=server.url, verbose=0)
    damaged = cache / "fixture-digits" / "train-images-idx3-ubyte.gz"
    content = bytearray(damaged.read_bytes())
    content[40] ^= 0xFF  # same size, other bytes (as a disk error would leave it)
    damaged.write_bytes(bytes(content))
    requests = len(server.requests)
    (x_train, _), _ = dataset.load_data(base_url=server.url, verbose=1)
    assert server.requests[requests:] == ["/data/train-images-idx3-ubyte.gz"]
    assert damaged.read_bytes() == fixture_files[0]["train-images-idx3-ubyte.gz"]
    assert f"{damaged}: damaged" in capsys.readouterr().err
    assert np.array_equal(x_train[:, 0] * 255, fixture_files[1]["train-images-idx3-ubyte"])


def test_a_damaged_cache_without_download_names_the_file_and_the_fix(server, cache,
                                                                    fixture_files):
    dataset = fixture_dataset(fixture_files)
    dataset.load_data(base_url=server.url, verbose=0)
    damaged = cache / "fixture-digits" / "t10k-labels-idx1-ubyte.gz"
    damaged.write_bytes(b"\x1f\x8b not what was downloaded")
    with pytest.raises(ValueError, match="damaged cached file") as error:
        dataset.load_data(download=False, verbose=0)
    message = str(error.value)
    assert message.startswith(f"{damaged}: ") and f"rm '{damaged}'" in message
    assert hashlib.sha256(fixture_files[0]["t10k-labels-idx1-ubyte.gz"]).hexdigest() in message


def test_a_mirror_serving_the_damaged_file_again_is_an_error(server, cache, fixture_files):
    dataset = fixture_dataset(fixture_files)
    dataset.load_data(base_url=server.url, verbose=0)
    damaged = cache / "fixture-digits" / "t10k-labels-idx1-ubyte.gz"
    damaged.write_bytes(b"damaged")
    server.plan["t10k-labels-idx1-ubyte.gz"] = ["corrupt"] * 10
    with pytest.raises(OSError, match="SHA-256 mismatch"):
        dataset.load_data(base_url=server.url, verbose=0, retries=0)
    assert not damaged.exists()
