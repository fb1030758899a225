"""The OCI image model: media types, descriptors, manifests, indexes and image configs.

Pure: no I/O. Every document renders to canonical JSON (sorted keys, no spaces, UTF-8),
so the same content always has the same digest.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

REF_NAME = "org.opencontainers.image.ref.name"
EMPTY = "application/vnd.oci.empty.v1+json"  # the config of an artifact: b"{}"

# each kind of document under its OCI and its Docker media type, in one place
INDEX_TYPES = (INDEX, DOCKER_MANIFEST_LIST)
MANIFEST_TYPES = (MANIFEST, DOCKER_MANIFEST)
LAYER_TYPES = (LAYER_TAR, LAYER_GZIP, LAYER_ZSTD)  # the layers doit-oci writes

_PLATFORM_PART = re.compile(r"[a-z0-9_-]+\Z")

JSON = dict[str, Any]


# the image-spec's grammar of org.opencontainers.image.ref.name (index.json's names)
_REF_COMPONENT = r"[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*"
_REF_NAME = re.compile(rf"{_REF_COMPONENT}(?:/{_REF_COMPONENT})*\Z")


def is_ref_name(text: str) -> bool:
    """Whether ``text`` may name an image in an OCI layout's index.json."""
    return _REF_NAME.match(text) is not None


def canonical_json(document: Any) -> bytes:
    """The one byte form of a JSON document that we write and hash."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def is_digest(value: str) -> bool:
    algorithm, _, hex_part = value.partition(":")
    return (
        algorithm == "sha256"
        and len(hex_part) == 64
        and all(c in "0123456789abcdef" for c in hex_part)
    )


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    @classmethod
    def parse(cls, text: str) -> Platform:
        """``linux/amd64`` or ``linux/arm64/v8`` (lowercased); raises ValueError otherwise."""
        parts = text.strip().lower().split("/")
        if len(parts) not in (2, 3) or not all(_PLATFORM_PART.match(part) for part in parts):
            raise ValueError(f"platform {text!r} is not os/arch[/variant]")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else "")

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text

    @property
    def slug(self) -> str:
        """``linux_amd64``: the folder name make and Istio use for this platform's outputs."""
        text = f"{self.os}_{self.architecture}"
        return f"{text}_{self.variant}" if self.variant else text

    def to_json(self) -> JSON:
        out: JSON = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Platform:
        return cls(str(data["os"]), str(data["architecture"]), str(data.get("variant", "")))


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: tuple[tuple[str, str], ...] = ()
    platform: Platform | None = None
    artifact_type: str = ""  # of an artifact manifest, in a referrers index

    def to_json(self) -> JSON:
        out: JSON = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Descriptor:
        platform = data.get("platform")
        return cls(
            media_type=str(data["mediaType"]),
            digest=str(data["digest"]),
            size=int(data["size"]),
            annotations=tuple(sorted((data.get("annotations") or {}).items())),
            platform=Platform.from_json(platform) if platform else None,
            artifact_type=str(data.get("artifactType") or ""),
        )

    def annotated(self, **annotations: str) -> Descriptor:
        merged = dict(self.annotations) | annotations
        return replace(self, annotations=tuple(sorted(merged.items())))

    @property
    def ref_name(self) -> str:
        return dict(self.annotations).get(REF_NAME, "")


def describe(media_type: str, data: bytes) -> Descriptor:
    return Descriptor(media_type, sha256_digest(data), len(data))


