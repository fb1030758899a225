"""Publish images from the local store to registries: blobs that are missing (mounted when
another repository of the registry has them, uploaded otherwise), then manifests by
digest, then tags. What a registry already holds is left alone, so pushing unchanged
images sends no blob and no manifest.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from doit_oci.registry import oci
from doit_oci.registry.layout import Layout
from doit_oci.registry.reference import split_repository
from doit_oci.registry.sizes import size

if TYPE_CHECKING:  # the client (and httpx) is imported only when something is pushed
    from doit_oci.registry.client import RegistryClient
    from doit_oci.registry.pull import Reads
    from doit_oci.registry.upload import BlobSource


@dataclass(frozen=True)
class Destination:
    """A repository of a registry and the tags an image gets there."""

    registry: str
    repository: str
    tags: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    def references(self) -> list[str]:
        return [f"{self.name}:{tag}" for tag in self.tags]


def destinations(hubs: Sequence[str], name: str, tags: Sequence[str]) -> list[Destination]:
    """``hub/name:tag`` for every hub and tag, as Istio's builder names its images."""
    out = []
    for hub in hubs:
        registry, repository = split_repository(f"{hub}/{name}")
        out.append(Destination(registry, repository, tuple(tags)))
    return out


@dataclass(frozen=True)
class Origin:
    """Where a blob that the local store does not hold can be read: a base's repository."""

    registry: str
    repository: str


@dataclass
class PushReport:
    reference: str  # the first one pushed
    digest: str = ""
    size: int = 0  # bytes of every blob and manifest of the image
    uploaded: int = 0
    mounted: int = 0
    present: int = 0
    bytes_uploaded: int = 0
    manifests_put: int = 0
    tags_put: int = 0
    seconds: float = 0.0
    also: tuple[str, ...] = ()  # the other tags pushed with it

    def line(self) -> str:
        tags = "".join(f", :{tag}" for tag in self.also)
        return (
            f"pushed {self.reference}@{self.digest}{tags} ({size(self.size)}): "
            f"{self.uploaded} blobs uploaded ({size(self.bytes_uploaded)}), {self.mounted} "
            f"mounted, {self.present} already there; {self.seconds:.1f}s"
        )


@dataclass
class _Image:
    """The manifests (children before the index) and the blobs of one image."""

    top: oci.Descriptor
    manifests: list[tuple[oci.Descriptor, bytes]] = field(default_factory=list)
    blobs: list[oci.Descriptor] = field(default_factory=list)


def collect(layout: Layout, top: oci.Descriptor) -> _Image:
    image = _Image(top)
    seen: set[str] = set()

    def add_blob(descriptor: oci.Descriptor) -> None:
        if descriptor.digest not in seen:
            seen.add(descriptor.digest)
            image.blobs.append(descriptor)

    def visit(descriptor: oci.Descriptor) -> None:
        data = layout.read(descriptor.digest)
        document = oci.parse_json_document(data, f"blob {descriptor.digest}")
        if descriptor.media_type in oci.INDEX_TYPES:
            for child in oci.Index.from_json(document).manifests:
                visit(child)
        else:
            manifest = oci.Manifest.from_json(document)
            add_blob(manifest.config)
            for layer in manifest.layers:
                add_blob(layer)
        image.manifests.append((descriptor, data))

    visit(top)
    return image


class Progress:
    """Counts uploaded bytes; the display decides how to show them."""

    def __init__(self, show: Callable[[int, int, float], None] | None = None) -> None:
        self._lock = threading.Lock()
        self.done = 0
        self.total = 0
        self.started = time.monotonic()
        self._show = show

    def expect(self, count: int) -> None:
        with self._lock:
            self.total += count

    def finish(self) -> None:
        """The uploads counted so far are done: the display ends its line."""
        if self._show is not None and self.total:
            self._show(-1, self.total, time.monotonic() - self.started)

    def advance(self, count: int) -> None:
        with self._lock:
            self.done += count
            done, total = self.done, self.total
        if self._show is not None:
            self._show(done, total, time.monotonic() - self.started)


# told of each blob of a push: (uploaded | mounted | present, the blob, where, seconds)
BlobHook = Callable[[str, oci.Descriptor, "Destination", float], None]


