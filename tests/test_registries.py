"""The test infrastructure itself: real registries, the token server and the fault proxy."""

from __future__ import annotations

import collections
import gzip
import hashlib
import io
import json
import subprocess
import tarfile
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.faults import Fault, FaultProxy, fault_proxy
from tests.registries import (
    SERVICE,
    RunningRegistry,
    TokenRegistry,
    TokenServer,
    basic_registry,
    open_registry,
    token_registry,
)

REPO = "test/tiny"
MANIFEST_PATH = f"/v2/{REPO}/manifests/latest"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A one-layer OCI image layout tagged ``latest``, and its manifest's digest."""
    root = tmp_path_factory.mktemp("layout") / "oci"
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def blob(data: bytes) -> dict[str, Any]:
        digest = sha256(data)
        (blobs / digest.split(":")[1]).write_bytes(data)
        return {"digest": digest, "size": len(data)}

    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w", format=tarfile.PAX_FORMAT) as archive:
        content = b"hello from doit-oci's registry tests\n"
        info = tarfile.TarInfo("hello.txt")
        info.size, info.mode, info.mtime = len(content), 0o644, 0
        archive.addfile(info, io.BytesIO(content))
    # Compressed already, so that skopeo sends the manifest as it is.
    layer = gzip.compress(tar.getvalue(), mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [sha256(tar.getvalue())]},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **blob(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **blob(layer)}],
        }
    ).encode()
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                **blob(manifest),
                "annotations": {"org.opencontainers.image.ref.name": "latest"},
            }
        ],
    }
    (root / "index.json").write_text(json.dumps(index))
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return root, sha256(manifest)


