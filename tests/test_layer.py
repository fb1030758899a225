"""Unit tests for rules.layer: reproducible tar layers streamed into an OCI layout.

Layers are read back with Python's tarfile (and raw header bytes where tarfile hides
details) to check every entry exactly.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import tracemalloc
import zlib
from pathlib import Path
from typing import BinaryIO

import pytest
import zstandard

from doit_oci.registry import oci
from doit_oci.registry.layout import Layout
from doit_oci.rules import compress
from doit_oci.rules.context import ContextDir
from doit_oci.rules.copyplan import plan_copy
from doit_oci.rules.digests import DigestCache, file_digest
from doit_oci.rules.dockerfile.model import CopyStep
from doit_oci.rules.errors import UserError
from doit_oci.rules.layer import BLOCK, COMPRESSIONS, LayerBlob, media_type, tar_header, write_layer
from doit_oci.rules.tree import DIR, FILE, HARDLINK, SYMLINK, Entry, Tree

EPOCH = 0


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def file_entry(workspace: Path, path: str, rel: str, content: bytes, **kw: int) -> Entry:
    real = workspace / rel
    real.parent.mkdir(parents=True, exist_ok=True)
    real.write_bytes(content)
    return Entry(
        path,
        FILE,
        kw.get("mode", 0o644),
        kw.get("uid", 0),
        kw.get("gid", 0),
        size=len(content),
        digest=file_digest(real),
        source=rel,
    )


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout(tmp_path / "store" / "oci", tmp_path / "store" / "tmp")


def sample(workspace: Path) -> list[Entry]:
    long_dir = "d" * 60 + "/" + "e" * 60
    return [
        Entry("etc", DIR, 0o755),
        file_entry(workspace, "etc/motd", "src/motd", b"hello\n"),
        Entry("tmp", DIR, 0o1777),
        Entry("usr", DIR, 0o755),
        Entry("usr/bin", DIR, 0o2775, 0, 50),
        file_entry(workspace, "usr/bin/su", "src/su", b"\x7fELF" + bytes(600), mode=0o4755),
        Entry("usr/bin/su2", HARDLINK, 0o4755, link="usr/bin/su"),
        Entry("usr/bin/sh", SYMLINK, 0o777, 1000, 1000, link="../../bin/busybox"),
        Entry("usr/share", DIR, 0o755, 1337, 1337),
        file_entry(workspace, "usr/share/empty", "src/empty", b"", uid=1337, gid=1337),
        Entry(long_dir, DIR, 0o700),
        file_entry(workspace, long_dir + "/" + "f" * 50, "src/long", b"long name\n"),
        file_entry(workspace, "usr/share/grüße 日本.txt", "src/unicode", b"unicode\n"),
        Entry("usr/share/far", SYMLINK, 0o777, link="/" + "t" * 150),
    ]


def read_blob(layout: Layout, blob: LayerBlob) -> bytes:
    return layout.blob_path(blob.descriptor.digest).read_bytes()


def members(tar_bytes: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
        return tar.getmembers()


def pseudo_random(size: int, seed: bytes) -> bytes:
    """Incompressible bytes that are the same on every run."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha512(seed + counter.to_bytes(8, "little")).digest()
        counter += 1
    return bytes(out[:size])


def text(size: int) -> bytes:
    """Compressible bytes, the same on every run: numbered lines of varying words."""
    words = [b"layer", b"image", b"digest", b"registry", b"manifest", b"blob", b"tar", b"config"]
    out = bytearray()
    line = 0
    while len(out) < size:
        out += b"%d %s %s %d\n" % (line, words[line % 8], words[line * 7 % 8], line * line % 9973)
        line += 1
    return bytes(out[:size])


def unpack(compression: str, blob: bytes) -> bytes:
    """The tar inside a blob, read with decoders other than the ones that wrote it."""
    if compression == "gzip":
        return gzip.decompress(blob)  # the standard library's zlib, not ISA-L
    if compression == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(blob)
    assert compression == "none"
    return blob


def unpacked_stream(compression: str, raw: BinaryIO) -> io.BufferedIOBase | BinaryIO:
    if compression == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    return zstandard.ZstdDecompressor().stream_reader(raw)


