"""release: the files a later job of a pipeline reads, ``--image-refs`` (one line per
image and repository, ``<hub>/<name>@<digest>``) and ``--metadata-file`` (JSON by image:
digest, media type and size, every reference written, each platform's manifest, config
and base, what is attached). Made from the records of the pushes (or, without --push,
of out/oci: ``<name>@<digest>``, names ``<name>:<tag>``), of push_index's joins, and of
what attach attached; each file written whole or not at all, and only when it changes.

Every plan of the process that names the same file adds its images to it (under a lock,
so that the last writer has everyone's); an image's key is its name (with its variant),
or ``<scope>/<name>`` when two plans give the same one.

Up to date when the files hold what the records say now (computed, no request).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from doit_oci.registry.files import locked, write_if_changed
from doit_oci.registry.oci import Descriptor
from doit_oci.rules.steps import attach, push
from doit_oci.rules.steps.base import base_of
from doit_oci.rules.steps.layout import image_descriptor
from doit_oci.rules.steps.records import (
    ImageRecord,
    PushRecord,
    RecordError,
    same,
)
from doit_oci.rules.steps.run import Run
from doit_oci.rules.steps.sbom import sbom_path
from doit_oci.rules.steps.shipped import AttachRecord, JoinRecord
from doit_oci.rules.units import Output

Peers = Callable[[], Sequence[Run]]
BUILT, JOINED = "built", "joined"  # what the files tell: the build's images, push_index's


def _platforms(run: Run, output: Output) -> list[dict[str, Any]]:
    found = []
    for unit in run.units_of(output):
        record = ImageRecord.read(unit.image_record)
        entry: dict[str, Any] = {
            "platform": str(unit.platform),
            "manifest": record.manifest.digest,
            "config": record.config.digest,
        }
        below = base_of(run, unit).described()
        if below is not None:
            entry["base"] = {"reference": below[0], "digest": below[1]}
        found.append(entry)
    return found


def _attached(run: Run, output: Output) -> list[dict[str, Any]]:
    if run.options.push:
        try:
            record = AttachRecord.read(attach.record_path(run, output.label))
        except (OSError, RecordError):
            return []
        return [item.to_json() for item in record.attached]
    if not run.options.sbom:
        return []
    found = []
    for unit in run.units_of(output):
        path = sbom_path(run, unit)
        if path.is_file():
            shown = str(path.relative_to(run.workspace))
            found.append({"kind": "sbom", "platform": str(unit.platform), "path": shown})
    return found


def _entry(descriptor: Descriptor, references: Sequence[str]) -> dict[str, Any]:
    return {
        "digest": descriptor.digest,
        "mediaType": descriptor.media_type,
        "size": descriptor.size,
        "references": sorted(references),
    }


def built(run: Run, output: Output) -> dict[str, Any]:
    """What the build gave of ``output``: pushed (its push record), or in out/oci."""
    descriptor = image_descriptor(run, output)
    references: Sequence[str] = output.ref_names
    if run.options.push:
        record = PushRecord.read(push.record_path(run, output.label))
        references = [ref for ref, digest in record.pushed if digest == descriptor.digest]
    entry = _entry(descriptor, references)
    entry["platforms"] = _platforms(run, output)
    entry["attached"] = _attached(run, output)
    return entry


def joined(run: Run, output: Output) -> dict[str, Any] | None:
    """What push_index made of ``output``."""
    try:
        record = JoinRecord.read(push.join_record_path(run, output.label))
    except OSError:
        return None
    entry = _entry(record.index, record.pushed)
    entry["platforms"] = [
        {"platform": p, "manifest": m, "config": c} for p, m, c in record.platforms
    ]
    return entry


def entries(runs: Sequence[Run], what: str, own: Run | None = None) -> dict[str, dict[str, Any]]:
    """Every image of ``runs``, by key. Another plan's image whose records are not there
    yet (its push still running) is left out: that plan's release, later, has it."""
    labels = [output.label for run in runs for output in run.build.outputs]
    found: dict[str, dict[str, Any]] = {}
    for run in runs:
        for output in run.build.outputs:
            try:
                entry = built(run, output) if what == BUILT else joined(run, output)
            except (OSError, ValueError):
                if run is own or own is None:
                    raise
                continue
            if entry is None:
                continue
            twice = labels.count(output.label) > 1 and run.options.scope
            found[f"{run.options.scope}/{output.label}" if twice else output.label] = entry
    return found


def _repository(reference: str) -> str:
    """``host:5000/team/app:1.0`` -> ``host:5000/team/app``."""
    head, _, tag = reference.rpartition(":")
    return head if head and "/" not in tag else reference


def refs_text(found: dict[str, dict[str, Any]]) -> bytes:
    lines = {
        f"{_repository(ref)}@{entry['digest']}"
        for entry in found.values()
        for ref in entry["references"]
    }
    return "".join(f"{line}\n" for line in sorted(lines)).encode()


def metadata_text(found: dict[str, dict[str, Any]]) -> bytes:
    return json.dumps(found, indent=2, sort_keys=True).encode() + b"\n"


def _sharing(run: Run, peers: Peers) -> list[Run]:
    """The runs of the process that write the files ``run`` writes (``run`` among them)."""
    wanted = (run.options.image_refs, run.options.metadata_file)
    sharing = [
        other
        for other in peers()
        if (other.options.image_refs, other.options.metadata_file) == wanted
        and other.workspace == run.workspace
    ]
    return sharing if run in sharing else [run, *sharing]


def contents(run: Run, peers: Peers, what: str) -> dict[Path, bytes]:
    """The files to write and what they hold now."""
    found = entries(_sharing(run, peers), what, run)
    out: dict[Path, bytes] = {}
    if run.options.image_refs:
        out[run.workspace / run.options.image_refs] = refs_text(found)
    if run.options.metadata_file:
        out[run.workspace / run.options.metadata_file] = metadata_text(found)
    return out


def release(run: Run, peers: Peers, what: str = BUILT) -> None:
    with locked(run.records / "release.lock"):
        for path, data in contents(run, peers, what).items():
            write_if_changed(path, data)


def uptodate(run: Run, peers: Peers, what: str = BUILT) -> bool:
    try:
        wanted = contents(run, peers, what)
    except Exception:  # whatever it is, the task reports it when it runs
        return False
    return all(same(path, data) for path, data in wanted.items())
