"""Tests of registry.layout (the OCI image layout store) and registry.files (atomic writes)."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from doit_oci.registry import oci
from doit_oci.registry.files import (
    TempFile,
    atomic_file,
    link_or_copy,
    remove_unless_locked,
    temp_folder,
    write_atomic,
    write_if_changed,
)
from doit_oci.registry.layout import LAYOUT_VERSION, BlobWriter, Damage, GcResult, Layout
from tests.schemas import validate

HELLO_SHA = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"  # b"hello"
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout(tmp_path / "out" / "oci")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _temp_files(layout: Layout) -> list[str]:
    return sorted(p.name for p in layout.tmp_dir.iterdir()) if layout.tmp_dir.exists() else []


def _blob_files(layout: Layout) -> list[str]:
    folder = layout.root / "blobs" / "sha256"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _manifest(digest: str, size: int = 100) -> oci.Descriptor:
    return oci.Descriptor(oci.MANIFEST, digest, size)


# -- init ----------------------------------------------------------------------------------


def test_init_writes_a_valid_empty_layout(layout: Layout) -> None:
    layout.init()
    assert layout.tmp_dir == layout.root.parent / "tmp"
    marker = (layout.root / "oci-layout").read_bytes()
    assert marker == LAYOUT_VERSION == b'{"imageLayoutVersion":"1.0.0"}'
    validate("layout", marker)
    index = layout.index_path.read_bytes()
    assert index == oci.Index(()).to_bytes()
    validate("index", index)
    assert (layout.root / "blobs" / "sha256").is_dir()
    assert _mode(layout.index_path) == 0o644
    assert _mode(layout.root / "oci-layout") == 0o644
    assert _temp_files(layout) == []


def test_init_keeps_an_existing_index(layout: Layout) -> None:
    layout.init()
    layout.set_refs({"a:1": _manifest(D1)})
    before = layout.index_path.read_bytes()
    layout.init()
    assert layout.index_path.read_bytes() == before


def test_custom_tmp_dir(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "oci", tmp_path / "scratch")
    layout.put(oci.LAYER_TAR, b"hello")
    assert layout.tmp_dir == tmp_path / "scratch"
    assert list((tmp_path / "scratch").iterdir()) == []


# -- put, has_blob, read -------------------------------------------------------------------


def test_put_has_blob_read(layout: Layout) -> None:
    assert not layout.has_blob(HELLO_SHA)
    descriptor = layout.put(oci.LAYER_TAR, b"hello")
    assert descriptor == oci.Descriptor(oci.LAYER_TAR, HELLO_SHA, 5)
    assert layout.has_blob(HELLO_SHA)
    assert layout.read(HELLO_SHA) == b"hello"
    path = layout.blob_path(HELLO_SHA)
    assert path == layout.root / "blobs" / "sha256" / HELLO_SHA.removeprefix("sha256:")
    assert _mode(path) == 0o644
    assert (layout.root / "oci-layout").is_file()  # put initialises the layout
    assert _temp_files(layout) == []


def test_put_twice_does_not_rewrite(layout: Layout) -> None:
    layout.put(oci.CONFIG, b"{}")
    path = layout.blob_path(oci.sha256_digest(b"{}"))
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    assert layout.put(oci.CONFIG, b"{}") == oci.describe(oci.CONFIG, b"{}")
    assert path.stat().st_mtime_ns == 1_000_000_000


def test_read_missing_blob(layout: Layout) -> None:
    with pytest.raises(FileNotFoundError):
        layout.read(D1)


@pytest.mark.parametrize(
    "digest",
    ["", "sha256:abc", "sha512:" + "1" * 64, "1" * 64, "sha256:../../" + "1" * 58],
)
def test_blob_path_rejects_non_digests(layout: Layout, digest: str) -> None:
    with pytest.raises(ValueError) as caught:
        layout.blob_path(digest)
    assert str(caught.value) == f"not a sha256 digest: {digest!r}"
    with pytest.raises(ValueError):
        layout.has_blob(digest)


# -- BlobWriter ----------------------------------------------------------------------------


def test_blob_writer_commit(layout: Layout) -> None:
    with layout.writer() as blob:
        assert blob.write(b"hel") == 3
        assert blob.write(memoryview(b"lo")) == 2
        assert _temp_files(layout) != []  # streamed into a temp file
        digest = blob.commit()
    assert digest == blob.digest == HELLO_SHA
    assert blob.size == 5
    assert layout.read(HELLO_SHA) == b"hello"
    assert _mode(layout.blob_path(HELLO_SHA)) == 0o644
    assert _temp_files(layout) == []


def test_blob_writer_commit_with_the_expected_digest(layout: Layout) -> None:
    with layout.writer() as blob:
        blob.write(b"hello")
        assert blob.commit(HELLO_SHA) == HELLO_SHA
    assert layout.has_blob(HELLO_SHA)


def test_blob_writer_commit_with_a_wrong_digest(layout: Layout) -> None:
    with pytest.raises(ValueError) as caught, layout.writer() as blob:
        blob.write(b"hello")
        blob.commit(D1)
    assert str(caught.value) == f"blob digest {HELLO_SHA} is not the expected {D1}"
    assert blob.digest == ""
    assert _blob_files(layout) == []
    assert _temp_files(layout) == []


def test_blob_writer_without_commit_aborts(layout: Layout) -> None:
    with layout.writer() as blob:
        blob.write(b"partial")
    assert blob.digest == ""
    assert _blob_files(layout) == []
    assert _temp_files(layout) == []


def test_blob_writer_exception_leaves_nothing(layout: Layout) -> None:
    with pytest.raises(RuntimeError, match="boom"), layout.writer() as blob:
        blob.write(b"partial")
        raise RuntimeError("boom")
    assert _blob_files(layout) == []
    assert _temp_files(layout) == []


def test_blob_writer_explicit_abort(layout: Layout) -> None:
    blob = layout.writer()
    blob.write(b"x")
    blob.abort()
    blob.abort()  # twice is harmless
    assert _temp_files(layout) == []


def test_blob_writer_into_an_uninitialised_layout(layout: Layout) -> None:
    # without Layout.writer()'s init: commit makes the blob folder itself
    blob = BlobWriter(layout)
    blob.write(b"hello")
    assert blob.commit() == HELLO_SHA
    assert layout.read(HELLO_SHA) == b"hello"
    assert _temp_files(layout) == []


def test_blob_writer_failed_rename_leaves_no_temp_file(
    layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    blob = layout.writer()
    blob.write(b"hello")

    def failing_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        blob.commit()
    assert blob.digest == ""
    assert _temp_files(layout) == []
    assert _blob_files(layout) == []


def test_blob_writer_same_blob_twice(layout: Layout) -> None:
    for _ in range(2):
        with layout.writer() as blob:
            blob.write(b"hello")
            blob.commit()
    assert _blob_files(layout) == [HELLO_SHA.removeprefix("sha256:")]
    assert _temp_files(layout) == []


# -- index.json: set_refs, read_index, resolve ---------------------------------------------


def _names(layout: Layout) -> dict[str, str]:
    return {d.ref_name: d.digest for d in layout.read_index().manifests}


def test_read_index_of_a_missing_layout(layout: Layout) -> None:
    assert layout.read_index() == oci.Index(())
    assert layout.resolve("a:1") is None


def test_set_refs_adds_and_writes_a_valid_index(layout: Layout) -> None:
    assert layout.set_refs({"b:1": _manifest(D2), "a:1": _manifest(D1)}) is True
    data = layout.index_path.read_bytes()
    validate("index", data)
    document = json.loads(data)
    assert [m["annotations"][oci.REF_NAME] for m in document["manifests"]] == ["a:1", "b:1"]
    assert document["manifests"][0] == {
        "mediaType": oci.MANIFEST,
        "digest": D1,
        "size": 100,
        "annotations": {oci.REF_NAME: "a:1"},
    }
    validate("layout", (layout.root / "oci-layout").read_bytes())


def test_set_refs_replaces_a_name_and_keeps_the_others(layout: Layout) -> None:
    layout.set_refs({"a:1": _manifest(D1), "b:1": _manifest(D1)})
    assert layout.set_refs({"a:1": _manifest(D2, 7)}) is True
    assert _names(layout) == {"a:1": D2, "b:1": D1}
    resolved = layout.resolve("a:1")
    assert resolved == _manifest(D2, 7).annotated(**{oci.REF_NAME: "a:1"})


def test_set_refs_drop(layout: Layout) -> None:
    layout.set_refs({"a:1": _manifest(D1), "b:1": _manifest(D2)})
    assert layout.set_refs({}, drop=["b:1", "never:there"]) is True
    assert _names(layout) == {"a:1": D1}
    assert layout.resolve("b:1") is None


def test_set_refs_unchanged_does_not_rewrite(layout: Layout) -> None:
    layout.set_refs({"a:1": _manifest(D1), "b:1": _manifest(D2)})
    os.utime(layout.index_path, ns=(1_000_000_000, 1_000_000_000))
    before = layout.index_path.read_bytes()
    assert layout.set_refs({"a:1": _manifest(D1)}) is False
    assert layout.set_refs({"b:1": _manifest(D2), "a:1": _manifest(D1)}) is False
    assert layout.set_refs({}, drop=["c:1"]) is False
    assert layout.index_path.stat().st_mtime_ns == 1_000_000_000
    assert layout.index_path.read_bytes() == before
    assert _temp_files(layout) == []


def test_set_refs_keeps_unnamed_manifests_and_annotations(layout: Layout) -> None:
    layout.init()
    unnamed = _manifest(D2, 5)
    layout.index_path.write_bytes(oci.Index((unnamed,), annotations=(("note", "kept"),)).to_bytes())
    assert layout.set_refs({"a:1": _manifest(D1)}) is True
    index = layout.read_index()
    assert index.annotations == (("note", "kept"),)
    assert index.manifests == (unnamed, _manifest(D1).annotated(**{oci.REF_NAME: "a:1"}))
    validate("index", layout.index_path.read_bytes())


def test_set_refs_with_nothing_on_a_missing_index_creates_it(layout: Layout) -> None:
    assert layout.set_refs({}) is True
    assert layout.index_path.read_bytes() == oci.Index(()).to_bytes()
    assert layout.set_refs({}) is False


def test_set_refs_keeps_other_annotations_of_the_descriptor(layout: Layout) -> None:
    descriptor = _manifest(D1).annotated(**{"org.opencontainers.image.title": "x"})
    layout.set_refs({"a:1": descriptor})
    assert layout.resolve("a:1") == descriptor.annotated(**{oci.REF_NAME: "a:1"})


def test_a_corrupt_index_is_reported(layout: Layout) -> None:
    layout.init()
    layout.index_path.write_bytes(b"[]")
    with pytest.raises(ValueError) as caught:
        layout.read_index()
    assert str(caught.value) == f"{layout.index_path} is not a JSON object"


# -- registry.files ------------------------------------------------------------------------


def test_write_atomic(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "file.json"
    write_atomic(path, b"data")
    assert path.read_bytes() == b"data"
    assert _mode(path) == 0o644
    assert sorted(p.name for p in path.parent.iterdir()) == ["file.json"]


def test_write_atomic_replaces(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_bytes(b"old")
    write_atomic(path, b"new", tmp_dir=tmp_path / "tmp")
    assert path.read_bytes() == b"new"
    assert list((tmp_path / "tmp").iterdir()) == []


def test_write_atomic_error_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "file"
    path.write_bytes(b"old")

    def failing_replace(src: str, dst: str) -> None:
        raise OSError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="Permission denied"):
        write_atomic(path, b"new")
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_write_atomic_bad_data_leaves_no_temp_file(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        write_atomic(tmp_path / "file", "not bytes")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_write_if_changed(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "record.json"
    assert write_if_changed(path, b"one") is True
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    assert write_if_changed(path, b"one") is False
    assert path.stat().st_mtime_ns == 1_000_000_000
    assert write_if_changed(path, b"two") is True
    assert path.read_bytes() == b"two"
    assert path.stat().st_mtime_ns != 1_000_000_000
    assert sorted(p.name for p in path.parent.iterdir()) == ["record.json"]


def _locked_by_someone(path: Path) -> bool:
    """Whether another open file holds ``path``'s flock (we try it, without waiting)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_atomic_file_renames_into_place_and_holds_its_lock_until_then(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "file.bin"
    path.parent.mkdir()
    path.write_bytes(b"old")
    with atomic_file(path, tmp_dir=tmp_path / "tmp") as out:
        out.write(b"\x00new")
        (temp,) = (tmp_path / "tmp").iterdir()
        assert _locked_by_someone(temp)
        assert path.read_bytes() == b"old"  # a reader sees the old bytes until the rename
    assert path.read_bytes() == b"\x00new"
    assert _mode(path) == 0o644
    assert list((tmp_path / "tmp").iterdir()) == []
    assert not _locked_by_someone(path)