@dataclass(frozen=True)
class Manifest:
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: tuple[tuple[str, str], ...] = ()
    media_type: str = MANIFEST
    artifact_type: str = ""  # an artifact's (an SBOM...), as OCI 1.1 has them
    subject: Descriptor | None = None  # what an artifact refers to

    def to_json(self) -> JSON:
        out: JSON = {
            "schemaVersion": 2,
            "mediaType": self.media_type,
            "config": self.config.to_json(),
            "layers": [layer.to_json() for layer in self.layers],
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.subject is not None:
            out["subject"] = self.subject.to_json()
        return out

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Manifest:
        return cls(
            config=Descriptor.from_json(data["config"]),
            layers=tuple(Descriptor.from_json(layer) for layer in data.get("layers", [])),
            annotations=tuple(sorted((data.get("annotations") or {}).items())),
            media_type=str(data.get("mediaType", MANIFEST)),
            artifact_type=str(data.get("artifactType") or ""),
            subject=Descriptor.from_json(data["subject"]) if data.get("subject") else None,
        )


@dataclass(frozen=True)
class Index:
    manifests: tuple[Descriptor, ...]
    annotations: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> JSON:
        out: JSON = {
            "schemaVersion": 2,
            "mediaType": INDEX,
            "manifests": [m.to_json() for m in self.manifests],
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Index:
        return cls(
            manifests=tuple(Descriptor.from_json(m) for m in data.get("manifests", [])),
            annotations=tuple(sorted((data.get("annotations") or {}).items())),
        )


@dataclass(frozen=True)
class HistoryEntry:
    created: str
    created_by: str
    empty_layer: bool = False
    comment: str = ""

    def to_json(self) -> JSON:
        # "created" is a date-time when present: an empty one is left out, not written as ""
        out: JSON = {"created_by": self.created_by}
        if self.created:
            out["created"] = self.created
        if self.empty_layer:
            out["empty_layer"] = True
        if self.comment:
            out["comment"] = self.comment
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HistoryEntry:
        return cls(
            created=str(data.get("created", "")),
            created_by=str(data.get("created_by", "")),
            empty_layer=bool(data.get("empty_layer", False)),
            comment=str(data.get("comment", "")),
        )


@dataclass(frozen=True)
class ContainerConfig:
    """The ``config`` object of an image config: how a container of the image runs."""

    user: str = ""
    exposed_ports: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    volumes: tuple[str, ...] = ()
    working_dir: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    stop_signal: str = ""

    def to_json(self) -> JSON:
        out: JSON = {}
        if self.user:
            out["User"] = self.user
        if self.exposed_ports:
            out["ExposedPorts"] = {port: {} for port in self.exposed_ports}
        if self.env:
            out["Env"] = list(self.env)
        if self.entrypoint is not None:
            out["Entrypoint"] = list(self.entrypoint)
        if self.cmd is not None:
            out["Cmd"] = list(self.cmd)
        if self.volumes:
            out["Volumes"] = {volume: {} for volume in self.volumes}
        if self.working_dir:
            out["WorkingDir"] = self.working_dir
        if self.labels:
            out["Labels"] = dict(self.labels)
        if self.stop_signal:
            out["StopSignal"] = self.stop_signal
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> ContainerConfig:
        data = data or {}
        entrypoint = data.get("Entrypoint")
        cmd = data.get("Cmd")
        return cls(
            user=str(data.get("User") or ""),
            exposed_ports=tuple(sorted(data.get("ExposedPorts") or {})),
            env=tuple(data.get("Env") or ()),
            entrypoint=tuple(entrypoint) if entrypoint is not None else None,
            cmd=tuple(cmd) if cmd is not None else None,
            volumes=tuple(sorted(data.get("Volumes") or {})),
            working_dir=str(data.get("WorkingDir") or ""),
            labels=tuple(sorted((data.get("Labels") or {}).items())),
            stop_signal=str(data.get("StopSignal") or ""),
        )

    def env_map(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in self.env:
            name, _, value = item.partition("=")
            out[name] = value
        return out


@dataclass(frozen=True)
class ImageConfig:
    architecture: str
    os: str
    variant: str = ""
    created: str = ""
    author: str = ""
    config: ContainerConfig = field(default_factory=ContainerConfig)
    diff_ids: tuple[str, ...] = ()
    history: tuple[HistoryEntry, ...] = ()

    @property
    def platform(self) -> Platform:
        return Platform(self.os, self.architecture, self.variant)

    def to_json(self) -> JSON:
        out: JSON = {
            "architecture": self.architecture,
            "os": self.os,
            "config": self.config.to_json(),
            "rootfs": {"type": "layers", "diff_ids": list(self.diff_ids)},
            "history": [entry.to_json() for entry in self.history],
        }
        if self.variant:
            out["variant"] = self.variant
        if self.created:
            out["created"] = self.created
        if self.author:
            out["author"] = self.author
        return out

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ImageConfig:
        rootfs = data.get("rootfs") or {}
        return cls(
            architecture=str(data.get("architecture", "")),
            os=str(data.get("os", "")),
            variant=str(data.get("variant", "")),
            created=str(data.get("created", "")),
            author=str(data.get("author", "")),
            config=ContainerConfig.from_json(data.get("config")),
            diff_ids=tuple(rootfs.get("diff_ids") or ()),
            history=tuple(HistoryEntry.from_json(h) for h in data.get("history") or ()),
        )


def parse_json_document(data: bytes, what: str) -> JSON:
    """A JSON object from bytes, or ValueError naming ``what`` it should have been."""
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise ValueError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ValueError(f"{what} is not a JSON object")
    return document


def sorted_descriptors(descriptors: Sequence[Descriptor]) -> tuple[Descriptor, ...]:
    return tuple(sorted(descriptors, key=lambda d: (d.ref_name, d.digest)))
