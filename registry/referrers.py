"""OCI 1.1 referrers: an artifact (an SBOM, a provenance statement...) attached to the
manifest it is about, its ``subject``, as ``oras attach`` makes them: the empty config, the
document as its one layer, an ``artifactType``.

Where the registry keeps referrers (it answers the PUT of a manifest with a subject with
the ``OCI-Subject`` header), that is all. Where it does not (distribution 2.8, Debian's
docker-registry), the distribution spec's tag schema is the fallback: an index tagged
``sha256-<hex of the subject>`` lists the subject's referrers; we add to it and never drop
an entry, whichever tool put it there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from doit_oci.registry import oci

if TYPE_CHECKING:
    from doit_oci.registry.client import RegistryClient

EMPTY_CONFIG = b"{}"
SUBJECT_HEADER = "oci-subject"


@dataclass(frozen=True)
class Artifact:
    """A document about ``subject``, pushed beside it."""

    artifact_type: str
    document: bytes
    subject: oci.Descriptor
    annotations: tuple[tuple[str, str], ...] = ()
    title: str = ""  # the layer's org.opencontainers.image.title (a file name)

    @property
    def layer(self) -> oci.Descriptor:
        described = oci.describe(self.artifact_type, self.document)
        if self.title:
            described = described.annotated(**{"org.opencontainers.image.title": self.title})
        return described

    def manifest(self) -> oci.Manifest:
        return oci.Manifest(
            config=oci.describe(oci.EMPTY, EMPTY_CONFIG),
            layers=(self.layer,),
            annotations=self.annotations,
            artifact_type=self.artifact_type,
            subject=oci.Descriptor(self.subject.media_type, self.subject.digest, self.subject.size),
        )

    @property
    def manifest_bytes(self) -> bytes:
        return self.manifest().to_bytes()

    @property
    def descriptor(self) -> oci.Descriptor:
        """As a referrers index lists it."""
        described = oci.describe(oci.MANIFEST, self.manifest_bytes)
        return oci.Descriptor(
            described.media_type,
            described.digest,
            described.size,
            annotations=self.annotations,
            artifact_type=self.artifact_type,
        )


def fallback_tag(digest: str) -> str:
    """``sha256-<hex>``: the tag of a subject's referrers where there is no referrers API."""
    algorithm, _, hex_part = digest.partition(":")
    return f"{algorithm}-{hex_part}"


def push_blobs(
    client: RegistryClient, repository: str, blobs: Sequence[bytes], check: bool = True
) -> None:
    """Small blobs held in memory, each sent unless the repository has it (without
    ``check``, sent without asking: what is new every time, where asking costs a request)."""
    from doit_oci.registry.upload import BlobSource

    for data in blobs:
        source = BlobSource.from_bytes(data)
        if not check or not client.blob_exists(repository, source.digest):
            client.upload_blob(repository, source)


def put_artifact(client: RegistryClient, repository: str, artifact: Artifact) -> bool:
    """Push ``artifact``'s blobs and manifest to ``repository``: whether the registry lists
    it among its subject's referrers by itself (else ``add_referrers`` must)."""
    push_blobs(client, repository, [EMPTY_CONFIG])
    push_blobs(client, repository, [artifact.document], check=False)  # new with its subject
    data = artifact.manifest_bytes
    digest, headers = client.put_manifest_answer(
        repository, oci.sha256_digest(data), data, oci.MANIFEST
    )
    assert digest == artifact.descriptor.digest
    return bool(headers.get(SUBJECT_HEADER) == artifact.subject.digest)


def attach(client: RegistryClient, repository: str, artifact: Artifact) -> oci.Descriptor:
    """Push ``artifact`` to ``repository`` and make it a referrer of its subject: the
    descriptor of its manifest."""
    if not put_artifact(client, repository, artifact):
        add_referrers(client, repository, artifact.subject.digest, [artifact.descriptor])
    return artifact.descriptor


def current(client: RegistryClient, repository: str, tag: str) -> tuple[dict[str, Any], str] | None:
    """The JSON of the manifest (or index) ``tag`` names, and its digest; None if none."""
    from doit_oci.registry.client import find_manifest

    found = find_manifest(client, repository, tag)
    if found is None:
        return None
    data, _, digest = found
    return oci.parse_json_document(data, f"{repository}:{tag}"), digest


def add_referrers(
    client: RegistryClient, repository: str, subject: str, descriptors: Sequence[oci.Descriptor]
) -> bool:
    """List ``descriptors`` in the tag schema's index of ``subject``'s referrers (one read,
    one write), keeping every entry (and field) it holds; True when the index was written."""
    tag = fallback_tag(subject)
    found = current(client, repository, tag)
    index: dict[str, Any] = found[0] if found else {"schemaVersion": 2, "mediaType": oci.INDEX}
    manifests: list[dict[str, Any]] = index.setdefault("manifests", [])
    listed = {entry.get("digest") for entry in manifests}
    new = [d for d in descriptors if d.digest not in listed]
    if not new:
        return False
    manifests.extend(d.to_json() for d in new)
    data = oci.canonical_json(index)
    client.put_manifest(repository, tag, data, str(index.get("mediaType") or oci.INDEX))
    return True


def referrers(client: RegistryClient, repository: str, subject: str) -> list[oci.Descriptor]:
    """The referrers the tag schema's index lists for ``subject`` (none without one)."""
    found = current(client, repository, fallback_tag(subject))
    entries = found[0].get("manifests", []) if found else []
    return [oci.Descriptor.from_json(entry) for entry in entries]
