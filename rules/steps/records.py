"""The records the steps hand each other: small JSON files, one frozen dataclass each.

A step reads the records of the steps before it and writes its own; doit's file check on
them decides what runs again. Each record knows its file format (``to_bytes``, canonical:
sorted keys, one-space indent, a final newline) and reads itself back (``read``), so no
step reads a record as untyped JSON. ``write`` leaves a file that already holds the same
bytes alone, keeping its mtime: what depends on it stays up to date.

Where they live, for an image ``<key>`` of a plan with task prefix ``<scope>`` built for
``<os>_<arch>`` (``out/`` is the state folder, or ``--cache-dir``)::

    out/build/<scope>/<os>_<arch>/<key>/copies.json        ParseCopies   (parse)
    out/build/<scope>/<os>_<arch>/<key>/config.json        ParseConfig   (parse)
    out/build/<scope>/<os>_<arch>/<key>/layer-K.inputs.json LayerInputs  (translate)
    out/build/<scope>/<os>_<arch>/<key>/tree.json          TreeRecord    (translate)
    out/build/<scope>/<os>_<arch>/<key>/layer-K.json       LayerRecord   (layer)
    out/build/<scope>/<os>_<arch>/<key>/image.json         ImageRecord   (image)
    out/build/<scope>/<os>_<arch>/_bases/<reference>.json  BaseRecord    (base)
    out/build/<scope>/layout.json                          LayoutRecord  (layout)
    out/build/push/<label>.json                            PushRecord    (push)

and in rules.steps.shipped, the records of what left out/oci: LoadRecord (load),
JoinRecord (push_index), AttachRecord (attach).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from doit_oci.registry import oci
from doit_oci.registry.files import write_if_changed
from doit_oci.registry.pull import ResolvedBase
from doit_oci.rules.dockerfile.model import CopyStep
from doit_oci.rules.layer import LayerBlob
from doit_oci.rules.tree import Entry, Tree


class RecordError(ValueError):
    """A record that cannot be read as what it should be (damaged, or of another version)."""


def dump(document: Any) -> bytes:
    """A record's bytes: canonical, readable, stable."""
    return json.dumps(document, sort_keys=True, indent=1, ensure_ascii=False).encode() + b"\n"


