"""Downloading data set files: mirrors in turn, retries with backoff, pinned SHA-256, atomic writes.

    download("train-images-idx3-ubyte.gz", mirrors, target, sha256)

The file is fetched from ``<mirror>/<file name>`` for each mirror in turn until one serves a
complete copy whose SHA-256 is the pinned one. A transient failure (connection refused or
reset, timeout, a transfer shorter than its Content-Length, HTTP 5xx or 429) is retried on
the same mirror up to ``retries`` times, after waiting ``backoff``, ``2 * backoff``,
``4 * backoff``, ... seconds; any other HTTP error, or a digest mismatch, moves on to the next
mirror at once. Bytes are streamed into a temporary file beside the target, which is renamed
only once the digest matched: the target directory never holds a partial or unverified file.
When every mirror failed, ``DownloadError`` says what each attempt met.
"""

from __future__ import annotations

import hashlib
import socket
import time
from pathlib import Path

import cnn
from cnn.utils.fileio import atomic_path
from cnn.utils.progbar import Progbar

CHUNK_SIZE = 1 << 16
_RETRY_STATUS = {429, 500, 502, 503, 504}


class DownloadError(OSError):
    """No mirror served a complete copy of a file with the pinned SHA-256."""


class _Transient(Exception):
    """Worth retrying on the same mirror."""


class _MirrorFailed(Exception):
    """Not worth retrying on this mirror; try the next."""


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def download(file_name: str, mirrors, target, sha256: str, *, retries: int = 3, backoff: float = 1.0,
             timeout: float = 30.0, progress=None) -> Path:
    """Download ``file_name`` from the first mirror that serves it with digest ``sha256``.

    Args:
        file_name: the name on the server, appended to each mirror's base URL.
        mirrors: a base URL or a sequence of them (``"https://host/mnist/"``).
        target: where the verified file is written (parent directories are created).
        sha256: the pinned hex digest of the file.
        retries: extra attempts per mirror after a transient failure.
        backoff: seconds before the first retry; doubled for each further retry.
        timeout: seconds a connection or a read may stall.
        progress: a text stream for messages and a progress bar, or None for silence.
    Returns:
        ``target`` as a Path.
    Raises:
        DownloadError (an OSError): every attempt on every mirror failed; the message
            names the file and each failure.
    """
    target = Path(target)
    mirrors = [mirrors] if isinstance(mirrors, str) else list(mirrors)
    if not mirrors:
        raise ValueError(f"{file_name}: no mirror to download it from")
    failures = []
    for base_url in mirrors:
        url = base_url.rstrip("/") + "/" + file_name
        for attempt in range(1, retries + 2):
            _say(progress, f"downloading {url}")
            try:
                _fetch(url, target, sha256.lower(), timeout, progress)
                return target
            except (_MirrorFailed, _Transient) as exc:
                error = exc
            if isinstance(error, _MirrorFailed) or attempt == retries + 1:
                break
            delay = backoff * 2 ** (attempt - 1)
            _say(progress, f"  {error}; retrying in {delay:g} s")
            time.sleep(delay)
        failures.append(f"{url}: {error}" + (f" ({attempt} attempts)" if attempt > 1 else ""))
    raise DownloadError(f"{file_name}: could not download a verified copy into {target.parent}; "
                        + "; ".join(failures))


def _fetch(url, target, sha256, timeout, progress) -> None:
    # Imported here, the one place that needs them: http.client and ssl are slow to import,
    # and every other use of cnn.datasets (the bundled sample) would pay for them.
    import http.client
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers={"User-Agent": f"cnn/{cnn.__version__}"})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        error = _Transient if exc.code in _RETRY_STATUS else _MirrorFailed
        raise error(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise _Transient(f"cannot connect ({exc.reason})") from None
    except (OSError, http.client.HTTPException) as exc:
        raise _Transient(f"cannot connect ({exc})") from None

    with response, atomic_path(target) as temporary:
        length = response.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        bar = Progbar(expected, stream=progress, unit="B") if progress is not None else None
        digest = hashlib.sha256()
        received = 0
        with open(temporary, "wb") as stream:
            while True:
                try:
                    chunk = response.read(CHUNK_SIZE)
                except (OSError, socket.timeout, http.client.HTTPException) as exc:
                    raise _Transient(f"transfer broken after {received} bytes ({exc})") from None
                if not chunk:
                    break
                stream.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                if bar is not None:
                    bar.update(received, finalize=False)
        if bar is not None:
            bar.update(received, finalize=True)
        if expected is not None and received != expected:
            raise _Transient(f"truncated transfer: {received} of {expected} bytes")
        if digest.hexdigest() != sha256:
            raise _MirrorFailed(f"SHA-256 mismatch: expected {sha256}, got {digest.hexdigest()} "
                                f"({received} bytes); the file was not kept")


def _say(progress, message: str) -> None:
    if progress is not None:
        progress.write(message + "\n")
        progress.flush()
