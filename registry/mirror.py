"""Reading a registry's images through its mirrors: manifests and blobs are asked of each
mirror in turn (a pull-through cache, a copy inside the network), then of the registry
itself when a mirror lacks them or does not answer, as containerd and kaniko do.

Every digest is verified, from a mirror or not: a manifest asked for by digest must hash
to it, a blob read to its end must hash to its digest. Bytes that do not are refused, an
error and never a reason to ask elsewhere: a mirror can make a build faster or possible,
never different. Only reads go through a mirror; the images still name the registry.

A mirror is written ``registry=host[:port][/prefix]``: the registry's repository
``library/x`` is ``prefix/library/x`` on the mirror (as a Harbor proxy project holds it).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

from doit_oci.registry import oci
from doit_oci.registry.errors import DigestMismatch, RegistryError
from doit_oci.registry.reference import DEFAULT_REGISTRY, ReferenceError, check_hub

if TYPE_CHECKING:
    from doit_oci.registry.client import RegistryClient

T = TypeVar("T")
Warn = Callable[[str], None]


@dataclass(frozen=True)
class Mirror:
    """A place that holds (some of) a registry's repositories."""

    registry: str  # the registry it mirrors: docker.io, ghcr.io, 127.0.0.1:5000
    host: str  # where it is: mirror.example.com[:port]
    prefix: str = ""  # the path the registry's repositories are under, if any

    def repository(self, repository: str) -> str:
        return f"{self.prefix}/{repository}" if self.prefix else repository

    def __str__(self) -> str:
        return f"{self.host}/{self.prefix}" if self.prefix else self.host


def parse_mirror(registry: str, where: str) -> Mirror:
    """``mirror.example.com[/prefix]`` as a mirror of ``registry``; ValueError saying why
    it is not one."""
    registry = (
        DEFAULT_REGISTRY if registry in ("index.docker.io", "registry-1.docker.io") else registry
    )
    try:
        if not registry or "/" in registry:
            raise ReferenceError(f"{registry!r} is not a registry host")
        check_hub(registry)
        host, _, prefix = check_hub(where).partition("/")
    except ReferenceError as exc:
        raise ValueError(f"mirror {registry}={where}: {exc}") from None
    if not ("." in host or ":" in host or host == "localhost"):
        raise ValueError(
            f"mirror {registry}={where}: {host!r} is not a host such as mirror.example.com"
        )
    return Mirror(registry, host, prefix)


def parse_mirrors(text: str) -> tuple[Mirror, ...]:
    """``docker.io=mirror.example.com,ghcr.io=other/ghcr`` (commas or spaces between);
    ValueError naming the entry that is wrong."""
    found: list[Mirror] = []
    for entry in text.replace(",", " ").split():
        registry, equals, where = entry.partition("=")
        if not equals or not where:
            raise ValueError(f"mirror {entry!r} is not registry=host[/prefix]")
        mirror = parse_mirror(registry.strip(), where.strip())
        if mirror not in found:
            found.append(mirror)
    return tuple(found)


class Body(Protocol):
    def iter_bytes(self, chunk_size: int | None = None) -> Iterator[bytes]: ...


class Verified:
    """A blob's body whose bytes, read to the end, must hash to its digest."""

    def __init__(self, body: Body, digest: str, registry: str, repository: str) -> None:
        self.body, self.digest = body, digest
        self.registry, self.repository = registry, repository

    def iter_bytes(self, chunk_size: int | None = None) -> Iterator[bytes]:
        hasher = hashlib.sha256()
        for chunk in self.body.iter_bytes(chunk_size):
            hasher.update(chunk)
            yield chunk
        found = "sha256:" + hasher.hexdigest()
        if found != self.digest:
            operation = f"download blob {self.digest[:19]}"
            detail = f"its content has digest {found}"
            raise DigestMismatch(self.registry, self.repository, operation, detail)

    def read(self) -> bytes:
        return b"".join(self.iter_bytes())


