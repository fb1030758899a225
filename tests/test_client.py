"""registry.client against an in-process fake registry, for what a real one will not do on
demand: absolute or relative Locations, 416 in the middle of a chunked upload, a wrong
Docker-Content-Digest, a minimum chunk length. The real registry is in test_push.py."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import httpx
import pytest

from doit_oci.registry import oci
from doit_oci.registry.client import RegistryClient
from doit_oci.registry.errors import RegistryError
from doit_oci.registry.reference import is_loopback
from doit_oci.registry.session import proxy_mounts
from doit_oci.registry.transport import RetryPolicy
from doit_oci.registry.upload import BlobSource, FileSlice

HOST = "127.0.0.1:5000"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class FakeRegistry:
    """Just enough of the distribution API, with knobs for misbehaving."""

    def __init__(
        self,
        absolute: bool = False,
        min_chunk: int = 0,
        lie_digest: bool = False,
        refuse_416_at: int | None = None,
    ) -> None:
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, tuple[bytes, str]] = {}
        self.uploads: dict[str, bytearray] = {}
        self.absolute, self.min_chunk, self.lie_digest = absolute, min_chunk, lie_digest
        self.refuse_416_at = refuse_416_at
        self.log: list[tuple[str, str]] = []

    def location(self, upload: str) -> str:
        path = f"/v2/repo/blobs/uploads/{upload}?_state=abc%3D%3D"
        return f"http://{HOST}{path}" if self.absolute else path

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path, query = request.url.path, dict(request.url.params)
        self.log.append((request.method, str(request.url.raw_path, "ascii")))
        if path == "/v2/":
            return httpx.Response(200)
        if "/blobs/uploads/" in path:
            return self.upload(request, path, query)
        if "/blobs/" in path:
            digest = path.rsplit("/", 1)[1]
            if digest not in self.blobs:
                return httpx.Response(404)
            body = self.blobs[digest] if request.method == "GET" else b""
            return httpx.Response(
                200, content=body, headers={"Content-Length": str(len(self.blobs[digest]))}
            )
        if "/manifests/" in path:
            reference = path.rsplit("/", 1)[1]
            if request.method == "PUT":
                data = request.read()
                self.manifests[reference] = (data, request.headers["content-type"])
                self.manifests[digest_of(data)] = (data, request.headers["content-type"])
                shown = "sha256:" + "0" * 64 if self.lie_digest else digest_of(data)
                return httpx.Response(201, headers={"Docker-Content-Digest": shown})
            if reference not in self.manifests:
                return httpx.Response(
                    404,
                    json={"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]},
                )
            data, media_type = self.manifests[reference]
            return httpx.Response(
                200,
                content=data if request.method == "GET" else b"",
                headers={
                    "Content-Type": media_type,
                    "Docker-Content-Digest": digest_of(data),
                    "Content-Length": str(len(data)),
                },
            )
        return httpx.Response(404)

    def upload(self, request: httpx.Request, path: str, query: dict[str, str]) -> httpx.Response:
        if request.method == "POST":
            if query.get("mount") in self.blobs and query.get("from") == "source":
                return httpx.Response(201)
            upload = str(uuid.uuid4())
            self.uploads[upload] = bytearray()
            headers = {"Location": self.location(upload), "Range": "0-0"}
            if self.min_chunk:
                headers["OCI-Chunk-Min-Length"] = str(self.min_chunk)
            return httpx.Response(202, headers=headers)
        upload = path.rsplit("/", 1)[1]
        assert query.get("_state") == "abc==", "the upload URL lost its query"
        data = self.uploads[upload]
        if request.method == "GET":
            return httpx.Response(
                204, headers={"Location": self.location(upload), "Range": f"0-{len(data) - 1}"}
            )
        body = request.read()
        if request.method == "PATCH":
            start = int(request.headers["content-range"].split("-")[0])
            if self.refuse_416_at is not None and len(data) >= self.refuse_416_at:
                self.refuse_416_at = None
                # take half of the chunk, then claim it did not fit
                data.extend(body[: len(body) // 2])
                return httpx.Response(416)
            if start != len(data):
                return httpx.Response(416)
            data.extend(body)
            return httpx.Response(
                202, headers={"Location": self.location(upload), "Range": f"0-{len(data) - 1}"}
            )
        if request.method == "PUT":
            data.extend(body)
            if digest_of(bytes(data)) != query["digest"]:
                return httpx.Response(
                    400,
                    json={
                        "errors": [
                            {"code": "DIGEST_INVALID", "message": "provided digest did not match"}
                        ]
                    },
                )
            self.blobs[query["digest"]] = bytes(data)
            shown = "sha256:" + "0" * 64 if self.lie_digest else query["digest"]
            return httpx.Response(201, headers={"Docker-Content-Digest": shown})
        if request.method == "DELETE":
            del self.uploads[upload]
            return httpx.Response(204)
        return httpx.Response(405)


def client_for(fake: FakeRegistry, **options: object) -> RegistryClient:
    return RegistryClient(
        HOST,
        transport=httpx.MockTransport(fake),
        policy=RetryPolicy(attempts=2, base_delay=0, deadline=5),
        **options,  # type: ignore[arg-type]
    )


def blob_file(tmp_path: Path, size: int) -> tuple[Path, str]:
    data = bytes((i * 7) % 251 for i in range(size))
    path = tmp_path / "blob"
    path.write_bytes(data)
    return path, digest_of(data)


@pytest.mark.parametrize("absolute", [False, True])
def test_monolithic_upload_keeps_the_location_query(tmp_path: Path, absolute: bool) -> None:
    fake = FakeRegistry(absolute=absolute)
    path, digest = blob_file(tmp_path, 1000)
    with client_for(fake) as client:
        assert not client.blob_exists("repo", digest)
        client.upload_blob("repo", BlobSource.from_file(path, digest))
        assert client.blob_exists("repo", digest)
    assert fake.blobs[digest] == path.read_bytes()
    put = [url for method, url in fake.log if method == "PUT"]
    assert put == [
        f"/v2/repo/blobs/uploads/{next(iter(fake.uploads))}"
        f"?_state=abc%3D%3D&digest=sha256%3A{digest[7:]}"
    ]


def test_chunked_upload_follows_the_newest_location(tmp_path: Path) -> None:
    fake = FakeRegistry()
    path, digest = blob_file(tmp_path, 2500)
    with client_for(fake, chunk_size=1000) as client:
        client.upload_blob("repo", BlobSource.from_file(path, digest))
    assert fake.blobs[digest] == path.read_bytes()
    assert [m for m, _ in fake.log] == ["POST", "PATCH", "PATCH", "PATCH", "PUT"]


def test_chunks_honour_the_minimum_length(tmp_path: Path) -> None:
    fake = FakeRegistry(min_chunk=2000)
    path, digest = blob_file(tmp_path, 4500)
    with client_for(fake, chunk_size=1000) as client:
        client.upload_blob("repo", BlobSource.from_file(path, digest))
    assert [m for m, _ in fake.log] == ["POST", "PATCH", "PATCH", "PATCH", "PUT"]  # 2000, 2000, 500
    assert fake.blobs[digest] == path.read_bytes()


def test_a_416_mid_chunk_is_recovered_by_asking_the_upload_status(tmp_path: Path) -> None:
    fake = FakeRegistry(refuse_416_at=1000)
    path, digest = blob_file(tmp_path, 3000)
    with client_for(fake, chunk_size=1000) as client:
        client.upload_blob("repo", BlobSource.from_file(path, digest))
    assert fake.blobs[digest] == path.read_bytes()
    methods = [m for m, _ in fake.log]
    assert methods[:4] == ["POST", "PATCH", "PATCH", "GET"]  # the 416, then the status
    assert methods[-1] == "PUT"


def test_a_wrong_docker_content_digest_is_an_error(tmp_path: Path) -> None:
    fake = FakeRegistry(lie_digest=True)
    path, digest = blob_file(tmp_path, 10)
    with client_for(fake) as client, pytest.raises(RegistryError, match="the registry says"):
        client.upload_blob("repo", BlobSource.from_file(path, digest))
    with client_for(fake) as client, pytest.raises(RegistryError, match="ours is sha256:"):
        client.put_manifest("repo", "latest", b'{"schemaVersion":2}', oci.MANIFEST)


def test_mount_201_and_fallback(tmp_path: Path) -> None:
    fake = FakeRegistry()
    fake.blobs["sha256:" + "a" * 64] = b"x"
    with client_for(fake) as client:
        assert client.mount_blob("repo", "sha256:" + "a" * 64, "source")
        assert not client.mount_blob("repo", "sha256:" + "b" * 64, "source")  # 202: cancelled
    assert ("DELETE" in [m for m, _ in fake.log]) and fake.uploads == {}
    mount = next(url for m, url in fake.log if m == "POST")
    assert mount == f"/v2/repo/blobs/uploads/?mount=sha256%3A{'a' * 64}&from=source"


def test_manifests_by_tag_and_digest() -> None:
    fake = FakeRegistry()
    data = json.dumps({"schemaVersion": 2, "mediaType": oci.MANIFEST}).encode()
    with client_for(fake) as client:
        assert client.head_manifest("repo", "v1") is None
        digest = client.put_manifest("repo", "v1", data, oci.MANIFEST)
        head = client.head_manifest("repo", "v1")
        assert head == oci.Descriptor(oci.MANIFEST, digest, len(data))
        assert client.get_manifest("repo", digest) == (data, oci.MANIFEST, digest)
        with pytest.raises(RegistryError) as caught:
            client.get_manifest("repo", "nope")
    assert str(caught.value) == (
        "127.0.0.1:5000/repo: get manifest nope failed: HTTP 404 MANIFEST_UNKNOWN:"
        " manifest unknown; check the repository, tag or digest"
    )


def test_a_manifest_whose_bytes_do_not_match_the_digest_asked_for() -> None:
    fake = FakeRegistry()
    fake.manifests["sha256:" + "c" * 64] = (b'{"schemaVersion":2}', oci.MANIFEST)
    with client_for(fake) as client, pytest.raises(RegistryError, match="its content has digest"):
        client.get_manifest("repo", "sha256:" + "c" * 64)


def test_a_file_slice_can_be_read_again(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(bytes(range(256)) * 10_000)
    seen: list[int] = []
    body = FileSlice(path, 1000, 2_000_000, seen.append)
    first, second = b"".join(body), b"".join(body)
    assert first == second == path.read_bytes()[1000:2_001_000]
    assert sum(seen) == 4_000_000 and max(seen) <= 1 << 20


@pytest.mark.parametrize(
    ("registry", "loopback"),
    [
        ("localhost:5000", True),
        ("127.0.0.1:5000", True),
        ("127.1.2.3", True),
        ("[::1]:5000", True),
        ("gcr.io", False),
        ("10.0.0.1:5000", False),
        ("localhost.io", False),
    ],
)
def test_loopback_registries_are_spoken_to_over_http(registry: str, loopback: bool) -> None:
    assert is_loopback(registry) == loopback
    client = RegistryClient(registry)
    assert client.base_url.startswith("http://" if loopback else "https://")
    client.close()


def test_insecure_registries_use_http_and_docker_hub_its_api_host() -> None:
    assert RegistryClient("r.example:5000", insecure=True).base_url == "http://r.example:5000"
    assert RegistryClient("docker.io").base_url == "https://registry-1.docker.io"


def test_the_environments_proxies_are_mounted_with_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1,::1,.internal.example,example.org")
    made: list[str] = []

    def make(proxy: httpx.Proxy) -> httpx.BaseTransport:
        made.append(str(proxy.url))
        return httpx.MockTransport(lambda request: httpx.Response(200))

    mounts = proxy_mounts(make)
    assert made == ["http://proxy.example:3128"]
    assert list(mounts) == [
        "https://",
        "all://localhost",
        "all://127.0.0.1",
        "all://[::1]",
        "all://*.internal.example",
        "all://*example.org",
    ]
    assert [mounts[key] is None for key in mounts] == [False, True, True, True, True, True]
    monkeypatch.setenv("NO_PROXY", "*")
    assert proxy_mounts(make) == {}


def test_a_web_server_that_is_no_registry_is_named_so(tmp_path: Path) -> None:
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{server.server_address[1]}"
    try:
        with (
            RegistryClient(host, policy=RetryPolicy(deadline=5)) as client,
            pytest.raises(RegistryError) as caught,
        ):
            client.check_access()
    finally:
        server.shutdown()
        server.server_close()
    assert str(caught.value) == (
        f"{host}: log in failed: http://{host} is not an OCI registry (GET /v2/ answered 404);"
        " check the hub: it must name a registry (host[:port], then a path)"
    )


def test_an_answer_dripping_a_byte_at_a_time_is_abandoned_at_the_deadline() -> None:
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    body = b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"}'

    class Drip(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", oci.MANIFEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for byte in body:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.1)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Drip)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{server.server_address[1]}"
    started = time.monotonic()
    try:
        with (
            RegistryClient(host, policy=RetryPolicy(deadline=2, attempts=2)) as client,
            pytest.raises(RegistryError) as caught,
        ):
            client.get_manifest("team/app", "1.0")
    finally:
        server.shutdown()
        server.server_close()
    assert time.monotonic() - started < 5  # the body alone would take 8 s a try
    assert "the answer came too slowly" in str(caught.value)
    assert str(caught.value).startswith(
        f"{host}/team/app: get manifest 1.0 failed: http://{host} answered, but too slowly"
    )
