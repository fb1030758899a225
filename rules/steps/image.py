"""image:<image>: the config and manifest of an image for one platform, assembled from its
parse record, its layers and its base's, put into the content store (image.json names
them). The manifest lists the base's layers first, then the image's own; a file-less
image on scratch gets one empty layer (an OCI manifest holds at least one).

Up to date when its records are unchanged (doit's file check), the epoch is the same, and
its manifest and config are still in the store.
"""

from __future__ import annotations

from pathlib import Path

from doit_oci.registry import oci
from doit_oci.rules.annotations import Annotations, created_at, merged
from doit_oci.rules.layer import LayerBlob, write_layer
from doit_oci.rules.steps.base import base_of
from doit_oci.rules.steps.records import ImageRecord, LayerRecord, ParseConfig, RecordError
from doit_oci.rules.steps.records import made_from as digest_of
from doit_oci.rules.steps.run import Run
from doit_oci.rules.units import Unit

EMPTY_LAYER_COMMENT = "doit-oci: empty layer (an OCI image has at least one)"


def manifest_annotations(run: Run, unit: Unit) -> Annotations:
    """Its manifest's: the automatic ones (with a registry base's name and digest), then
    the user's."""
    below = base_of(run, unit).annotations() if run.options.auto_annotations else ()
    return merged(below, unit.annotations)


def inputs(run: Run, unit: Unit) -> list[Path]:
    """The records an image is assembled from: its config, its layers and its base's."""
    paths = [unit.config, *(unit.layer(i) for i in range(unit.layer_count))]
    record = base_of(run, unit).record
    return [*paths, record] if record is not None else paths


def documents(run: Run, unit: Unit) -> tuple[oci.ImageConfig, oci.Manifest]:
    spec = ParseConfig.read(unit.config)
    layers = [LayerRecord.read(unit.layer(i)).blob for i in range(unit.layer_count)]
    below = base_of(run, unit).documents()
    base_manifest, base = below if below is not None else (None, None)
    created = created_at(run.options.epoch)
    history = list(base.history) if base else []
    for created_by, layer in spec.history:
        empty = layer is None or layers[layer] is None
        history.append(oci.HistoryEntry(created, created_by, empty_layer=empty))
    ours = [layer for layer in layers if layer is not None]
    if not ours and not (base and base.diff_ids):
        ours.append(empty_layer(run))
        history.append(oci.HistoryEntry(created, "", comment=EMPTY_LAYER_COMMENT))
    platform = unit.platform
    config = oci.ImageConfig(
        architecture=platform.architecture,
        os=platform.os,
        variant=platform.variant,
        created=created,
        author=spec.author,
        config=spec.config,
        diff_ids=(base.diff_ids if base else ()) + tuple(layer.diff_id for layer in ours),
        history=tuple(history),
    )
    manifest = oci.Manifest(
        config=oci.describe(oci.CONFIG, config.to_bytes()),
        layers=(base_manifest.layers if base_manifest else ())
        + tuple(layer.descriptor for layer in ours),
        annotations=manifest_annotations(run, unit),
    )
    return config, manifest


def empty_layer(run: Run) -> LayerBlob:
    options = run.options
    return write_layer([], run.workspace, run.layout, options.layer_compression, options.epoch)


def image(run: Run, unit: Unit) -> None:
    config, manifest = documents(run, unit)
    layout = run.layout
    config_descriptor = layout.put(oci.CONFIG, config.to_bytes())
    stored = layout.put(oci.MANIFEST, manifest.to_bytes())
    ImageRecord(
        manifest=oci.Descriptor(
            stored.media_type, stored.digest, stored.size, platform=unit.platform
        ),
        config=config_descriptor,
        layers=len(manifest.layers),
        made_from=digest_of(inputs(run, unit)),
    ).write(unit.image_record)


def uptodate(run: Run, unit: Unit) -> bool:
    try:
        record = ImageRecord.read(unit.image_record)
    except (OSError, RecordError):
        return False
    layout = run.layout
    return layout.has_blob(record.manifest.digest) and layout.has_blob(record.config.digest)
