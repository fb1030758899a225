"""rules.basetree: an image's file tree from its layers' tar headers, whiteouts applied."""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard

from doit_oci.registry import oci
from doit_oci.rules.basetree import Stream, read_tree
from doit_oci.rules.errors import UserError
from doit_oci.rules.tree import DIR, FILE, HARDLINK, SYMLINK


def layer(*members: tuple[str, bytes, str]) -> bytes:
    """A tar of (name, type, content or link target)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.mode = 0o1777 if name.startswith("tmp") and kind == tarfile.DIRTYPE else 0o755
            info.uid = info.gid = 7 if name.startswith("home") else 0
            if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = data
                tar.addfile(info)
            else:
                info.size = len(data.encode()) if kind == tarfile.REGTYPE else 0
                tar.addfile(info, io.BytesIO(data.encode()) if info.size else None)
    return out.getvalue()


D, F, L, H = tarfile.DIRTYPE, tarfile.REGTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE


def chunks(data: bytes, size: int = 7) -> Iterator[bytes]:
    for at in range(0, len(data), size):
        yield data[at : at + size]


BOTTOM = layer(
    ("etc/", D, ""),
    ("etc/passwd", F, "root:x:0:0::/:/bin/sh\n"),
    ("tmp/", D, ""),
    ("home/", D, ""),
    ("home/old.txt", F, "old"),
    ("var/", D, ""),
    ("var/cache/", D, ""),
    ("var/cache/a", F, "a"),
    ("bin", L, "usr/bin"),
    ("etc/hosts", F, "h"),
    ("etc/hosts.link", H, "etc/hosts"),
)
TOP = layer(
    ("home/.wh.old.txt", F, ""),
    ("var/cache/.wh..wh..opq", F, ""),
    ("var/cache/b", F, "b"),
    ("etc/group", F, "root:x:0:\n"),
)


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_layers_in_order_with_whiteouts(compression: str, tmp_path: Path) -> None:
    media = {"none": oci.LAYER_TAR, "gzip": oci.LAYER_GZIP, "zstd": oci.LAYER_ZSTD}[compression]

    def blob(data: bytes) -> bytes:
        if compression == "gzip":
            return gzip.compress(data)
        if compression == "zstd":
            return zstandard.ZstdCompressor().compress(data)
        return data

    layers = [
        (oci.Descriptor(media, "sha256:" + "1" * 64, 0), chunks(blob(BOTTOM))),
        (oci.Descriptor(media, "sha256:" + "2" * 64, 0), chunks(blob(TOP))),
    ]
    entries = {e.path: e for e in read_tree(layers, "gcr.io/x/base:1", tmp_path / "kept")}
    assert sorted(entries) == [
        "bin",
        "etc",
        "etc/group",
        "etc/hosts",
        "etc/hosts.link",
        "etc/passwd",
        "home",
        "tmp",
        "var",
        "var/cache",
        "var/cache/b",  # a/ of the lower layer is hidden by the opaque directory
    ]
    assert (entries["tmp"].kind, entries["tmp"].mode) == (DIR, 0o1777)
    assert (entries["home"].uid, entries["home"].gid) == (7, 7)
    assert (entries["bin"].kind, entries["bin"].link) == (SYMLINK, "usr/bin")
    assert (entries["etc/hosts.link"].kind, entries["etc/hosts.link"].link) == (
        HARDLINK,
        "etc/hosts",
    )
    passwd = entries["etc/passwd"]
    assert passwd.kind == FILE and passwd.size == len("root:x:0:0::/:/bin/sh\n")
    assert Path(passwd.source).read_text() == "root:x:0:0::/:/bin/sh\n"  # kept for --chown
    assert Path(entries["etc/group"].source).read_text() == "root:x:0:\n"
    assert entries["etc/hosts"].source == ""  # other files: only their headers


def test_a_whiteout_hides_only_what_lower_layers_gave() -> None:
    same = layer(("x/", D, ""), ("x/new", F, "n"), ("x/.wh..wh..opq", F, ""))
    below = layer(("x/", D, ""), ("x/old", F, "o"))
    descriptor = oci.Descriptor(oci.LAYER_TAR, "sha256:" + "1" * 64, 0)
    entries = read_tree([(descriptor, [below]), (descriptor, [same])], "r/b", None)
    assert [e.path for e in entries] == ["x", "x/new"]


def test_a_layer_that_is_no_tar_is_one_line() -> None:
    descriptor = oci.Descriptor(oci.LAYER_GZIP, "sha256:" + "1" * 64, 0)
    with pytest.raises(UserError) as caught:
        read_tree([(descriptor, [b"not gzip at all"])], "gcr.io/x/base:1", None)
    assert str(caught.value).startswith(
        "gcr.io/x/base:1: cannot read the layers of gcr.io/x/base:1"
    )


def test_the_stream_gives_the_bytes_in_any_sizes() -> None:
    data = bytes(range(256)) * 10
    stream = Stream(iter([b"", *chunks(data, 100), b""]))
    got = [stream.read(1), stream.read(7), stream.read(1000), stream.read()]
    assert b"".join(got) == data and stream.read(5) == b""
    assert [len(part) for part in got[:3]] == [1, 7, 1000]
