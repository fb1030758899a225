"""The one tar writer of archives: members (folders, small bytes, files streamed and
checked against their digest) as a reproducible tar: sorted, mtime 0, owner 0 without
names, PAX headers. Layers are tars too, of image entries (rules.layer uses ``header``).
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from doit_oci.rules.errors import UserError

CHUNK = 1 << 20
BLOCK = 512
RECORD = tarfile.RECORDSIZE


class TarError(UserError):
    """A member could not be written; one line saying why and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


def header(
    name: str,
    kind: bytes,
    mode: int,
    size: int = 0,
    uid: int = 0,
    gid: int = 0,
    mtime: int = 0,
    link: str = "",
) -> bytes:
    """One PAX tar header, with numeric owners and no owner names."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.uname = info.gname = ""
    info.mtime = mtime
    info.size = size
    info.linkname = link
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


class Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...


@dataclass(frozen=True)
class Member:
    """One tar entry: a folder (no data, no source), small bytes, or a file streamed in.

    ``digest``, when set, is what the streamed file's bytes must hash to.
    """

    name: str
    data: bytes | None = None
    source: Path | None = None
    digest: str = ""

    @property
    def is_dir(self) -> bool:
        return self.data is None and self.source is None


def member_header(member: Member, size: int) -> bytes:
    if member.is_dir:
        return header(member.name, tarfile.DIRTYPE, 0o755)
    return header(member.name, tarfile.REGTYPE, 0o644, size)


def write_tar(out: Sink, members: Sequence[Member]) -> None:
    """The members as a tar, sorted by name, each file streamed and checked."""
    for chunk in tar_chunks(members):
        out.write(chunk)


def tar_chunks(members: Sequence[Member]) -> Iterator[bytes]:
    """The tar of ``members`` as it is made, in pieces of at most ``CHUNK`` bytes: for a
    pipe or a request body that reads the archive while it is written, never whole."""
    written = 0
    for member in sorted(members, key=lambda m: m.name):
        if member.source is not None:
            for chunk in file_chunks(member, member.source):
                written += len(chunk)
                yield chunk
            continue
        data = member.data or b""
        head = member_header(member, len(data))
        written += len(head)
        yield head
        if data:
            data += padding(len(data))
            written += len(data)
            yield data
    end = b"\0" * (2 * BLOCK)
    written += len(end)
    yield end + padding(written, RECORD)


def file_chunks(member: Member, source: Path) -> Iterator[bytes]:
    """A file's header, its bytes (checked against ``member.digest`` when it has one: the
    last piece comes only once they matched) and its padding."""
    with open(source, "rb") as stream:
        size = os.fstat(stream.fileno()).st_size
        yield member_header(member, size)
        hashed = hashlib.sha256() if member.digest else None
        left = size
        while left:
            chunk = stream.read(min(CHUNK, left))
            if not chunk:
                raise TarError(f"{source} shrank while it was being saved; save again")
            if hashed is not None:
                hashed.update(chunk)
            left -= len(chunk)
            if left:
                yield chunk
            else:
                last = chunk
    if hashed is not None and "sha256:" + hashed.hexdigest() != member.digest:
        raise TarError(
            f"blob {member.digest} ({source}) does not match its digest; delete it and rebuild"
        )
    if size:
        yield last + padding(size)


def padding(size: int, unit: int = BLOCK) -> bytes:
    return b"\0" * (-size % unit)
