"""An OCI distribution-spec client on httpx: one method per endpoint a push or a base needs.

Transport (retries, in registry.transport) and authentication (registry.auth) are apart
from the operations here, as in go-containerregistry. Uploads stream from re-iterable
bodies (``BlobSource``), so an auth challenge or a redirect can send them again, and
no blob is ever held whole in memory. Upload URLs are built by hand: a registry's
Location may be relative or absolute and carries its own query (``_state``).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin

import httpx

from doit_oci.registry import oci
from doit_oci.registry.auth import AuthError, RegistryAuth
from doit_oci.registry.credentials import CredentialError, Credentials, load_credentials
from doit_oci.registry.errors import RegistryError, unreachable
from doit_oci.registry.reference import is_loopback
from doit_oci.registry.transport import (
    Exhausted,
    RetryPolicy,
    refused_certificate,
    send_with_retries,
)

CHUNK = 1 << 20
ACCEPT_MANIFESTS = ", ".join((*oci.MANIFEST_TYPES, *oci.INDEX_TYPES))
USER_AGENT = "doit-oci/0.1"


def error_detail(response: httpx.Response) -> str:
    """``HTTP 404 MANIFEST_UNKNOWN: manifest unknown``: the status and the registry's errors."""
    text = f"HTTP {response.status_code}"
    try:
        body = json.loads(response.content or b"{}")
    except (ValueError, httpx.ResponseNotRead):
        return text
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list):
        parts = []
        for error in errors[:3]:
            if isinstance(error, dict):
                code, message = error.get("code", ""), error.get("message", "")
                parts.append(f"{code}: {message}" if code and message else str(code or message))
        if parts:
            text += " " + "; ".join(parts)
    return text