def leftovers(layout: Layout) -> list[str]:
    found = []
    for folder in (layout.root / "blobs" / "sha256", layout.tmp_dir):
        if folder.exists():
            found += [str(p) for p in folder.iterdir()]
    return found


# ---------------------------------------------------------------------------- reproducible


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_same_entries_give_the_same_bytes_and_digests(
    workspace: Path, tmp_path: Path, compression: str
) -> None:
    entries = sample(workspace)
    first = Layout(tmp_path / "one" / "oci")
    second = Layout(tmp_path / "two" / "oci")
    a = write_layer(entries, workspace, first, compression, EPOCH)
    b = write_layer(entries, workspace, second, compression, EPOCH)
    again = write_layer(entries, workspace, first, compression, EPOCH)
    assert a == b == again
    assert read_blob(first, a) == read_blob(second, b)
    assert a.descriptor.digest == sha256(read_blob(first, a))
    assert a.descriptor.size == len(read_blob(first, a))


def test_entry_order_does_not_change_the_layer(workspace: Path, layout: Layout) -> None:
    entries = sample(workspace)
    forward = write_layer(entries, workspace, layout, "none", EPOCH)
    backward = write_layer(list(reversed(entries)), workspace, layout, "none", EPOCH)
    assert forward == backward


def test_the_source_location_does_not_change_the_layer(workspace: Path, layout: Layout) -> None:
    one = [file_entry(workspace, "a", "x/one", b"same")]
    two = [file_entry(workspace, "a", "y/two", b"same")]
    assert write_layer(one, workspace, layout, "gzip", EPOCH) == write_layer(
        two, workspace, layout, "gzip", EPOCH
    )


def test_different_epoch_gives_a_different_layer(workspace: Path, layout: Layout) -> None:
    entries = sample(workspace)
    at_zero = write_layer(entries, workspace, layout, "none", 0)
    later = write_layer(entries, workspace, layout, "none", 1_700_000_000)
    assert at_zero.diff_id != later.diff_id
    assert {m.mtime for m in members(read_blob(layout, later))} == {1_700_000_000}


# ---------------------------------------------------------------------------- tar headers


def test_tar_members_are_exactly_the_entries(workspace: Path, layout: Layout) -> None:
    entries = sample(workspace)
    blob = write_layer(entries, workspace, layout, "none", EPOCH)
    data = read_blob(layout, blob)
    found = members(data)
    expected_order = sorted(entries, key=lambda e: e.sort_key)
    assert [m.name for m in found] == [e.path for e in expected_order]
    types = {DIR: tarfile.DIRTYPE, FILE: tarfile.REGTYPE, SYMLINK: tarfile.SYMTYPE}
    types[HARDLINK] = tarfile.LNKTYPE
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for member, entry in zip(found, expected_order, strict=True):
            assert member.type == types[entry.kind], entry.path
            assert member.mode == entry.mode, entry.path
            assert (member.uid, member.gid) == (entry.uid, entry.gid), entry.path
            assert (member.uname, member.gname) == ("", ""), entry.path
            assert member.mtime == EPOCH, entry.path
            assert member.linkname == entry.link, entry.path
            if entry.kind == FILE:
                assert member.size == entry.size
                handle = tar.extractfile(member)
                assert handle is not None
                assert handle.read() == (workspace / entry.source).read_bytes()
            else:
                assert member.size == 0, entry.path


def test_modes_keep_setuid_setgid_and_sticky_bits(workspace: Path, layout: Layout) -> None:
    entries = [
        Entry("sticky", DIR, 0o1777),
        Entry("setgid", DIR, 0o2755),
        file_entry(workspace, "setuid", "s", b"x", mode=0o4755),
        file_entry(workspace, "all", "a", b"y", mode=0o7777),
        file_entry(workspace, "none", "n", b"z", mode=0o000),
    ]
    blob = write_layer(entries, workspace, layout, "none", EPOCH)
    modes = {m.name: m.mode for m in members(read_blob(layout, blob))}
    assert modes == {"all": 0o7777, "none": 0, "setgid": 0o2755, "setuid": 0o4755, "sticky": 0o1777}


