"""The file tree of an image whose layers we did not make (a registry base): read from the
tar headers of its layers, in order, with their whiteouts, so that a COPY or WORKDIR on it
makes what BuildKit makes (a WORKDIR's missing directories, a COPY's missing parents, with
the metadata the base gives those that exist).

Each layer is streamed once (gzip, zstd or plain), its headers read and its contents
skipped, nothing of it kept but the few small files a ``--chown`` or a ``USER`` name is
looked up in (``/etc/passwd``, ``/etc/group``), saved where the caller says. Pure but for
the streams it is given and that folder.
"""

from __future__ import annotations

import tarfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import IO, Protocol, cast

from doit_oci.registry import oci
from doit_oci.registry.files import write_atomic
from doit_oci.rules.errors import UserError
from doit_oci.rules.tree import DIR, FILE, HARDLINK, SYMLINK, Entry, image_path

KEPT = ("etc/passwd", "etc/group")  # what names are looked up in
MAX_KEPT = 1 << 20
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
CHUNK = 1 << 20


class Stream:
    """A file-like ``read(n)`` over chunks (tarfile's stream mode and zstandard's reader
    need one); each byte is copied once more, whatever the sizes asked for."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._chunk = b""
        self._at = 0

    def read(self, size: int = -1) -> bytes:
        parts: list[bytes] = []
        wanted = size
        while wanted != 0:
            if self._at >= len(self._chunk):
                chunk = next(self._chunks, None)  # an empty chunk is no end
                if chunk is None:
                    break
                self._chunk, self._at = chunk, 0
                continue
            end = len(self._chunk) if wanted < 0 else min(len(self._chunk), self._at + wanted)
            parts.append(self._chunk[self._at : end])
            if wanted > 0:
                wanted -= end - self._at
            self._at = end
        return b"".join(parts)


def decompressed(chunks: Iterable[bytes], media_type: str) -> Iterator[bytes]:
    """The tar bytes of a layer blob given as ``chunks``."""
    if media_type.endswith(("+gzip", ".gzip")):
        inflate = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
        for chunk in chunks:
            yield inflate.decompress(chunk)
        yield inflate.flush()
    elif media_type.endswith("+zstd"):
        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(
            cast(IO[bytes], Stream(iter(chunks))), read_across_frames=True
        )
        while chunk := reader.read(CHUNK):
            yield chunk
    else:
        yield from chunks


def _entry(info: tarfile.TarInfo, path: str) -> Entry | None:
    if info.isdir():
        return Entry(path, DIR, info.mode & 0o7777, info.uid, info.gid)
    if info.isreg():
        return Entry(path, FILE, info.mode & 0o7777, info.uid, info.gid, size=info.size)
    if info.issym():
        return Entry(path, SYMLINK, 0o777, info.uid, info.gid, link=info.linkname)
    if info.islnk():
        link = image_path(info.linkname)
        return Entry(path, HARDLINK, info.mode & 0o7777, info.uid, info.gid, link=link)
    return None  # devices, FIFOs: nothing a COPY builds on


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def _below(tree: dict[str, Entry], ours: set[str], top: str) -> list[str]:
    """The paths at and under ``top`` ("" for all) that a lower layer gave."""
    return [p for p in tree if p not in ours and (not top or p == top or p.startswith(top + "/"))]


def apply_layer(tree: dict[str, Entry], tar: Readable, where: str, keep: Path | None) -> None:
    """Lay one layer (an uncompressed tar stream) over ``tree`` (path -> entry); its
    whiteouts remove what the layers below gave, never what this one gives."""
    ours: set[str] = set()
    try:
        with tarfile.open(fileobj=cast(IO[bytes], tar), mode="r|") as archive:
            _read(archive, tree, ours, keep)
    except (tarfile.TarError, zlib.error, OSError, EOFError) as exc:
        raise UserError(
            f"cannot read the layers of {where}: {exc}",
            where,
            "check the base image (each layer must be a tar, plain, gzip or zstd)",
        ) from None


def _read(
    archive: tarfile.TarFile, tree: dict[str, Entry], ours: set[str], keep: Path | None
) -> None:
    for info in archive:
        path = image_path(info.name)
        folder, _, name = path.rpartition("/")
        if name == OPAQUE:
            for other in _below(tree, ours | {folder}, folder):
                del tree[other]
            continue
        if name.startswith(WHITEOUT):
            for other in _below(tree, ours, f"{folder}/{name[len(WHITEOUT) :]}".lstrip("/")):
                del tree[other]
            continue
        entry = _entry(info, path)
        if entry is None or not path:
            continue
        if entry.kind == FILE and path in KEPT and keep is not None and info.size <= MAX_KEPT:
            source = archive.extractfile(info)
            if source is not None:
                copy = keep / path
                write_atomic(copy, source.read())
                entry = replace(entry, source=str(copy))
        tree[path] = entry
        ours.add(path)


def read_tree(
    layers: Iterable[tuple[oci.Descriptor, Iterable[bytes]]], where: str, keep: Path | None
) -> list[Entry]:
    """The entries of the image whose layers (descriptor, blob chunks) are given, bottom
    first; ``keep`` is where /etc/passwd and /etc/group are saved (their entries name it)."""
    tree: dict[str, Entry] = {}
    for descriptor, chunks in layers:
        apply_layer(tree, Stream(decompressed(chunks, descriptor.media_type)), where, keep)
    return sorted(tree.values(), key=lambda e: e.sort_key)
