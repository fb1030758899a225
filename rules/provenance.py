"""SLSA provenance of an image: an in-toto Statement v1 whose predicate is SLSA
Provenance v1. Pure and deterministic (no clock: the same build gives the same bytes).

The subjects are the image's manifest digests (the index's too, for several platforms),
named by each repository they were pushed to. ``buildDefinition`` names doit-oci's build
type, the plan, targets, platforms, tags, hubs, build args and annotations asked for as
external parameters; the base images (by digest), the git commit and every Dockerfile
(by digest) as resolved dependencies. ``runDetails`` names the builder and its version.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

IN_TOTO = "application/vnd.in-toto+json"
STATEMENT = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://doit-oci.invalid/build-types/image/v1"
BUILDER = "https://doit-oci.invalid/builder"


@dataclass(frozen=True)
class Dependency:
    """A resolved dependency: what it is (a URI) and its digest (algorithm, hex)."""

    uri: str
    digest: tuple[tuple[str, str], ...]
    name: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"uri": self.uri, "digest": dict(self.digest)}
        if self.name:
            out["name"] = self.name
        return out


def digest_map(digest: str) -> tuple[tuple[str, str], ...]:
    """``sha256:<hex>`` -> (("sha256", "<hex>"),), as in-toto's DigestSet has it."""
    algorithm, _, hex_part = digest.partition(":")
    return ((algorithm, hex_part),)


def statement(
    subjects: Sequence[tuple[str, str]],
    parameters: Mapping[str, Any],
    dependencies: Sequence[Dependency],
    version: str,
) -> bytes:
    """The statement's bytes (canonical JSON) for ``subjects`` (name, digest)."""
    document = {
        "_type": STATEMENT,
        "subject": [
            {"name": name, "digest": dict(digest_map(digest))} for name, digest in subjects
        ],
        "predicateType": SLSA_PROVENANCE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": dict(parameters),
                "resolvedDependencies": [d.to_json() for d in dependencies],
            },
            "runDetails": {
                "builder": {"id": BUILDER, "version": {"doit-oci": version}},
                "metadata": {},
            },
        },
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