def test_directory_names_end_with_a_slash_in_the_raw_header(workspace: Path) -> None:
    header = tar_header(Entry("usr/bin", DIR, 0o755), EPOCH)
    assert len(header) == BLOCK
    assert header[:100].rstrip(b"\0") == b"usr/bin/"
    assert header[156:157] == tarfile.DIRTYPE
    file_header = tar_header(Entry("usr/bin/x", FILE, 0o755, size=3), EPOCH)
    assert file_header[:100].rstrip(b"\0") == b"usr/bin/x"
    assert file_header[124:136] == b"00000000003\0"  # size, octal


def test_raw_header_fields_are_fixed(workspace: Path) -> None:
    header = tar_header(Entry("a", FILE, 0o644, 1000, 1001, size=0), EPOCH)
    assert header[100:108] == b"0000644\0"  # mode
    assert header[108:116] == b"0001750\0"  # uid 1000
    assert header[116:124] == b"0001751\0"  # gid 1001
    assert header[136:148] == b"00000000000\0"  # mtime
    assert header[257:263] == b"ustar\0"  # POSIX magic
    assert header[265:297] == bytes(32)  # uname
    assert header[297:329] == bytes(32)  # gname


def test_long_and_unicode_names_use_pax_records(workspace: Path, layout: Layout) -> None:
    long_name = "/".join(["segment-" + "x" * 20] * 6) + "/file.txt"
    assert len(long_name) > 100
    unicode_name = "données/日本語/ñ.txt"
    long_link = "target/" + "y" * 120
    entries = [
        file_entry(workspace, long_name, "a", b"long"),
        file_entry(workspace, unicode_name, "b", b"unicode"),
        Entry("l", SYMLINK, 0o777, link=long_link),
        Entry("h", HARDLINK, 0o644, link=long_name),
    ]
    blob = write_layer(entries, workspace, layout, "none", EPOCH)
    data = read_blob(layout, blob)
    by_name = {m.name: m for m in members(data)}
    assert set(by_name) == {long_name, unicode_name, "l", "h"}
    assert by_name["l"].linkname == long_link
    assert by_name["h"].linkname == long_name
    assert f"path={long_name}\n".encode() in data
    assert f"path={unicode_name}\n".encode() in data
    assert f"linkpath={long_link}\n".encode() in data
    assert b"././@LongLink" not in data  # PAX, not GNU extensions
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        assert tar.pax_headers == {}
        handle = tar.extractfile(by_name[unicode_name])
        assert handle is not None and handle.read() == b"unicode"


def test_large_ids_fit_through_pax(workspace: Path, layout: Layout) -> None:
    entries = [Entry("big", DIR, 0o755, 10_000_000, 3_000_000_000)]
    blob = write_layer(entries, workspace, layout, "none", EPOCH)
    (member,) = members(read_blob(layout, blob))
    assert (member.uid, member.gid) == (10_000_000, 3_000_000_000)


def test_layout_of_the_bytes(workspace: Path, layout: Layout) -> None:
    entries = [file_entry(workspace, "f", "f", b"abc"), Entry("d", DIR, 0o755)]
    blob = write_layer(entries, workspace, layout, "none", EPOCH)
    data = read_blob(layout, blob)
    # d header, f header, f content padded to a block, two zero blocks: no record padding
    assert len(data) == 5 * BLOCK
    assert data[2 * BLOCK : 2 * BLOCK + 3] == b"abc"
    assert data[2 * BLOCK + 3 : 3 * BLOCK] == bytes(BLOCK - 3)
    assert data[3 * BLOCK :] == bytes(2 * BLOCK)


def test_empty_layer_is_the_end_of_archive_marker(workspace: Path, layout: Layout) -> None:
    blob = write_layer([], workspace, layout, "none", EPOCH)
    assert read_blob(layout, blob) == bytes(2 * BLOCK)
    assert blob.diff_id == sha256(bytes(2 * BLOCK))


def test_a_file_of_exactly_one_block_needs_no_padding(workspace: Path, layout: Layout) -> None:
    content = bytes(range(256)) * 2
    blob = write_layer([file_entry(workspace, "f", "f", content)], workspace, layout, "none", 0)
    data = read_blob(layout, blob)
    assert len(data) == BLOCK + BLOCK + 2 * BLOCK
    assert data[BLOCK : 2 * BLOCK] == content


# ---------------------------------------------------------------------------- compression