def test_atomic_file_removes_its_temp_file_when_the_block_fails(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"), atomic_file(path) as out:
        out.write(b"half")
        raise RuntimeError("boom")
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_link_or_copy_links_and_replaces(tmp_path: Path) -> None:
    source, target = tmp_path / "a", tmp_path / "sub" / "b"
    source.write_bytes(b"bytes")
    target.parent.mkdir()
    target.write_bytes(b"older")
    link_or_copy(source, target)
    assert target.samefile(source)
    assert sorted(p.name for p in target.parent.iterdir()) == ["b"]


def test_link_or_copy_copies_when_it_cannot_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, target = tmp_path / "a", tmp_path / "b"
    source.write_bytes(b"bytes")
    source.chmod(0o600)

    def no_link(src: object, dst: object) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    link_or_copy(source, target)
    assert target.read_bytes() == b"bytes" and not target.samefile(source)
    assert _mode(target) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


def test_temp_folder_is_locked_then_removed(tmp_path: Path) -> None:
    with temp_folder(tmp_path / "tmp", "save-") as folder:
        (folder / "inside").write_bytes(b"x")
        assert folder.parent == tmp_path / "tmp" and folder.name.startswith("save-")
        assert _locked_by_someone(folder)
        assert remove_unless_locked(folder) is False
        assert (folder / "inside").read_bytes() == b"x"
    assert list((tmp_path / "tmp").iterdir()) == []


def test_remove_unless_locked(tmp_path: Path) -> None:
    dead = tmp_path / "dead.tmp"
    dead.write_bytes(b"a killed run's")
    dead_folder = tmp_path / "save-dead"
    (dead_folder / "sub").mkdir(parents=True)
    (dead_folder / "sub" / "layer").write_bytes(b"x")
    live = TempFile(tmp_path)
    live.file.write(b"being written")
    assert remove_unless_locked(live.path) is False
    assert remove_unless_locked(dead) is True
    assert remove_unless_locked(dead_folder) is True
    assert remove_unless_locked(tmp_path / "gone") is False
    assert list(tmp_path.iterdir()) == [live.path]
    live.keep(tmp_path / "kept")
    assert (tmp_path / "kept").read_bytes() == b"being written"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]


