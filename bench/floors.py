"""What the hardware allows: hashing with openssl, bare uploads with curl, a streaming probe
(tar -> sha256 -> isal gzip -> sha256 -> registry), and gzip speeds on one buffer."""

from __future__ import annotations

import hashlib
import http.client
import tarfile
import time
import urllib.parse
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from measure import Runner
from workload import MiB, sha256_file

_digests: dict[tuple[Path, int, int], str] = {}


def digest_of(path: Path) -> str:
    """The file's sha256, computed once per (path, size, mtime)."""
    stat = path.stat()
    key = (path, stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        _digests[key] = sha256_file(path)
    return _digests[key]


def openssl_sha256(runner: Runner, files: Sequence[Path]) -> float:
    """``openssl dgst -sha256`` over the files, in one process."""
    return runner.run(["openssl", "dgst", "-sha256", *files], name="openssl")[0]


def _location(host: str, location: str) -> str:
    """An upload URL from a Location header, absolute whatever the registry sent."""
    return urllib.parse.urljoin(f"http://{host}/", location)


def _start_upload(runner: Runner, host: str, repository: str) -> str:
    _, output = runner.run(
        [
            "curl",
            "--silent",
            "--show-error",
            "--fail",
            "--request",
            "POST",
            "--dump-header",
            "-",
            "--output",
            "/dev/null",
            f"http://{host}/v2/{repository}/blobs/uploads/",
        ],
        name="curl-post",
    )
    for line in output.splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() == "location":
            return _location(host, value.strip())
    raise RuntimeError(f"no Location in the registry's answer: {output}")


def curl_upload(runner: Runner, host: str, repository: str, path: Path) -> None:
    """One blob the plainest way: POST, then one monolithic PUT of the file with its digest."""
    location = _start_upload(runner, host, repository)
    separator = "&" if "?" in location else "?"
    runner.run(
        [
            "curl",
            "--silent",
            "--show-error",
            "--fail",
            "--request",
            "PUT",
            "--header",
            "Content-Type: application/octet-stream",
            "--header",
            "Expect:",
            "--upload-file",
            str(path),
            "--output",
            "/dev/null",
            f"{location}{separator}digest={digest_of(path)}",
        ],
        name="curl-put",
    )


def curl_uploads(
    runner: Runner, host: str, repository: str, files: Sequence[Path], streams: int
) -> float:
    """Every file uploaded with curl, ``streams`` at a time (digests known beforehand)."""
    for path in files:
        digest_of(path)
    started = time.perf_counter()
    with ThreadPoolExecutor(streams) as pool:
        for future in [pool.submit(curl_upload, runner, host, repository, path) for path in files]:
            future.result()
    return time.perf_counter() - started


# --- the streaming probe --------------------------------------------------------------


PROBE_LEVEL = 1  # isal's fastest level that compresses


def _probe_layer(host: str, repository: str, path: Path, name: str) -> str:
    """Streams one file as a gzip tar layer into the registry in one pass: the tar is
    hashed (diff_id), compressed by isal, hashed again (blob digest) and sent in a chunked
    PATCH; a PUT with the digest ends the upload. Returns the blob digest."""
    from isal import isal_zlib

    connection = http.client.HTTPConnection(host, timeout=120)
    try:
        connection.request("POST", f"/v2/{repository}/blobs/uploads/", headers={})
        answer = connection.getresponse()
        answer.read()
        if answer.status != 202:
            raise RuntimeError(f"POST upload: {answer.status}")
        target = urllib.parse.urlsplit(_location(host, answer.getheader("Location", "")))
        connection.putrequest("PATCH", f"{target.path}?{target.query}", skip_accept_encoding=True)
        connection.putheader("Content-Type", "application/octet-stream")
        connection.putheader("Transfer-Encoding", "chunked")
        connection.endheaders()
        diff_id = hashlib.sha256()
        blob = hashlib.sha256()
        deflate = isal_zlib.compressobj(PROBE_LEVEL, isal_zlib.DEFLATED, 31)

        def send(data: bytes) -> None:
            if data:
                blob.update(data)
                connection.send(b"%x\r\n" % len(data))
                connection.send(data)
                connection.send(b"\r\n")

        def tar(data: bytes | memoryview) -> None:
            diff_id.update(data)
            send(deflate.compress(data))

        info = tarfile.TarInfo(f"usr/local/bin/{name}")
        info.size = path.stat().st_size
        info.mode = 0o755
        tar(info.tobuf(tarfile.PAX_FORMAT))
        buffer = bytearray(MiB)
        view = memoryview(buffer)
        with open(path, "rb", buffering=0) as handle:
            while count := handle.readinto(buffer):
                tar(view[:count])
        tar(bytes(-info.size % 512 + 1024))
        send(deflate.flush())
        connection.send(b"0\r\n\r\n")
        answer = connection.getresponse()
        answer.read()
        if answer.status != 202:
            raise RuntimeError(f"PATCH upload: {answer.status}")
        target = urllib.parse.urlsplit(_location(host, answer.getheader("Location", "")))
        digest = "sha256:" + blob.hexdigest()
        query = f"{target.query}&digest={digest}" if target.query else f"digest={digest}"
        connection.request("PUT", f"{target.path}?{query}", body=b"")
        answer = connection.getresponse()
        answer.read()
        if answer.status != 201:
            raise RuntimeError(f"PUT upload: {answer.status}")
        return digest
    finally:
        connection.close()


def streaming_probe(host: str, repository: str, files: Sequence[Path], streams: int = 2) -> float:
    """Every file streamed as a layer into the registry, ``streams`` layers at a time."""
    started = time.perf_counter()
    with ThreadPoolExecutor(streams) as pool:
        futures = [pool.submit(_probe_layer, host, repository, path, path.name) for path in files]
        for future in futures:
            future.result()
    return time.perf_counter() - started


# --- compression ----------------------------------------------------------------------


class _Sink:
    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | memoryview) -> None:
        self.hash.update(data)
        self.size += len(data)