def test_uncompressed_layer(workspace: Path, layout: Layout) -> None:
    blob = write_layer(sample(workspace), workspace, layout, "none", EPOCH)
    assert blob.descriptor.media_type == oci.LAYER_TAR == media_type("none")
    assert blob.diff_id == blob.descriptor.digest


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_every_compression_round_trips(workspace: Path, layout: Layout, compression: str) -> None:
    entries = [
        *sample(workspace),
        file_entry(workspace, "big/random", "src/random", pseudo_random(2_500_000, b"r")),
        file_entry(workspace, "big/text", "src/text", text(1_300_000)),
    ]
    plain = write_layer(entries, workspace, layout, "none", EPOCH)
    packed = write_layer(entries, workspace, layout, compression, EPOCH)
    tar_bytes = read_blob(layout, plain)
    blob_bytes = read_blob(layout, packed)
    assert unpack(compression, blob_bytes) == tar_bytes
    assert packed.diff_id == plain.diff_id == sha256(tar_bytes)
    assert packed.descriptor.digest == sha256(blob_bytes)
    assert packed.descriptor.size == len(blob_bytes)
    assert (packed.descriptor.digest == packed.diff_id) == (compression == "none")


@pytest.mark.parametrize(
    ("compression", "expected"),
    [("none", oci.LAYER_TAR), ("gzip", oci.LAYER_GZIP), ("zstd", oci.LAYER_ZSTD)],
)
def test_media_types(workspace: Path, layout: Layout, compression: str, expected: str) -> None:
    suffix = {"none": "tar", "gzip": "tar+gzip", "zstd": "tar+zstd"}[compression]
    assert COMPRESSIONS == ("none", "gzip", "zstd")
    assert expected == "application/vnd.oci.image.layer.v1." + suffix
    assert media_type(compression) == expected
    assert write_layer([], workspace, layout, compression, EPOCH).descriptor.media_type == expected


@pytest.mark.parametrize("engine", ["isal", "zlib"])
def test_gzip_header_and_trailer_are_fixed(
    workspace: Path, layout: Layout, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    monkeypatch.setattr(compress, "GZIP_ENGINE", engine)
    entries = [file_entry(workspace, "f", "f", text(3_000_000))]
    tar_bytes = read_blob(layout, write_layer(entries, workspace, layout, "none", EPOCH))
    blob = read_blob(layout, write_layer(entries, workspace, layout, "gzip", EPOCH))
    assert blob[0:2] == b"\x1f\x8b"  # magic
    assert blob[2] == 8  # CM: deflate
    assert blob[3] == 0  # FLG: no name, comment, extra field or header CRC
    assert blob[4:8] == bytes(4)  # MTIME 0
    assert blob[8] == 0  # XFL
    assert blob[9] == 255  # OS: unknown, whatever the host
    assert blob[-10:-8] == b"\x03\x00"  # an empty final block with fixed codes
    assert blob[-8:-4] == zlib.crc32(tar_bytes).to_bytes(4, "little")
    assert blob[-4:] == (len(tar_bytes) % 2**32).to_bytes(4, "little")
    assert zlib.decompress(blob, 31) == tar_bytes  # one member, nothing after it
    assert len(blob) < len(tar_bytes) // 2


def test_zstd_frame_header_is_fixed(workspace: Path, layout: Layout) -> None:
    entries = [file_entry(workspace, "f", "f", text(3_000_000))]
    tar_bytes = read_blob(layout, write_layer(entries, workspace, layout, "none", EPOCH))
    blob = read_blob(layout, write_layer(entries, workspace, layout, "zstd", EPOCH))
    assert blob[0:4] == b"\x28\xb5\x2f\xfd"  # magic
    # frame header descriptor: a checksum; no content size, single segment or dictionary id
    assert blob[4] == 0b0000_0100
    assert blob[5] == (21 - 10) << 3  # window descriptor: 2 MiB, the window of zstd level 3
    frame = zstandard.get_frame_parameters(blob)
    assert frame.content_size == zstandard.CONTENTSIZE_UNKNOWN
    assert (frame.window_size, frame.dict_id, frame.has_checksum) == (2 << 20, 0, True)
    assert zstandard.ZstdDecompressor().decompressobj().decompress(blob) == tar_bytes
    with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(blob)) as reader:
        assert reader.read() == tar_bytes
    assert len(blob) < len(tar_bytes) // 2