def load(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; OSError when it is not there, RecordError when it is
    not a JSON object."""
    data = path.read_bytes()
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise RecordError(f"{path}: not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise RecordError(f"{path}: not a JSON object")
    return document


def made_from(paths: Sequence[Path]) -> str:
    """A digest of the records a step read, kept in what it writes: when they change, what
    it wrote is out of date (the status task says so without doit's state)."""
    digest = hashlib.sha256()
    for path in paths:
        data = path.read_bytes()
        digest.update(f"{path.name}:{len(data)}:".encode())
        digest.update(data)
    return "sha256:" + digest.hexdigest()


def same(path: Path, content: bytes) -> bool:
    """Whether ``path`` holds exactly ``content``."""
    try:
        return path.read_bytes() == content
    except OSError:
        return False


class Record:
    """What every record does with its file."""

    def to_json(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        return dump(self.to_json())

    def write(self, path: Path) -> bool:
        """Write the record unless ``path`` holds it already; True when written."""
        return write_if_changed(path, self.to_bytes())

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        raise NotImplementedError

    @classmethod
    def read(cls, path: Path) -> Self:
        document = load(path)
        try:
            return cls.from_json(document)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RecordError(f"{path}: not a {cls.__name__} ({exc!r})") from None


@dataclass(frozen=True)
class ParseCopies(Record):
    """copies.json: every COPY/ADD (and WORKDIR) that makes a layer, expanded."""

    copies: tuple[CopyStep, ...]

    def to_json(self) -> dict[str, Any]:
        return {"copies": [step.to_json() for step in self.copies]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(tuple(CopyStep.from_json(step) for step in data["copies"]))


@dataclass(frozen=True)
class ParseConfig(Record):
    """config.json: the container config the Dockerfile gives, its author and history
    (what made each step, and the index of its layer, None for a config-only step)."""

    config: oci.ContainerConfig
    author: str
    history: tuple[tuple[str, int | None], ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.config.to_json(),
            "author": self.author,
            "history": [[created_by, layer] for created_by, layer in self.history],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        history = tuple(
            (str(created_by), None if layer is None else int(layer))
            for created_by, layer in data["history"]
        )
        return cls(oci.ContainerConfig.from_json(data["config"]), str(data["author"]), history)


@dataclass(frozen=True)
class LayerInputs(Record):
    """layer-K.inputs.json: what layer K holds, entry by entry, with content digests."""

    entries: tuple[Entry, ...]

    def to_json(self) -> dict[str, Any]:
        return {"entries": [entry.to_json() for entry in self.entries]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(tuple(Entry.from_json(entry) for entry in data["entries"]))


@dataclass(frozen=True)
class TreeRecord(Record):
    """tree.json: the image's whole file tree (its base's and its own layers'); not
    complete when it stands on a registry base whose layers were never read."""

    entries: tuple[Entry, ...]
    complete: bool

    @classmethod
    def of(cls, tree: Tree) -> TreeRecord:
        return cls(tuple(sorted(tree, key=lambda e: e.sort_key)), tree.complete)

    def tree(self) -> Tree:
        return Tree(self.entries, self.complete)

    def to_json(self) -> dict[str, Any]:
        return {"complete": self.complete, "entries": [e.to_json() for e in self.entries]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(tuple(Entry.from_json(e) for e in data["entries"]), bool(data["complete"]))


@dataclass(frozen=True)
class LayerRecord(Record):
    """layer-K.json: the layer made from layer-K.inputs.json (``made_from`` is their
    digest): None for a COPY that adds nothing, else the blob, and the cache repository
    it came from when another runner made it."""

    blob: LayerBlob | None
    made_from: str
    cached: str = ""

    @property
    def empty(self) -> bool:
        return self.blob is None

    def to_json(self) -> dict[str, Any]:
        if self.blob is None:
            return {"empty": True, "from": self.made_from}
        document: dict[str, Any] = {**self.blob.to_json(), "from": self.made_from}
        if self.cached:
            document["cached"] = self.cached
        return document

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        made = str(data.get("from", ""))
        if data.get("empty"):
            return cls(None, made)
        blob = LayerBlob(str(data["diff_id"]), oci.Descriptor.from_json(data["descriptor"]))
        return cls(blob, made, str(data.get("cached") or ""))


@dataclass(frozen=True)
class ImageRecord(Record):
    """image.json: the image's manifest (with its platform) and config in out/oci."""

    manifest: oci.Descriptor
    config: oci.Descriptor
    layers: int
    made_from: str

    def to_json(self) -> dict[str, Any]:
        return {
            "manifest": self.manifest.to_json(),
            "config": self.config.to_json(),
            "layers": self.layers,
            "from": self.made_from,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            oci.Descriptor.from_json(data["manifest"]),
            oci.Descriptor.from_json(data["config"]),
            int(data["layers"]),
            str(data.get("from", "")),
        )


@dataclass(frozen=True)
class BaseRecord(Record):
    """_bases/<reference>.json: a registry base resolved for one platform."""

    resolved: ResolvedBase

    def to_json(self) -> dict[str, Any]:
        return dict(self.resolved.to_json())

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(ResolvedBase.from_json(dict(data)))


@dataclass(frozen=True)
class LayoutRecord(Record):
    """layout.json: the names this build gives in out/oci/index.json (which other builds
    share), each with its digest."""

    names: tuple[tuple[str, str], ...]

    def to_json(self) -> dict[str, Any]:
        return dict(sorted(self.names))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(tuple(sorted((str(k), str(v)) for k, v in data.items())))


@dataclass(frozen=True)
class PushRecord(Record):
    """push/<label>.json: every reference pushed, with the digest it names, and the bytes
    uploaded to do it."""

    pushed: tuple[tuple[str, str], ...]
    uploaded_bytes: int = 0

    def digest_of(self, reference: str) -> str:
        return dict(self.pushed).get(reference, "")

    def to_json(self) -> dict[str, Any]:
        return {"pushed": dict(sorted(self.pushed)), "uploaded_bytes": self.uploaded_bytes}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        pushed = data["pushed"]
        if not isinstance(pushed, dict):
            raise TypeError("pushed is not an object")
        return cls(
            tuple(sorted((str(k), str(v)) for k, v in pushed.items())),
            int(data.get("uploaded_bytes", 0)),
        )


@dataclass(frozen=True)
class IndexRecord(Record):
    """index/<name>.json: a multi-platform image joined from image rules (oci_index)."""

    descriptor: oci.Descriptor

    def to_json(self) -> dict[str, Any]:
        return self.descriptor.to_json()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(oci.Descriptor.from_json(data))


@dataclass(frozen=True)
class CacheCheck(Record):
    """cache-repo.json: whether this run's layer cache repository answered ("" problem)."""

    repository: str
    problem: str

    def to_json(self) -> dict[str, Any]:
        return {"repository": self.repository, "problem": self.problem}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(str(data["repository"]), str(data["problem"]))
