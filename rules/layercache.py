"""A remote layer cache kept in a registry as OCI artifacts, as BuildKit's registry cache.

A layer is a function of its inputs record (``layer-K.inputs.json``: the sorted tar
entries with their content digests), the compression and SOURCE_DATE_EPOCH. So a runner
that starts empty can ask a registry whether any runner already made the layer of the same
inputs, and take that layer (its blob is mounted, not compressed and uploaded again).

One entry per key in a cache repository (``127.0.0.1:5000/team/cache``): an OCI image
manifest tagged with the key, laid out as the image-spec 1.1 "artifact with a config"::

    {"schemaVersion": 2,
     "mediaType": "application/vnd.oci.image.manifest.v1+json",
     "artifactType": "application/vnd.doit-oci.layer-cache.v1",
     "config": {"mediaType": "application/vnd.doit-oci.layer-cache.config.v1+json", ...},
     "layers": [<the layer's own descriptor>]}

The config blob is the canonical JSON ``{"descriptor": {...}, "diff_id": "sha256:...",
"key": "<key>"}``. The layer blob lives in the cache repository, referenced by the
manifest, so the registry checks it is there when the manifest is put and keeps it as
long as the tag exists. Every document is canonical JSON without a timestamp: two runners
that store the same layer under the same key write the same bytes.

No doit here, and no httpx: the client is imported only by whoever calls ``lookup`` or
``store`` with one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from doit_oci.registry import oci, reference
from doit_oci.registry.errors import RegistryError
from doit_oci.rules.compress import check as check_compression
from doit_oci.rules.layer import LayerBlob

if TYPE_CHECKING:  # httpx and the client are imported only when a registry is used
    from doit_oci.registry.client import RegistryClient
    from doit_oci.registry.upload import BlobSource

# Part of every key: change it whenever the same inputs, compression and epoch would give
# other layer bytes (the tar headers of rules.layer, the compressors of rules.compress),
# so that entries made by the old code are no longer found.
VERSION = "doit-oci layer cache v1"
ARTIFACT_TYPE = "application/vnd.doit-oci.layer-cache.v1"
CONFIG_TYPE = "application/vnd.doit-oci.layer-cache.config.v1+json"
MAX_CONFIG = 1 << 16  # a config blob larger than this is not one of ours: not read

_KEY = re.compile(r"[0-9a-f]{64}\Z")

Warn = Callable[[str], None]


@dataclass(frozen=True)
class CacheRepo:
    """A repository of a registry that holds cache entries."""

    registry: str
    repository: str

    @classmethod
    def parse(cls, text: str) -> CacheRepo:
        """``host[:port]/path``, such as ``127.0.0.1:5000/team/cache``; ValueError otherwise.

        The registry must be named (a cache meant for a CI registry should not land on
        Docker Hub by default: write ``docker.io/team/cache`` for that), and the name
        carries no tag or digest: the tags of the repository are the cache keys.
        """
        expected = "expected host[:port]/path such as 127.0.0.1:5000/team/cache"
        try:
            reference.refuse_secrets(text, "layer cache repository")
        except reference.ReferenceError as exc:
            raise ValueError(f"{exc}; {expected}") from None
        first, slash, rest = text.partition("/")
        if not text or text != text.strip():
            problem = "it is empty or surrounded by spaces"
        elif not slash or not ("." in first or ":" in first or first == "localhost"):
            problem = "it names no registry host"
        elif not rest:
            problem = "it names no repository"
        else:
            try:
                parsed = reference.parse(text)
            except reference.ReferenceError as exc:
                problem = str(exc)
            else:
                if parsed.tag or parsed.digest:
                    problem = "a cache repository has no tag or digest (its tags are the keys)"
                else:
                    return cls(parsed.registry, parsed.path)
        raise ValueError(f"invalid layer cache repository {text!r}: {problem}; {expected}")

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}"


def cache_key(inputs: bytes, compression: str, epoch: int) -> str:
    """The 64 hex digits naming the layer made from ``inputs`` (the bytes of an inputs
    record) with ``compression`` at ``epoch``. The fields are separated by NUL bytes,
    which neither the version, a compression name nor an epoch holds, so two
    different (compression, epoch, inputs) never hash the same bytes."""
    check_compression(compression)
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise ValueError(f"SOURCE_DATE_EPOCH {epoch!r} is not a non-negative integer")
    digest = hashlib.sha256(f"{VERSION}\0{compression}\0{epoch}\0".encode())
    digest.update(inputs)
    return digest.hexdigest()


def config_bytes(key: str, layer: LayerBlob) -> bytes:
    """The config blob of the entry that says ``key`` made ``layer``."""
    return oci.canonical_json(
        {"descriptor": layer.descriptor.to_json(), "diff_id": layer.diff_id, "key": key}
    )


def manifest_bytes(key: str, layer: LayerBlob) -> bytes:
    """The manifest of the entry, tagged ``key`` in the cache repository."""
    config = oci.describe(CONFIG_TYPE, config_bytes(key, layer))
    return oci.canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": oci.MANIFEST,
            "artifactType": ARTIFACT_TYPE,
            "config": config.to_json(),
            "layers": [layer.descriptor.to_json()],
        }
    )


class _Malformed(ValueError):
    """The tagged manifest is not a cache entry of ours, or not a whole one."""


def lookup(
    client: RegistryClient, repo: CacheRepo, key: str, *, warn: Warn | None = None
) -> LayerBlob | None:
    """The layer stored under ``key``, or None when there is none.

    One request when the key is absent (GET of the manifest: 404), two when it is there
    (and the config blob). An entry that is not ours or not whole (another artifact under
    the tag, a config that is not our record, a record of another key, a missing config
    blob) counts as absent; ``warn`` gets one line saying why, and a later ``store``
    replaces it. Any other failure of the registry raises RegistryError: whether a cache
    that cannot be reached stops the build is the caller's choice.
    """
    _check_key(key)
    repository = repo.repository
    try:
        data, media_type, _ = client.get_manifest(repository, key)
    except RegistryError as exc:
        if exc.status == 404:  # MANIFEST_UNKNOWN, or NAME_UNKNOWN for a new repository
            return None
        raise
    try:
        config, layer = _parse_manifest(data, media_type)
        record = _read_config(client, repository, config)
        return _parse_config(record, key, layer)
    except _Malformed as exc:
        if warn is not None:
            warn(f"layer cache {repo}:{key}: {exc}; taken as absent")
        return None


def store(
    client: RegistryClient,
    repo: CacheRepo,
    key: str,
    layer: LayerBlob,
    blob: BlobSource | None,
    mount_from: Sequence[str] = (),
) -> None:
    """Make ``key`` name ``layer`` in the cache repository.

    An entry already tagged with the same manifest costs one HEAD. Otherwise the layer
    blob is made present: already there (HEAD), else mounted from the first repository
    of ``mount_from`` (repositories of the same registry, such as the image pushed) that
    has it, else uploaded from ``blob``; then the config blob, then the manifest under
    the tag (replacing whatever the tag named). Raises FileNotFoundError when the blob is
    needed and neither a mount nor ``blob`` gives it, RegistryError when the registry
    fails, ValueError for a key or layer that is not one.
    """
    _check_key(key)
    _check_layer(layer)
    descriptor = layer.descriptor
    if blob is not None and (blob.digest, blob.size) != (descriptor.digest, descriptor.size):
        raise ValueError(
            f"the blob to upload ({blob.digest}, {blob.size} bytes) is not the layer"
            f" ({descriptor.digest}, {descriptor.size} bytes)"
        )
    repository = repo.repository
    manifest = manifest_bytes(key, layer)
    current = client.head_manifest(repository, key)
    if current is not None and current.digest == oci.sha256_digest(manifest):
        return
    if not client.blob_exists(repository, descriptor.digest):
        sources = [source for source in mount_from if source != repository]
        if not any(client.mount_blob(repository, descriptor.digest, s) for s in sources):
            if blob is None:
                tried = f" (nor in {', '.join(sources)} to mount)" if sources else ""
                raise FileNotFoundError(
                    f"layer {descriptor.digest} is not in {repo}{tried} and no copy of it"
                    " was given to upload"
                )
            client.upload_blob(repository, blob)
    _put_blob(client, repository, config_bytes(key, layer))
    client.put_manifest(repository, key, manifest, oci.MANIFEST)


# -- helpers ------------------------------------------------------------------------------


def _check_key(key: str) -> None:
    if not _KEY.match(key):
        raise ValueError(f"layer cache key {key!r} is not 64 lowercase hex digits")


def _check_layer(layer: LayerBlob) -> None:
    descriptor = layer.descriptor
    if not oci.is_digest(layer.diff_id) or not oci.is_digest(descriptor.digest):
        raise ValueError(f"layer {layer} has no sha256 digest or diff_id")
    if descriptor.media_type not in oci.LAYER_TYPES:
        raise ValueError(f"layer {descriptor.digest} has media type {descriptor.media_type}")


def _put_blob(client: RegistryClient, repository: str, data: bytes) -> None:
    from doit_oci.registry.upload import BlobSource

    digest = oci.sha256_digest(data)
    if not client.blob_exists(repository, digest):
        chunk = (data,)  # re-iterable: an auth challenge or a redirect may send it again
        client.upload_blob(repository, BlobSource(digest, len(data), lambda _o, _n: chunk))


def _descriptor(value: Any, what: str) -> oci.Descriptor:
    if not isinstance(value, dict):
        raise _Malformed(f"its {what} is not a descriptor")
    media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
    if not isinstance(media_type, str) or not isinstance(digest, str) or not oci.is_digest(digest):
        raise _Malformed(f"its {what} has no media type or no sha256 digest")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise _Malformed(f"its {what} has no size")
    annotations = value.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
    ):
        raise _Malformed(f"the annotations of its {what} are not strings")
    try:
        return oci.Descriptor.from_json(value)
    except (KeyError, TypeError, ValueError, AttributeError):  # a platform that is not one
        raise _Malformed(f"its {what} is not a descriptor") from None


def _parse_manifest(data: bytes, media_type: str) -> tuple[oci.Descriptor, oci.Descriptor]:
    """(config, layer) of a cache entry's manifest."""
    try:
        document = oci.parse_json_document(data, "the manifest")
    except ValueError as exc:
        raise _Malformed(str(exc)) from None
    if media_type != oci.MANIFEST or document.get("schemaVersion") != 2:
        raise _Malformed(f"the tag names a {media_type or 'document'}, not an OCI manifest")
    if document.get("artifactType") != ARTIFACT_TYPE:
        found = document.get("artifactType") or "none"
        raise _Malformed(f"the tag names an artifact of type {found}, not {ARTIFACT_TYPE}")
    config = _descriptor(document.get("config"), "config")
    if config.media_type != CONFIG_TYPE:
        raise _Malformed(f"its config has media type {config.media_type}, not {CONFIG_TYPE}")
    if config.size > MAX_CONFIG:
        raise _Malformed(f"its config is {config.size} bytes, more than a record takes")
    layers = document.get("layers")
    if not isinstance(layers, list) or len(layers) != 1:
        raise _Malformed("it does not hold exactly one layer")
    layer = _descriptor(layers[0], "layer")
    if layer.media_type not in oci.LAYER_TYPES:
        raise _Malformed(f"its layer has media type {layer.media_type}")
    return config, layer


