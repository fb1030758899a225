"""Signatures stored as cosign stores them: for a manifest ``sha256:<hex>``, the manifest
tagged ``sha256-<hex>.sig`` in the same repository, one layer per signature (the signed
simple-signing payload, its signature in the ``dev.cosignproject.cosign/signature``
annotation, base64). A signature is added to what is there, as cosign adds it; none is
ever dropped.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from doit_oci.registry import oci
from doit_oci.registry.referrers import current, fallback_tag, push_blobs

if TYPE_CHECKING:
    from doit_oci.registry.client import RegistryClient

PAYLOAD = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE = "dev.cosignproject.cosign/signature"
PAYLOAD_TYPE = "cosign container image signature"
NO_TIME = "0001-01-01T00:00:00Z"  # go-containerregistry's zero time, as cosign writes it


def signature_tag(digest: str) -> str:
    return fallback_tag(digest) + ".sig"


def payload(repository: str, digest: str) -> bytes:
    """The simple-signing payload cosign signs for ``repository@digest`` (the
    repository with its registry, no tag)."""
    document = {
        "critical": {
            "identity": {"docker-reference": repository},
            "image": {"docker-manifest-digest": digest},
            "type": PAYLOAD_TYPE,
        },
        "optional": None,
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def signature_manifest(layers: list[dict[str, Any]]) -> tuple[bytes, bytes]:
    """The config and the manifest of a signature image holding ``layers``."""
    config = {
        "architecture": "",
        "config": {},
        "created": NO_TIME,
        "history": [{"created": NO_TIME} for _ in layers],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]},
    }
    config_bytes = oci.canonical_json(config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": oci.MANIFEST,
        "config": oci.describe(oci.CONFIG, config_bytes).to_json(),
        "layers": layers,
    }
    return config_bytes, oci.canonical_json(manifest)


def add_signature(
    client: RegistryClient, repository: str, subject: str, signed: bytes, signature: str
) -> tuple[str, str]:
    """Store ``signature`` (base64) of the payload ``signed`` for ``subject`` in
    ``repository``, beside the signatures already there: the signature tag and the digest
    of the manifest it names."""
    tag = signature_tag(subject)
    found = current(client, repository, tag)
    layers: list[dict[str, Any]] = list(found[0].get("layers", [])) if found else []
    layer = oci.describe(PAYLOAD, signed).annotated(**{SIGNATURE: signature}).to_json()
    if found is not None and layer in layers:
        return tag, found[1]
    config, manifest = signature_manifest([*layers, layer])
    push_blobs(client, repository, [signed, config], check=False)  # new for a new signature
    return tag, client.put_manifest(repository, tag, manifest, oci.MANIFEST)