def test_zstd_blob_is_read_by_another_process(workspace: Path, layout: Layout) -> None:
    entries = [file_entry(workspace, "f", "f", text(3_000_000))]
    packed = write_layer(entries, workspace, layout, "zstd", EPOCH)
    code = (
        "import hashlib, sys, zstandard\n"
        "digest = hashlib.sha256()\n"
        "with open(sys.argv[1], 'rb') as blob:\n"
        "    for chunk in zstandard.ZstdDecompressor().read_to_iter(blob):\n"
        "        digest.update(chunk)\n"
        "print('sha256:' + digest.hexdigest())\n"
    )
    path = layout.blob_path(packed.descriptor.digest)
    done = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True)
    assert (done.returncode, done.stdout.strip()) == (0, packed.diff_id), done.stderr


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_blob_is_read_by_the_command_line_tool(
    workspace: Path, layout: Layout, compression: str
) -> None:
    if shutil.which(compression) is None:
        pytest.skip(f"no {compression} command on this machine")
    entries = [file_entry(workspace, "f", "f", text(3_000_000))]
    packed = write_layer(entries, workspace, layout, compression, EPOCH)
    path = layout.blob_path(packed.descriptor.digest)
    tested = subprocess.run([compression, "-t", path], capture_output=True)
    assert tested.returncode == 0, tested.stderr
    tar_bytes = subprocess.run([compression, "-dc", path], capture_output=True, check=True).stdout
    assert sha256(tar_bytes) == packed.diff_id


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_empty_layer_round_trips(workspace: Path, layout: Layout, compression: str) -> None:
    blob = write_layer([], workspace, layout, compression, EPOCH)
    assert unpack(compression, read_blob(layout, blob)) == bytes(2 * BLOCK)
    assert blob.diff_id == sha256(bytes(2 * BLOCK))


@pytest.mark.parametrize("compression", ["xz", "lz4", "GZIP", "zst", ""])
def test_unknown_compression_is_refused_before_anything_is_written(
    workspace: Path, layout: Layout, compression: str
) -> None:
    before = threading.active_count()
    with pytest.raises(ValueError, match=r"unknown layer compression .*'none', 'gzip', 'zstd'"):
        write_layer(sample(workspace), workspace, layout, compression, EPOCH)
    with pytest.raises(ValueError, match="unknown layer compression"):
        media_type(compression)
    assert leftovers(layout) == []
    assert not layout.tmp_dir.exists()
    assert threading.active_count() == before


def test_layer_blob_json_round_trip(workspace: Path, layout: Layout) -> None:
    blob = write_layer(sample(workspace), workspace, layout, "gzip", EPOCH)
    assert LayerBlob.from_json(blob.to_json()) == blob
    assert blob.to_json()["diff_id"] == blob.diff_id


# ---------------------------------------------------------------------------- same bytes


class Collect:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes | memoryview) -> None:
        self.data += data


def compressed(compression: str, data: bytes, cuts: list[int]) -> bytes:
    """``data`` through ``compression``'s stream, written in pieces of the sizes in ``cuts``."""
    out = Collect()
    stream = compress.compressing(compression, out)
    assert stream is not None
    start = 0
    index = 0
    while start < len(data):
        size = cuts[index % len(cuts)]
        stream.write(memoryview(data)[start : start + size])
        start += size
        index += 1
    stream.close()
    return bytes(out.data)


STREAM_DATA_SIZE = 3 * compress.BLOCK + 12345


@pytest.fixture(scope="module")
def stream_data() -> bytes:
    half = STREAM_DATA_SIZE // 2
    return text(half) + pseudo_random(STREAM_DATA_SIZE - half, b"stream")


@pytest.mark.parametrize(
    ("compression", "engine"), [("gzip", "isal"), ("gzip", "zlib"), ("zstd", "isal")]
)
def test_the_bytes_do_not_depend_on_how_the_tar_is_cut(
    monkeypatch: pytest.MonkeyPatch, stream_data: bytes, compression: str, engine: str
) -> None:
    monkeypatch.setattr(compress, "GZIP_ENGINE", engine)
    whole = compressed(compression, stream_data, [len(stream_data)])
    assert compressed(compression, stream_data, [compress.BLOCK]) == whole
    assert compressed(compression, stream_data, [512, 1 << 20, 512, 7]) == whole
    assert compressed(compression, stream_data, [65536 + 1, 3]) == whole
    assert compressed(compression, stream_data, [4 * compress.BLOCK]) == whole
    assert unpack(compression, whole) == stream_data


