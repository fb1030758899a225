"""The file tree of an image: what each layer holds, without the bytes. Pure.

An ``Entry`` is one tar entry of a layer; a ``Tree`` is the union of an image's layers,
which a COPY needs to know (is the destination an existing directory? which parents
exist, and with what owner and mode?).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

DIR = "dir"
FILE = "file"
SYMLINK = "symlink"
HARDLINK = "hardlink"
KINDS = (DIR, FILE, SYMLINK, HARDLINK)


@dataclass(frozen=True)
class Entry:
    path: str  # in the image, relative to its root: "usr/local/bin/prog"
    kind: str
    mode: int  # permission bits, with setuid, setgid and sticky
    uid: int = 0
    gid: int = 0
    size: int = 0
    digest: str = ""  # sha256 of a file's content
    link: str = ""  # a symlink's target, or the path a hard link repeats
    source: str = ""  # where a file's bytes are read from

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        return {k: v for k, v in data.items() if v not in ("", 0) or k in ("path", "kind", "mode")}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Entry:
        return cls(**{k: data[k] for k in data if k in cls.__dataclass_fields__})

    @property
    def sort_key(self) -> tuple[str, ...]:
        return tuple(self.path.split("/"))


def image_path(path: str) -> str:
    """``/usr/bin/`` -> ``usr/bin``; the root is ``""``."""
    clean = posixpath.normpath("/" + path).lstrip("/")
    return "" if clean == "." else clean


def parents(path: str) -> Iterator[str]:
    """``a/b/c`` -> ``a``, ``a/b`` (outermost first)."""
    parts = path.split("/")
    for end in range(1, len(parts)):
        yield "/".join(parts[:end])


class LinkLoop(ValueError):
    """A path of the image that runs through more symlinks than a kernel follows (40):
    a loop, or a link to itself."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


class Tree:
    """Path -> entry for everything an image holds; later layers replace earlier entries."""

    def __init__(self, entries: Iterable[Entry] = (), complete: bool = True) -> None:
        self._entries: dict[str, Entry] = {}
        # False when the image stands on a registry base whose layers we never read:
        # then what is not listed here may still exist below
        self.complete = complete
        self.add(entries)

    def add(self, entries: Iterable[Entry]) -> None:
        for entry in entries:
            self._entries[entry.path] = entry

    def get(self, path: str) -> Entry | None:
        return self._entries.get(path)

    def resolve(self, path: str, limit: int = 40) -> str:
        """Follow symlinks in the parent components of ``path``, as a copy into the image
        would (the last component is not followed). Targets stay inside the image."""
        return self._walk(path, follow_last=False, limit=limit)

    def realpath(self, path: str, limit: int = 40) -> str:
        """Follow symlinks in every component of ``path``, the last one too, as Docker
        resolves a COPY destination. Targets stay inside the image; a dangling link
        resolves to the path it names."""
        return self._walk(path, follow_last=True, limit=limit)

    def _walk(self, path: str, follow_last: bool, limit: int) -> str:
        parts = [p for p in path.split("/") if p and p != "."]
        done: list[str] = []
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                if done:
                    done.pop()
                continue
            current = "/".join([*done, part])
            entry = self._entries.get(current)
            if (parts or follow_last) and entry is not None and entry.kind == SYMLINK:
                if hops >= limit:
                    raise LinkLoop(path)
                hops += 1
                target = entry.link
                base = [] if target.startswith("/") else done
                parts = [p for p in target.split("/") if p and p != "."] + parts
                done = list(base)
                continue
            done.append(part)
        return "/".join(done)

    def is_dir(self, path: str) -> bool:
        """Whether ``path`` is a directory, following symlinks (the last one too)."""
        try:
            real = self.realpath(path)
        except LinkLoop:
            return False
        if real == "":
            return True
        entry = self._entries.get(real)
        return entry is not None and entry.kind == DIR

    def __contains__(self, path: object) -> bool:
        return path in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def to_json(self) -> list[dict[str, Any]]:
        return [entry.to_json() for entry in sorted(self, key=lambda e: e.sort_key)]

    @classmethod
    def from_json(cls, data: Iterable[Mapping[str, Any]]) -> Tree:
        return cls(Entry.from_json(item) for item in data)
