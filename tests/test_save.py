"""Tests of rules.save: docker archives and OCI archives of images in the layout, read back
with skopeo and umoci.

skopeo 1.9.3 (Debian bookworm) cannot read any gzip-compressed docker archive, not even one
it wrote itself and then gzipped ("loading tar component manifest.json: unexpected EOF"),
so skopeo reads the gunzipped archive, and the tests check that the .tar.gz holds exactly
that tar.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from doit_oci.registry import oci
from doit_oci.registry.layout import LAYOUT_VERSION, Layout
from doit_oci.rules.save import SaveError, alias, write_docker_archive, write_oci_archive
from tests.schemas import validate

ENV = ("PATH=/usr/local/bin:/usr/bin:/bin", "GREETING=hello")
ENTRYPOINT = ("/usr/bin/tool", "--serve")
TAGS = ("pilot:1.0", "gcr.io/istio-release/pilot:1.0")


# -- images built by hand ------------------------------------------------------------------


def make_tar(entries: Sequence[tuple[str, str, bytes | str]]) -> bytes:
    """A layer tar of (kind, path, content or link target) entries, kind dir/file/exe/link."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for kind, name, content in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif kind == "link":
                info.type, info.mode, info.linkname = tarfile.SYMTYPE, 0o777, str(content)
                tar.addfile(info)
            else:
                assert isinstance(content, bytes)
                info.size, info.mode = len(content), 0o755 if kind == "exe" else 0o644
                tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def layer_tars(arch: str) -> tuple[bytes, bytes]:
    first = make_tar(
        [
            ("dir", "etc", b""),
            ("file", "etc/hello", f"hello from {arch}\n".encode()),
            ("link", "etc/greeting", "hello"),
        ]
    )
    second = make_tar(
        [
            ("dir", "usr", b""),
            ("dir", "usr/bin", b""),
            ("exe", "usr/bin/tool", f"#!/bin/sh\necho {arch}\n".encode() * 500),
        ]
    )
    return first, second


