"""Base images from registries: resolved to a manifest for one platform, config read.

Only the manifest (choosing the platform's entry when the reference names an index) and
the config are fetched: the config is what a Dockerfile builds on (ENV, WORKDIR...), the
layers are referenced by digest. They are fetched into the local store only when the
output needs them whole (the OCI layout without a push). What is asked for by digest and
is in the store already is read there: a pinned base needs no request it has made before.

The reads go through anything with a client's reads (``Reads``): a RegistryClient, a
mirror.Reader (its mirrors first), or one that refuses every request (offline).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from doit_oci.registry import oci
from doit_oci.registry.errors import DigestMismatch, RegistryError
from doit_oci.registry.layout import Layout
from doit_oci.registry.reference import Reference

# an index entry that is no image of a platform: BuildKit's attestations (unknown/unknown)
ATTESTATION = "vnd.docker.reference.type"


class Body(Protocol):
    def iter_bytes(self, chunk_size: int | None = None) -> Iterator[bytes]: ...


class Reads(Protocol):
    """The reads a base needs of a registry."""

    @property
    def registry(self) -> str: ...

    def head_manifest(self, repository: str, reference: str) -> oci.Descriptor | None: ...

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str, str]: ...

    def get_blob(self, repository: str, digest: str) -> contextlib.AbstractContextManager[Body]: ...


@dataclass(frozen=True)
class ResolvedBase:
    reference: str  # as written in the Dockerfile, normalised
    top: str  # digest the reference points at (an index, or the manifest itself)
    manifest: oci.Descriptor  # the platform's manifest
    config: oci.Descriptor
    layers: tuple[oci.Descriptor, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "reference": self.reference,
            "top": self.top,
            "manifest": self.manifest.to_json(),
            "config": self.config.to_json(),
            "layers": [layer.to_json() for layer in self.layers],
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ResolvedBase:
        manifest, config, layers = data["manifest"], data["config"], data["layers"]
        assert isinstance(manifest, dict) and isinstance(config, dict)
        assert isinstance(layers, list)
        return cls(
            reference=str(data["reference"]),
            top=str(data["top"]),
            manifest=oci.Descriptor.from_json(manifest),
            config=oci.Descriptor.from_json(config),
            layers=tuple(oci.Descriptor.from_json(layer) for layer in layers),
        )


def _matches(candidate: oci.Platform | None, wanted: oci.Platform) -> bool:
    if candidate is None:
        return False
    if (candidate.os, candidate.architecture) != (wanted.os, wanted.architecture):
        return False
    # arm64's variant v8 is the default one; an empty wanted variant takes any
    return (
        not wanted.variant
        or candidate.variant in (wanted.variant, "")
        or (wanted.architecture == "arm64" and {candidate.variant, wanted.variant} <= {"", "v8"})
    )


def normal(platform: oci.Platform) -> oci.Platform:
    """``platform`` as containerd normalises it: arm64's default variant v8 dropped."""
    if platform.architecture == "arm64" and platform.variant == "v8":
        return oci.Platform(platform.os, "arm64")
    return platform


def platform_of(entry: oci.Descriptor) -> oci.Platform | None:
    """The (normal) platform an index entry is an image for; None for what is not an image
    of a platform (BuildKit's attestations: ``unknown/unknown``)."""
    platform = entry.platform
    if platform is None or ATTESTATION in dict(entry.annotations):
        return None
    if "unknown" in (platform.os, platform.architecture):
        return None
    return normal(platform)


def document(
    reads: Reads, repository: str, identifier: str, layout: Layout
) -> tuple[bytes, str, str]:
    """A manifest or index (bytes, media type, digest): from the store when asked for by a
    digest it holds, else from the registry (a digest checked); kept in the store."""
    if identifier.startswith("sha256:") and layout.has_blob(identifier):
        data = layout.read(identifier)
        parsed = oci.parse_json_document(data, f"manifest {identifier}")
        kind = parsed.get("mediaType") or (oci.INDEX if "manifests" in parsed else oci.MANIFEST)
        return data, str(kind), identifier
    data, media_type, digest = reads.get_manifest(repository, identifier)
    layout.put(media_type, data)
    return data, media_type, digest


def _is_index(media_type: str, data: dict[str, object]) -> bool:
    return media_type in oci.INDEX_TYPES or "manifests" in data


