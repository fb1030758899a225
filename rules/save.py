"""``--save``: images from the OCI layout as archives a daemon or an OCI tool loads.

- ``write_docker_archive``: one platform's image as ``docker save`` writes it, gzip-compressed
  as Istio's builder leaves it (``gzip --fast``), for ``docker load`` and ``skopeo``'s
  ``docker-archive:`` transport. Its layers are uncompressed tars named by their diff_id.
- ``write_oci_archive``: a manifest, or a whole multi-platform index, as a tar of an OCI
  image layout (``skopeo``'s ``oci-archive:`` transport), blobs kept as they are stored.
- ``alias``: the same archive under a second name, as Istio's double-default variant has.

Archives are reproducible: entries sorted, mtime 0, owner 0 without names, JSON written
canonically, the gzip header without name or time and a fixed level. They are streamed:
no blob is held whole in memory, and a compressed layer is decompressed once, to a temp
file under the layout's temp folder, because a tar entry needs its size up front. Each
archive is written to a temp file beside it and renamed into place, so a failure leaves
nothing behind. Every blob is checked against its digest on the way.
"""

from __future__ import annotations

import contextlib
import gzip
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from doit_oci.registry import oci
from doit_oci.registry.files import atomic_file, link_or_copy
from doit_oci.registry.layout import LAYOUT_VERSION, Layout
from doit_oci.registry.reference import DEFAULT_REGISTRY, ReferenceError, parse
from doit_oci.rules.blobs import (
    Layer,
    SaveError,
    blob_name,
    collect,
    one_line,
    read_blob,
    read_manifest,
    require,
    scratch,
    uncompressed_layers,
)
from doit_oci.rules.tar import Member, TarError, write_tar

GZIP_LEVEL = 1  # gzip --fast, as Istio's builder compresses its saved images

IMAGE_NAME = "io.containerd.image.name"  # the full name annotation docker save writes


@dataclass(frozen=True)
class Tag:
    familiar: str  # as docker writes it in RepoTags: "pilot:1.0", "gcr.io/istio/pilot:1.0"
    full: str  # "docker.io/library/pilot:1.0"
    repository: str  # familiar name without the tag
    tag: str


@contextlib.contextmanager
def atomic(path: Path) -> Iterator[IO[bytes]]:
    """A temp file beside ``path``, renamed to it when the block ends without an error."""
    try:
        with atomic_file(path) as out:
            yield out
    except TarError as exc:
        raise SaveError(str(exc)) from None
    except OSError as exc:
        raise SaveError(f"cannot write {path}: {one_line(exc)}") from None


# -- public API ----------------------------------------------------------------------------


