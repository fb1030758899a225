"""An OCI image layout on disk: content-addressed blobs and an ``index.json`` of named images.

It is also the local content store: layers are streamed into it as they are made.
Blobs are written to a temp file and renamed into place once their digest is known,
so a blob that exists is whole and its name is its digest.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType

from doit_oci.registry import oci
from doit_oci.registry.files import TempFile, write_atomic

LAYOUT_VERSION = b'{"imageLayoutVersion":"1.0.0"}'


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
        self._temp.file.write(data)
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

    def set_refs(self, named: Mapping[str, oci.Descriptor], drop: Iterable[str] = ()) -> bool:
        """Point each ref name at its descriptor, keeping other names; True if changed.
        Read, changed and written under a lock: several writers may name images at once."""
        self.root.mkdir(parents=True, exist_ok=True)
        folder = os.open(self.root, os.O_RDONLY)  # the layout's own folder is the lock
        try:
            fcntl.flock(folder, fcntl.LOCK_EX)
            return self._set_refs(named, drop)
        finally:
            os.close(folder)

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
