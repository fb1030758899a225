"""The archive ``--load`` streams into a runtime: one platform's image of the layout, made
while it is read (``rules.tar.tar_chunks``), never a file of the whole image.

It is both an OCI image layout (``oci-layout``, ``index.json`` naming the image once per
name with ``io.containerd.image.name``, ``blobs/sha256/``: containerd's ``ctr images
import``, Podman, Docker's containerd store) and a ``docker save`` archive
(``manifest.json`` with its ``RepoTags``: Docker's own store). Blobs go as they are
stored, so the manifest is the layout's own (containerd names point at its digest) and
nothing is compressed or decompressed, with one exception: Docker's own store cannot read
zstd layers, so for Docker an image with any is sent whole as ``docker save`` writes it,
every layer decompressed to a temp file first.

Layers the runtime has already can be left out (``leave_out``): Docker, Podman and
containerd take the image from the layers they hold.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from doit_oci.registry import oci
from doit_oci.registry.layout import LAYOUT_VERSION, Layout
from doit_oci.registry.runtimes import Image, full_name
from doit_oci.rules.blobs import (
    SaveError,
    blob_name,
    one_line,
    read_blob,
    read_manifest,
    require,
    scratch,
    uncompressed_layers,
)
from doit_oci.rules.save import IMAGE_NAME, docker_members, docker_tags
from doit_oci.rules.tar import Member


@dataclass(frozen=True)
class Stored:
    """One platform's image in the layout, read and checked."""

    descriptor: oci.Descriptor
    manifest: oci.Manifest
    config_bytes: bytes
    config: oci.ImageConfig

    @property
    def image(self) -> Image:
        return Image(
            self.manifest.config.digest,
            self.descriptor.digest,
            self.config.diff_ids,
            tuple(layer.digest for layer in self.manifest.layers),
        )

    @property
    def platform(self) -> str:
        return f"{self.config.os}/{self.config.architecture}"


@dataclass(frozen=True)
class Archive:
    members: tuple[Member, ...]
    layers: int  # the image's layers
    sent: int  # those in the archive
    size: int  # their bytes


def read_stored(layout: Layout, descriptor: oci.Descriptor) -> Stored:
    manifest = read_manifest(layout, descriptor, "")
    config_bytes = read_blob(layout, manifest.config, "config", f"image {descriptor.digest}")
    try:
        config = oci.ImageConfig.from_json(
            oci.parse_json_document(config_bytes, f"config {manifest.config.digest}")
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise SaveError(f"{one_line(exc)}; rebuild image {descriptor.digest}") from None
    if len(config.diff_ids) != len(manifest.layers):
        raise SaveError(
            f"image {descriptor.digest} has {len(manifest.layers)} layers but its config"
            f" lists {len(config.diff_ids)} diff_ids; rebuild it"
        )
    return Stored(descriptor, manifest, config_bytes, config)


def _json_line(document: object) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def _members(
    layout: Layout, stored: Stored, names: Sequence[str], leave_out: frozenset[str]
) -> Archive:
    config = stored.manifest.config
    members: dict[str, Member] = {
        "blobs/": Member("blobs/"),
        "blobs/sha256/": Member("blobs/sha256/"),
        blob_name(config.digest): Member(blob_name(config.digest), stored.config_bytes),
    }
    manifest_bytes = read_blob(layout, stored.descriptor, "manifest", "")
    members[blob_name(stored.descriptor.digest)] = Member(
        blob_name(stored.descriptor.digest), manifest_bytes
    )
    sent = size = 0
    for layer in stored.manifest.layers:
        name = blob_name(layer.digest)
        if layer.digest in leave_out or name in members:
            continue
        source = require(layout, layer, "layer", f"image {stored.descriptor.digest}")
        members[name] = Member(name, source=source, digest=layer.digest)
        sent += 1
        size += layer.size
    platform = stored.config.platform if stored.config.os else None
    named = tuple(
        oci.Descriptor(
            stored.descriptor.media_type,
            stored.descriptor.digest,
            stored.descriptor.size,
            annotations=((IMAGE_NAME, full_name(name)), (oci.REF_NAME, name.rpartition(":")[2])),
            platform=platform,
        )
        for name in names
    )
    members["index.json"] = Member("index.json", oci.Index(named).to_bytes())
    members["oci-layout"] = Member("oci-layout", LAYOUT_VERSION)
    docker = {
        "Config": blob_name(config.digest),
        "RepoTags": [tag.familiar for tag in docker_tags(names)],
        "Layers": [blob_name(layer.digest) for layer in stored.manifest.layers],
    }
    members["manifest.json"] = Member("manifest.json", _json_line([docker]))
    return Archive(tuple(members.values()), len(stored.manifest.layers), sent, size)


@contextlib.contextmanager
def load_archive(
    layout: Layout,
    stored: Stored,
    names: Sequence[str],
    leave_out: frozenset[str] = frozenset(),
    reads: str = "oci",
) -> Iterator[Archive]:
    """The archive of ``stored`` named ``names``, without the blobs in ``leave_out``, for a
    runtime that ``reads`` "oci" or "docker" (no zstd: then every layer is sent,
    decompressed into temp files that last as long as the block)."""
    zstd = any(layer.media_type == oci.LAYER_ZSTD for layer in stored.manifest.layers)
    if reads != "docker" or not zstd:
        yield _members(layout, stored, names, leave_out)
        return
    with scratch(layout) as folder:
        layers = uncompressed_layers(
            layout, stored.descriptor, stored.manifest, stored.config.diff_ids, folder
        )
        members = docker_members(
            stored.manifest.config, stored.config_bytes, stored.config, layers, docker_tags(names)
        )
        yield Archive(tuple(members), len(layers), len(layers), sum(k.size for k in layers))
