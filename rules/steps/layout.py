"""layout: out/oci/index.json names every image of the build ``<name>:<tag>``, keeping the
names other builds gave (layout.json records this build's). An image built for several
platforms is named by an index over its platforms' manifests, kept in the store.

Up to date when index.json names every image as built and their blobs are in the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from doit_oci.registry import oci
from doit_oci.registry.layout import remove_leftovers
from doit_oci.rules.annotations import common
from doit_oci.rules.steps.image import manifest_annotations
from doit_oci.rules.steps.records import ImageRecord, IndexRecord, LayoutRecord
from doit_oci.rules.steps.run import Run
from doit_oci.rules.units import Output, Unit


def image_descriptor(run: Run, output: Output) -> oci.Descriptor:
    """The image as the outside sees it: its manifest when it is built for one platform,
    an index (put into the store) over the platforms' manifests otherwise."""
    units = run.units_of(output)
    manifests = [ImageRecord.read(unit.image_record).manifest for unit in units]
    if len(manifests) == 1:
        plain = manifests[0]
        return oci.Descriptor(plain.media_type, plain.digest, plain.size)
    return run.layout.put(oci.INDEX, index_of(run, manifests, units).to_bytes())


def index_of(run: Run, manifests: Sequence[oci.Descriptor], units: Sequence[Unit]) -> oci.Index:
    """The index over ``manifests`` (of ``units``), annotated with what their manifests'
    annotations agree on."""
    agreed = common([manifest_annotations(run, unit) for unit in units])
    return oci.Index(tuple(manifests), annotations=agreed)


def named_descriptors(run: Run) -> dict[str, oci.Descriptor]:
    named: dict[str, oci.Descriptor] = {}
    for output in run.build.outputs:
        descriptor = image_descriptor(run, output)
        for ref_name in output.ref_names:
            named[ref_name] = descriptor
    return named


def record_path(run: Run) -> Path:
    """The names this build gives in out/oci/index.json (which other builds share)."""
    return run.records / run.options.scope / "layout.json"


def write_layout(run: Run) -> None:
    run.layout.init()
    named = named_descriptors(run)
    run.layout.set_refs(named)
    LayoutRecord(tuple((name, d.digest) for name, d in named.items())).write(record_path(run))
    # a build that got this far removes what killed runs left (not what a live one holds)
    remove_leftovers(run.layout)


def uptodate(run: Run) -> bool:
    try:
        named = named_descriptors(run)
    except Exception:  # whatever it is, the task reports it when it runs
        return False
    layout = run.layout
    index = {d.ref_name: d.digest for d in layout.read_index().manifests}
    return all(index.get(name) == d.digest for name, d in named.items()) and all(
        layout.has_blob(d.digest) for d in named.values()
    )


def index_record_path(run: Run, name: str) -> Path:
    """index/<name>.json: the multi-platform image an oci_index rule makes."""
    return run.records / "index" / f"{name}.json"


def join(run: Run, name: str, tags: Sequence[str], units: Sequence[Unit]) -> None:
    """oci_index: one multi-platform image of single-platform images, named
    ``<name>:<tag>`` in out/oci."""
    manifests = tuple(ImageRecord.read(unit.image_record).manifest for unit in units)
    descriptor = run.layout.put(oci.INDEX, index_of(run, manifests, units).to_bytes())
    run.layout.set_refs({f"{name}:{tag}": descriptor for tag in tags})
    IndexRecord(descriptor).write(index_record_path(run, name))


def joined(run: Run, name: str) -> oci.Descriptor:
    """What ``join`` made of ``name``."""
    return IndexRecord.read(index_record_path(run, name)).descriptor