@pytest.mark.parametrize(
    ("compression", "engine"), [("gzip", "isal"), ("gzip", "zlib"), ("zstd", "isal")]
)
def test_the_bytes_do_not_depend_on_the_number_of_threads(
    monkeypatch: pytest.MonkeyPatch, stream_data: bytes, compression: str, engine: str
) -> None:
    monkeypatch.setattr(compress, "GZIP_ENGINE", engine)
    results = set()
    for threads in (1, 2, 3, 8):
        monkeypatch.setattr(compress, "workers", lambda threads=threads: threads)
        results.add(compressed(compression, stream_data, [300_000]))
    assert len(results) == 1


def isal_class() -> str:
    """Which of ISA-L's outputs this host gives (see rules/compress.py)."""
    machine = platform.machine().lower()
    if machine in ("aarch64", "arm64"):
        return "aarch64"
    if machine not in ("x86_64", "amd64"):
        return machine
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = next((line.split() for line in cpuinfo if line.startswith("flags")), [])
    except OSError:
        return "x86-64, unknown CPU flags"
    return "x86-64 with SSE4.2" if "sse4_2" in flags else "x86-64 without SSE4.2"


def known_layer(workspace: Path) -> list[Entry]:
    return [
        Entry("data", DIR, 0o755),
        file_entry(workspace, "data/random", "random", pseudo_random(1_600_000, b"known")),
        file_entry(workspace, "data/text", "text", text(2_200_000)),
        Entry("data/link", SYMLINK, 0o777, link="text"),
        file_entry(workspace, "data/zeros", "zeros", bytes(700_000)),
    ]


KNOWN_DIFF_ID = "sha256:3ef5a69a6f309e79265642c9ec03c087b592a1463b06305ae580566f3cd1e936"
KNOWN_ZSTD = "sha256:09e6347599df7c7490b52f3f92cfb888bb70d2cd74bdcda3dbdd4842c3e92435"
KNOWN_GZIP = {  # python-isal 1.9.1 (ISA-L 2.32.1), level 2
    "x86-64 with SSE4.2": "sha256:248687537471e4d4068dbb689cef8b5733c8bea35e5fc5229024d43ac00037dd",
    "x86-64 without SSE4.2": "sha256:"
    "78572383e29b4c7d3ef419cff16cce17be8d3242a68e5149d63e7b89ef574fcd",
    "aarch64": "sha256:96cd711c43ca31677fb02ecb401c3e0f17bdc85bab6a8177c85b35975c4e37a7",
}


def test_zstd_blob_is_a_known_answer(workspace: Path, layout: Layout) -> None:
    # the same bytes on every CPU: x86-64 with or without SSE4.2 or AVX2, and aarch64. A
    # change here means the zstandard pin or the parameters changed every zstd digest.
    blob = write_layer(known_layer(workspace), workspace, layout, "zstd", EPOCH)
    assert (blob.diff_id, blob.descriptor.digest) == (KNOWN_DIFF_ID, KNOWN_ZSTD)


def test_gzip_blob_is_a_known_answer(workspace: Path, layout: Layout) -> None:
    # ISA-L's bytes are one of three, by CPU: a change here means the isal pin or the
    # parameters changed every gzip digest (or that ISA-L found another code path).
    host = isal_class()
    if host not in KNOWN_GZIP:
        pytest.skip(f"no known ISA-L output for {host}")
    blob = write_layer(known_layer(workspace), workspace, layout, "gzip", EPOCH)
    assert (blob.diff_id, blob.descriptor.digest) == (KNOWN_DIFF_ID, KNOWN_GZIP[host])


