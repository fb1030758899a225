"""What an image is built on, behind one interface: nothing (scratch), an image of this
build, or an image of a registry. Each gives the manifest, config and file tree the other
steps build on, the record they depend on, and what housekeeping and pushes need to know
of it, so that no step asks which kind of base it has.

The base step itself is here too: a registry base is resolved (``base:<reference>``) to
the manifest of one platform and its config, kept in the content store and recorded in
``_bases/<reference>.json``; only its manifest and config are fetched, and its layers too
when the output is the OCI layout (which holds whole images) rather than a push.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from doit_oci.registry import oci, pull, reference
from doit_oci.registry.errors import RegistryError
from doit_oci.registry.layout import Layout
from doit_oci.registry.pull import ResolvedBase
from doit_oci.registry.push import Origin, Progress
from doit_oci.rules.annotations import BASE_DIGEST, BASE_NAME
from doit_oci.rules.basetree import read_tree
from doit_oci.rules.errors import UserError
from doit_oci.rules.lock import Pin, short
from doit_oci.rules.progress import progress_events
from doit_oci.rules.steps.records import BaseRecord, ImageRecord, RecordError, TreeRecord
from doit_oci.rules.steps.run import Run, warn
from doit_oci.rules.tree import Tree
from doit_oci.rules.units import PlanImage, RegistryImage, Scratch, Unit

if TYPE_CHECKING:
    from doit_oci.registry.pull import Reads

CHUNK = 1 << 20


class Base(Protocol):
    """The image below a unit, as the steps see it."""

    @property
    def label(self) -> str:
        """How messages name it: ``scratch``, the plan image's key, or the reference."""
        ...

    @property
    def record(self) -> Path | None:
        """The record of it that parse and image read (their file_dep), if any."""
        ...

    @property
    def upstream(self) -> Unit | None:
        """The unit of this build it is, whose tasks come first."""
        ...

    @property
    def resolves(self) -> bool:
        """Whether a ``base`` task resolves it (a registry base)."""
        ...

    def documents(self) -> tuple[oci.Manifest, oci.ImageConfig] | None:
        """Its manifest and config (None for scratch)."""
        ...

    def tree(self) -> Tree:
        """What it holds, as far as it is known."""
        ...

    def roots(self) -> list[str]:
        """Digests in the content store that its images need beyond their own records."""
        ...

    def origins(self) -> dict[str, Origin]:
        """Its blobs that live in a registry, and where (for pushes and verify)."""
        ...

    def uptodate(self) -> bool:
        """Whether what was resolved of it is still what it is (a registry base's tag may
        have moved)."""
        ...

    def annotations(self) -> tuple[tuple[str, str], ...]:
        """What the manifests of images on it say of it (a registry base's name and digest)."""
        ...

    def described(self) -> tuple[str, str] | None:
        """Its name (the reference of a registry's) and manifest digest, as the SBOM, the
        provenance and the metadata file name it (None for scratch)."""
        ...


def _documents(layout: Layout, manifest: str, config: str) -> tuple[oci.Manifest, oci.ImageConfig]:
    parsed = oci.Manifest.from_json(oci.parse_json_document(layout.read(manifest), "base manifest"))
    image = oci.ImageConfig.from_json(oci.parse_json_document(layout.read(config), "base config"))
    return parsed, image


@dataclass(frozen=True)
class ScratchBase:
    label = "scratch"
    record = None
    upstream = None
    resolves = False

    def documents(self) -> tuple[oci.Manifest, oci.ImageConfig] | None:
        return None

    def tree(self) -> Tree:
        return Tree(complete=True)

    def roots(self) -> list[str]:
        return []

    def origins(self) -> dict[str, Origin]:
        return {}

    def uptodate(self) -> bool:
        return True

    def annotations(self) -> tuple[tuple[str, str], ...]:
        return ()

    def described(self) -> None:
        return None


@dataclass(frozen=True)
class PlanBase:
    """An image of this build (for the same platform and variant)."""

    unit: Unit
    layout: Layout
    resolves = False

    @property
    def label(self) -> str:
        return self.unit.name

    @property
    def record(self) -> Path:
        return self.unit.image_record

    @property
    def upstream(self) -> Unit:
        return self.unit

    def documents(self) -> tuple[oci.Manifest, oci.ImageConfig]:
        record = ImageRecord.read(self.unit.image_record)
        return _documents(self.layout, record.manifest.digest, record.config.digest)

    def tree(self) -> Tree:
        return TreeRecord.read(self.unit.tree).tree()

    def roots(self) -> list[str]:
        return []

    def origins(self) -> dict[str, Origin]:
        return {}

    def uptodate(self) -> bool:
        return True

    def annotations(self) -> tuple[tuple[str, str], ...]:
        return ()

    def described(self) -> tuple[str, str]:
        return self.unit.name, ImageRecord.read(self.unit.image_record).manifest.digest


