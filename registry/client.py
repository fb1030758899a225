"""An OCI distribution-spec client on httpx: one method per endpoint a push or a base needs.

Reads are here (the API check, blobs, manifests, tags); uploads are in registry.upload,
the plumbing (the httpx client, errors as one line) in registry.session, retries in
registry.transport and authentication in registry.auth, as in go-containerregistry.
``Clients`` makes one ``RegistryClient`` per registry, with its credentials.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx

from doit_oci.registry import oci
from doit_oci.registry.credentials import CredentialError, Credentials, load_credentials
from doit_oci.registry.errors import DigestMismatch, RegistryError
from doit_oci.registry.session import Session, scope
from doit_oci.registry.transport import RetryPolicy, Watcher
from doit_oci.registry.upload import BlobSource as BlobSource  # what callers upload
from doit_oci.registry.upload import Uploader

ACCEPT_MANIFESTS = ", ".join((*oci.MANIFEST_TYPES, *oci.INDEX_TYPES))
NOT_JSON = "the answer is not JSON"


def read_manifest(
    reference: str, data: bytes, digest: str, header: str | None
) -> tuple[dict[str, Any], str]:
    """A manifest answer as JSON, and why it cannot be taken ("" when it can): its digest is
    not the one asked for or the one the registry names, or it is not a JSON object."""
    if reference.startswith("sha256:") and reference != digest:
        return {}, f"its content has digest {digest}"
    if header and header != digest:
        return {}, f"Docker-Content-Digest {header} is not its digest {digest}"
    try:
        document = json.loads(data)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        return {}, NOT_JSON
    return document, ""


class RegistryClient:
    """Talks to one registry. Thread safe: requests share a bounded connection pool.
    ``transport`` replaces the one that sends the bytes (tests give an
    ``httpx.MockTransport``); retries and authentication stay above it."""

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
        watch: Watcher | None = None,
    ) -> None:
        self.session = Session(
            registry,
            credentials=credentials,
            insecure=insecure,
            policy=policy,
            transport=transport,
            max_connections=max_connections,
            timeout=timeout,
            on_retry=on_retry,
            watch=watch,
        )
        self.uploads = Uploader(self.session, chunk_size)
        self.registry, self.base_url = registry, self.session.base_url

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check_access(self) -> None:
        """``GET /v2/`` with the credentials it asks for: the registry can be reached and
        accepts them (what a repository allows shows only when pushing to it)."""
        response = self.session.request("GET", "/v2/", "", "log in", ok=(200,), allow=(404,))
        if response.status_code == 404:
            raise RegistryError(
                self.registry,
                "",
                "log in",
                f"{self.base_url} is not an OCI registry (GET /v2/ answered 404)",
                fix="check the hub: it must name a registry (host[:port], then a path)",
            )

    def blob_exists(self, repository: str, digest: str) -> bool:
        response = self.session.request(
            "HEAD",
            f"/v2/{repository}/blobs/{digest}",
            repository,
            f"check blob {digest[:19]}",
            scopes=(scope(repository, "pull"),),
            allow=(404,),
        )
        return response.status_code == 200

    def mount_blob(self, repository: str, digest: str, source: str) -> bool:
        """Mount ``digest`` from ``source`` (same registry); False when it is not mounted."""
        return self.uploads.mount(repository, digest, source)

    def upload_blob(self, repository: str, blob: BlobSource) -> None:
        """Upload a blob: one PUT when small, resumable PATCH chunks when large."""
        self.uploads.upload(repository, blob)

    def get_blob(
        self, repository: str, digest: str
    ) -> contextlib.AbstractContextManager[httpx.Response]:
        """Stream a blob: ``with client.get_blob(repo, d) as r: for b in r.iter_bytes(): ...``"""
        return self.session.stream(
            f"/v2/{repository}/blobs/{digest}",
            repository,
            f"download blob {digest[:19]}",
            scopes=(scope(repository, "pull"),),
        )

    def head_manifest(self, repository: str, reference: str) -> oci.Descriptor | None:
        response = self.session.request(
            "HEAD",
            f"/v2/{repository}/manifests/{reference}",
            repository,
            f"check manifest {reference}",
            scopes=(scope(repository, "pull"),),
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
        found = _get_manifest(self, repository, reference, ())
        assert found is not None  # a 404 is an error here
        return found

    def put_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> str:
        return self.put_manifest_answer(repository, reference, data, media_type)[0]

    def put_manifest_answer(
        self, repository: str, reference: str, data: bytes, media_type: str
    ) -> tuple[str, httpx.Headers]:  # the digest, and the headers (OCI-Subject...)
        digest = oci.sha256_digest(data)
        response = self.session.request(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            repository,
            f"put manifest {reference if reference != digest else digest[:19]}",
            scopes=(scope(repository, "pull,push"),),
            headers={"Content-Type": media_type},
            content=data,
            ok=(201, 200, 202),
        )
        self.session.check_digest(response, digest, repository, "put manifest")
        return digest, response.headers


def _get_manifest(
    client: RegistryClient, repository: str, reference: str, allow: tuple[int, ...]
) -> tuple[bytes, str, str] | None:
    response = client.session.request(
        "GET",
        f"/v2/{repository}/manifests/{reference}",
        repository,
        f"get manifest {reference}",
        scopes=(scope(repository, "pull"),),
        headers={"Accept": ACCEPT_MANIFESTS},
        allow=allow,
    )
    if response.status_code == 404:
        return None
    data = response.content
    digest = oci.sha256_digest(data)
    header = response.headers.get("docker-content-digest")
    document, problem = read_manifest(reference, data, digest, header)
    if problem:  # not JSON, or other bytes than the digest names
        kind = RegistryError if problem == NOT_JSON else DigestMismatch
        raise kind(client.registry, repository, f"get manifest {reference}", problem)
    media_type = response.headers.get("content-type", "").split(";")[0].strip()
    return data, str(document.get("mediaType") or media_type), digest


def find_manifest(
    client: RegistryClient, repository: str, reference: str
) -> tuple[bytes, str, str] | None:
    """As ``get_manifest`` in one request, None when the repository has no such manifest."""
    return _get_manifest(client, repository, reference, (404,))


def tags(client: RegistryClient, repository: str) -> list[str]:
    """The tags of ``repository`` (none when it does not exist)."""
    response = client.session.request(
        "GET",
        f"/v2/{repository}/tags/list",
        repository,
        "list tags",
        scopes=(scope(repository, "pull"),),
        allow=(404,),
    )
    if response.status_code == 404:
        return []
    return [str(tag) for tag in (response.json().get("tags") or [])]


class Clients:
    """One client per registry, made when first needed, with that registry's credentials
    (from the docker config) and plain HTTP for loopback and insecure registries.
    ``offline``: none is made, asking for one is an error (a run that makes no request)."""

    def __init__(
        self,
        environ: Mapping[str, str],
        insecure: Iterable[str] = (),
        policy: RetryPolicy | None = None,
        on_retry: Callable[[str], None] | None = None,
        transport: httpx.BaseTransport | None = None,
        offline: bool = False,
        watch: Watcher | None = None,
    ) -> None:
        self.offline = offline
        self.environ = environ
        self.insecure = frozenset(insecure)
        self.policy = policy
        self.on_retry = on_retry
        self.transport = transport
        self.watch = watch
        self._clients: dict[str, RegistryClient] = {}
        self._lock = threading.Lock()
        self._warned: set[Path] = set()  # docker configs warned about (readable by others)
        self._pid = os.getpid()

    def get(self, registry: str) -> RegistryClient:
        if self.offline:
            raise RegistryError(
                registry,
                "",
                "connect",
                "this run is offline: it makes no request",
                fix="run it without --offline (and OFFLINE) to reach the registry",
            )
        with self._lock:
            if self._pid != os.getpid():
                # a forked worker (doit -n): the parent's connections are not ours to use
                self._clients, self._pid = {}, os.getpid()
            client = self._clients.get(registry)
            if client is None:
                try:
                    credentials = load_credentials(registry, self.environ, warned=self._warned)
                except CredentialError as exc:
                    raise RegistryError(registry, "", "read credentials", str(exc)) from None
                client = RegistryClient(
                    registry,
                    credentials=credentials,
                    insecure=registry in self.insecure,
                    policy=self.policy,
                    on_retry=self.on_retry,
                    transport=self.transport,
                    watch=self.watch,
                )
                self._clients[registry] = client
            return client

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