class Watch(Protocol):
    """Keeps track of the mirrors that fail: says which are down, names them once."""

    def down(self, mirror: Mirror) -> bool: ...

    def skipped(self, mirror: Mirror, why: str, answered: bool) -> None: ...


class Reader:
    """The reads of one registry's images (what a base needs): from each of its mirrors in
    turn (but those found down), then from the registry, the last source, whose answer
    stands."""

    def __init__(
        self,
        registry: str,
        sources: Sequence[tuple[RegistryClient, Mirror | None]],
        watch: Watch | None = None,
    ) -> None:
        self.registry = registry
        self.sources = tuple(sources)
        self.watch = watch

    def _usable(self) -> Iterator[tuple[RegistryClient, Mirror | None]]:
        for client, mirror in self.sources:
            if mirror is None or self.watch is None or not self.watch.down(mirror):
                yield client, mirror

    def _skip(self, mirror: Mirror, exc: RegistryError | None, repository: str) -> None:
        if self.watch is not None:
            why = f"{exc.operation}: {exc.detail}" if exc else f"no {repository} there"
            self.watch.skipped(mirror, why, exc is None or exc.status != 0)

    def _first(self, repository: str, read: Callable[[RegistryClient, str], T | None]) -> T | None:
        for client, mirror in self._usable():
            if mirror is None:
                return read(client, repository)
            try:
                found = read(client, mirror.repository(repository))
            except DigestMismatch:
                raise
            except RegistryError as exc:
                self._skip(mirror, exc, repository)
                continue
            if found is not None:
                return found
            self._skip(mirror, None, repository)
        return None

    def head_manifest(self, repository: str, reference: str) -> oci.Descriptor | None:
        return self._first(repository, lambda client, repo: client.head_manifest(repo, reference))

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str, str]:
        found = self._first(repository, lambda client, repo: client.get_manifest(repo, reference))
        assert found is not None  # the registry's own answer raises when it has none
        return found

    @contextlib.contextmanager
    def get_blob(self, repository: str, digest: str) -> Iterator[Verified]:
        """The blob's body from the first source that has it, verified as it is read."""
        for client, mirror in self._usable():
            repo = mirror.repository(repository) if mirror else repository
            with contextlib.ExitStack() as stack:
                try:
                    response = stack.enter_context(client.get_blob(repo, digest))
                except DigestMismatch:
                    raise
                except RegistryError as exc:
                    if mirror is None:
                        raise
                    self._skip(mirror, exc, repository)
                    continue
                yield Verified(response, digest, client.registry, repo)
                return


class Readers:
    """A Reader per registry: through the mirrors given for it, then from it. A mirror that
    fails is named once (``warn``); one that does not answer at all is not asked again."""

    def __init__(
        self,
        mirrors: Sequence[Mirror],
        clients: Callable[[str], RegistryClient],
        mirror_clients: Callable[[str], RegistryClient] | None = None,
        warn: Warn | None = None,
    ) -> None:
        self.mirrors = tuple(mirrors)
        self.clients = clients
        self.mirror_clients = mirror_clients or clients
        self.warn = warn
        self._warned: set[Mirror] = set()
        self._down: set[Mirror] = set()

    def down(self, mirror: Mirror) -> bool:
        return mirror in self._down

    def skipped(self, mirror: Mirror, why: str, answered: bool) -> None:
        if not answered:
            self._down.add(mirror)
        if self.warn is None or mirror in self._warned:
            return
        self._warned.add(mirror)
        after = "" if answered else " (not asked again in this run)"
        self.warn(f"mirror {mirror} of {mirror.registry} skipped: {why}{after}")

    def get(self, registry: str) -> Reader:
        sources: list[tuple[RegistryClient, Mirror | None]] = [
            (self.mirror_clients(m.host), m) for m in self.mirrors if m.registry == registry
        ]
        sources.append((self.clients(registry), None))
        return Reader(registry, sources, self)
