"""The build info a Go binary embeds (what ``go version -m`` prints): the Go version,
the main package's path, its module and the modules it was built with. Pure: given the
binary's bytes.

Go 1.18 and later write, in the ``.go.buildinfo`` section, a 32-byte header starting
with the magic ``\\xff Go buildinf:`` (then the pointer size and flags; flag 2 says the
strings follow inline) and two length-prefixed strings (unsigned varints): the version and
the module info. The module info is framed by 16 bytes on each side and holds lines
``path``, ``mod``, ``dep`` (each ``<path>\\t<version>\\t<sum>``), ``=>`` (the
replacement of the line before) and ``build``. Older binaries point at their strings
instead; they are not read (no build info rather than a wrong one).
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"\xff Go buildinf:"
HEADER = 32
INLINE = 0x2  # the flag of Go 1.18's inline strings
ELF = b"\x7fELF"


@dataclass(frozen=True)
class Module:
    path: str
    version: str = ""
    sum: str = ""


@dataclass(frozen=True)
class BuildInfo:
    go_version: str  # "go1.22.1"
    path: str  # the main package: "github.com/x/y/cmd/y"
    main: Module | None = None  # its module (None when built outside module mode)
    deps: tuple[Module, ...] = ()


def _varint(data: bytes | mmap.mmap, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise ValueError("a truncated varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at


def _string(data: bytes | mmap.mmap, at: int) -> tuple[str, int]:
    length, at = _varint(data, at)
    if at + length > len(data):
        raise ValueError("a truncated string")
    return bytes(data[at : at + length]).decode("utf-8", "replace"), at + length


def _module(fields: list[str]) -> Module:
    return Module(*[*fields, "", "", ""][:3])


def parse_modinfo(text: str, go_version: str) -> BuildInfo:
    """The build info of the module info ``text`` (without its framing)."""
    path = ""
    main: Module | None = None
    deps: list[Module] = []
    for line in text.splitlines():
        key, _, rest = line.partition("\t")
        fields = rest.split("\t")
        if key == "path":
            path = rest
        elif key == "mod":
            main = _module(fields)
        elif key == "dep":
            deps.append(_module(fields))
        elif key == "=>":  # the line before is replaced by this module
            if deps:
                deps[-1] = _module(fields)
            elif main is not None:
                main = _module(fields)
    return BuildInfo(go_version, path, main, tuple(deps))


def read_buildinfo(data: bytes | mmap.mmap) -> BuildInfo | None:
    """The build info in a Go binary's bytes, or None (not Go, or older than Go 1.18)."""
    at = data.find(MAGIC)
    while at >= 0:
        if at + HEADER <= len(data) and data[at + 14] in (4, 8) and data[at + 15] & INLINE:
            try:
                version, after = _string(data, at + HEADER)
                modinfo, _ = _string(data, after)
            except ValueError:
                return None
            framed = len(modinfo) >= 33 and modinfo[-17] == "\n"
            modinfo = modinfo[16:-16] if framed else ""
            if version.startswith("go"):
                return parse_modinfo(modinfo, version)
        at = data.find(MAGIC, at + 1)
    return None


def read_file(path: Path) -> BuildInfo | None:
    """The build info of the ELF file ``path`` (mapped, not read whole), or None."""
    try:
        with open(path, "rb") as handle:
            if handle.read(4) != ELF:
                return None
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                return read_buildinfo(mapped)
    except (OSError, ValueError):
        return None
