"""Base images from registries: resolved to a manifest for one platform, config read.

Only the manifest (choosing the platform's entry when the reference names an index) and
the config are fetched: the config is what a Dockerfile builds on (ENV, WORKDIR...), the
layers are referenced by digest. They are fetched into the local store only when the
output needs them whole (the OCI layout without a push).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from doit_oci.registry import oci
from doit_oci.registry.errors import RegistryError
from doit_oci.registry.layout import Layout
from doit_oci.registry.reference import Reference

if TYPE_CHECKING:
    from doit_oci.registry.client import RegistryClient


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


def resolve(
    client: RegistryClient, reference: Reference, platform: oci.Platform, layout: Layout
) -> ResolvedBase:
    """The manifest of ``reference`` for ``platform`` and its config, both kept in
    ``layout``. Raises RegistryError, naming the reference, when it has no such platform."""
    repository = reference.path
    data, media_type, top = client.get_manifest(repository, reference.identifier)
    document = oci.parse_json_document(data, f"manifest of {reference}")
    manifest_data, manifest_type, manifest_digest = data, media_type, top
    if media_type in oci.INDEX_TYPES or "manifests" in document:
        index = oci.Index.from_json(document)
        layout.put(oci.INDEX, data)
        chosen = [m for m in index.manifests if _matches(m.platform, platform)]
        if not chosen:
            offered = ", ".join(str(m.platform) for m in index.manifests if m.platform) or "none"
            raise RegistryError(
                client.registry,
                repository,
                f"resolve {reference}",
                f"no manifest for {platform} (it has: {offered})",
                fix=f"build for the platforms it has, or build on an image that has {platform}",
            )
        manifest_data, manifest_type, manifest_digest = client.get_manifest(
            repository, chosen[0].digest
        )
    if manifest_type not in oci.MANIFEST_TYPES:
        raise RegistryError(
            client.registry,
            repository,
            f"resolve {reference}",
            f"unsupported manifest type {manifest_type or 'unknown'}",
            fix="build on an OCI or Docker v2 image",
        )
    manifest = oci.Manifest.from_json(
        oci.parse_json_document(manifest_data, f"manifest of {reference}")
    )
    layout.put(manifest_type, manifest_data)
    if not layout.has_blob(manifest.config.digest):
        fetch_blob(client, repository, manifest.config, layout)
    config = oci.ImageConfig.from_json(
        oci.parse_json_document(layout.read(manifest.config.digest), f"config of {reference}")
    )
    built_for = oci.Platform(config.os, config.architecture, config.variant)
    if not _matches(built_for, platform):
        raise RegistryError(
            client.registry,
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
    client: RegistryClient,
    repository: str,
    descriptor: oci.Descriptor,
    layout: Layout,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Stream a blob into the store, checking its digest; nothing is kept if it differs.
    ``progress`` is told of each chunk received."""
    with layout.writer() as blob, client.get_blob(repository, descriptor.digest) as response:
        for data in response.iter_bytes(1 << 20):
            blob.write(data)
            if progress is not None:
                progress(len(data))
        try:
            blob.commit(expected=descriptor.digest)
        except ValueError as exc:
            raise RegistryError(
                client.registry, repository, f"download blob {descriptor.digest[:19]}", str(exc)
            ) from None