class FileSlice:
    """A re-iterable body: ``length`` bytes of a file from ``offset``, read in chunks.
    Each iteration opens the file again, so the body can be replayed."""

    def __init__(
        self,
        path: Path,
        offset: int,
        length: int,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.path, self.offset, self.length = path, offset, length
        self.progress = progress

    def __iter__(self) -> Iterator[bytes]:
        left = self.length
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            while left > 0:
                data = handle.read(min(CHUNK, left))
                if not data:
                    raise OSError(f"{self.path} ended {left} bytes early")
                left -= len(data)
                if self.progress is not None:
                    self.progress(len(data))
                yield data


@dataclass(frozen=True)
class BlobSource:
    """A blob to upload: its digest, size, and how to read a range of it again and again."""

    digest: str
    size: int
    read: Callable[[int, int], Iterable[bytes]]  # (offset, length) -> re-iterable bytes

    @classmethod
    def from_file(
        cls, path: Path, digest: str, progress: Callable[[int], None] | None = None
    ) -> BlobSource:
        size = path.stat().st_size
        return cls(digest, size, lambda offset, length: FileSlice(path, offset, length, progress))


def _with_query(url: str, **params: str) -> str:
    """Add ``params`` to ``url``, keeping any query it already has."""
    extra = "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())
    return f"{url}{'&' if '?' in url else '?'}{extra}"


def _parse_range(value: str | None) -> int | None:
    """``Range: 0-1023`` (or ``bytes=0-1023``) -> the next offset, 1024; None if absent."""
    if not value:
        return None
    value = value.removeprefix("bytes=")
    _, sep, last = value.partition("-")
    if not sep or not last.isdigit():
        return None
    return int(last) + 1


class RegistryClient:
    """Talks to one registry. Thread safe: requests share a bounded connection pool."""

    def __init__(
        self,
        registry: str,
        *,
        credentials: Credentials | None = None,
        insecure: bool = False,
        policy: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        chunk_size: int = 64 << 20,
        max_connections: int = 8,
        timeout: float = 30.0,
        on_retry: Callable[[str], None] | None = None,
    ) -> None:
        self.registry = registry
        scheme = "http" if insecure or is_loopback(registry) else "https"
        host = "registry-1.docker.io" if registry == "docker.io" else registry
        self.base_url = f"{scheme}://{host}"
        self.policy = policy or RetryPolicy()
        self.chunk_size = chunk_size
        self.on_retry = on_retry
        self._client = httpx.Client(
            auth=RegistryAuth(host, credentials),
            transport=transport,
            follow_redirects=True,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            headers={"User-Agent": USER_AGENT},
        )
        self._lock = threading.Lock()

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return urljoin(self.base_url + "/", path)

    def _request(
        self,
        method: str,
        url: str,
        repository: str,
        operation: str,
        *,
        scopes: tuple[str, ...] = (),
        headers: dict[str, str] | None = None,
        content: Iterable[bytes] | bytes | None = None,
        ok: tuple[int, ...] = (200,),
        allow: tuple[int, ...] = (),
    ) -> httpx.Response:
        """Send with retries; return a response whose status is in ``ok`` or ``allow``,
        else raise RegistryError naming the registry, repository and operation."""
        full = url if url.startswith(("http://", "https://")) else self._url(url)
        extensions = {"registry_scopes": scopes} if scopes else {}

        def send() -> httpx.Response:
            request = self._client.build_request(
                method, full, headers=headers, content=content, extensions=extensions
            )
            return self._client.send(request)

        def retried(attempt: int, reason: str) -> None:
            if self.on_retry is not None:
                self.on_retry(f"{self.registry}/{repository}: {operation}: {reason}, retrying")

        try:
            response = send_with_retries(send, self.policy, on_retry=retried)
        except Exhausted as exc:
            last = exc.last
            if isinstance(last, httpx.Response):
                detail = f"{error_detail(last)} after {exc.tries} tries"
                raise RegistryError(
                    self.registry, repository, operation, detail, last.status_code
                ) from None
            raise RegistryError(
                self.registry,
                repository,
                operation,
                f"cannot reach {self.base_url} ({type(last).__name__}: {last}) after"
                f" {exc.tries} tries",
                fix=unreachable(self.registry),
            ) from None
        except AuthError as exc:
            raise RegistryError(
                self.registry, repository, operation, f"HTTP 401 {exc}", 401
            ) from None
        except httpx.HTTPError as exc:
            if refused_certificate(exc):
                raise RegistryError(
                    self.registry,
                    repository,
                    operation,
                    f"the TLS certificate of {self.base_url} does not verify ({exc})",
                    fix="give the CA that signed it in SSL_CERT_FILE, or name the registry"
                    " with --insecure-registry to speak plain HTTP to it",
                ) from None
            raise RegistryError(
                self.registry,
                repository,
                operation,
                f"{type(exc).__name__}: {exc}",
                fix=unreachable(self.registry),
            ) from None
        if response.status_code in ok or response.status_code in allow:
            return response
        raise RegistryError(
            self.registry, repository, operation, error_detail(response), response.status_code
        )

    @staticmethod
    def _scope(repository: str, actions: str) -> str:
        return f"repository:{repository}:{actions}"

    # -- endpoints --------------------------------------------------------------------------

    def ping(self) -> None:
        """``GET /v2/``: the registry speaks the API (a 401 also means it does)."""
        self._request("GET", "/v2/", "", "ping", ok=(200,), allow=(401,))

    def check_access(self) -> None:
        """``GET /v2/`` with the credentials it asks for: the registry can be reached and
        accepts them (what a repository allows shows only when pushing to it)."""
        self._request("GET", "/v2/", "", "log in", ok=(200,))

    def blob_exists(self, repository: str, digest: str) -> bool:
        response = self._request(
            "HEAD",
            f"/v2/{repository}/blobs/{digest}",
            repository,
            f"check blob {digest[:19]}",
            scopes=(self._scope(repository, "pull"),),
            allow=(404,),
        )
        return response.status_code == 200

    def start_upload(self, repository: str, mount: str = "", source: str = "") -> str | None:
        """POST an upload; with ``mount`` from ``source``, try a cross-repository mount.
        None when the blob was mounted (201), else the upload's Location."""
        return self._start(repository, mount, source)[0]

    def _start(self, repository: str, mount: str = "", source: str = "") -> tuple[str | None, int]:
        """(Location or None when mounted, OCI-Chunk-Min-Length or 0)."""
        url = f"/v2/{repository}/blobs/uploads/"
        scopes: tuple[str, ...] = (self._scope(repository, "pull,push"),)
        operation = "start upload"
        if mount:
            url = _with_query(url, mount=mount, **({"from": source} if source else {}))
            scopes += (self._scope(source, "pull"),) if source else ()
            operation = f"mount {mount[:19]} from {source}"
        response = self._request("POST", url, repository, operation, scopes=scopes, ok=(201, 202))
        if response.status_code == 201 and mount:
            return None, 0
        location = response.headers.get("location")
        if not location:
            raise RegistryError(self.registry, repository, operation, "no Location in the answer")
        min_chunk = response.headers.get("oci-chunk-min-length") or "0"
        return urljoin(str(response.url), location), int(min_chunk) if min_chunk.isdigit() else 0

    def mount_blob(self, repository: str, digest: str, source: str) -> bool:
        """Mount ``digest`` from ``source`` (same registry); False when the registry would
        rather take an upload (202: the session is cancelled) or refuses."""
        try:
            location = self.start_upload(repository, mount=digest, source=source)
        except RegistryError:
            return False
        if location is None:
            return True
        with contextlib.suppress(RegistryError):
            self._request(
                "DELETE",
                location,
                repository,
                "cancel upload",
                scopes=(self._scope(repository, "pull,push"),),
                ok=(204, 202, 200),
                allow=(404,),
            )
        return False

    def upload_blob(self, repository: str, blob: BlobSource) -> None:
        """Upload a blob: one PUT when it is small, PATCH chunks (resumable) when large.
        An upload session the registry lost (404, 400) is started again, twice at most."""
        for restart in range(3):
            try:
                if blob.size <= self.chunk_size:
                    self._upload_monolithic(repository, blob)
                else:
                    self._upload_chunked(repository, blob)
                return
            except RegistryError as exc:
                if exc.status not in (400, 404) or restart == 2:
                    raise

    def _finish(
        self,
        repository: str,
        location: str,
        blob: BlobSource,
        content: Iterable[bytes] | bytes,
        length: int,
    ) -> None:
        response = self._request(
            "PUT",
            _with_query(location, digest=blob.digest),
            repository,
            f"upload blob {blob.digest[:19]}",
            scopes=(self._scope(repository, "pull,push"),),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(length)},
            content=content,
            ok=(201, 204),
        )
        self._check_digest(response, blob.digest, repository, "upload blob")

    def _upload_monolithic(self, repository: str, blob: BlobSource) -> None:
        location, _ = self._start(repository)
        assert location is not None
        self._finish(repository, location, blob, blob.read(0, blob.size), blob.size)

    def _upload_chunked(self, repository: str, blob: BlobSource) -> None:
        location, min_chunk = self._start(repository)
        assert location is not None
        chunk = max(self.chunk_size, min_chunk)
        scopes = (self._scope(repository, "pull,push"),)
        offset = 0
        recoveries = 0
        while offset < blob.size:
            length = min(chunk, blob.size - offset)
            response = self._request(
                "PATCH",
                location,
                repository,
                f"upload chunk of {blob.digest[:19]}",
                scopes=scopes,
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(length),
                    "Content-Range": f"{offset}-{offset + length - 1}",
                },
                content=blob.read(offset, length),
                ok=(202,),
                allow=(416,),
            )
            if response.status_code == 416:
                # out of step with the registry: ask where the upload stands, go on from there
                recoveries += 1
                if recoveries > 5:
                    raise RegistryError(
                        self.registry, repository, "upload chunk", "HTTP 416 again and again"
                    )
                status = self._request(
                    "GET", location, repository, "upload status", scopes=scopes, ok=(204, 200)
                )
                location = urljoin(str(status.url), status.headers.get("location") or location)
                offset = _parse_range(status.headers.get("range")) or 0
                continue
            location = urljoin(str(response.url), response.headers.get("location") or location)
            offset = _parse_range(response.headers.get("range")) or offset + length
        self._finish(repository, location, blob, b"", 0)

    def get_blob(
        self, repository: str, digest: str
    ) -> contextlib.AbstractContextManager[httpx.Response]:
        """Stream a blob: ``with client.get_blob(repo, d) as r: for b in r.iter_bytes(): ...``"""
        return self._stream(
            "GET", f"/v2/{repository}/blobs/{digest}", repository, f"download blob {digest[:19]}"
        )

    @contextlib.contextmanager
    def _stream(
        self, method: str, url: str, repository: str, operation: str
    ) -> Iterator[httpx.Response]:
        extensions = {"registry_scopes": (self._scope(repository, "pull"),)}

        def send() -> httpx.Response:
            request = self._client.build_request(method, self._url(url), extensions=extensions)
            return self._client.send(request, stream=True)

        try:
            response = send_with_retries(send, self.policy)
        except Exhausted as exc:
            last = exc.last
            detail = error_detail(last) if isinstance(last, httpx.Response) else str(last)
            raise RegistryError(
                self.registry, repository, operation, f"{detail} after {exc.tries} tries"
            ) from None
        except httpx.HTTPError as exc:
            raise RegistryError(self.registry, repository, operation, str(exc)) from None
        try:
            if response.status_code != 200:
                response.read()
                raise RegistryError(
                    self.registry,
                    repository,
                    operation,
                    error_detail(response),
                    response.status_code,
                )
            yield response
        finally:
            response.close()

    def head_manifest(self, repository: str, reference: str) -> oci.Descriptor | None:
        response = self._request(
            "HEAD",
            f"/v2/{repository}/manifests/{reference}",
            repository,
            f"check manifest {reference}",
            scopes=(self._scope(repository, "pull"),),
            headers={"Accept": ACCEPT_MANIFESTS},
            allow=(404,),
        )
        if response.status_code == 404:
            return None
        digest = response.headers.get("docker-content-digest", "")
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        size = int(response.headers.get("content-length") or 0)
        return oci.Descriptor(media_type, digest, size) if digest else None

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str, str]:
        """The manifest (or index) bytes, its media type and its digest (checked)."""
        response = self._request(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            repository,
            f"get manifest {reference}",
            scopes=(self._scope(repository, "pull"),),
            headers={"Accept": ACCEPT_MANIFESTS},
        )
        data = response.content
        digest = oci.sha256_digest(data)
        if reference.startswith("sha256:") and reference != digest:
            raise RegistryError(
                self.registry,
                repository,
                f"get manifest {reference}",
                f"its content has digest {digest}",
            )
        header = response.headers.get("docker-content-digest")
        if header and header != digest:
            raise RegistryError(
                self.registry,
                repository,
                f"get manifest {reference}",
                f"Docker-Content-Digest {header} is not its digest {digest}",
            )
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        try:
            document: Any = json.loads(data)
            media_type = str(document.get("mediaType") or media_type)
        except ValueError:
            raise RegistryError(
                self.registry, repository, f"get manifest {reference}", "the answer is not JSON"
            ) from None
        return data, media_type, digest

    def put_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> str:
        digest = oci.sha256_digest(data)
        response = self._request(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            repository,
            f"put manifest {reference if reference != digest else digest[:19]}",
            scopes=(self._scope(repository, "pull,push"),),
            headers={"Content-Type": media_type},
            content=data,
            ok=(201, 200, 202),
        )
        self._check_digest(response, digest, repository, "put manifest")
        return digest

    def tags(self, repository: str) -> list[str]:
        response = self._request(
            "GET",
            f"/v2/{repository}/tags/list",
            repository,
            "list tags",
            scopes=(self._scope(repository, "pull"),),
            allow=(404,),
        )
        if response.status_code == 404:
            return []
        return [str(tag) for tag in (response.json().get("tags") or [])]

    def _check_digest(
        self, response: httpx.Response, digest: str, repository: str, operation: str
    ) -> None:
        header = response.headers.get("docker-content-digest")
        if header and header != digest:
            raise RegistryError(
                self.registry,
                repository,
                operation,
                f"the registry says the digest is {header}, ours is {digest}",
            )


class Clients:
    """One client per registry, made when first needed, with that registry's credentials
    (from the docker config) and plain HTTP for loopback and insecure registries."""

    def __init__(
        self,
        environ: Mapping[str, str],
        insecure: Iterable[str] = (),
        policy: RetryPolicy | None = None,
        on_retry: Callable[[str], None] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.environ = environ
        self.insecure = frozenset(insecure)
        self.policy = policy
        self.on_retry = on_retry
        self.transport = transport
        self._clients: dict[str, RegistryClient] = {}
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def get(self, registry: str) -> RegistryClient:
        with self._lock:
            if self._pid != os.getpid():
                # a forked worker (doit -n): the parent's connections are not ours to use
                self._clients, self._pid = {}, os.getpid()
            client = self._clients.get(registry)
            if client is None:
                try:
                    credentials = load_credentials(registry, self.environ)
                except CredentialError as exc:
                    raise RegistryError(registry, "", "read credentials", str(exc)) from None
                client = RegistryClient(
                    registry,
                    credentials=credentials,
                    insecure=registry in self.insecure,
                    policy=self.policy,
                    on_retry=self.on_retry,
                    transport=self.transport,
                )
                self._clients[registry] = client
            return client

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
