"""status: which images are out of date and why, worked out from the records alone (what
each step would read now against what it read when it ran); nothing is built.
"""

from __future__ import annotations

from pathlib import Path

from doit_oci.rules.steps import copy, image, layer, parse
from doit_oci.rules.steps.base import base_of
from doit_oci.rules.steps.layout import image_descriptor
from doit_oci.rules.steps.records import (
    ImageRecord,
    LayerInputs,
    LayerRecord,
    RecordError,
    made_from,
    same,
)
from doit_oci.rules.steps.run import Run
from doit_oci.rules.units import Unit


def changed_paths(path: Path, now: LayerInputs) -> list[str]:
    """The sources (or image paths) whose entry differs between the record on disk and
    what the layer would hold ``now``."""
    try:
        old = {entry.path: entry for entry in LayerInputs.read(path).entries}
    except (OSError, RecordError):
        return ["(no record yet)"]
    new = {entry.path: entry for entry in now.entries}
    changed = []
    for name in sorted(old.keys() | new.keys()):
        if old.get(name) != new.get(name):
            entry = new.get(name) or old[name]
            what = entry.source or "/" + name
            verb = "" if name in old and name in new else (" (new)" if name in new else " (gone)")
            changed.append(f"{what}{verb}")
    return changed


def unit_reasons(run: Run, unit: Unit) -> list[str]:
    """Why ``unit`` would be built again."""
    reasons: list[str] = []
    base = base_of(run, unit)
    if base.resolves and not base.uptodate():
        reasons.append(f"base {base.label} moved or is not resolved yet")
    if base.upstream is not None:
        reasons.extend(f"base {base.label}: {why}" for why in unit_reasons(run, base.upstream))
    if not unit.image_record.exists():
        return [*reasons, "never built"]
    try:
        copies, config, _ = parse.records(run, unit)
    except Exception as exc:  # the build reports it; the status names it
        return [*reasons, f"cannot parse: {exc}"]
    if not (same(unit.copies, copies.to_bytes()) and same(unit.config, config.to_bytes())):
        reasons.append(f"{unit.image.dockerfile.name} (or the base's config) changed")
        return reasons
    try:
        layers, _ = copy.records(run, unit)
    except Exception as exc:
        return [*reasons, f"cannot find the files to copy: {exc}"]
    for index, inputs in enumerate(layers):
        changed = changed_paths(unit.inputs(index), inputs)
        if changed:
            reasons.append(f"layer {index}: {', '.join(changed)} changed")
            continue
        try:
            made = LayerRecord.read(unit.layer(index)).made_from
        except (OSError, ValueError):
            made = ""
        if made != made_from([unit.inputs(index)]):
            reasons.append(f"layer {index} was made from other inputs")
        elif not layer.uptodate(run, unit, index):
            reasons.append(f"layer {index} is missing from out/oci")
    if not reasons:
        try:
            assembled = ImageRecord.read(unit.image_record).made_from
        except (OSError, ValueError):
            assembled = ""
        if assembled != made_from(image.inputs(run, unit)):
            reasons.append("config or layers changed since the image was assembled")
    return reasons


def status(run: Run) -> list[tuple[str, str, list[str]]]:
    """(image, digest or "", reasons it is out of date) for every output."""
    rows = []
    for output in run.build.outputs:
        reasons: list[str] = []
        for unit in run.units_of(output):
            prefix = f"{unit.platform}: " if len(output.keys) > 1 else ""
            reasons.extend(prefix + why for why in unit_reasons(run, unit))
        try:
            digest = "" if reasons else image_descriptor(run, output).digest
        except Exception:
            digest = ""
        rows.append((output.label, digest, reasons))
    return rows


def report(run: Run) -> list[str]:
    """The lines ``doit status`` prints."""
    rows = status(run)
    width = max((len(label) for label, _, _ in rows), default=5)
    lines = []
    for label, digest, reasons in rows:
        if reasons:
            lines.append(f"{label:<{width}}  out of date: {'; '.join(reasons)}")
        else:
            lines.append(f"{label:<{width}}  up to date   {digest}")
    return lines
