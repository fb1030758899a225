"""Unit tests for rules.layer: reproducible tar layers streamed into an OCI layout.

Layers are read back with Python's tarfile (and raw header bytes where tarfile hides
details) to check every entry exactly.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import tracemalloc
from pathlib import Path

import pytest

from registry import oci
from registry.layout import Layout
from rules.digests import file_digest
from rules.dockerfile import CopyStep
from rules.errors import UserError
from rules.layer import BLOCK, COMPRESSIONS, LayerBlob, media_type, tar_header, write_layer
from rules.translate import ContextDir, plan_copy
from rules.tree import DIR, FILE, HARDLINK, SYMLINK, Entry, Tree

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


def test_gzip_layer_is_the_same_tar_compressed(workspace: Path, layout: Layout) -> None:
    entries = sample(workspace)
    plain = write_layer(entries, workspace, layout, "none", EPOCH)
    packed = write_layer(entries, workspace, layout, "gzip", EPOCH)
    assert packed.descriptor.media_type == oci.LAYER_GZIP == media_type("gzip")
    tar_bytes = read_blob(layout, plain)
    blob_bytes = read_blob(layout, packed)
    assert blob_bytes[:2] == b"\x1f\x8b"
    assert blob_bytes[4:8] == bytes(4)  # no timestamp in the gzip header
    assert gzip.decompress(blob_bytes) == tar_bytes
    assert packed.diff_id == plain.diff_id == sha256(tar_bytes)
    assert packed.descriptor.digest == sha256(blob_bytes) != packed.diff_id
    assert packed.descriptor.size == len(blob_bytes)


def test_unknown_compression_is_refused_before_anything_is_written(
    workspace: Path, layout: Layout
) -> None:
    with pytest.raises(ValueError, match="zstd"):
        write_layer(sample(workspace), workspace, layout, "zstd", EPOCH)
    assert leftovers(layout) == []


def test_layer_blob_json_round_trip(workspace: Path, layout: Layout) -> None:
    blob = write_layer(sample(workspace), workspace, layout, "gzip", EPOCH)
    assert LayerBlob.from_json(blob.to_json()) == blob
    assert blob.to_json()["diff_id"] == blob.diff_id


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
    with pytest.raises(UserError, match=message) as caught:
        write_layer(entries, workspace, layout, compression, EPOCH)
    assert caught.value.where == "/a/motd"
    assert "src/motd" in caught.value.what
    assert caught.value.fix
    assert leftovers(layout) == []


def test_a_failed_layer_does_not_disturb_existing_blobs(workspace: Path, layout: Layout) -> None:
    good = write_layer([file_entry(workspace, "ok", "ok", b"ok")], workspace, layout, "none", 0)
    bad = file_entry(workspace, "bad", "bad", b"bad")
    (workspace / "bad").write_bytes(b"BAD")
    with pytest.raises(UserError):
        write_layer([bad], workspace, layout, "none", 0)
    blobs = sorted(p.name for p in (layout.root / "blobs" / "sha256").iterdir())
    assert blobs == [good.descriptor.digest.removeprefix("sha256:")]
    assert list(layout.tmp_dir.iterdir()) == []


# ---------------------------------------------------------------------------- streaming


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_a_64_mib_file_is_streamed(workspace: Path, layout: Layout, compression: str) -> None:
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
        with gzip.open(stored, "rb") as unpacked:
            total = 0
            while chunk := unpacked.read(1 << 20):
                total += len(chunk)
        assert total == BLOCK + size + 2 * BLOCK
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
