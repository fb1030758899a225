"""The records of what left out/oci: images loaded into a runtime, indexes joined by
push_index, and what was attached to the images pushed (rules.steps.records has the rest
and says how records are written and read)::

    out/build/load/<label>.json                            LoadRecord    (load)
    out/build/push/<label>.index.json                      JoinRecord    (push_index)
    out/build/attach/<label>.json                          AttachRecord  (attach)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

from doit_oci.registry import oci
from doit_oci.rules.steps.records import Record


@dataclass(frozen=True)
class LoadRecord(Record):
    """load/<label>.json: the image loaded (manifest and config digests), where, under
    which names, and the bytes of layers its last load sent (0: it was there, or retagged)."""

    manifest: str
    config: str
    runtimes: tuple[str, ...]
    names: tuple[str, ...]
    sent_bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "manifest": self.manifest,
            "config": self.config,
            "runtimes": list(self.runtimes),
            "names": list(self.names),
            "sent_bytes": self.sent_bytes,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            str(data["manifest"]),
            str(data["config"]),
            tuple(str(r) for r in data["runtimes"]),
            tuple(str(n) for n in data["names"]),
            int(data.get("sent_bytes", 0)),
        )


@dataclass(frozen=True)
class Attached:
    """One thing attached to a pushed image: an SBOM, a provenance statement or a
    signature, what it is about (``subject``), and where it is (a reference, a digest)."""

    kind: str  # "sbom", "provenance" or "signature"
    subject: str  # the digest of the manifest or index it is about
    reference: str  # <hub>/<name>@<digest>, or <hub>/<name>:sha256-<hex>.sig
    digest: str  # of its manifest
    platform: str = ""  # an SBOM's platform

    def to_json(self) -> dict[str, Any]:
        out = {"kind": self.kind, "subject": self.subject, "reference": self.reference}
        out |= {"digest": self.digest}
        if self.platform:
            out["platform"] = self.platform
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Attached:
        return cls(
            str(data["kind"]),
            str(data["subject"]),
            str(data["reference"]),
            str(data["digest"]),
            str(data.get("platform", "")),
        )


@dataclass(frozen=True)
class AttachRecord(Record):
    """attach/<label>.json: what was attached to an image pushed."""

    attached: tuple[Attached, ...]

    def to_json(self) -> dict[str, Any]:
        return {"attached": [item.to_json() for item in self.attached]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(tuple(Attached.from_json(item) for item in data["attached"]))


@dataclass(frozen=True)
class JoinRecord(Record):
    """push/<label>.index.json: what push_index made of the <tag>-<arch> images: the
    index, every reference it was pushed under, and each platform's manifest and config."""

    index: oci.Descriptor
    pushed: tuple[str, ...]
    platforms: tuple[tuple[str, str, str], ...]  # (platform, manifest digest, config digest)

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index.to_json(),
            "pushed": sorted(self.pushed),
            "platforms": [list(item) for item in self.platforms],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        platforms = tuple((str(p), str(m), str(c)) for p, m, c in data["platforms"])
        pushed = tuple(str(ref) for ref in data["pushed"])
        return cls(oci.Descriptor.from_json(data["index"]), pushed, platforms)