def manifests(
    reads: Reads, reference: Reference, top: str, layout: Layout
) -> tuple[bool, tuple[tuple[oci.Platform, str], ...]]:
    """What ``top`` (the digest ``reference`` points at) holds: whether it is an index, and
    the manifest digest of each platform (attestations left out; a lone manifest gives
    its config's platform)."""
    data, media_type, _ = document(reads, reference.path, top, layout)
    parsed = oci.parse_json_document(data, f"manifest of {reference}")
    if _is_index(media_type, parsed):
        found: dict[oci.Platform, str] = {}
        for entry in oci.Index.from_json(parsed).manifests:
            platform = platform_of(entry)
            if platform is not None:
                found.setdefault(platform, entry.digest)
        return True, tuple(found.items())
    config = oci.Manifest.from_json(parsed).config
    if not layout.has_blob(config.digest):
        fetch_blob(reads, reference.path, config, layout)
    image = oci.ImageConfig.from_json(
        oci.parse_json_document(layout.read(config.digest), f"config of {reference}")
    )
    return False, ((normal(oci.Platform(image.os, image.architecture, image.variant)), top),)


def resolve(
    reads: Reads, reference: Reference, platform: oci.Platform, layout: Layout, top: str = ""
) -> ResolvedBase:
    """The manifest of ``reference`` for ``platform`` and its config, both kept in
    ``layout``; ``top`` is the digest it is pinned at (a lock's), read instead of its tag.
    Raises RegistryError, naming the reference, when it has no such platform."""
    repository = reference.path
    data, media_type, top = document(reads, repository, top or reference.identifier, layout)
    parsed = oci.parse_json_document(data, f"manifest of {reference}")
    manifest_data, manifest_type, manifest_digest = data, media_type, top
    if _is_index(media_type, parsed):
        index = oci.Index.from_json(parsed)
        chosen = [m for m in index.manifests if _matches(m.platform, platform)]
        if not chosen:
            offered = ", ".join(str(m.platform) for m in index.manifests if m.platform) or "none"
            raise RegistryError(
                reads.registry,
                repository,
                f"resolve {reference}",
                f"no manifest for {platform} (it has: {offered})",
                fix=f"build for the platforms it has, or build on an image that has {platform}",
            )
        manifest_data, manifest_type, manifest_digest = document(
            reads, repository, chosen[0].digest, layout
        )
    if manifest_type not in oci.MANIFEST_TYPES:
        raise RegistryError(
            reads.registry,
            repository,
            f"resolve {reference}",
            f"unsupported manifest type {manifest_type or 'unknown'}",
            fix="build on an OCI or Docker v2 image",
        )
    manifest = oci.Manifest.from_json(
        oci.parse_json_document(manifest_data, f"manifest of {reference}")
    )
    if not layout.has_blob(manifest.config.digest):
        fetch_blob(reads, repository, manifest.config, layout)
    config = oci.ImageConfig.from_json(
        oci.parse_json_document(layout.read(manifest.config.digest), f"config of {reference}")
    )
    built_for = oci.Platform(config.os, config.architecture, config.variant)
    if not _matches(built_for, platform):
        raise RegistryError(
            reads.registry,
            repository,
            f"resolve {reference}",
            f"it is an image for {built_for} only, not {platform}",
            fix=f"build {built_for} only on it, or build on a multi-platform image that has"
            f" {platform}",
        )
    return ResolvedBase(
        reference=str(reference),
        top=top,
        manifest=oci.Descriptor(
            manifest_type, manifest_digest, len(manifest_data), platform=platform
        ),
        config=manifest.config,
        layers=manifest.layers,
    )


def fetch_blob(
    reads: Reads,
    repository: str,
    descriptor: oci.Descriptor,
    layout: Layout,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Stream a blob into the store, checking its digest; nothing is kept if it differs.
    ``progress`` is told of each chunk received."""
    with layout.writer() as blob, reads.get_blob(repository, descriptor.digest) as response:
        for data in response.iter_bytes(1 << 20):
            blob.write(data)
            if progress is not None:
                progress(len(data))
        try:
            blob.commit(expected=descriptor.digest)
        except ValueError as exc:
            raise DigestMismatch(
                reads.registry, repository, f"download blob {descriptor.digest[:19]}", str(exc)
            ) from None
