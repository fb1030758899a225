"""layer:<image>.<K>: the K-th layer of an image, streamed from the files its inputs
record names into a blob of the content store (layer-K.json says which), or taken from
the remote layer cache (--cache-repo) when any runner made it from the same inputs.

Up to date when its inputs record is unchanged (doit's file check), the compression, epoch
and cache repository are the same (values) and its blob is still in the store, or in the
cache repository for a run that pushes (then it is mounted, never downloaded).
"""

from __future__ import annotations

from pathlib import Path

from doit_oci.registry.errors import RegistryError
from doit_oci.registry.push import Progress
from doit_oci.rules import telemetry
from doit_oci.rules.layer import LayerBlob, write_layer
from doit_oci.rules.progress import BIG_LAYER, progress_events
from doit_oci.rules.steps.records import (
    CacheCheck,
    LayerInputs,
    LayerRecord,
    RecordError,
    made_from,
)
from doit_oci.rules.steps.run import Run, warn
from doit_oci.rules.tree import FILE
from doit_oci.rules.units import Unit


def layer(run: Run, unit: Unit, index: int) -> None:
    inputs = unit.inputs(index)
    entries = LayerInputs.read(inputs).entries
    made = made_from([inputs])
    if not entries:
        LayerRecord(None, made).write(unit.layer(index))
        return
    options = run.options
    cached = from_cache(run, unit, index)
    if cached is not None:
        LayerRecord(cached, made, options.cache_repo).write(unit.layer(index))
        return
    progress = Progress(progress_events("writing", least=BIG_LAYER))
    progress.expect(sum(entry.size for entry in entries if entry.kind == FILE))
    blob = write_layer(
        entries,
        run.workspace,
        run.layout,
        options.layer_compression,
        options.epoch,
        run.digests.known,
        progress.advance,
    )
    progress.finish()
    LayerRecord(blob, made).write(unit.layer(index))
    to_cache(run, unit, index, blob)


def uptodate(run: Run, unit: Unit, index: int) -> bool:
    """The blob the record names is still in the store (or in the cache repository, for a
    run that pushes)."""
    try:
        record = LayerRecord.read(unit.layer(index))
    except (OSError, RecordError):
        return False
    if record.blob is None or run.layout.has_blob(record.blob.descriptor.digest):
        return True
    options = run.options
    return bool(options.push and options.cache_repo and record.cached == options.cache_repo)


# -- the remote layer cache (--cache-repo) -------------------------------------------------


def _cache_key(run: Run, unit: Unit, index: int) -> str:
    from doit_oci.rules.layercache import cache_key

    options = run.options
    return cache_key(unit.inputs(index).read_bytes(), options.layer_compression, options.epoch)


def from_cache(run: Run, unit: Unit, index: int) -> LayerBlob | None:
    """The layer any runner made from the same inputs, from the cache repository; its blob
    is fetched into the store unless this run pushes (then it is mounted)."""
    if not run.options.cache_repo or not _cache_usable(run):
        return None
    from doit_oci.registry import pull
    from doit_oci.rules.layercache import CacheRepo, lookup

    repo = CacheRepo.parse(run.options.cache_repo)
    client = run.clients.get(repo.registry)
    try:
        hit = lookup(client, repo, _cache_key(run, unit, index), warn=warn)
    except RegistryError as exc:
        warn(f"layer cache {repo}: {exc}; building the layer")
        return None
    if hit is None:
        return None
    if not run.layout.has_blob(hit.descriptor.digest) and not run.options.push:
        progress = Progress(progress_events("fetching"))
        progress.expect(hit.descriptor.size)
        pull.fetch_blob(client, repo.repository, hit.descriptor, run.layout, progress.advance)
    return hit


def to_cache(run: Run, unit: Unit, index: int, blob: LayerBlob) -> None:
    """Put a layer this run made into the cache repository, for the next runner."""
    if not run.options.cache_repo or not _cache_usable(run):
        return
    from doit_oci.registry.client import BlobSource
    from doit_oci.rules.layercache import CacheRepo, store

    repo = CacheRepo.parse(run.options.cache_repo)
    client = run.clients.get(repo.registry)
    source = BlobSource.from_file(
        run.layout.blob_path(blob.descriptor.digest), blob.descriptor.digest
    )
    try:
        store(client, repo, _cache_key(run, unit, index), blob, source)
    except RegistryError as exc:
        warn(f"layer cache {repo}: {exc}; the layer is not cached")


def cache_check_path(run: Run) -> Path:
    return run.records / run.options.scope / "cache-repo.json"


def check_cache(run: Run) -> None:
    """Before the first layer is built: can the cache repository be reached? Asked once
    (within ten seconds, not the whole registry deadline); if not, one warning, and every
    layer of the run is built without it."""
    from doit_oci.registry.client import Clients
    from doit_oci.registry.transport import RetryPolicy
    from doit_oci.rules.layercache import CacheRepo

    repo = CacheRepo.parse(run.options.cache_repo)
    policy = RetryPolicy(deadline=min(10.0, run.options.registry_deadline))
    clients = Clients(run.environ, run.options.insecure, policy, watch=telemetry.request_watch())
    problem = ""
    try:
        clients.get(repo.registry).check_access()
    except RegistryError as exc:
        problem = str(exc)
        warn(f"layer cache {repo} unreachable: building without it ({problem})")
    finally:
        clients.close()
    CacheCheck(str(repo), problem).write(cache_check_path(run))


def _cache_usable(run: Run) -> bool:
    try:
        check = CacheCheck.read(cache_check_path(run))
    except (OSError, RecordError):
        return True  # not checked: try it
    return not (check.repository == run.options.cache_repo and check.problem)