# -- housekeeping: reachable, gc, verify, drop_refs ------------------------------------------


def _image(layout: Layout, name: str, *layers: bytes) -> oci.Descriptor:
    """An image of real blobs (config, layers, manifest), named ``name`` unless empty."""
    config = layout.put(oci.CONFIG, json.dumps({"name": name, "rootfs": {}}).encode())
    stored = tuple(layout.put(oci.LAYER_TAR, data) for data in layers)
    manifest = layout.put(oci.MANIFEST, oci.Manifest(config, stored).to_bytes())
    if name:
        layout.set_refs({name: manifest})
    return manifest


def _index(layout: Layout, name: str, *manifests: oci.Descriptor) -> oci.Descriptor:
    index = layout.put(oci.INDEX, oci.Index(manifests).to_bytes())
    layout.set_refs({name: index})
    return index


def _blobs_of(layout: Layout, manifest: oci.Descriptor) -> set[str]:
    parsed = oci.Manifest.from_json(json.loads(layout.read(manifest.digest)))
    return {manifest.digest, parsed.config.digest, *(d.digest for d in parsed.layers)}


def test_reachable_walks_indexes_and_manifests_and_keeps_missing_blobs(layout: Layout) -> None:
    amd = _image(layout, "", b"amd64 layer", b"shared")
    arm = _image(layout, "", b"arm64 layer", b"shared")
    index = _index(layout, "app:1", amd, arm)
    loose = _image(layout, "", b"loose layer")
    junk = layout.put("application/octet-stream", b"not a document {")
    _image(layout, "", b"unreached")
    layout.blob_path(arm.digest).unlink()  # its config and layers are unknown now
    expected = {index.digest, *_blobs_of(layout, amd), arm.digest}
    assert layout.reachable() == expected
    assert layout.reachable([loose.digest, junk.digest, D1]) == (
        expected | _blobs_of(layout, loose) | {junk.digest, D1}
    )