# ---------------------------------------------------------------------------- changed files


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p.write_bytes(b"hello, world\n"), "changed while"),  # grew
        (lambda p: p.write_bytes(b"hi\n"), "changed while"),  # shrank
        (lambda p: p.write_bytes(b"HELLO\n"), "changed while"),  # same size
        (lambda p: p.unlink(), "cannot read"),
        (lambda p: (p.unlink(), p.mkdir()), "cannot read"),
    ],
    ids=["grew", "shrank", "same-size", "deleted", "now-a-directory"],
)
def test_a_file_changed_after_translate_fails_cleanly(
    workspace: Path, layout: Layout, compression: str, change: object, message: str
) -> None:
    entries = [
        Entry("a", DIR, 0o755),
        file_entry(workspace, "a/first", "src/first", b"first\n"),
        file_entry(workspace, "a/motd", "src/motd", b"hello\n"),
        file_entry(workspace, "a/z", "src/z", b"last\n"),
    ]
    assert callable(change)
    change(workspace / "src/motd")
    before = threading.active_count()
    with pytest.raises(UserError, match=message) as caught:
        write_layer(entries, workspace, layout, compression, EPOCH)
    assert caught.value.where == "/a/motd"
    assert "src/motd" in caught.value.what
    assert caught.value.fix
    assert leftovers(layout) == []
    assert threading.active_count() == before  # no compression thread left behind


