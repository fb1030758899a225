"""One reproducible tar layer from a list of entries, streamed into the content store.

A single pass reads each file once: tar bytes are hashed (diff_id), compressed, hashed
again (blob digest) and written to a temp file that is renamed to its digest. Entries are
sorted, mtimes fixed, owners numeric with empty names, so the same entries always give
the same tar; ``rules.compress`` turns the same tar into the same blob (and says where a
CPU can change that). Nothing is held whole in memory.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from doit_oci.registry import oci
from doit_oci.registry.layout import BlobWriter, Layout
from doit_oci.rules.compress import COMPRESSIONS as COMPRESSIONS
from doit_oci.rules.compress import Stream, check, compressing
from doit_oci.rules.digests import stat_key
from doit_oci.rules.errors import UserError
from doit_oci.rules.tar import BLOCK, header
from doit_oci.rules.tree import DIR, FILE, HARDLINK, SYMLINK, Entry

CHUNK = 1 << 20
_TYPES = MappingProxyType(
    {
        DIR: tarfile.DIRTYPE,
        FILE: tarfile.REGTYPE,
        SYMLINK: tarfile.SYMTYPE,
        HARDLINK: tarfile.LNKTYPE,
    }
)


@dataclass(frozen=True)
class LayerBlob:
    diff_id: str
    descriptor: oci.Descriptor

    def to_json(self) -> dict[str, object]:
        return {"diff_id": self.diff_id, "descriptor": self.descriptor.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> LayerBlob:
        descriptor = data["descriptor"]
        assert isinstance(descriptor, dict)
        return cls(str(data["diff_id"]), oci.Descriptor.from_json(descriptor))


def media_type(compression: str) -> str:
    check(compression)
    return {"none": oci.LAYER_TAR, "gzip": oci.LAYER_GZIP, "zstd": oci.LAYER_ZSTD}[compression]


def tar_header(entry: Entry, epoch: int) -> bytes:
    return header(
        entry.path,
        _TYPES[entry.kind],
        entry.mode & 0o7777,
        entry.size if entry.kind == FILE else 0,
        entry.uid,
        entry.gid,
        epoch,
        entry.link if entry.kind in (SYMLINK, HARDLINK) else "",
    )


class _Sink:
    """tar bytes -> diff_id hash -> compression stream -> blob writer."""

    def __init__(
        self, blob: BlobWriter, stream: Stream | None, progress: Callable[[int], None]
    ) -> None:
        self.blob = blob
        self.stream = stream
        self.progress = progress  # bytes of file content written so far
        self.diff = hashlib.sha256() if stream is not None else None

    def write(self, data: bytes | memoryview) -> None:
        if self.stream is None:
            self.blob.write(data)
            return
        assert self.diff is not None
        self.diff.update(data)
        self.stream.write(data)

    def finish(self) -> str:
        if self.stream is None or self.diff is None:
            return ""
        self.stream.close()
        return "sha256:" + self.diff.hexdigest()


Known = Callable[[Path, os.stat_result], str]
"""The content digest already known for a file as its stat describes it, or ""."""


def _unknown(path: Path, st: os.stat_result) -> str:
    return ""


def _copy_file(sink: _Sink, entry: Entry, workspace: Path, buffer: bytearray, known: Known) -> None:
    path = workspace / entry.source
    total = 0
    view = memoryview(buffer)
    try:
        handle = open(path, "rb", buffering=0)  # noqa: SIM115 - closed below
        before = os.fstat(handle.fileno())
    except OSError as exc:
        raise _unreadable(entry, exc) from None
    # the file as the digest cache knew it when the layer's inputs were made: its stat is
    # compared again at the end instead of hashing its content a second time
    content = None if known(path, before) == entry.digest else hashlib.sha256()
    with handle:
        while True:
            try:
                count = handle.readinto(buffer)
            except OSError as exc:
                raise _unreadable(entry, exc) from None
            if not count:
                break
            total += count
            if total > entry.size:
                break
            chunk = view[:count]
            if content is not None:
                content.update(chunk)
            sink.write(chunk)  # an error writing (a full disk) is the output's, not the file's
            sink.progress(count)
        after = os.fstat(handle.fileno())
    if content is None:
        changed = stat_key(after) != stat_key(before)
    else:
        changed = "sha256:" + content.hexdigest() != entry.digest
    if total != entry.size or changed:
        raise UserError(
            f"{entry.source} changed while the image was being built",
            f"/{entry.path}",
            "run the build again once the file stops changing",
        )
    padding = -total % BLOCK
    if padding:
        sink.write(bytes(padding))


def _unreadable(entry: Entry, exc: OSError) -> UserError:
    return UserError(
        f"cannot read {entry.source}: {exc.strerror}",
        f"/{entry.path}",
        "check the file and run the build again",
    )


def write_layer(
    entries: Sequence[Entry],
    workspace: Path,
    layout: Layout,
    compression: str,
    epoch: int,
    known: Known = _unknown,
    progress: Callable[[int], None] = lambda count: None,
) -> LayerBlob:
    """Stream ``entries`` as a tar layer into ``layout``; nothing is left behind on error.

    Entries are written in path order (a directory before what it holds), whatever order
    they come in, so that the same entries always give the same bytes. A file's content
    is hashed again to check it is still the one its entry names, unless ``known`` gives
    that digest for the file's stat (which is then checked again after reading it).
    ``progress`` is told of every chunk of file content written.
    """
    check(compression)
    buffer = bytearray(CHUNK)
    with layout.writer() as blob:
        stream = compressing(compression, blob)
        sink = _Sink(blob, stream, progress)
        try:
            for entry in sorted(entries, key=lambda e: e.sort_key):
                sink.write(tar_header(entry, epoch))
                if entry.kind == FILE:
                    _copy_file(sink, entry, workspace, buffer, known)
            sink.write(bytes(2 * BLOCK))
            diff_id = sink.finish()
        except BaseException:
            if stream is not None:
                stream.abort()
            raise
        digest = blob.commit()
    return LayerBlob(diff_id or digest, oci.Descriptor(media_type(compression), digest, blob.size))