def skopeo_push(
    layout: Path, host: str, tmp: Path, creds: str | None = None
) -> subprocess.CompletedProcess[str]:
    policy = tmp / "policy.json"
    policy.write_text('{"default": [{"type": "insecureAcceptAnything"}]}')
    authfile = tmp / "auth.json"
    authfile.write_text('{"auths": {}}')
    command = [
        "skopeo",
        "--policy",
        str(policy),
        "copy",
        "--dest-tls-verify=false",
        "--dest-authfile",
        str(authfile),
        *(["--dest-creds", creds] if creds else []),
        f"oci:{layout}:latest",
        f"docker://{host}/{REPO}:latest",
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def creds_of(registry: RunningRegistry) -> str | None:
    if registry.username is None:
        return None
    return f"{registry.username}:{registry.password}"


def bearer(registry: TokenRegistry, *scopes: str) -> dict[str, str]:
    answer = httpx.get(
        registry.realm,
        params=[("service", SERVICE), *(("scope", s) for s in scopes)],
        auth=(registry.username or "", registry.password or ""),
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def start_registry(kind: str, root: Path) -> AbstractContextManager[RunningRegistry]:
    if kind == "open":
        return open_registry(root)
    if kind == "basic":
        return basic_registry(root)
    return token_registry(root)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RunningRegistry]:
    with open_registry(tmp_path / "registry") as running:
        yield running


@pytest.fixture
def proxy(registry: RunningRegistry) -> Iterator[FaultProxy]:
    with fault_proxy(registry.host) as running:
        yield running


def with_digest(location: str, digest: str) -> str:
    """An upload URL with ``digest=`` added (httpx's ``params=`` would drop ``_state``)."""
    return f"{location}{'&' if '?' in location else '?'}digest={digest}"


def push_blob(base: str, data: bytes, name: str = "test/blobs") -> str:
    """Upload ``data`` in one PUT (POST, then PUT with the digest); its digest."""
    with httpx.Client(base_url=base) as client:
        started = client.post(f"/v2/{name}/blobs/uploads/")
        assert started.status_code == 202, started.text
        digest = sha256(data)
        done = client.put(with_digest(started.headers["Location"], digest), content=data)
        assert done.status_code == 201, done.text
    return digest


# --- the registries -------------------------------------------------------------------


def test_open_registry_answers(registry: RunningRegistry) -> None:
    answer = httpx.get(f"http://{registry.host}/v2/", headers={"User-Agent": "probe/1"})
    assert answer.status_code == 200
    assert answer.headers["Docker-Distribution-Api-Version"] == "registry/2.0"
    entry = registry.wait_for("GET", "/v2/", 200)
    assert (entry.path, entry.size, entry.user_agent) == ("/v2/", 2, "probe/1")
    assert registry.username is None and registry.password is None


@pytest.mark.parametrize("kind", ["open", "basic", "token"])
def test_skopeo_pushes_to_each_registry(
    kind: str, layout: tuple[Path, str], tmp_path: Path
) -> None:
    path, digest = layout
    with start_registry(kind, tmp_path / kind) as registry:
        run = skopeo_push(path, registry.host, tmp_path, creds_of(registry))
        assert run.returncode == 0, run.stderr
        put = registry.wait_for("PUT", MANIFEST_PATH, 201)
        assert put.size == 0
        assert all(e.status < 500 for e in registry.access_log())
        headers: dict[str, str] = {}
        auth = None
        if isinstance(registry, TokenRegistry):
            headers = bearer(registry, f"repository:{REPO}:pull")
        elif registry.username is not None:
            auth = (registry.username, registry.password or "")
        manifest = httpx.get(
            f"http://{registry.host}{MANIFEST_PATH}",
            headers={**headers, "Accept": "application/vnd.oci.image.manifest.v1+json"},
            auth=auth,
        )
        assert manifest.status_code == 200
        assert manifest.headers["Docker-Content-Digest"] == digest  # sent as it was
        if isinstance(registry, TokenRegistry):
            pushes = [r for r in registry.token_requests if "push" in ",".join(r.scopes)]
            assert pushes and all(r.credentials and r.username == "bob" for r in pushes)
            assert f"repository:{REPO}:pull,push" in [s for r in pushes for s in r.scopes]


def test_basic_registry_refuses_a_wrong_password(layout: tuple[Path, str], tmp_path: Path) -> None:
    with basic_registry(tmp_path / "basic", password="s3cret") as registry:
        url = f"http://{registry.host}/v2/"
        assert httpx.get(url).status_code == 401
        refused = httpx.get(url, auth=("alice", "wrong"))
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"].startswith("Basic ")
        assert httpx.get(url, auth=("alice", "s3cret")).status_code == 200
        run = skopeo_push(layout[0], registry.host, tmp_path, "alice:wrong")
        assert run.returncode != 0
        assert "401" in run.stderr or "unauthorized" in run.stderr.lower()
        assert not registry.requests("PUT", MANIFEST_PATH)


def test_token_registry_refuses_a_wrong_password(layout: tuple[Path, str], tmp_path: Path) -> None:
    with token_registry(tmp_path / "token") as registry:
        challenge = httpx.get(f"http://{registry.host}/v2/")
        assert challenge.status_code == 401
        assert challenge.headers["WWW-Authenticate"] == (
            f'Bearer realm="{registry.realm}",service="{SERVICE}"'
        )
        wrong = httpx.get(registry.realm, params={"service": SERVICE}, auth=("bob", "wrong"))
        assert wrong.status_code == 401
        run = skopeo_push(layout[0], registry.host, tmp_path, "bob:wrong")
        assert run.returncode != 0
        assert not registry.requests("PUT", MANIFEST_PATH)
        asked = [r for r in registry.token_requests if r.username == "bob"]
        assert asked and all(r.status == 401 and r.credentials for r in asked)


def test_token_faults_put_a_fault_proxy_in_the_realm(tmp_path: Path) -> None:
    with token_registry(tmp_path / "token", token_faults=True) as registry:
        proxy = registry.token_faults
        assert proxy is not None
        assert registry.realm == f"http://{proxy.host}/token"
        challenge = httpx.get(f"http://{registry.host}/v2/")
        assert f'Bearer realm="http://{proxy.host}/token"' in challenge.headers["WWW-Authenticate"]
        proxy.add(Fault("status", status=503, path_contains="/token"))
        login = {"service": SERVICE}
        failed = httpx.get(registry.realm, params=login, auth=("bob", registry.password or ""))
        assert failed.status_code == 503 and not registry.token_requests
        token = httpx.get(registry.realm, params=login, auth=("bob", registry.password or ""))
        assert token.status_code == 200 and token.json()["token"] == registry.tokens.issued[-1]
        assert [outcome for _, _, outcome in proxy.seen] == ["status 503", "forward"]
        assert [r.status for r in registry.token_requests] == [200]


def test_token_server_scopes_and_grants(tmp_path: Path) -> None:
    with token_registry(tmp_path / "token") as registry:
        base = f"http://{registry.host}"
        # Repeated scope parameters, one with two scopes in it.
        headers = bearer(
            registry, "repository:a/b:pull,push", "repository:c:pull registry:catalog:*"
        )
        last = registry.token_requests[-1]
        assert last.method == "GET" and last.service == SERVICE and last.credentials
        assert last.scopes == [
            "repository:a/b:pull,push",
            "repository:c:pull",
            "registry:catalog:*",
        ]
        assert last.granted == last.scopes
        assert httpx.get(f"{base}/v2/", headers=headers).status_code == 200
        assert httpx.get(f"{base}/v2/_catalog", headers=headers).status_code == 200
        assert httpx.post(f"{base}/v2/a/b/blobs/uploads/", headers=headers).status_code == 202
        # Anonymous: a token, but no access.
        anonymous = httpx.get(
            registry.realm, params={"service": SERVICE, "scope": "repository:a/b:pull"}
        )
        assert anonymous.status_code == 200
        assert registry.token_requests[-1].credentials is False
        assert registry.token_requests[-1].granted == []
        token = {"Authorization": f"Bearer {anonymous.json()['token']}"}
        assert httpx.get(f"{base}/v2/", headers=token).status_code == 200
        refused = httpx.get(f"{base}/v2/a/b/tags/list", headers=token)
        assert refused.status_code == 401
        assert 'error="insufficient_scope"' in refused.headers["WWW-Authenticate"]
        assert 'scope="repository:a/b:pull"' in refused.headers["WWW-Authenticate"]
        # Anonymous pull when told so.
        registry.tokens.anonymous_pull = True
        anonymous = httpx.get(
            registry.realm, params={"service": SERVICE, "scope": "repository:a/b:pull,push"}
        )
        assert registry.token_requests[-1].granted == ["repository:a/b:pull"]
        # A token signed by a key the registry does not trust is refused.
        other = TokenServer({"bob": "x"})
        try:
            forged, _ = other.issue("bob", ["repository:a/b:pull"])
        finally:
            other.close()
        refused = httpx.get(f"{base}/v2/", headers={"Authorization": f"Bearer {forged}"})
        assert refused.status_code == 401
        assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]