def test_a_file_the_digest_cache_knows_is_not_hashed_again(
    workspace: Path, layout: Layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = [file_entry(workspace, "a", "a", b"alpha\n"), file_entry(workspace, "b", "b", b"b")]
    expected = write_layer(entries, workspace, layout, "none", EPOCH)
    cache = DigestCache(tmp_path / "digests.sqlite")
    cache.digest(workspace / "a")  # as translate does; "b" stays unknown
    hashed: list[int] = []
    real_sha256 = hashlib.sha256
    monkeypatch.setattr(
        "doit_oci.rules.layer.hashlib.sha256", lambda: hashed.append(1) or real_sha256()
    )
    # "a" changed just before it was hashed: a change in the same timestamp tick could
    # keep its stat, so the layer hashes it again
    monkeypatch.setattr("doit_oci.rules.digests.RACY_NS", 10**12)
    monkeypatch.setattr("doit_oci.rules.digests.RACY_FINE_NS", 10**12)
    assert write_layer(entries, workspace, layout, "none", EPOCH, cache.known) == expected
    assert len(hashed) == 3  # the blob's own hash, "a" and "b"
    # hashed long enough after its last change, "a" is trusted by its stat
    monkeypatch.setattr("doit_oci.rules.digests.RACY_NS", 0)
    monkeypatch.setattr("doit_oci.rules.digests.RACY_FINE_NS", 0)
    hashed.clear()
    assert write_layer(entries, workspace, layout, "none", EPOCH, cache.known) == expected
    assert len(hashed) == 2  # the blob's own hash, and the content of "b" only
    # the same size and mtime, but replaced (cp -p, touch -r): its ctime differs
    st = os.stat(workspace / "a")
    (workspace / "a").write_bytes(b"ALPHA\n")
    os.utime(workspace / "a", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert cache.known(workspace / "a", os.stat(workspace / "a")) == ""
    cache.close()


def test_a_known_file_changed_while_it_is_read_fails_cleanly(
    workspace: Path, layout: Layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = file_entry(workspace, "a", "a", b"alpha\n")
    cache = DigestCache(tmp_path / "digests.sqlite")
    digest = cache.digest(workspace / "a")
    monkeypatch.setattr("doit_oci.rules.digests.RACY_NS", 0)
    monkeypatch.setattr("doit_oci.rules.digests.RACY_FINE_NS", 0)

    def known_then_changed(path: Path, st: os.stat_result) -> str:
        # the stat matches; then, while the layer reads it, the file changes in place
        found = cache.known(path, st)
        time.sleep(0.01)
        with open(path, "r+b") as handle:
            handle.write(b"ALPHA")
        return found

    assert digest == entry.digest
    with pytest.raises(UserError, match="changed while") as caught:
        write_layer([entry], workspace, layout, "none", EPOCH, known_then_changed)
    assert caught.value.where == "/a"
    assert leftovers(layout) == []
    cache.close()


def test_a_failed_layer_does_not_disturb_existing_blobs(workspace: Path, layout: Layout) -> None:
    good = write_layer([file_entry(workspace, "ok", "ok", b"ok")], workspace, layout, "none", 0)
    bad = file_entry(workspace, "bad", "bad", b"bad")
    (workspace / "bad").write_bytes(b"BAD")
    with pytest.raises(UserError):
        write_layer([bad], workspace, layout, "none", 0)
    blobs = sorted(p.name for p in (layout.root / "blobs" / "sha256").iterdir())
    assert blobs == [good.descriptor.digest.removeprefix("sha256:")]
    assert list(layout.tmp_dir.iterdir()) == []


def test_a_failed_compressed_layer_stops_in_the_middle(workspace: Path, layout: Layout) -> None:
    entries = [
        file_entry(workspace, "a", "a", pseudo_random(3 * compress.BLOCK, b"a")),
        file_entry(workspace, "b", "b", b"bb"),
    ]
    (workspace / "b").write_bytes(b"BB")  # found wrong after 3 MiB went to the threads
    for compression in ("gzip", "zstd"):
        before = threading.active_count()
        with pytest.raises(UserError, match="changed while"):
            write_layer(entries, workspace, layout, compression, EPOCH)
        assert leftovers(layout) == []
        assert threading.active_count() == before


# ---------------------------------------------------------------------------- streaming


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_a_64_mib_file_is_streamed(
    workspace: Path, layout: Layout, monkeypatch: pytest.MonkeyPatch, compression: str
) -> None:
    # gzip holds one block (and its output) per thread: fix the number of threads so that
    # the bound means the same on every machine
    monkeypatch.setattr(compress, "workers", lambda: 2)
    size = 64 << 20
    path = workspace / "big.bin"
    block = hashlib.sha512(b"seed").digest() * 16384  # 1 MiB, not all zeros
    with open(path, "wb") as handle:
        for index in range(size // len(block)):
            handle.write(block[index % 64 :] + block[: index % 64])
    entry = Entry("big.bin", FILE, 0o644, size=size, digest=file_digest(path), source="big.bin")
    tracemalloc.start()
    try:
        blob = write_layer([entry], workspace, layout, compression, EPOCH)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"peak Python memory {peak} bytes while writing a {size} byte layer"
    stored = layout.blob_path(blob.descriptor.digest)
    assert stored.stat().st_size == blob.descriptor.size
    if compression == "none":
        assert blob.descriptor.size == BLOCK + size + 2 * BLOCK
    else:
        assert blob.descriptor.size < size
        diff = hashlib.sha256()
        total = 0
        with open(stored, "rb") as raw, unpacked_stream(compression, raw) as unpacked:
            while chunk := unpacked.read(1 << 20):
                total += len(chunk)
                diff.update(chunk)
        assert total == BLOCK + size + 2 * BLOCK
        assert "sha256:" + diff.hexdigest() == blob.diff_id
    assert os.path.getsize(path) == size


# ---------------------------------------------------------------------------- with translate


def test_entries_from_translate_extract_to_the_same_tree(tmp_path: Path, layout: Layout) -> None:
    ws = tmp_path / "ws"
    ctx = ws / "ctx"
    (ctx / "app" / "bin").mkdir(parents=True)
    (ctx / "app" / "bin" / "tool").write_bytes(b"#!/bin/sh\necho hi\n")
    (ctx / "app" / "bin" / "tool").chmod(0o755)
    os.link(ctx / "app" / "bin" / "tool", ctx / "app" / "bin" / "tool-again")
    os.symlink("bin/tool", ctx / "app" / "run")
    (ctx / "app" / "data.txt").write_text("data")
    step = CopyStep("Dockerfile:1", "COPY", ("app",), "/opt/app", False)
    entries = plan_copy(step, ContextDir(ctx, ws), Tree(), ws, lambda p, st: file_digest(p))
    blob = write_layer(entries, ws, layout, "gzip", EPOCH)
    target = tmp_path / "rootfs"
    with tarfile.open(layout.blob_path(blob.descriptor.digest), "r:gz") as tar:
        kinds = {m.name: m.type for m in tar.getmembers()}
        tar.extractall(target, filter="tar")
    assert kinds["opt/app/bin/tool-again"] == tarfile.LNKTYPE
    assert kinds["opt/app/run"] == tarfile.SYMTYPE
    app = target / "opt" / "app"
    assert (app / "bin" / "tool").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert (app / "bin" / "tool").stat().st_mode & 0o777 == 0o755
    assert os.path.samefile(app / "bin" / "tool", app / "bin" / "tool-again")
    assert os.readlink(app / "run") == "bin/tool"
    assert (app / "data.txt").read_text() == "data"