def test_gc_keeps_every_names_and_roots_blobs_and_leaves_index_json_alone(
    layout: Layout,
) -> None:
    app = _image(layout, "app:1", b"app layer", b"shared")
    other = _image(layout, "other:2", b"other layer", b"shared")
    root = _image(layout, "", b"a build's own image")
    unnamed = _image(layout, "", b"dropped")
    stray = layout.put(oci.LAYER_TAR, b"a stray layer")
    index_bytes = layout.index_path.read_bytes()
    keep = _blobs_of(layout, app) | _blobs_of(layout, other) | _blobs_of(layout, root)
    gone = _blobs_of(layout, unnamed) - keep | {stray.digest}
    sizes = sum(layout.blob_path(d).stat().st_size for d in gone)

    result = layout.gc([root.digest])

    assert result == GcResult(removed=len(gone), removed_bytes=sizes, kept=len(keep))
    assert {f"sha256:{name}" for name in _blob_files(layout)} == keep
    assert layout.index_path.read_bytes() == index_bytes
    assert layout.gc([root.digest]) == GcResult(0, 0, len(keep))


def test_gc_removes_a_dead_writers_temp_file_but_not_a_live_ones(layout: Layout) -> None:
    layout.init()
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, signal, sys\n"
            "from pathlib import Path\n"
            "from doit_oci.registry.layout import Layout\n"
            "blob = Layout(Path(sys.argv[1])).writer()\n"
            "blob.write(bytes(1 << 16))\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n",
            str(layout.root),
        ],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL
    (dead,) = _temp_files(layout)
    assert (layout.tmp_dir / dead).stat().st_size == 1 << 16  # half a layer, unlocked
    (layout.tmp_dir / "save-killed" / "x").mkdir(parents=True)
    with layout.writer() as live:
        live.write(b"hello")
        (mine,) = set(_temp_files(layout)) - {dead, "save-killed"}
        result = layout.gc()
        assert result.leftovers == 2
        assert _temp_files(layout) == [mine]
        live.write(b" world")
        digest = live.commit()
    assert layout.read(digest) == b"hello world"
    assert _temp_files(layout) == []


