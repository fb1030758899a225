"""save:<image> (--save): each image as the archives Istio's builder leaves under
out/release/docker: ``<name>[-variant][-arch].tar.gz`` (docker load) per platform, the
arch left out for linux/amd64; beyond the seed, the whole index of a multi-platform
image as an OCI archive ``<name>[-variant].oci.tar``; and the seed's alias copy, without
the variant, for the debug build that is also the default. oci_save writes one archive
where the rule says.
"""

from __future__ import annotations

from pathlib import Path

from doit_oci.registry.push import destinations
from doit_oci.rules.steps.layout import image_descriptor
from doit_oci.rules.steps.records import ImageRecord
from doit_oci.rules.steps.run import Run
from doit_oci.rules.units import Output


def paths(run: Run, output: Output) -> dict[str, Path]:
    """What --save writes for ``output``, by role."""
    folder = run.build.out / "release" / "docker"
    units = run.units_of(output)
    found: dict[str, Path] = {}
    for unit in units:
        suffix = "" if str(unit.platform) == "linux/amd64" else f"-{unit.platform.architecture}"
        found[f"docker:{unit.key}"] = folder / f"{output.label}{suffix}.tar.gz"
        if output.also_default:
            found[f"alias:{unit.key}"] = folder / f"{output.name}{suffix}.tar.gz"
    if len(units) > 1:
        found["oci"] = folder / f"{output.label}.oci.tar"
        if output.also_default:
            found["alias:oci"] = folder / f"{output.name}.oci.tar"
    return found


def repo_tags(run: Run, output: Output) -> list[str]:
    """The names an archive loads as: ``<hub>/<name>:<tag>`` for every hub, or
    ``<name>:<tag>`` without hubs."""
    hubs = run.options.hubs
    if not hubs:
        return list(output.ref_names)
    return [ref for d in destinations(hubs, output.name, output.tags) for ref in d.references()]


def save(run: Run, output: Output) -> None:
    from doit_oci.rules.save import alias, write_docker_archive, write_oci_archive

    found = paths(run, output)
    names = repo_tags(run, output)
    for unit in run.units_of(output):
        manifest = ImageRecord.read(unit.image_record).manifest
        target = found[f"docker:{unit.key}"]
        write_docker_archive(run.layout, manifest, names, target)
        if f"alias:{unit.key}" in found:
            alias(target, found[f"alias:{unit.key}"])
    if "oci" in found:
        write_oci_archive(
            run.layout, image_descriptor(run, output), output.ref_names[0], found["oci"]
        )
        if "alias:oci" in found:
            alias(found["oci"], found["alias:oci"])


def save_one(run: Run, output: Output, path: Path) -> None:
    """oci_save: at ``path``, an OCI archive of the image (its index for several
    platforms) when it is named ``*.oci.tar``, else a docker archive of its one platform."""
    from doit_oci.rules.save import write_docker_archive, write_oci_archive

    if path.name.endswith(".oci.tar"):
        write_oci_archive(run.layout, image_descriptor(run, output), output.ref_names[0], path)
        return
    (unit,) = run.units_of(output)
    manifest = ImageRecord.read(unit.image_record).manifest
    write_docker_archive(run.layout, manifest, list(output.ref_names), path)