def _read_config(client: RegistryClient, repository: str, config: oci.Descriptor) -> bytes:
    """The config blob, whole and checked against its descriptor."""
    parts: list[bytes] = []
    total = 0
    try:
        with client.get_blob(repository, config.digest) as response:
            for data in response.iter_bytes():
                total += len(data)
                if total > config.size:
                    break
                parts.append(data)
    except RegistryError as exc:
        if exc.status == 404:
            raise _Malformed(f"its config blob {config.digest} is missing") from None
        raise
    content = b"".join(parts)
    if total != config.size or oci.sha256_digest(content) != config.digest:
        raise _Malformed(f"its config blob does not match its descriptor {config.digest}")
    return content


def _parse_config(data: bytes, key: str, layer: oci.Descriptor) -> LayerBlob:
    try:
        record = oci.parse_json_document(data, "its config")
    except ValueError as exc:
        raise _Malformed(str(exc)) from None
    if record.get("key") != key:
        raise _Malformed(f"its config is the record of key {record.get('key')!r}")
    diff_id = record.get("diff_id")
    if not isinstance(diff_id, str) or not oci.is_digest(diff_id):
        raise _Malformed("its config has no sha256 diff_id")
    descriptor = _descriptor(record.get("descriptor"), "recorded layer")
    if descriptor != layer:
        raise _Malformed("the layer its config records is not the layer it holds")
    if layer.media_type == oci.LAYER_TAR and diff_id != layer.digest:
        raise _Malformed("the diff_id of its uncompressed layer is not the layer's digest")
    return LayerBlob(diff_id, descriptor)