def test_verify_removes_a_damaged_blob_and_names_what_is_missing(layout: Layout) -> None:
    app = _image(layout, "app:1", b"app layer", b"shared layer")
    also = _image(layout, "also:1", b"also layer", b"shared layer")
    gone = _image(layout, "gone:1", b"gone layer")
    root = _image(layout, "", b"root layer")
    shared = oci.Manifest.from_json(json.loads(layout.read(app.digest))).layers[1]
    flipped = bytearray(layout.read(shared.digest))
    flipped[0] ^= 0x01
    layout.blob_path(shared.digest).write_bytes(bytes(flipped))
    layout.blob_path(gone.digest).unlink()
    root_config = oci.Manifest.from_json(json.loads(layout.read(root.digest))).config
    layout.blob_path(root_config.digest).unlink()
    remote = oci.Manifest.from_json(json.loads(layout.read(also.digest))).layers[0]
    layout.blob_path(remote.digest).unlink()

    damage = layout.verify([root.digest], elsewhere={remote.digest})

    assert damage == sorted(
        [
            Damage(shared.digest, "damaged", ("also:1", "app:1")),
            Damage(gone.digest, "missing", ("gone:1",)),
            Damage(root_config.digest, "missing", ("",)),
        ],
        key=lambda d: (d.problem, d.digest),
    )
    assert not layout.has_blob(shared.digest)
    assert damage[0].line(layout.root) == (
        f"blob {shared.digest} held other bytes: removed (needed by also:1, app:1)"
    )
    missing = next(d for d in damage if d.digest == gone.digest)
    assert missing.line(layout.root) == (
        f"blob {gone.digest} is missing from {layout.root} (needed by gone:1)"
    )
    # the damaged blob is gone now: the next verify finds it missing, once, for both names
    assert Damage(shared.digest, "missing", ("also:1", "app:1")) in layout.verify()


def test_drop_refs_forgets_names_and_keeps_the_others(layout: Layout) -> None:
    app = _image(layout, "app:1", b"app")
    _image(layout, "old:1", b"old")
    _image(layout, "old:2", b"old two")
    assert layout.drop_refs(["old:2", "old:1", "never:1"]) == ["old:1", "old:2"]
    assert [m.ref_name for m in layout.read_index().manifests] == ["app:1"]
    assert layout.resolve("app:1") == app.annotated(**{oci.REF_NAME: "app:1"})
    before = layout.index_path.read_bytes()
    assert layout.drop_refs(["old:1"]) == []
    assert layout.index_path.read_bytes() == before
