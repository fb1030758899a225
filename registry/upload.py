"""Blob uploads of the distribution spec: start, cross-repository mount, monolithic PUT,
resumable chunked PATCHes, finish.

Uploads stream from re-iterable bodies (``BlobSource``), so that a retry, an auth
challenge or a redirect can send them again, and no blob is ever held whole in memory.
Upload URLs are built by hand: a registry's Location may be relative or absolute and
carries its own query (``_state``).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urljoin

from doit_oci.registry.errors import RegistryError
from doit_oci.registry.session import Session, scope

CHUNK = 1 << 20


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

    @classmethod
    def from_bytes(cls, data: bytes) -> BlobSource:
        """A small blob held in memory (an SBOM, a signature's payload)."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        return cls(digest, len(data), lambda offset, length: [data[offset : offset + length]])


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


class Uploader:
    """The upload endpoints of one registry; blobs over ``chunk_size`` go in chunks."""

    def __init__(self, session: Session, chunk_size: int = 64 << 20) -> None:
        self.session = session
        self.chunk_size = chunk_size

    def start(self, repository: str, mount: str = "", source: str = "") -> tuple[str | None, int]:
        """POST an upload; with ``mount`` from ``source``, try a cross-repository mount.
        (None when the blob was mounted (201), else the upload's Location; the registry's
        OCI-Chunk-Min-Length or 0)."""
        url = f"/v2/{repository}/blobs/uploads/"
        scopes: tuple[str, ...] = (scope(repository, "pull,push"),)
        operation = "start upload"
        if mount:
            url = _with_query(url, mount=mount, **({"from": source} if source else {}))
            scopes += (scope(source, "pull"),) if source else ()
            operation = f"mount {mount[:19]} from {source}"
        response = self.session.request(
            "POST", url, repository, operation, scopes=scopes, ok=(201, 202)
        )
        if response.status_code == 201 and mount:
            return None, 0
        location = response.headers.get("location")
        if not location:
            raise self.session.fail(repository, operation, "no Location in the answer")
        min_chunk = response.headers.get("oci-chunk-min-length") or "0"
        return urljoin(str(response.url), location), int(min_chunk) if min_chunk.isdigit() else 0

    def mount(self, repository: str, digest: str, source: str) -> bool:
        """Mount ``digest`` from ``source`` (same registry); False when the registry would
        rather take an upload (202: the session is cancelled) or refuses."""
        try:
            location, _ = self.start(repository, mount=digest, source=source)
        except RegistryError:
            return False
        if location is None:
            return True
        with contextlib.suppress(RegistryError):
            self.session.request(
                "DELETE",
                location,
                repository,
                "cancel upload",
                scopes=(scope(repository, "pull,push"),),
                ok=(204, 202, 200),
                allow=(404,),
            )
        return False

    def upload(self, repository: str, blob: BlobSource) -> None:
        """Upload a blob: one PUT when it is small, PATCH chunks (resumable) when large.
        An upload session the registry lost (404, 400) is started again, twice at most."""
        for restart in range(3):
            try:
                if blob.size <= self.chunk_size:
                    self.monolithic(repository, blob)
                else:
                    self.chunked(repository, blob)
                return
            except RegistryError as exc:
                if exc.status not in (400, 404) or restart == 2:
                    raise

    def finish(
        self,
        repository: str,
        location: str,
        blob: BlobSource,
        content: Iterable[bytes] | bytes,
        length: int,
    ) -> None:
        """PUT the last bytes (or none) with the digest: the blob is complete."""
        operation = f"upload blob {blob.digest[:19]}"
        response = self.session.request(
            "PUT",
            _with_query(location, digest=blob.digest),
            repository,
            operation,
            scopes=(scope(repository, "pull,push"),),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(length)},
            content=content,
            ok=(201, 204),
        )
        self.session.check_digest(response, blob.digest, repository, "upload blob")
        if not response.headers.get("docker-content-digest"):
            # an answer with no digest to trust: ask whether the registry has the blob
            head = self.session.request(
                "HEAD",
                f"/v2/{repository}/blobs/{blob.digest}",
                repository,
                f"check blob {blob.digest[:19]}",
                scopes=(scope(repository, "pull"),),
                allow=(404,),
            )
            if head.status_code != 200:
                raise self.session.fail(
                    repository,
                    operation,
                    "the registry acknowledged the blob but does not have it",
                    fix="the registry lost what it took: push again, or ask who runs it",
                )

    def monolithic(self, repository: str, blob: BlobSource) -> None:
        location, _ = self.start(repository)
        assert location is not None
        self.finish(repository, location, blob, blob.read(0, blob.size), blob.size)

    def chunked(self, repository: str, blob: BlobSource) -> None:
        location, min_chunk = self.start(repository)
        assert location is not None
        chunk = max(self.chunk_size, min_chunk)
        scopes = (scope(repository, "pull,push"),)
        offset = 0
        recoveries = 0
        while offset < blob.size:
            length = min(chunk, blob.size - offset)
            response = self.session.request(
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
                    raise self.session.fail(repository, "upload chunk", "HTTP 416 again and again")
                status = self.session.request(
                    "GET", location, repository, "upload status", scopes=scopes, ok=(204, 200)
                )
                location = urljoin(str(status.url), status.headers.get("location") or location)
                offset = _parse_range(status.headers.get("range")) or 0
                continue
            location = urljoin(str(response.url), response.headers.get("location") or location)
            offset = _parse_range(response.headers.get("range")) or offset + length
        self.finish(repository, location, blob, b"", 0)