def write_docker_archive(
    layout: Layout,
    manifest: oci.Descriptor,
    repo_tags: Sequence[str],
    path: Path,
    gzip_level: int = GZIP_LEVEL,
) -> None:
    """Write the image of ``manifest`` as a gzip-compressed ``docker save`` archive at ``path``.

    The archive is the layout Docker 25 and later write: an OCI image layout (``oci-layout``,
    ``index.json``, ``blobs/sha256/``) holding the config, each layer as an uncompressed tar
    named by its diff_id and an OCI manifest of those, plus docker's ``manifest.json`` and
    the legacy ``repositories``: ``docker load`` reads ``manifest.json`` (or, with the
    containerd store, ``index.json`` and its ``io.containerd.image.name`` annotations), and so
    does ``skopeo``'s ``docker-archive:``. ``repo_tags`` (``name:tag``) are the names the
    image is loaded as.
    """
    if not 0 <= gzip_level <= 9:
        raise SaveError(f"gzip level {gzip_level} is out of range; use 0 (none) to 9 (best)")
    tags = docker_tags(repo_tags)
    image = read_manifest(layout, manifest, "")
    config_bytes = read_blob(layout, image.config, "config", f"image {manifest.digest}")
    try:
        config = oci.ImageConfig.from_json(
            oci.parse_json_document(config_bytes, f"config {image.config.digest}")
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise SaveError(f"{one_line(exc)}; rebuild image {manifest.digest}") from None
    if len(config.diff_ids) != len(image.layers):
        raise SaveError(
            f"image {manifest.digest} has {len(image.layers)} layers but its config lists"
            f" {len(config.diff_ids)} diff_ids; rebuild it"
        )
    for descriptor in image.layers:
        require(layout, descriptor, "layer", f"image {manifest.digest}")
    with scratch(layout) as folder:
        layers = uncompressed_layers(layout, manifest, image, config.diff_ids, folder)
        members = docker_members(image.config, config_bytes, config, layers, tags)
        with atomic(path) as out:
            gz = gzip.GzipFile(
                filename="", mode="wb", compresslevel=gzip_level, fileobj=out, mtime=0
            )
            with gz:
                write_tar(gz, members)


def write_oci_archive(
    layout: Layout, descriptor: oci.Descriptor, ref_name: str, path: Path
) -> None:
    """Write ``descriptor`` (a manifest, or an index with every platform's image) as a tar of
    an OCI image layout at ``path``, named ``ref_name`` in its ``index.json``."""
    if not oci.is_ref_name(ref_name):
        raise SaveError(
            f"invalid OCI ref name {ref_name!r}: use letters and digits joined by one of"
            " '-._:@+' or '--', in '/'-separated parts, such as 'pilot:1.0'"
        )
    blobs = collect(layout, descriptor)
    index = oci.Index((descriptor.annotated(**{oci.REF_NAME: ref_name}),))
    members = [
        Member("blobs/"),
        Member("blobs/sha256/"),
        *(
            Member(blob_name(digest), source=layout.blob_path(digest), digest=digest)
            for digest in blobs
        ),
        Member("index.json", index.to_bytes()),
        Member("oci-layout", LAYOUT_VERSION),
    ]
    with atomic(path) as out:
        write_tar(out, members)


def alias(path: Path, alias_path: Path) -> None:
    """Make ``alias_path`` hold what ``path`` holds: a hard link when possible, else a copy.

    Archives are only ever replaced by a rename, never rewritten in place, so a linked
    alias keeps the bytes it was made with. An existing ``alias_path`` is replaced.
    """
    if not path.is_file():
        raise SaveError(f"cannot alias {path} as {alias_path}: {path} does not exist")
    with contextlib.suppress(FileNotFoundError):
        if alias_path.samefile(path):
            return
    try:
        link_or_copy(path, alias_path)
    except OSError as exc:
        raise SaveError(f"cannot alias {path} as {alias_path}: {one_line(exc)}") from None


# -- the docker archive --------------------------------------------------------------------


def docker_tags(repo_tags: Sequence[str]) -> list[Tag]:
    tags: dict[str, Tag] = {}
    for text in repo_tags:
        try:
            reference = parse(text)
        except ReferenceError as exc:
            raise SaveError(f"invalid repo tag: {one_line(exc)}") from None
        if reference.digest or not reference.tag:
            raise SaveError(f"invalid repo tag {text!r}: write it as name:tag, without a digest")
        repository = reference.repository
        if reference.registry == DEFAULT_REGISTRY:
            repository = reference.path.removeprefix("library/")
        tag = Tag(f"{repository}:{reference.tag}", str(reference), repository, reference.tag)
        tags.setdefault(tag.familiar, tag)
    return list(tags.values())


def _json_line(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def docker_members(
    config_descriptor: oci.Descriptor,
    config_bytes: bytes,
    config: oci.ImageConfig,
    layers: Sequence[Layer],
    tags: Sequence[Tag],
) -> list[Member]:
    config_name = blob_name(config_descriptor.digest)
    members: dict[str, Member] = {
        "blobs/": Member("blobs/"),
        "blobs/sha256/": Member("blobs/sha256/"),
        config_name: Member(config_name, config_bytes),
    }
    for layer in layers:
        name = blob_name(layer.diff_id)
        members[name] = Member(name, source=layer.source, digest=layer.digest)
    manifest = oci.Manifest(
        oci.Descriptor(oci.CONFIG, config_descriptor.digest, len(config_bytes)),
        tuple(oci.Descriptor(oci.LAYER_TAR, layer.diff_id, layer.size) for layer in layers),
    ).to_bytes()
    manifest_descriptor = oci.describe(oci.MANIFEST, manifest)
    manifest_name = blob_name(manifest_descriptor.digest)
    members[manifest_name] = Member(manifest_name, manifest)

    platform = config.platform if config.os and config.architecture else None
    named = [
        oci.Descriptor(
            oci.MANIFEST,
            manifest_descriptor.digest,
            manifest_descriptor.size,
            annotations=((IMAGE_NAME, tag.full), (oci.REF_NAME, tag.tag)),
            platform=platform,
        )
        for tag in tags
    ]
    if not named:
        named = [oci.Descriptor(oci.MANIFEST, manifest_descriptor.digest, len(manifest))]
    members["index.json"] = Member("index.json", oci.Index(tuple(named)).to_bytes())
    docker_manifest = [
        {
            "Config": config_name,
            "RepoTags": [tag.familiar for tag in tags],
            "Layers": [blob_name(layer.diff_id) for layer in layers],
        }
    ]
    members["manifest.json"] = Member("manifest.json", _json_line(docker_manifest))
    members["oci-layout"] = Member("oci-layout", LAYOUT_VERSION)
    if tags and layers:
        top = layers[-1].diff_id.partition(":")[2]
        repositories: dict[str, dict[str, str]] = {}
        for tag in tags:
            repositories.setdefault(tag.repository, {})[tag.tag] = top
        members["repositories"] = Member("repositories", _json_line(_sorted_mapping(repositories)))
    return list(members.values())


def _sorted_mapping(mapping: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    return {key: dict(sorted(mapping[key].items())) for key in sorted(mapping)}
