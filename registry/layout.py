"""An OCI image layout on disk: content-addressed blobs and an ``index.json`` of named images.

It is also the local content store: layers are streamed into it as they are made.
Blobs are written to a temp file and renamed into place once their digest is known,
so a blob that exists is whole and its name is its digest.

Housekeeping lives here too: ``reachable`` (what the named images and given roots need),
``gc`` (remove the rest, and what killed runs left in the temp folder), ``verify`` (hash
every blob again, name what is missing) and ``drop_refs`` (forget names).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal

from doit_oci.registry import oci
from doit_oci.registry.files import TempFile, named, remove_unless_locked, write_atomic

LAYOUT_VERSION = b'{"imageLayoutVersion":"1.0.0"}'


MAX_DOCUMENT = 4 << 20  # a manifest or index is never larger (distribution's own limit)

References = tuple[list[str], list[str]]


def references(data: bytes) -> References:
    """What a document refers to: (manifests and indexes, other blobs) by digest. An index
    gives its manifests; a manifest its config and layers; anything else nothing."""
    try:
        document = json.loads(data)
    except ValueError:
        return [], []
    if not isinstance(document, dict):
        return [], []

    def digests(items: object) -> list[str]:
        listed = items if isinstance(items, list) else []
        return [str(i["digest"]) for i in listed if isinstance(i, dict) and "digest" in i]

    documents = digests(document.get("manifests"))
    leaves = []
    if isinstance(document.get("config"), dict) and isinstance(document.get("layers"), list):
        leaves = digests([document["config"], *document["layers"]])
    return documents, leaves


def walk(starts: Iterable[tuple[str, str]], read: Callable[[str], bytes]) -> dict[str, set[str]]:
    """digest -> the names whose image needs it, from (name, top digest) pairs: index ->
    manifests -> config and layers. ``read`` gives a document's bytes (b"" when unknown);
    it is asked once per document, never for a config or a layer."""
    known: dict[str, References] = {}
    needed: dict[str, set[str]] = {}
    for name, top in starts:
        seen: set[str] = set()
        todo = [(top, True)]
        while todo:
            digest, document = todo.pop()
            if digest in seen:
                continue
            seen.add(digest)
            needed.setdefault(digest, set()).add(name)
            if document:
                if digest not in known:
                    known[digest] = references(read(digest))
                documents, leaves = known[digest]
                todo += [(d, True) for d in documents] + [(d, False) for d in leaves]
    return needed


def holds(layout: Layout, digest: str) -> bool:
    """Whether ``layout`` holds ``digest`` (a string that is no digest: no)."""
    return oci.is_digest(digest) and layout.has_blob(digest)


def remove_leftovers(layout: Layout) -> int:
    """Remove what killed runs left in the temp folder (never what a live writer holds);
    how many were removed."""
    if not layout.tmp_dir.is_dir():
        return 0
    return sum(remove_unless_locked(path) for path in sorted(layout.tmp_dir.iterdir()))


def blob_files(root: Path) -> list[Path]:
    """The blob files of the layout at ``root``, sorted."""
    folder = root / "blobs" / "sha256"
    return sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []


def remove_if_damaged(blob: Path) -> bool:
    """Hash ``blob`` again; remove it (True) when its bytes are not its name."""
    with open(blob, "rb") as handle:
        actual = hashlib.file_digest(handle, "sha256").hexdigest()
    if actual == blob.name:
        return False
    blob.unlink()
    return True


@dataclass(frozen=True)
class GcResult:
    removed: int  # blobs removed
    removed_bytes: int
    kept: int  # blobs kept
    leftovers: int = 0  # temp files and folders of killed runs removed


@dataclass(frozen=True)
class Damage:
    """A blob ``verify`` found damaged (and removed) or missing, and who needs it."""

    digest: str
    problem: Literal["damaged", "missing"]
    needed_by: tuple[str, ...]  # ref names of index.json, "" for a root; sorted

    def line(self, root: Path) -> str:
        """``blob sha256:... held other bytes: removed (needed by app:1.0)``"""
        if self.problem == "damaged":
            text = f"blob {self.digest} held other bytes: removed"
        else:
            text = f"blob {self.digest} is missing from {root}"
        named = [name for name in self.needed_by if name]
        if named:
            return f"{text} (needed by {', '.join(named)})"
        return f"{text} (needed by an image index.json does not name)" if self.needed_by else text


class BlobWriter:
    """Streams bytes into a temp file while hashing them; ``commit`` names the blob.

    The temp file is locked while it is open, so ``Layout.gc`` leaves it alone.
    """

    def __init__(self, layout: Layout) -> None:
        self._layout = layout
        self._temp = TempFile(layout.tmp_dir, prefix="blob-")
        self._hash = hashlib.sha256()
        self.size = 0
        self.digest = ""

    def write(self, data: bytes | memoryview) -> int:
        self._hash.update(data)
        try:
            self._temp.file.write(data)
        except OSError as exc:
            raise named(exc, self._layout.root) from None
        self.size += len(data)
        return len(data)

    def commit(self, expected: str | None = None) -> str:
        """Move the bytes into the store under their digest and return it.

        On any failure the temp file is removed and ``digest`` stays empty.
        """
        try:
            digest = "sha256:" + self._hash.hexdigest()
            if expected is not None and expected != digest:
                raise ValueError(f"blob digest {digest} is not the expected {expected}")
            target = self._layout.blob_path(digest)
            target.parent.mkdir(parents=True, exist_ok=True)
            self._temp.keep(target)
        except OSError as exc:
            self.abort()
            raise named(exc, self._layout.root) from None
        except BaseException:
            self.abort()
            raise
        self.digest = digest
        return digest

    def abort(self) -> None:
        self._temp.discard()

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None or not self.digest:
            self.abort()


class Layout:
    def __init__(self, root: Path, tmp_dir: Path | None = None) -> None:
        self.root = root
        self.tmp_dir = tmp_dir or root.parent / "tmp"

    @property
    def index_path(self) -> Path:
        return self.root / "index.json"

    def init(self) -> None:
        (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        marker = self.root / "oci-layout"
        if not marker.exists():
            write_atomic(marker, LAYOUT_VERSION, self.tmp_dir)
        if not self.index_path.exists():
            write_atomic(self.index_path, oci.Index(()).to_bytes(), self.tmp_dir)

    def blob_path(self, digest: str) -> Path:
        if not oci.is_digest(digest):
            raise ValueError(f"not a sha256 digest: {digest!r}")
        return self.root / "blobs" / "sha256" / digest.partition(":")[2]

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def writer(self) -> BlobWriter:
        self.init()
        return BlobWriter(self)

    def put(self, media_type: str, data: bytes) -> oci.Descriptor:
        """Store ``data`` (unless already stored) and describe it."""
        descriptor = oci.describe(media_type, data)
        if not self.has_blob(descriptor.digest):
            self.init()
            write_atomic(self.blob_path(descriptor.digest), data, self.tmp_dir)
        return descriptor

    def read(self, digest: str) -> bytes:
        return self.blob_path(digest).read_bytes()

    def read_index(self) -> oci.Index:
        try:
            data = self.index_path.read_bytes()
        except FileNotFoundError:
            return oci.Index(())
        return oci.Index.from_json(oci.parse_json_document(data, str(self.index_path)))

    def write_index(self, index: oci.Index) -> None:
        self.init()
        write_atomic(self.index_path, index.to_bytes(), self.tmp_dir)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """The lock of ``index.json``: several writers may name images at once."""
        self.root.mkdir(parents=True, exist_ok=True)
        folder = os.open(self.root, os.O_RDONLY)  # the layout's own folder is the lock
        try:
            fcntl.flock(folder, fcntl.LOCK_EX)
            yield
        finally:
            os.close(folder)

    def set_refs(self, named: Mapping[str, oci.Descriptor], drop: Iterable[str] = ()) -> bool:
        """Point each ref name at its descriptor, keeping other names; True if changed.
        Read, changed and written under the lock."""
        with self._locked():
            return self._set_refs(named, drop)

    def drop_refs(self, names: Iterable[str]) -> list[str]:
        """Take ``names`` out of ``index.json`` (under the lock); the names it held, sorted.
        Their blobs stay until ``gc``."""
        wanted = set(names)
        with self._locked():
            held = sorted({m.ref_name for m in self.read_index().manifests} & wanted)
            if held:
                self._set_refs({}, held)
        return held

    def _set_refs(self, named: Mapping[str, oci.Descriptor], drop: Iterable[str]) -> bool:
        gone = set(drop) | set(named)
        current = self.read_index()
        kept = [m for m in current.manifests if m.ref_name not in gone]
        added = [d.annotated(**{oci.REF_NAME: name}) for name, d in named.items()]
        index = oci.Index(oci.sorted_descriptors(kept + added), current.annotations)
        if index == current and self.index_path.exists():
            return False
        self.write_index(index)
        return True

    def resolve(self, ref_name: str) -> oci.Descriptor | None:
        for descriptor in self.read_index().manifests:
            if descriptor.ref_name == ref_name:
                return descriptor
        return None

    # -- housekeeping -----------------------------------------------------------------------

    def _needed(self, roots: Iterable[str]) -> dict[str, set[str]]:
        """digest -> the ref names needing it ("" for ``roots`` and unnamed entries)."""
        starts = [(m.ref_name or "", m.digest) for m in self.read_index().manifests]
        return walk([*starts, *(("", digest) for digest in roots)], self._document)

    def _document(self, digest: str) -> bytes:
        """The blob if it may be a manifest or an index (here, and small enough), else b""."""
        if not holds(self, digest):
            return b""
        path = self.blob_path(digest)
        return path.read_bytes() if path.stat().st_size <= MAX_DOCUMENT else b""

    def reachable(self, roots: Iterable[str] = ()) -> set[str]:
        """Every blob digest the entries of ``index.json`` and the digests ``roots`` reach,
        whether the store holds it or not."""
        return set(self._needed(roots))

    def gc(self, roots: Iterable[str] = ()) -> GcResult:
        """Remove every blob that neither ``index.json`` nor ``roots`` reach, and what killed
        runs left in the temp folder (never a file a live writer holds). ``index.json`` is
        not changed: ``drop_refs`` forgets names. Under the lock of ``index.json``."""
        removed = size = kept = 0
        with self._locked():
            keep = self.reachable(roots)
            for path in blob_files(self.root):
                if f"sha256:{path.name}" in keep:
                    kept += 1
                    continue
                size += path.stat().st_size
                path.unlink()
                removed += 1
        return GcResult(removed, size, kept, remove_leftovers(self))

    def verify(
        self, roots: Iterable[str] = (), elsewhere: Container[str] = frozenset()
    ) -> list[Damage]:
        """Hash every blob again, removing each whose bytes are not its name; then name each
        blob that an entry of ``index.json`` or ``roots`` needs and that is neither here nor
        ``elsewhere`` (in a registry), once, with every ref name that needs it."""
        damaged = [
            f"sha256:{path.name}" for path in blob_files(self.root) if remove_if_damaged(path)
        ]
        needed = self._needed(roots)
        gone = set(damaged)
        found = [Damage(d, "damaged", tuple(sorted(needed.get(d, ())))) for d in damaged]
        found += [
            Damage(digest, "missing", tuple(sorted(names)))
            for digest, names in needed.items()
            if digest not in gone and not holds(self, digest) and digest not in elsewhere
        ]
        return sorted(found, key=lambda d: (d.problem, d.digest))
