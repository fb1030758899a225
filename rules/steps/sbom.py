"""sbom:<image>: the SPDX SBOM of an image for one platform, in out/sbom/ (by the plan's
scope), made from its records: the manifest digest (image.json), the files its own
layers add with their digests (layer-K.inputs.json), its base (the base's record). Each
file is read once more for the SHA-1 that SPDX asks for, and an ELF file for the build
info a Go binary embeds; nothing else is scanned.

Up to date when those records are unchanged (doit's file check) and the SBOM is there.
"""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

from doit_oci.registry.files import write_if_changed
from doit_oci.rules import about
from doit_oci.rules.annotations import created_at
from doit_oci.rules.gobuildinfo import read_file
from doit_oci.rules.sbom import Described, ImageFile, spdx_document
from doit_oci.rules.steps.base import base_of
from doit_oci.rules.steps.records import ImageRecord, LayerInputs
from doit_oci.rules.steps.run import Run
from doit_oci.rules.tree import FILE, Entry
from doit_oci.rules.units import Unit

EXEC = stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH


def sbom_path(run: Run, unit: Unit) -> Path:
    """out/sbom/[<scope>/]<image>.spdx.json (``<image>`` with its variant and platform)."""
    folder = run.build.out / "sbom"
    scope = run.options.scope
    return (folder / scope if scope else folder) / f"{unit.key}.spdx.json"


def inputs(run: Run, unit: Unit) -> list[Path]:
    """The records an SBOM is made from."""
    paths = [unit.image_record, *(unit.inputs(i) for i in range(unit.layer_count))]
    record = base_of(run, unit).record
    return [*paths, record] if record is not None else paths


def own_files(unit: Unit) -> list[Entry]:
    """The files the image's own layers add, the last layer's where several write one."""
    found: dict[str, Entry] = {}
    for index in range(unit.layer_count):
        for entry in LayerInputs.read(unit.inputs(index)).entries:
            if entry.kind == FILE:
                found[entry.path] = entry
            else:
                found.pop(entry.path, None)
    return [found[path] for path in sorted(found)]


def _sha1(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha1").hexdigest()


def document(run: Run, unit: Unit) -> bytes:
    manifest = ImageRecord.read(unit.image_record).manifest
    files = []
    for entry in own_files(unit):
        source = run.workspace / entry.source
        go = read_file(source) if entry.mode & EXEC else None
        files.append(ImageFile(entry.path, entry.digest, _sha1(source), go))
    below = base_of(run, unit).described()
    base = Described(below[0], below[1], unit.platform) if below is not None else None
    image = Described(unit.name, manifest.digest, unit.platform)
    tool = f"{about.NAME}-{about.version()}"
    return spdx_document(image, base, files, created_at(run.options.epoch), tool)


def sbom(run: Run, unit: Unit) -> None:
    write_if_changed(sbom_path(run, unit), document(run, unit))