@dataclass(frozen=True)
class RegistryBase:
    """An image of a registry, resolved for the unit's platform by a ``base`` task."""

    image: RegistryImage
    unit: Unit
    run: Run
    upstream = None
    resolves = True

    @property
    def label(self) -> str:
        return self.image.reference

    @property
    def record(self) -> Path:
        return self.image.record(self.unit.dir.parent)

    @property
    def reference(self) -> reference.Reference:
        return reference.parse(self.image.reference)

    def resolved(self) -> ResolvedBase:
        return BaseRecord.read(self.record).resolved

    def documents(self) -> tuple[oci.Manifest, oci.ImageConfig]:
        resolved = self.resolved()
        return _documents(self.run.layout, resolved.manifest.digest, resolved.config.digest)

    @property
    def tree_folder(self) -> Path:
        """Where the tree of the resolved manifest is kept (once per manifest digest, for
        every image and plan on it)."""
        digest = self.resolved().manifest.digest
        return self.run.build.state / "cache" / "trees" / digest.partition(":")[2]

    def tree(self) -> Tree:
        """What it holds, from its layers' tar headers: read once per manifest digest."""
        record = self.tree_folder / "tree.json"
        try:
            return TreeRecord.read(record).tree()
        except (OSError, RecordError):
            pass
        where = self.image.reference
        layers = _layer_chunks(self.run, self.reference, self.resolved())
        entries = read_tree(layers, where, self.tree_folder / "files")
        found = TreeRecord(tuple(entries), True)
        found.write(record)
        return found.tree()

    def roots(self) -> list[str]:
        try:
            return [self.resolved().manifest.digest]
        except (OSError, ValueError):
            return []

    def origins(self) -> dict[str, Origin]:
        try:
            layers = self.resolved().layers
        except (OSError, ValueError):
            return {}
        ref = self.reference
        return {layer.digest: Origin(ref.registry, ref.path) for layer in layers}

    def annotations(self) -> tuple[tuple[str, str], ...]:
        """base.name: the reference as FROM names it (normalised); base.digest: what it
        resolved to (an index when it names one, as a pull of it gives)."""
        return ((BASE_DIGEST, self.resolved().top), (BASE_NAME, self.qualified))

    def described(self) -> tuple[str, str]:
        return self.qualified, self.resolved().manifest.digest

    @property
    def qualified(self) -> str:
        """The reference with its tag (``:latest`` when FROM names none, nor a digest)."""
        ref = self.reference
        if ref.tag or ref.digest:
            return self.image.reference
        return str(reference.Reference(ref.registry, ref.path, "latest", ""))

    # -- the base step ----------------------------------------------------------------------

    @property
    def pin(self) -> Pin | None:
        """What bases.lock pins it at, if it does."""
        return self.run.pin(self.image.reference)

    def resolve(self) -> None:
        ref = self.reference
        reads = self.run.reader(ref.registry)
        layout = self.run.layout
        pin = self.pin
        if pin is None and not ref.digest and self.run.lock is not None:
            warn(
                f"{ref} is not pinned in {self.run.lock_shown}: its tag is followed"
                " (doit lock pins it)"
            )
        top = pin.digest if pin is not None else ""
        resolved = pull.resolve(reads, ref, self.unit.platform, layout, top)
        expected = pin.manifest_for(self.unit.platform) if pin is not None else ""
        if expected and expected != resolved.manifest.digest:
            raise UserError(
                f"{ref} is pinned for {self.unit.platform} at {short(expected)}, and the"
                f" {short(top)} it is pinned at holds {short(resolved.manifest.digest)}",
                self.run.lock_shown,
                "write the lock again with doit lock",
            )
        if not self.run.options.push:
            # the layout holds whole images: bring the base's layers into the store once
            missing = [layer for layer in resolved.layers if not layout.has_blob(layer.digest)]
            progress = Progress(progress_events("fetching"))
            progress.expect(sum(layer.size for layer in missing))
            for layer in missing:
                pull.fetch_blob(reads, ref.path, layer, layout, progress.advance)
        BaseRecord(resolved).write(self.record)
        self.tree()  # read its layers' headers now, in this worker, once per digest

    def uptodate(self) -> bool:
        """Resolved before, blobs at hand, and what it names is still what was resolved:
        the lock's digests when it is pinned (no request), else for a tag a HEAD request.
        A base named by digest is never asked for again."""
        try:
            resolved = self.resolved()
        except (OSError, ValueError):
            return False
        needed = [resolved.manifest, resolved.config]
        if not self.run.options.push:
            needed.extend(resolved.layers)
        if not all(self.run.layout.has_blob(d.digest) for d in needed):
            return False
        if not (self.tree_folder / "tree.json").is_file():
            return False
        pin, ref = self.pin, self.reference
        if pin is not None:
            expected = pin.manifest_for(self.unit.platform) or resolved.manifest.digest
            return resolved.top == pin.digest and resolved.manifest.digest == expected
        if ref.digest or self.run.options.offline:
            return True
        try:
            head = self.run.reader(ref.registry).head_manifest(ref.path, ref.identifier)
        except RegistryError:
            return False
        return head is not None and head.digest == resolved.top


def _layer_chunks(
    run: Run, ref: reference.Reference, resolved: ResolvedBase
) -> Iterator[tuple[oci.Descriptor, Iterable[bytes]]]:
    """Each layer of a registry base with its bytes: from the store when it holds the
    blob, else read from the registry."""
    for layer in resolved.layers:
        if run.layout.has_blob(layer.digest):
            yield layer, _file_chunks(run.layout.blob_path(layer.digest))
        else:
            yield layer, _blob_chunks(run.reader(ref.registry), ref.path, layer.digest)


def _file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def _blob_chunks(reads: Reads, repository: str, digest: str) -> Iterator[bytes]:
    with reads.get_blob(repository, digest) as response:
        yield from response.iter_bytes(CHUNK)


AnyBase = ScratchBase | PlanBase | RegistryBase


def base_of(run: Run, unit: Unit) -> AnyBase:
    """The base of ``unit``: the one place that looks at what kind it is."""
    below = unit.base
    if isinstance(below, Scratch):
        return ScratchBase()
    if isinstance(below, PlanImage):
        return PlanBase(run.unit(below.key), run.layout)
    return RegistryBase(below, unit, run)