def compress(data: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.compress(data, compresslevel=6, mtime=0)
    if compression == "zstd":
        return subprocess.run(
            ["zstd", "--compress", "--stdout", "--quiet"],
            input=data,
            capture_output=True,
            check=True,
        ).stdout
    return data


LAYER_TYPES = {"none": oci.LAYER_TAR, "gzip": oci.LAYER_GZIP, "zstd": oci.LAYER_ZSTD}


@dataclass(frozen=True)
class Image:
    manifest: oci.Descriptor
    config: oci.Descriptor
    config_bytes: bytes
    layers: tuple[oci.Descriptor, ...]  # as stored in the layout
    tars: tuple[bytes, ...]  # the layers uncompressed

    @property
    def diff_ids(self) -> list[str]:
        return [oci.sha256_digest(tar) for tar in self.tars]


def store_image(
    layout: Layout,
    arch: str = "amd64",
    compressions: tuple[str, str] = ("none", "gzip"),
    docker: bool = False,
) -> Image:
    """Two layers, a config and a manifest, put into ``layout`` as a build would."""
    tars = layer_tars(arch)
    layers = []
    for tar, compression in zip(tars, compressions, strict=True):
        media_type = LAYER_TYPES[compression]
        if docker and compression == "gzip":
            media_type = oci.DOCKER_LAYER_GZIP
        layers.append(layout.put(media_type, compress(tar, compression)))
    config_bytes = oci.ImageConfig(
        architecture=arch,
        os="linux",
        created="1970-01-01T00:00:00Z",
        config=oci.ContainerConfig(env=ENV, entrypoint=ENTRYPOINT),
        diff_ids=tuple(oci.sha256_digest(tar) for tar in tars),
        history=(oci.HistoryEntry("1970-01-01T00:00:00Z", "COPY etc /etc"),),
    ).to_bytes()
    config = layout.put(oci.DOCKER_CONFIG if docker else oci.CONFIG, config_bytes)
    manifest = oci.Manifest(
        config, tuple(layers), media_type=oci.DOCKER_MANIFEST if docker else oci.MANIFEST
    )
    descriptor = layout.put(manifest.media_type, manifest.to_bytes())
    return Image(descriptor, config, config_bytes, tuple(layers), tars)


def store_index(layout: Layout) -> tuple[oci.Descriptor, list[Image]]:
    images = [store_image(layout, "amd64"), store_image(layout, "arm64", ("gzip", "none"))]
    index = oci.Index(
        tuple(
            oci.Descriptor(
                image.manifest.media_type,
                image.manifest.digest,
                image.manifest.size,
                platform=oci.Platform("linux", arch),
            )
            for image, arch in zip(images, ("amd64", "arm64"), strict=True)
        )
    )
    return layout.put(oci.INDEX, index.to_bytes()), images


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout(tmp_path / "out" / "oci")


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "out" / "release" / "docker"


# -- helpers -------------------------------------------------------------------------------


def run(*command: str) -> str:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def skopeo_json(*args: str) -> Any:
    return json.loads(run("skopeo", *args))


def gunzip(path: Path) -> Path:
    """The docker archive uncompressed beside it, for skopeo 1.9 (see the module doc)."""
    target = path.with_suffix("")
    with gzip.open(path, "rb") as source, open(target, "wb") as plain:
        shutil.copyfileobj(source, plain)
    return target


def members(path: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return tar.getmembers()


def member_bytes(path: Path, name: str) -> bytes:
    with tarfile.open(path) as tar:
        extracted = tar.extractfile(name)
        assert extracted is not None
        return extracted.read()


def blob_name(digest: str) -> str:
    return "blobs/sha256/" + digest.removeprefix("sha256:")


def files_under(folder: Path) -> list[str]:
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def inner_manifest(image: Image) -> bytes:
    """The OCI manifest a docker archive of ``image`` holds: uncompressed layers."""
    return oci.Manifest(
        oci.Descriptor(oci.CONFIG, image.config.digest, image.config.size),
        tuple(
            oci.Descriptor(oci.LAYER_TAR, oci.sha256_digest(tar), len(tar)) for tar in image.tars
        ),
    ).to_bytes()


def save_docker(layout: Layout, image: Image, path: Path, tags: Sequence[str] = TAGS) -> Path:
    write_docker_archive(layout, image.manifest, tags, path)
    return path


# -- docker archives -----------------------------------------------------------------------


def test_skopeo_reads_the_docker_archive(layout: Layout, out: Path) -> None:
    image = store_image(layout)
    plain = gunzip(save_docker(layout, image, out / "pilot.tar.gz"))
    inspected = skopeo_json("inspect", f"docker-archive:{plain}")
    assert inspected["Layers"] == image.diff_ids
    assert inspected["Env"] == list(ENV)
    assert inspected["Architecture"] == "amd64"
    assert inspected["Os"] == "linux"
    config = skopeo_json("inspect", "--config", f"docker-archive:{plain}")
    assert config["config"] == {"Env": list(ENV), "Entrypoint": list(ENTRYPOINT)}
    assert config["rootfs"] == {"type": "layers", "diff_ids": image.diff_ids}
    raw_config = subprocess.run(
        ["skopeo", "inspect", "--raw", "--config", f"docker-archive:{plain}"],
        capture_output=True,
        check=True,
    ).stdout
    assert raw_config == image.config_bytes
    # skopeo picks an image of a docker archive by its RepoTags
    for tag, name in (
        ("pilot:1.0", "docker.io/library/pilot"),
        ("docker.io/library/pilot:1.0", "docker.io/library/pilot"),
        ("gcr.io/istio-release/pilot:1.0", "gcr.io/istio-release/pilot"),
    ):
        assert skopeo_json("inspect", f"docker-archive:{plain}:{tag}")["Name"] == name
    missing = subprocess.run(
        ["skopeo", "inspect", f"docker-archive:{plain}:pilot:2.0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode != 0
    assert 'Tag \\"docker.io/library/pilot:2.0\\" not found' in missing.stderr


def test_skopeo_copies_our_layer_bytes(layout: Layout, out: Path, tmp_path: Path) -> None:
    image = store_image(layout)
    plain = gunzip(save_docker(layout, image, out / "pilot.tar.gz"))
    copied = tmp_path / "copied"
    run(
        "skopeo",
        "copy",
        "--quiet",
        "--dest-oci-accept-uncompressed-layers",
        f"docker-archive:{plain}",
        f"oci:{copied}:x",
    )
    copied_layout = Layout(copied)
    top = copied_layout.resolve("x")
    assert top is not None
    manifest = oci.Manifest.from_json(json.loads(copied_layout.read(top.digest)))
    assert [layer.digest for layer in manifest.layers] == image.diff_ids
    assert [copied_layout.read(layer.digest) for layer in manifest.layers] == list(image.tars)
    config = json.loads(copied_layout.read(manifest.config.digest))
    assert config["config"] == {"Env": list(ENV), "Entrypoint": list(ENTRYPOINT)}


def test_umoci_unpacks_the_oci_layout_inside_the_docker_archive(
    layout: Layout, out: Path, tmp_path: Path
) -> None:
    image = store_image(layout)
    archive = save_docker(layout, image, out / "pilot.tar.gz", ["pilot:1.0"])
    extracted = tmp_path / "extracted"
    with tarfile.open(archive) as tar:
        tar.extractall(extracted, filter="data")
    command = ["umoci", "unpack", "--image", f"{extracted}:1.0", str(tmp_path / "bundle")]
    if os.geteuid() != 0:
        command.insert(2, "--rootless")
    run(*command)
    rootfs = tmp_path / "bundle" / "rootfs"
    assert (rootfs / "etc" / "hello").read_bytes() == b"hello from amd64\n"
    assert os.readlink(rootfs / "etc" / "greeting") == "hello"
    assert (rootfs / "usr" / "bin" / "tool").read_bytes() == b"#!/bin/sh\necho amd64\n" * 500
    assert (rootfs / "usr" / "bin" / "tool").stat().st_mode & 0o777 == 0o755


def test_docker_archive_layout(layout: Layout, out: Path) -> None:
    image = store_image(layout)
    archive = save_docker(layout, image, out / "pilot.tar.gz")
    manifest = inner_manifest(image)
    manifest_digest = oci.sha256_digest(manifest)
    first, second = image.diff_ids
    expected_names = sorted(
        [
            blob_name(image.config.digest),
            blob_name(first),
            blob_name(second),
            blob_name(manifest_digest),
        ]
    )
    infos = members(archive)
    assert [info.name for info in infos] == [
        "blobs",
        "blobs/sha256",
        *expected_names,
        "index.json",
        "manifest.json",
        "oci-layout",
        "repositories",
    ]
    for info in infos:
        assert (info.mtime, info.uid, info.gid, info.uname, info.gname) == (0, 0, 0, "", "")
        assert (info.type, info.mode) in ((tarfile.DIRTYPE, 0o755), (tarfile.REGTYPE, 0o644))

    assert json.loads(member_bytes(archive, "manifest.json")) == [
        {
            "Config": blob_name(image.config.digest),
            "RepoTags": ["pilot:1.0", "gcr.io/istio-release/pilot:1.0"],
            "Layers": [blob_name(first), blob_name(second)],
        }
    ]
    assert json.loads(member_bytes(archive, "repositories")) == {
        "gcr.io/istio-release/pilot": {"1.0": second.removeprefix("sha256:")},
        "pilot": {"1.0": second.removeprefix("sha256:")},
    }
    assert member_bytes(archive, "oci-layout") == LAYOUT_VERSION
    assert member_bytes(archive, blob_name(image.config.digest)) == image.config_bytes
    assert member_bytes(archive, blob_name(first)) == image.tars[0]
    assert member_bytes(archive, blob_name(second)) == image.tars[1]
    assert member_bytes(archive, blob_name(manifest_digest)) == manifest
    validate("manifest", manifest)
    index = member_bytes(archive, "index.json")
    validate("index", index)
    assert json.loads(index) == {
        "schemaVersion": 2,
        "mediaType": oci.INDEX,
        "manifests": [
            {
                "mediaType": oci.MANIFEST,
                "digest": manifest_digest,
                "size": len(manifest),
                "annotations": {
                    "io.containerd.image.name": name,
                    "org.opencontainers.image.ref.name": "1.0",
                },
                "platform": {"architecture": "amd64", "os": "linux"},
            }
            for name in ("docker.io/library/pilot:1.0", "gcr.io/istio-release/pilot:1.0")
        ],
    }


def test_docker_archive_is_gzip_fast_without_name_or_time(layout: Layout, out: Path) -> None:
    image = store_image(layout)
    archive = save_docker(layout, image, out / "pilot.tar.gz")
    data = archive.read_bytes()
    # magic, deflate, no flags (so no file name), mtime 0, XFL 4 (fastest), OS unknown
    assert data[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\xff"
    run("gzip", "--test", str(archive))
    plain = gunzip(archive).read_bytes()
    assert len(plain) % tarfile.RECORDSIZE == 0
    assert plain.endswith(b"\0" * 1024)
    best = out / "best.tar.gz"
    write_docker_archive(layout, image.manifest, TAGS, best, gzip_level=9)
    assert best.read_bytes()[8] == 2  # XFL 2: best compression
    assert gzip.decompress(best.read_bytes()) == plain
    assert (archive.stat().st_mode & 0o777, best.stat().st_mode & 0o777) == (0o644, 0o644)


def test_two_writes_are_byte_identical(layout: Layout, out: Path) -> None:
    image = store_image(layout)
    first = save_docker(layout, image, out / "a.tar.gz")
    second = save_docker(layout, image, out / "b.tar.gz")
    assert first.read_bytes() == second.read_bytes()
    save_docker(layout, image, first)  # an existing archive is replaced as it is
    assert first.read_bytes() == second.read_bytes()
    assert files_under(out) == ["a.tar.gz", "b.tar.gz"]


@pytest.mark.parametrize(
    ("compressions", "docker"),
    [(("gzip", "gzip"), False), (("gzip", "none"), False), (("gzip", "gzip"), True)],
    ids=["oci-gzip", "mixed", "docker-gzip"],
)
def test_compressed_layers_are_saved_decompressed(
    tmp_path: Path, out: Path, compressions: tuple[str, str], docker: bool
) -> None:
    plain_layout = Layout(tmp_path / "plain" / "oci")
    plain_image = store_image(plain_layout, compressions=("none", "none"))
    reference = save_docker(plain_layout, plain_image, out / "plain.tar.gz")
    layout = Layout(tmp_path / "compressed" / "oci")
    image = store_image(layout, compressions=compressions, docker=docker)
    assert [layer.digest for layer in image.layers] != image.diff_ids
    archive = save_docker(layout, image, out / "compressed.tar.gz")
    assert member_bytes(archive, blob_name(image.diff_ids[0])) == image.tars[0]
    assert member_bytes(archive, blob_name(image.diff_ids[1])) == image.tars[1]
    # the docker archive depends on the image, not on how the layout stores its layers
    assert archive.read_bytes() == reference.read_bytes()
    assert files_under(layout.tmp_dir) == []


@pytest.mark.skipif(shutil.which("zstd") is None, reason="the zstd command is not installed")
def test_a_zstd_layer_is_saved_decompressed(layout: Layout, out: Path) -> None:
    image = store_image(layout, compressions=("zstd", "gzip"))
    assert image.layers[0].media_type == oci.LAYER_ZSTD
    archive = save_docker(layout, image, out / "pilot.tar.gz")
    assert member_bytes(archive, blob_name(image.diff_ids[0])) == image.tars[0]
    inspected = skopeo_json("inspect", f"docker-archive:{gunzip(archive)}")
    assert inspected["Layers"] == image.diff_ids


def test_an_image_without_tags(layout: Layout, out: Path) -> None:
    image = store_image(layout)
    archive = save_docker(layout, image, out / "anonymous.tar.gz", [])
    names = [info.name for info in members(archive)]
    assert "repositories" not in names
    manifest = json.loads(member_bytes(archive, "manifest.json"))
    assert manifest[0]["RepoTags"] == []
    index = json.loads(member_bytes(archive, "index.json"))
    assert index["manifests"] == [
        {
            "mediaType": oci.MANIFEST,
            "digest": oci.sha256_digest(inner_manifest(image)),
            "size": len(inner_manifest(image)),
        }
    ]
    inspected = skopeo_json("inspect", f"docker-archive:{gunzip(archive)}")
    assert inspected["Layers"] == image.diff_ids


def test_repeated_tags_are_written_once(layout: Layout, out: Path) -> None:
    image = store_image(layout)
    archive = save_docker(
        layout, image, out / "pilot.tar.gz", ["pilot:1.0", "docker.io/library/pilot:1.0"]
    )
    manifest = json.loads(member_bytes(archive, "manifest.json"))
    assert manifest[0]["RepoTags"] == ["pilot:1.0"]


# -- failures ------------------------------------------------------------------------------


def test_a_missing_layer_fails_and_leaves_nothing(layout: Layout, out: Path) -> None:
    image = store_image(layout)
    layout.blob_path(image.layers[1].digest).unlink()
    target = out / "pilot.tar.gz"
    with pytest.raises(SaveError) as caught:
        write_docker_archive(layout, image.manifest, TAGS, target)
    assert str(caught.value) == (
        f"layer {image.layers[1].digest} of image {image.manifest.digest} is not in the OCI"
        f" layout {layout.root}; build the image (and fetch its base layers) into it first"
    )
    assert files_under(out) == []
    assert files_under(layout.tmp_dir) == []
    with pytest.raises(SaveError) as caught:
        write_oci_archive(layout, image.manifest, "pilot:1.0", out / "pilot.tar")
    assert str(caught.value) == (
        f"layer {image.layers[1].digest} of image {image.manifest.digest} is not in the OCI"
        f" layout {layout.root}; build the image (and fetch its base layers) into it first"
    )
    assert files_under(out) == []


def test_a_missing_manifest_of_an_index_fails(layout: Layout, out: Path) -> None:
    index, images = store_index(layout)
    layout.blob_path(images[1].manifest.digest).unlink()
    with pytest.raises(SaveError) as caught:
        write_oci_archive(layout, index, "pilot:1.0", out / "pilot.tar")
    assert str(caught.value) == (
        f"manifest {images[1].manifest.digest} of index {index.digest} is not in the OCI"
        f" layout {layout.root}; build the image (and fetch its base layers) into it first"
    )
    assert files_under(out) == []


def test_a_corrupt_blob_fails_while_streaming_and_leaves_nothing(layout: Layout, out: Path) -> None:
    image = store_image(layout)
    blob = layout.blob_path(image.layers[0].digest)  # the uncompressed layer
    data = bytearray(blob.read_bytes())
    data[600] ^= 0xFF
    blob.write_bytes(bytes(data))
    message = (
        f"blob {image.layers[0].digest} ({blob}) does not match its digest; delete it and rebuild"
    )
    with pytest.raises(SaveError) as caught:
        write_docker_archive(layout, image.manifest, TAGS, out / "pilot.tar.gz")
    assert str(caught.value) == message
    with pytest.raises(SaveError) as caught:
        write_oci_archive(layout, image.manifest, "pilot:1.0", out / "pilot.tar")
    assert str(caught.value) == message
    assert files_under(out) == []
    assert files_under(layout.tmp_dir) == []


def test_a_layer_that_is_not_its_diff_id_fails(layout: Layout, out: Path) -> None:
    image = store_image(layout, compressions=("none", "gzip"))
    other = layout.put(oci.LAYER_GZIP, gzip.compress(make_tar([("dir", "tmp", b"")]), mtime=0))
    manifest = oci.Manifest(image.config, (image.layers[0], other))
    descriptor = layout.put(oci.MANIFEST, manifest.to_bytes())
    with pytest.raises(SaveError) as caught:
        write_docker_archive(layout, descriptor, TAGS, out / "pilot.tar.gz")
    actual = oci.sha256_digest(make_tar([("dir", "tmp", b"")]))
    assert str(caught.value) == (
        f"layer {other.digest} of image {descriptor.digest} decompresses to {actual}, not the"
        f" diff_id {image.diff_ids[1]} its config lists; rebuild the image"
    )
    assert files_under(out) == []
    assert files_under(layout.tmp_dir) == []


def test_a_docker_archive_holds_one_platform(layout: Layout, out: Path) -> None:
    index, _ = store_index(layout)
    with pytest.raises(SaveError) as caught:
        write_docker_archive(layout, index, TAGS, out / "pilot.tar.gz")
    assert str(caught.value) == (
        f"{index.digest} is a multi-platform index; a docker archive holds one platform's"
        " image: save the manifest of one platform of it"
    )


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        (["pilot"], "invalid repo tag 'pilot': write it as name:tag, without a digest"),
        (
            ["pilot:1.0@sha256:" + "a" * 64],
            f"invalid repo tag 'pilot:1.0@sha256:{'a' * 64}': write it as name:tag,"
            " without a digest",
        ),
        (["Pilot:1.0"], "invalid repo tag: invalid repository name 'Pilot' in 'Pilot'"),
    ],
)
def test_bad_repo_tags(layout: Layout, out: Path, tags: list[str], message: str) -> None:
    image = store_image(layout)
    with pytest.raises(SaveError) as caught:
        write_docker_archive(layout, image.manifest, tags, out / "pilot.tar.gz")
    assert str(caught.value).startswith(message)
    assert files_under(out) == []


def test_bad_gzip_level(layout: Layout, out: Path) -> None:
    image = store_image(layout)
    with pytest.raises(SaveError) as caught:
        write_docker_archive(layout, image.manifest, TAGS, out / "pilot.tar.gz", gzip_level=10)
    assert str(caught.value) == "gzip level 10 is out of range; use 0 (none) to 9 (best)"


@pytest.mark.parametrize("ref_name", ["", "pilot latest", ":1.0", "pilot/"])
def test_bad_ref_names(layout: Layout, out: Path, ref_name: str) -> None:
    image = store_image(layout)
    with pytest.raises(SaveError) as caught:
        write_oci_archive(layout, image.manifest, ref_name, out / "pilot.tar")
    assert str(caught.value) == (
        f"invalid OCI ref name {ref_name!r}: use letters and digits joined by one of"
        " '-._:@+' or '--', in '/'-separated parts, such as 'pilot:1.0'"
    )
    assert files_under(out) == []


# -- OCI archives --------------------------------------------------------------------------


def test_oci_archive_of_a_multi_platform_index(layout: Layout, out: Path, tmp_path: Path) -> None:
    index, images = store_index(layout)
    archive = out / "pilot.tar"
    write_oci_archive(layout, index, "pilot:1.0", archive)

    blobs = {index.digest}
    for image in images:
        blobs |= {image.manifest.digest, image.config.digest}
        blobs |= {layer.digest for layer in image.layers}
    infos = members(archive)
    assert [info.name for info in infos] == [
        "blobs",
        "blobs/sha256",
        *sorted(blob_name(digest) for digest in blobs),
        "index.json",
        "oci-layout",
    ]
    for info in infos:
        assert (info.mtime, info.uid, info.gid, info.uname, info.gname) == (0, 0, 0, "", "")
    for digest in blobs:
        assert member_bytes(archive, blob_name(digest)) == layout.read(digest)
    top = member_bytes(archive, "index.json")
    validate("index", top)
    assert json.loads(top) == {
        "schemaVersion": 2,
        "mediaType": oci.INDEX,
        "manifests": [
            {
                "mediaType": oci.INDEX,
                "digest": index.digest,
                "size": index.size,
                "annotations": {"org.opencontainers.image.ref.name": "pilot:1.0"},
            }
        ],
    }
    assert member_bytes(archive, "oci-layout") == LAYOUT_VERSION

    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", f"oci-archive:{archive}:pilot:1.0"],
        capture_output=True,
        check=True,
    ).stdout
    assert raw == layout.read(index.digest)
    unnamed = subprocess.run(
        ["skopeo", "inspect", "--raw", f"oci-archive:{archive}"], capture_output=True, check=True
    ).stdout
    assert unnamed == raw
    for arch, image in zip(("amd64", "arm64"), images, strict=True):
        inspected = skopeo_json(
            "inspect", "--override-arch", arch, f"oci-archive:{archive}:pilot:1.0"
        )
        assert inspected["Digest"] == index.digest
        assert inspected["Architecture"] == arch
        assert inspected["Layers"] == [layer.digest for layer in image.layers]

    copied = tmp_path / "copied"
    run(
        "skopeo",
        "copy",
        "--quiet",
        "--all",
        "--preserve-digests",
        f"oci-archive:{archive}:pilot:1.0",
        f"oci:{copied}:x",
    )
    copied_layout = Layout(copied)
    descriptor = copied_layout.resolve("x")
    assert descriptor is not None
    assert descriptor.digest == index.digest
    for digest in blobs:
        assert copied_layout.read(digest) == layout.read(digest)


def test_oci_archive_of_one_manifest(layout: Layout, out: Path) -> None:
    image = store_image(layout)
    archive = out / "pilot.tar"
    write_oci_archive(layout, image.manifest, "pilot", archive)
    inspected = skopeo_json("inspect", f"oci-archive:{archive}")
    assert inspected["Digest"] == image.manifest.digest
    assert inspected["Layers"] == [layer.digest for layer in image.layers]
    assert inspected["Env"] == list(ENV)
    assert skopeo_json("inspect", f"oci-archive:{archive}:pilot")["Digest"] == image.manifest.digest
    assert json.loads(member_bytes(archive, "index.json"))["manifests"] == [
        image.manifest.annotated(**{oci.REF_NAME: "pilot"}).to_json()
    ]


def test_oci_archives_are_reproducible(layout: Layout, out: Path) -> None:
    index, _ = store_index(layout)
    write_oci_archive(layout, index, "pilot:1.0", out / "a.tar")
    write_oci_archive(layout, index, "pilot:1.0", out / "b.tar")
    assert (out / "a.tar").read_bytes() == (out / "b.tar").read_bytes()
    assert len((out / "a.tar").read_bytes()) % tarfile.RECORDSIZE == 0
    assert files_under(out) == ["a.tar", "b.tar"]


# -- aliases -------------------------------------------------------------------------------


def test_alias_is_a_hard_link(layout: Layout, out: Path) -> None:
    image = store_image(layout)
    archive = save_docker(layout, image, out / "pilot-debug.tar.gz")
    (out / "pilot.tar.gz").write_bytes(b"an older archive")
    alias(archive, out / "pilot.tar.gz")
    assert (out / "pilot.tar.gz").samefile(archive)
    assert archive.stat().st_nlink == 2
    alias(archive, out / "pilot.tar.gz")  # already the same file: nothing to do
    assert files_under(out) == ["pilot-debug.tar.gz", "pilot.tar.gz"]
    # rewriting the archive replaces it, so the alias keeps its bytes until aliased again
    before = archive.read_bytes()
    save_docker(layout, image, archive, ["pilot:2.0"])
    assert (out / "pilot.tar.gz").read_bytes() == before
    assert not (out / "pilot.tar.gz").samefile(archive)


def test_alias_copies_when_it_cannot_link(
    layout: Layout, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = store_image(layout)
    archive = save_docker(layout, image, out / "pilot-debug.tar.gz")

    def no_link(source: object, target: object) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    alias(archive, out / "elsewhere" / "pilot.tar.gz")
    copy = out / "elsewhere" / "pilot.tar.gz"
    assert copy.read_bytes() == archive.read_bytes()
    assert not copy.samefile(archive)
    assert copy.stat().st_mode & 0o777 == 0o644
    assert files_under(out / "elsewhere") == ["pilot.tar.gz"]


def test_alias_of_a_missing_archive(out: Path) -> None:
    with pytest.raises(SaveError) as caught:
        alias(out / "pilot-debug.tar.gz", out / "pilot.tar.gz")
    assert str(caught.value) == (
        f"cannot alias {out / 'pilot-debug.tar.gz'} as {out / 'pilot.tar.gz'}:"
        f" {out / 'pilot-debug.tar.gz'} does not exist"
    )
    assert files_under(out) == []
