"""gc and verify: the content store kept whole and small, without destroying what another
build, plan or run made.

- gc removes the blobs that no name of out/oci/index.json reaches and no record of any
  build in this state folder needs (a registry base's manifest, a layer not named yet),
  and the temp files of runs that were killed; it never drops a name.
- verify hashes every blob again (a damaged one is removed: the next build makes it
  again) and walks every name of index.json, reporting each missing blob once with the
  names that need it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from doit_oci.registry.sizes import size
from doit_oci.rules.steps.layout import named_descriptors
from doit_oci.rules.steps.push import origins
from doit_oci.rules.steps.records import (
    BaseRecord,
    ImageRecord,
    IndexRecord,
    LayerRecord,
    LayoutRecord,
    RecordError,
)
from doit_oci.rules.steps.run import Run


def _needs(path: Path) -> list[str]:
    """The blobs of the content store one record names (a file of another kind: none)."""
    name = path.name
    if name == "image.json":
        record = ImageRecord.read(path)
        return [record.manifest.digest, record.config.digest]
    if name.startswith("layer-") and not name.endswith(".inputs.json"):
        blob = LayerRecord.read(path).blob
        return [blob.descriptor.digest] if blob is not None else []
    if path.parent.name == "_bases":
        resolved = BaseRecord.read(path).resolved
        return [resolved.top, resolved.manifest.digest, resolved.config.digest]
    if path.parent.name == "index":
        return [IndexRecord.read(path).descriptor.digest]
    if name == "layout.json":
        return [digest for _, digest in LayoutRecord.read(path).names]
    return []


def roots(run: Run) -> set[str]:
    """The blobs the records of every build in this state folder name: its images, their
    layers, registry bases, indexes."""
    found: set[str] = set()
    if not run.records.is_dir():
        return found
    for path in sorted(run.records.rglob("*.json")):
        try:
            found.update(_needs(path))
        except (OSError, RecordError):
            continue  # damaged: nothing of it to keep
    return found


def gc(runs: Sequence[Run]) -> list[str]:
    """Remove what nothing needs from the content store ``runs`` share; with --prune-tags,
    first drop the names of index.json that none of them gives. The lines to print."""
    run = runs[0]
    lines = []
    if run.options.prune_tags:
        given = {name for each in runs for name in named_descriptors(each)}
        kept = {d.ref_name for d in run.layout.read_index().manifests} & given
        dropped = run.layout.drop_refs(
            {d.ref_name for d in run.layout.read_index().manifests} - kept
        )
        lines += [f"gc: dropped the name {name}" for name in dropped]
    result = run.layout.gc(roots(run))
    removed = f"{result.removed} blobs ({size(result.removed_bytes)})"
    if result.leftovers:
        removed += f" and {result.leftovers} leftovers of killed runs"
    return [*lines, f"gc: removed {removed}, kept {result.kept}"]


def verify(runs: Sequence[Run]) -> tuple[list[str], int]:
    """Check every blob and every name of the content store ``runs`` share: the lines to
    print and how many blobs are damaged or missing."""
    run = runs[0]
    elsewhere = {digest for each in runs if each.options.push for digest in origins(each)}
    damage = run.layout.verify(roots(run), elsewhere)
    lines = [f"verify: {item.line(run.layout.root)}" for item in damage]
    if not damage:
        lines.append(f"verify: every blob of {run.layout.root} matches its digest")
    return lines, len(damage)