def test_token_server_oauth2_and_refresh(tmp_path: Path) -> None:
    with token_registry(tmp_path / "token", password="pw") as registry:
        base = f"http://{registry.host}"
        form = {
            "grant_type": "password",
            "username": "bob",
            "password": "pw",
            "service": SERVICE,
            "scope": "repository:a/b:pull,push",
            "client_id": "doit-oci",
            "access_type": "offline",
        }
        first = httpx.post(registry.realm, data=form)
        assert first.status_code == 200
        body = first.json()
        assert body["access_token"] and body["refresh_token"] and body["expires_in"] == 300
        assert registry.token_requests[-1].grant_type == "password"
        refreshed = httpx.post(
            registry.realm,
            data={
                "grant_type": "refresh_token",
                "refresh_token": body["refresh_token"],
                "service": SERVICE,
                "scope": "repository:a/b:pull",
                "client_id": "doit-oci",
            },
        )
        assert refreshed.status_code == 200
        token = refreshed.json()["access_token"]
        assert registry.token_requests[-1].grant_type == "refresh_token"
        assert registry.token_requests[-1].username == "bob"
        assert registry.token_requests[-1].granted == ["repository:a/b:pull"]
        answer = httpx.get(f"{base}/v2/", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200
        assert httpx.post(registry.realm, data={**form, "password": "no"}).status_code == 401
        bad = {"grant_type": "refresh_token", "refresh_token": "nope", "service": SERVICE}
        assert httpx.post(registry.realm, data=bad).status_code == 401


def test_tokens_expire_when_told(tmp_path: Path) -> None:
    with token_registry(tmp_path / "token", expires_in=2) as registry:
        answer = httpx.get(
            registry.realm, params={"service": SERVICE}, auth=("bob", registry.password or "")
        )
        assert answer.json()["expires_in"] == 2
        headers = {"Authorization": f"Bearer {answer.json()['token']}"}
        url = f"http://{registry.host}/v2/"
        assert httpx.get(url, headers=headers).status_code == 200
        time.sleep(3.1)
        expired = httpx.get(url, headers=headers)
        assert expired.status_code == 401
        assert 'error="invalid_token"' in expired.headers["WWW-Authenticate"]


# --- the fault proxy ------------------------------------------------------------------


def test_proxy_forwards_a_skopeo_push_unchanged(
    layout: tuple[Path, str], tmp_path: Path, registry: RunningRegistry, proxy: FaultProxy
) -> None:
    path, digest = layout
    before = len(registry.access_log())
    run = skopeo_push(path, proxy.host, tmp_path)
    assert run.returncode == 0, run.stderr
    registry.wait_for("PUT", MANIFEST_PATH, 201)
    assert proxy.seen and {outcome for _, _, outcome in proxy.seen} == {"forward"}
    deadline = time.monotonic() + 5
    while len(registry.access_log()) < before + len(proxy.seen) and time.monotonic() < deadline:
        time.sleep(0.02)
    upstream = [
        (e.method, e.path + (f"?{e.query}" if e.query else ""))
        for e in registry.access_log()[before:]
    ]
    assert collections.Counter(upstream) == collections.Counter((m, t) for m, t, _ in proxy.seen)
    manifest = httpx.get(
        f"http://{proxy.host}{MANIFEST_PATH}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert manifest.headers["Docker-Content-Digest"] == digest


def test_proxy_points_upstream_urls_at_itself(registry: RunningRegistry, proxy: FaultProxy) -> None:
    via_proxy = httpx.post(f"http://{proxy.host}/v2/test/x/blobs/uploads/")
    assert via_proxy.headers["Location"].startswith(f"http://{proxy.host}/v2/test/x/")
    # A registry that names itself (here: told its own address as Host) is pointed back.
    named = httpx.post(
        f"http://{proxy.host}/v2/test/x/blobs/uploads/", headers={"Host": registry.host}
    )
    assert named.status_code == 202
    assert named.headers["Location"].startswith(f"http://{proxy.host}/v2/test/x/")


def test_proxy_streams_large_chunked_uploads(registry: RunningRegistry, proxy: FaultProxy) -> None:
    piece = bytes(range(256)) * 4096  # 1 MiB
    count = 48
    digest = hashlib.sha256()
    for _ in range(count):
        digest.update(piece)

    def body() -> Iterator[bytes]:
        for _ in range(count):
            yield piece

    with httpx.Client(base_url=f"http://{proxy.host}", timeout=60) as client:
        started = client.post("/v2/test/big/blobs/uploads/")
        tracemalloc.start()
        try:
            sent = client.patch(started.headers["Location"], content=body())
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert sent.status_code == 202, sent.text
        assert sent.headers["Range"] == f"0-{count * len(piece) - 1}"
        done = client.put(with_digest(sent.headers["Location"], f"sha256:{digest.hexdigest()}"))
        assert done.status_code == 201, done.text
    assert peak < 16 * len(piece)  # never the whole 48 MiB
    assert ("PATCH", started.headers["Location"].split(proxy.host, 1)[1], "forward") in proxy.seen


def test_fault_status_with_retry_after(registry: RunningRegistry, proxy: FaultProxy) -> None:
    proxy.add(Fault("status", status=503, retry_after="2", path_contains="/v2/"))
    url = f"http://{proxy.host}/v2/"
    before = len(registry.requests("GET", "/v2/"))
    with httpx.Client() as client:
        faulted = client.get(url)
        assert faulted.status_code == 503
        assert faulted.headers["Retry-After"] == "2"
        assert faulted.json()["errors"][0]["code"] == "UNAVAILABLE"
        assert client.get(url).status_code == 200  # times=1, same connection
    assert [outcome for _, _, outcome in proxy.seen] == ["status 503", "forward"]
    registry.wait_for("GET", "/v2/", 200)
    time.sleep(0.1)
    assert len(registry.requests("GET", "/v2/")) == before + 1  # the 503 never went up


def test_fault_status_drains_uploads_and_matches_method(
    registry: RunningRegistry, proxy: FaultProxy
) -> None:
    proxy.add(Fault("status", status=500, method="PUT", times=2))
    data = b"x" * 300_000
    with httpx.Client(base_url=f"http://{proxy.host}") as client:
        started = client.post("/v2/test/drain/blobs/uploads/")
        assert started.status_code == 202  # a POST: not matched
        location = started.headers["Location"]
        for _ in range(2):
            refused = client.put(with_digest(location, sha256(data)), content=data)
            assert refused.status_code == 500
        done = client.put(with_digest(location, sha256(data)), content=data)
        assert done.status_code == 201
    assert [o for _, _, o in proxy.seen] == ["forward", "status 500", "status 500", "forward"]


def test_fault_reset(registry: RunningRegistry, proxy: FaultProxy) -> None:
    proxy.add(Fault("reset", method="GET"))
    with httpx.Client() as client:
        with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
            client.get(f"http://{proxy.host}/v2/")
        assert client.get(f"http://{proxy.host}/v2/").status_code == 200
    assert [o for _, _, o in proxy.seen] == ["reset", "forward"]


def test_fault_truncate(registry: RunningRegistry, proxy: FaultProxy) -> None:
    data = bytes(range(256)) * 400
    digest = push_blob(f"http://{registry.host}", data)
    proxy.add(Fault("truncate", path_contains="/blobs/sha256:"))
    url = f"http://{proxy.host}/v2/test/blobs/blobs/{digest}"
    received = 0
    with httpx.Client() as client:
        with pytest.raises(httpx.RemoteProtocolError), client.stream("GET", url) as answer:
            assert answer.status_code == 200
            assert answer.headers["Content-Length"] == str(len(data))
            for part in answer.iter_raw():
                received += len(part)
        assert received == len(data) // 2
        assert client.get(url).content == data


def test_fault_delay(registry: RunningRegistry, proxy: FaultProxy) -> None:
    proxy.add(Fault("delay", delay=0.6))
    url = f"http://{proxy.host}/v2/"
    start = time.monotonic()
    assert httpx.get(url).status_code == 200
    slow = time.monotonic() - start
    start = time.monotonic()
    assert httpx.get(url).status_code == 200
    fast = time.monotonic() - start
    assert slow >= 0.6 and fast < 0.5
    assert [o for _, _, o in proxy.seen] == ["delay", "forward"]


def test_fault_stall(registry: RunningRegistry, proxy: FaultProxy) -> None:
    digest = push_blob(f"http://{registry.host}", b"stalled" * 1000)
    # Without a request body: the answer's body stops coming, so a read times out.
    proxy.add(Fault("stall", delay=1.5, method="GET"))
    url = f"http://{proxy.host}/v2/test/blobs/blobs/{digest}"
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(url, timeout=httpx.Timeout(5, read=0.3))
    # With one: it goes up slowly but whole.
    proxy.add(Fault("stall", delay=0.6, method="PUT"))
    data = b"y" * 200_000
    with httpx.Client(base_url=f"http://{proxy.host}") as client:
        location = client.post("/v2/test/stall/blobs/uploads/").headers["Location"]
        start = time.monotonic()
        done = client.put(with_digest(location, sha256(data)), content=data)
        assert done.status_code == 201
        assert time.monotonic() - start >= 0.6


def test_fault_416_carries_the_upload_range(registry: RunningRegistry, proxy: FaultProxy) -> None:
    first, second = b"a" * 1000, b"b" * 500
    with httpx.Client(base_url=f"http://{proxy.host}") as client:
        location = client.post("/v2/test/resume/blobs/uploads/").headers["Location"]
        sent = client.patch(location, content=first)
        assert sent.status_code == 202 and sent.headers["Range"] == "0-999"
        proxy.add(Fault("status", status=416, method="PATCH"))
        refused = client.patch(sent.headers["Location"], content=second)
        assert refused.status_code == 416
        assert refused.headers["Range"] == "0-999"  # what the registry has
        assert refused.headers["Docker-Upload-UUID"] == sent.headers["Docker-Upload-UUID"]
        resume = refused.headers["Location"]
        assert resume.startswith(f"http://{proxy.host}/")
        status = client.get(resume)
        assert status.status_code == 204 and status.headers["Range"] == "0-999"
        sent = client.patch(resume, content=second)
        assert sent.status_code == 202 and sent.headers["Range"] == "0-1499"
        digest = sha256(first + second)
        assert client.put(with_digest(sent.headers["Location"], digest)).status_code == 201
        assert client.get(f"/v2/test/resume/blobs/{digest}").content == first + second


def test_every_nth_cycles_through_faults(registry: RunningRegistry, proxy: FaultProxy) -> None:
    proxy.every_nth(2, [Fault("status", status=500), Fault("status", status=502)])
    with httpx.Client() as client:
        codes = [client.get(f"http://{proxy.host}/v2/").status_code for _ in range(6)]
    assert codes == [200, 500, 200, 502, 200, 500]
    proxy.every_nth(0, [])
    assert httpx.get(f"http://{proxy.host}/v2/").status_code == 200