def _feed(data: memoryview, write: Callable[[memoryview], object]) -> None:
    for start in range(0, len(data), MiB):
        write(data[start : start + MiB])


def doit_gzip(data: memoryview) -> _Sink:
    """doit-oci's own gzip stream (``compressing("gzip", out)``) over ``data``."""
    from doit_oci.rules.compress import compressing

    sink = _Sink()
    stream = compressing("gzip", sink)
    assert stream is not None
    _feed(data, stream.write)
    stream.close()
    return sink


def zlib_gzip(data: memoryview, level: int = 1) -> _Sink:
    """The standard library's zlib at ``level``, one gzip stream, one thread."""
    sink = _Sink()
    deflate = zlib.compressobj(level, zlib.DEFLATED, 31)
    _feed(data, lambda chunk: sink.write(deflate.compress(chunk)))
    sink.write(deflate.flush())
    return sink


def isal_gzip(data: memoryview, level: int = PROBE_LEVEL) -> _Sink:
    """isal at ``level``, one gzip stream, one thread (the probe's compressor)."""
    from isal import isal_zlib

    sink = _Sink()
    deflate = isal_zlib.compressobj(level, isal_zlib.DEFLATED, 31)
    _feed(data, lambda chunk: sink.write(deflate.compress(chunk)))
    sink.write(deflate.flush())
    return sink


def compression(files: Sequence[Path], runs: int) -> dict[str, object]:
    """Speed (MB/s of input) and ratio of doit-oci's gzip, stdlib zlib level 1 and one
    isal thread over the files' bytes held in memory; and whether doit-oci's gzip gives
    the same bytes every time, and with one compression thread instead of several."""
    data = memoryview(b"".join(path.read_bytes() for path in files))
    result: dict[str, object] = {"input_bytes": len(data)}
    compressors: dict[str, Callable[[memoryview], _Sink]] = {
        "doit-oci gzip": doit_gzip,
        "zlib level 1": zlib_gzip,
        f"isal level {PROBE_LEVEL}, one thread": isal_gzip,
    }
    digests: dict[str, set[str]] = {name: set() for name in compressors}
    for name, compress in compressors.items():
        compress(data[: 8 * MiB])  # warm-up: imports, thread pools
        times = []
        size = 0
        for _ in range(runs):
            started = time.perf_counter()
            sink = compress(data)
            times.append(time.perf_counter() - started)
            size = sink.size
            digests[name].add(sink.hash.hexdigest())
        result[name] = {"times": times, "bytes": size, "ratio": len(data) / size}
    result["doit-oci gzip reproducible"] = len(digests["doit-oci gzip"]) == 1
    try:
        from doit_oci.rules import compress as module

        saved = module.workers
        module.workers = lambda: 1
        try:
            one_thread = doit_gzip(data).hash.hexdigest()
        finally:
            module.workers = saved
        result["doit-oci gzip same with one thread"] = one_thread in digests["doit-oci gzip"]
    except (ImportError, AttributeError) as error:
        result["doit-oci gzip same with one thread"] = f"not checked: {error}"
    return result
