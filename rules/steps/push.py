"""push:<image>: an image of the store to every hub of the build under each of its tags
(``<hub>/<name>:<tag>``); push/<label>.json records what was pushed. Blobs a registry
holds are not sent again; blobs another repository of it holds are mounted: the bases'
layers, and the layers of images this run or an earlier one pushed as they are now.

Also here: the one request per registry before the first push to it (``registry:<host>``),
--no-clobber, and push_index, which makes a multi-platform image from what one machine per
platform pushed under ``<tag>-<arch>``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from types import MappingProxyType

from doit_oci.registry import oci
from doit_oci.registry.push import Destination, Origin, Progress, Pusher, destinations
from doit_oci.registry.sizes import size
from doit_oci.rules.errors import UserError
from doit_oci.rules.events import BlobEvent, ImagePushed
from doit_oci.rules.progress import current_task, emit, progress_events, say
from doit_oci.rules.steps.base import base_of
from doit_oci.rules.steps.layout import image_descriptor, index_of
from doit_oci.rules.steps.records import ImageRecord, LayerRecord, PushRecord
from doit_oci.rules.steps.run import Run
from doit_oci.rules.steps.shipped import JoinRecord
from doit_oci.rules.units import Output, Unit, platform_tag


def targets(run: Run, output: Output) -> list[Destination]:
    return destinations(run.options.hubs, output.name, output.tags)


def record_path(run: Run, label: str) -> Path:
    return run.records / "push" / f"{label}.json"


def registries(run: Run) -> list[str]:
    """Every registry this build pushes to."""
    return sorted({d.registry for output in run.build.outputs for d in targets(run, output)})


def check_registry(run: Run, registry: str) -> None:
    """Before the first push to ``registry``: it answers, and takes our credentials."""
    run.clients.get(registry).check_access()


def push(run: Run, label: str, descriptor: oci.Descriptor, where: Sequence[Destination]) -> None:
    """Push an image (manifest or index) of the store to ``where``, and record it as
    push/<label>.json."""
    uploaded = upload(run, descriptor, where)
    pushed = tuple((ref, descriptor.digest) for d in where for ref in d.references())
    PushRecord(pushed, uploaded).write(record_path(run, label))


def upload(run: Run, descriptor: oci.Descriptor, where: Sequence[Destination]) -> int:
    """Push an image (manifest or index) of the store to ``where``; the bytes uploaded."""
    where_blobs_are, hints = mount_hints(run)
    progress = Progress(progress_events("uploading"))
    pusher = Pusher(
        run.layout,
        run.clients.get,
        where_blobs_are,
        hints,
        progress,
        reader_for=run.reader,
        on_blob=_told,
    )
    uploaded = 0
    for destination in where:
        report = pusher.push(descriptor, destination)
        progress.finish()
        emit(
            ImagePushed(
                report.reference,
                report.digest,
                destination.tags,
                report.size,
                report.uploaded,
                report.mounted,
                report.present,
                report.bytes_uploaded,
                round(report.seconds, 3),
            )
        )
        uploaded += report.bytes_uploaded
    return uploaded


OUTCOMES = MappingProxyType({"uploaded": "uploaded", "mounted": "mounted", "present": "skipped"})


def _told(outcome: str, blob: oci.Descriptor, destination: Destination, seconds: float) -> None:
    action = OUTCOMES[outcome]
    emit(
        BlobEvent(
            action, blob.digest, blob.size, destination.name, round(seconds, 3), current_task()
        )
    )


def origins(run: Run) -> dict[str, Origin]:
    """Blobs the store may lack and where they can be read: the registry bases' layers,
    and the layers this run took from the cache repository."""
    found: dict[str, Origin] = {}
    for unit in run.build.units:
        found.update(base_of(run, unit).origins())
    cache = _cache_origin(run)
    if cache is not None:
        for digest, cached in _layer_digests(run):
            if cached:
                found[digest] = cache
    return found


def mount_hints(run: Run) -> tuple[dict[str, Origin], dict[str, list[Origin]]]:
    """Where blobs we may not hold can be read (``origins``), and where else in a registry
    they may already be (registry bases, the cache repository, and plan images pushed as
    they are now, by this run or an earlier one), so that they are mounted, not uploaded."""
    hints: dict[str, list[Origin]] = {}
    for unit in run.build.units:
        for digest, origin in base_of(run, unit).origins().items():
            hints.setdefault(digest, []).append(origin)
    cache = _cache_origin(run)
    if cache is not None:
        for digest, _ in _layer_digests(run):
            hints.setdefault(digest, []).append(cache)
    for output in run.build.outputs:
        try:
            record = PushRecord.read(record_path(run, output.label))
            current = image_descriptor(run, output).digest
        except (OSError, ValueError, KeyError):
            continue  # not pushed yet (a repository that may not hold them: no hint)
        for destination in targets(run, output):
            if any(record.digest_of(ref) != current for ref in destination.references()):
                continue
            origin = Origin(destination.registry, destination.repository)
            for layer in _image_layers(run, output):
                hints.setdefault(layer, []).append(origin)
    return origins(run), hints


def _cache_origin(run: Run) -> Origin | None:
    if not run.options.cache_repo:
        return None
    from doit_oci.rules.layercache import CacheRepo

    repo = CacheRepo.parse(run.options.cache_repo)
    return Origin(repo.registry, repo.repository)


def _layer_digests(run: Run) -> Iterable[tuple[str, bool]]:
    """(digest, taken from the cache repository) of every layer record there is."""
    for unit in run.build.units:
        for index in range(unit.layer_count):
            try:
                record = LayerRecord.read(unit.layer(index))
            except (OSError, ValueError):
                continue
            if record.blob is not None:
                yield record.blob.descriptor.digest, bool(record.cached)


def _image_layers(run: Run, output: Output) -> list[str]:
    layers: list[str] = []
    for unit in run.units_of(output):
        manifest_digest = ImageRecord.read(unit.image_record).manifest.digest
        data = run.layout.read(manifest_digest)
        manifest = oci.Manifest.from_json(oci.parse_json_document(data, output.name))
        layers.extend(layer.digest for layer in manifest.layers)
    return layers


def check_clobber(run: Run) -> None:
    """--no-clobber: every destination tag but latest must not exist yet (all named)."""
    taken: list[str] = []
    for output in run.build.outputs:
        for destination in targets(run, output):
            client = run.clients.get(destination.registry)
            for tag in destination.tags:
                if tag == "latest":
                    continue
                if client.head_manifest(destination.repository, tag) is not None:
                    taken.append(f"{destination.name}:{tag}")
    if taken:
        raise UserError(
            f"--no-clobber: {', '.join(taken)} already exist{'s' if len(taken) == 1 else ''}",
            "the registries",
            "push with another tag, or without --no-clobber to overwrite",
        )


def join_record_path(run: Run, label: str) -> Path:
    return run.records / "push" / f"{label}.index.json"


def push_index(run: Run, output: Output) -> list[tuple[Destination, str, str]]:
    """Make the multi-platform image from what one machine per platform pushed under
    ``<tag>-<arch>``: read those manifests and their configs (never a layer), put the
    index by digest, then under each tag (push/<label>.index.json records it for the
    release files, when they are asked for). Where each index went: (destination, tag,
    digest)."""
    done: list[tuple[Destination, str, str]] = []
    pushed: list[str] = []
    platforms: dict[str, tuple[str, str, str]] = {}
    top = oci.Descriptor(oci.INDEX, "", 0)
    for destination in targets(run, output):
        client = run.clients.get(destination.registry)
        repository = destination.repository
        for tag in destination.tags:
            manifests = []
            for platform in [unit.platform for unit in run.units_of(output)]:
                source = platform_tag(tag, platform)
                data, media_type, digest = client.get_manifest(repository, source)
                manifest = oci.Manifest.from_json(oci.parse_json_document(data, source))
                with client.get_blob(repository, manifest.config.digest) as response:
                    config = oci.ImageConfig.from_json(
                        oci.parse_json_document(response.read(), f"config of {source}")
                    )
                if config.platform != platform:
                    raise UserError(
                        f"{destination.name}:{source} is an image for {config.platform}",
                        "the registry",
                        f"push the {platform} image under {source}",
                    )
                manifests.append(oci.Descriptor(media_type, digest, len(data), platform=platform))
                platforms[str(platform)] = (str(platform), digest, manifest.config.digest)
            index = index_of(run, manifests, run.units_of(output)).to_bytes()
            digest = client.put_manifest(repository, oci.sha256_digest(index), index, oci.INDEX)
            client.put_manifest(repository, tag, index, oci.INDEX)
            top = oci.describe(oci.INDEX, index)
            pushed.append(f"{destination.name}:{tag}")
            done.append((destination, tag, digest))
    if run.options.image_refs or run.options.metadata_file:  # else nothing is written
        record = JoinRecord(top, tuple(pushed), tuple(platforms[p] for p in sorted(platforms)))
        record.write(join_record_path(run, output.label))
    return done


# -- one layer, as soon as it is built ------------------------------------------------------


def upload_record(unit: Unit, index: int) -> Path:
    """layer-K.pushed.json: where the layer's blob was sent, and the bytes it took."""
    return unit.dir / f"layer-{index}.pushed.json"


def upload_layer(run: Run, unit: Unit, index: int, where: Sequence[Destination]) -> None:
    """Send layer ``index`` of ``unit`` to every repository of ``where`` the moment it is
    built, before its image is assembled (what a registry has costs a HEAD; another
    repository of the same registry that has it gives it by a mount)."""
    record = LayerRecord.read(unit.layer(index))
    pushed: list[tuple[str, str]] = []
    uploaded = 0
    if record.blob is not None:
        blob = record.blob.descriptor
        found, hints = mount_hints(run)
        progress = Progress(progress_events("uploading"))
        pusher = Pusher(
            run.layout,
            run.clients.get,
            found,
            hints,
            progress,
            reader_for=run.reader,
            on_blob=_told,
        )
        for destination in where:
            outcome = pusher.push_blob(blob, destination)
            uploaded += blob.size if outcome == "uploaded" else 0
            pushed.append((destination.name, blob.digest))
        progress.finish()
        if uploaded:
            say(f"uploaded layer {unit.key}.{index} ({size(uploaded)}) to {where[0].name}")
    PushRecord(tuple(pushed), uploaded).write(upload_record(unit, index))