class Pusher:
    """Pushes images of ``layout``; blobs it lacks come from ``origins`` (a base's repo),
    read through ``reader_for`` (a registry's mirrors first), by default its client.
    ``on_blob`` is told what became of each blob."""

    def __init__(
        self,
        layout: Layout,
        client_for: Callable[[str], RegistryClient],
        origins: Mapping[str, Origin] | None = None,
        hints: Mapping[str, Sequence[Origin]] | None = None,
        progress: Progress | None = None,
        parallel: int = 4,
        reader_for: Callable[[str], Reads] | None = None,
        on_blob: BlobHook | None = None,
    ) -> None:
        self.layout = layout
        self.client_for = client_for
        self.reader_for: Callable[[str], Reads] = reader_for or client_for
        self.origins = dict(origins or {})
        self.hints = {digest: tuple(found) for digest, found in (hints or {}).items()}
        self.progress = progress or Progress()
        self.parallel = parallel
        self.on_blob = on_blob
        self._known: dict[tuple[str, str], set[str]] = {}  # (registry, digest) -> repos
        self._lock = threading.Lock()

    def _remember(self, registry: str, digest: str, repository: str) -> None:
        with self._lock:
            self._known.setdefault((registry, digest), set()).add(repository)

    def _mount_sources(self, registry: str, digest: str, repository: str) -> list[str]:
        with self._lock:
            known = set(self._known.get((registry, digest), set()))
        known.update(h.repository for h in self.hints.get(digest, ()) if h.registry == registry)
        known.discard(repository)
        return sorted(known)

    def _source(self, descriptor: oci.Descriptor) -> BlobSource:
        from doit_oci.registry.upload import BlobSource

        if self.layout.has_blob(descriptor.digest):
            return BlobSource.from_file(
                self.layout.blob_path(descriptor.digest), descriptor.digest, self.progress.advance
            )
        origin = self.origins.get(descriptor.digest)
        if origin is None:
            raise FileNotFoundError(
                f"blob {descriptor.digest} is neither in {self.layout.root} nor in a base image"
            )
        client = self.reader_for(origin.registry)
        progress = self.progress.advance

        def read(offset: int, length: int) -> Iterable[bytes]:
            return _RemoteSlice(
                client,
                origin.repository,
                descriptor.digest,
                offset,
                length,
                descriptor.size,
                progress,
            )

        return BlobSource(descriptor.digest, descriptor.size, read)

    def push_blob(self, descriptor: oci.Descriptor, destination: Destination) -> str:
        """Make ``destination`` hold one blob: "present", "mounted" or "uploaded"."""
        report = PushReport(destination.name)
        client = self.client_for(destination.registry)
        self._push_blob(client, destination, descriptor, report)
        return "uploaded" if report.uploaded else "mounted" if report.mounted else "present"

    def _push_blob(
        self,
        client: RegistryClient,
        destination: Destination,
        descriptor: oci.Descriptor,
        report: PushReport,
    ) -> None:
        registry, repository = destination.registry, destination.repository
        started = time.monotonic()
        if client.blob_exists(repository, descriptor.digest):
            outcome = "present"
        else:
            outcome = "uploaded"
            for source in self._mount_sources(registry, descriptor.digest, repository):
                if client.mount_blob(repository, descriptor.digest, source):
                    outcome = "mounted"
                    break
            if outcome == "uploaded":
                self.progress.expect(descriptor.size)
                client.upload_blob(repository, self._source(descriptor))
        self._remember(registry, descriptor.digest, repository)
        with self._lock:
            setattr(report, outcome, getattr(report, outcome) + 1)
            if outcome == "uploaded":
                report.bytes_uploaded += descriptor.size
        if self.on_blob is not None:
            self.on_blob(outcome, descriptor, destination, time.monotonic() - started)

    def push(self, top: oci.Descriptor, destination: Destination) -> PushReport:
        """Push the image (manifest or index) ``top`` to ``destination`` and its tags."""
        started = time.monotonic()
        image = collect(self.layout, top)
        report = PushReport(
            destination.references()[0] if destination.tags else destination.name,
            digest=top.digest,
            also=destination.tags[1:],
        )
        report.size = sum(b.size for b in image.blobs) + sum(len(d) for _, d in image.manifests)
        client = self.client_for(destination.registry)
        repository = destination.repository
        with ThreadPoolExecutor(max_workers=self.parallel) as pool:
            # biggest first (LPT): the last upload to start is a small one; each blob in
            # the caller's context (its trace span is the parent of theirs)
            biggest = sorted(image.blobs, key=lambda blob: -blob.size)
            futures = [
                pool.submit(
                    contextvars.copy_context().run,
                    self._push_blob,
                    client,
                    destination,
                    blob,
                    report,
                )
                for blob in biggest
            ]
            for future in futures:
                future.result()
        for descriptor, data in image.manifests:
            if client.head_manifest(repository, descriptor.digest) is None:
                client.put_manifest(repository, descriptor.digest, data, descriptor.media_type)
                report.manifests_put += 1
        top_data = image.manifests[-1][1]
        for tag in destination.tags:
            current = client.head_manifest(repository, tag)
            if current is not None and current.digest == top.digest:
                continue
            client.put_manifest(repository, tag, top_data, top.media_type)
            report.tags_put += 1
        report.seconds = time.monotonic() - started
        return report


class _RemoteSlice:
    """A re-iterable body read from another registry: each iteration GETs the blob again
    and passes on the part from ``offset`` on, ``length`` bytes."""

    def __init__(
        self,
        client: Reads,
        repository: str,
        digest: str,
        offset: int,
        length: int,
        size: int,
        progress: Callable[[int], None],
    ) -> None:
        self.client, self.repository, self.digest = client, repository, digest
        self.offset, self.length, self.size = offset, length, size
        self.progress = progress

    def __iter__(self) -> Iterator[bytes]:
        with self.client.get_blob(self.repository, self.digest) as response:
            position = 0
            end = self.offset + self.length
            for data in response.iter_bytes():
                start, position = position, position + len(data)
                if position <= self.offset:
                    continue
                piece = data[max(0, self.offset - start) : min(len(data), end - start)]
                if piece:
                    self.progress(len(piece))
                    yield piece
                if position >= end:
                    break
