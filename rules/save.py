"""``--save``: images from the OCI layout as archives a daemon or an OCI tool loads.

- ``write_docker_archive``: one platform's image as ``docker save`` writes it, gzip-compressed
  as Istio's builder leaves it (``gzip --fast``), for ``docker load`` and ``skopeo``'s
  ``docker-archive:`` transport. Its layers are uncompressed tars named by their diff_id.
- ``write_oci_archive``: a manifest, or a whole multi-platform index, as a tar of an OCI
  image layout (``skopeo``'s ``oci-archive:`` transport), blobs kept as they are stored.
- ``alias``: the same archive under a second name, as Istio's double-default variant has.

Archives are reproducible: entries sorted, mtime 0, owner 0 without names, JSON written
canonically, the gzip header without name or time and a fixed level. They are streamed:
no blob is held whole in memory, and a compressed layer is decompressed once, to a temp
file under the layout's temp folder, because a tar entry needs its size up front. Each
archive is written to a temp file beside it and renamed into place, so a failure leaves
nothing behind. Every blob is checked against its digest on the way.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import re
import tarfile
import zlib
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from doit_oci.registry import oci
from doit_oci.registry.files import atomic_file, link_or_copy, temp_folder
from doit_oci.registry.layout import LAYOUT_VERSION, Layout
from doit_oci.registry.reference import DEFAULT_REGISTRY, ReferenceError, parse
from doit_oci.rules.errors import UserError

CHUNK = 1 << 20
BLOCK = 512
RECORD = tarfile.RECORDSIZE
GZIP_LEVEL = 1  # gzip --fast, as Istio's builder compresses its saved images

IMAGE_NAME = "io.containerd.image.name"  # the full name annotation docker save writes

# the OCI image-spec grammar of org.opencontainers.image.ref.name
_REF_COMPONENT = r"[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*"
_REF_NAME = re.compile(rf"{_REF_COMPONENT}(?:/{_REF_COMPONENT})*\Z")


class SaveError(UserError):
    """An archive could not be written; the message is one line saying why and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


class _Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...


@dataclass(frozen=True)
class _Member:
    """One tar entry: a folder (no data, no source), small bytes, or a file streamed in.

    ``digest``, when set, is what the streamed file's bytes must hash to.
    """

    name: str
    data: bytes | None = None
    source: Path | None = None
    digest: str = ""

    @property
    def is_dir(self) -> bool:
        return self.data is None and self.source is None


@dataclass(frozen=True)
class _Tag:
    familiar: str  # as docker writes it in RepoTags: "pilot:1.0", "gcr.io/istio/pilot:1.0"
    full: str  # "docker.io/library/pilot:1.0"
    repository: str  # familiar name without the tag
    tag: str


@dataclass(frozen=True)
class _Layer:
    diff_id: str
    size: int
    source: Path
    digest: str  # what ``source`` hashes to, checked while it is copied; "" when already checked


# -- public API ----------------------------------------------------------------------------


def write_docker_archive(
    layout: Layout,
    manifest: oci.Descriptor,
    repo_tags: Sequence[str],
    path: Path,
    gzip_level: int = GZIP_LEVEL,
) -> None:
    """Write the image of ``manifest`` as a gzip-compressed ``docker save`` archive at ``path``.

    The archive is the layout Docker 25 and later write: an OCI image layout (``oci-layout``,
    ``index.json``, ``blobs/sha256/``) holding the config, each layer as an uncompressed tar
    named by its diff_id and an OCI manifest of those, plus docker's ``manifest.json`` and
    the legacy ``repositories``: ``docker load`` reads ``manifest.json`` (or, with the
    containerd store, ``index.json`` and its ``io.containerd.image.name`` annotations), and so
    does ``skopeo``'s ``docker-archive:``. ``repo_tags`` (``name:tag``) are the names the
    image is loaded as.
    """
    if not 0 <= gzip_level <= 9:
        raise SaveError(f"gzip level {gzip_level} is out of range; use 0 (none) to 9 (best)")
    tags = _repo_tags(repo_tags)
    image = _read_manifest(layout, manifest, "")
    config_bytes = _read_blob(layout, image.config, "config", f"image {manifest.digest}")
    try:
        config = oci.ImageConfig.from_json(
            oci.parse_json_document(config_bytes, f"config {image.config.digest}")
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise SaveError(f"{_line(exc)}; rebuild image {manifest.digest}") from None
    if len(config.diff_ids) != len(image.layers):
        raise SaveError(
            f"image {manifest.digest} has {len(image.layers)} layers but its config lists"
            f" {len(config.diff_ids)} diff_ids; rebuild it"
        )
    for descriptor in image.layers:
        _require(layout, descriptor, "layer", f"image {manifest.digest}")
    with _scratch(layout) as scratch:
        layers = _uncompressed_layers(layout, manifest, image, config.diff_ids, scratch)
        members = _docker_members(image.config, config_bytes, config, layers, tags)
        with _atomic(path) as out:
            gz = gzip.GzipFile(
                filename="", mode="wb", compresslevel=gzip_level, fileobj=out, mtime=0
            )
            with gz:
                _write_tar(gz, members)


def write_oci_archive(
    layout: Layout, descriptor: oci.Descriptor, ref_name: str, path: Path
) -> None:
    """Write ``descriptor`` (a manifest, or an index with every platform's image) as a tar of
    an OCI image layout at ``path``, named ``ref_name`` in its ``index.json``."""
    if not _REF_NAME.match(ref_name):
        raise SaveError(
            f"invalid OCI ref name {ref_name!r}: use letters and digits joined by one of"
            " '-._:@+' or '--', in '/'-separated parts, such as 'pilot:1.0'"
        )
    blobs = _collect(layout, descriptor)
    index = oci.Index((descriptor.annotated(**{oci.REF_NAME: ref_name}),))
    members = [
        _Member("blobs/"),
        _Member("blobs/sha256/"),
        *(
            _Member(_blob_name(digest), source=layout.blob_path(digest), digest=digest)
            for digest in blobs
        ),
        _Member("index.json", index.to_bytes()),
        _Member("oci-layout", LAYOUT_VERSION),
    ]
    with _atomic(path) as out:
        _write_tar(out, members)


def alias(path: Path, alias_path: Path) -> None:
    """Make ``alias_path`` hold what ``path`` holds: a hard link when possible, else a copy.

    Archives are only ever replaced by a rename, never rewritten in place, so a linked
    alias keeps the bytes it was made with. An existing ``alias_path`` is replaced.
    """
    if not path.is_file():
        raise SaveError(f"cannot alias {path} as {alias_path}: {path} does not exist")
    with contextlib.suppress(FileNotFoundError):
        if alias_path.samefile(path):
            return
    try:
        link_or_copy(path, alias_path)
    except OSError as exc:
        raise SaveError(f"cannot alias {path} as {alias_path}: {_line(exc)}") from None


# -- reading the layout --------------------------------------------------------------------


def _line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    else:
        text = str(exc)
    return " ".join(text.split())


def _blob_name(digest: str) -> str:
    return "blobs/sha256/" + digest.partition(":")[2]


def _require(layout: Layout, descriptor: oci.Descriptor, role: str, owner: str) -> Path:
    """The blob's file, which must be there with the descriptor's size.

    ``role`` and ``owner`` name it in messages: "layer", "image sha256:...".
    """
    what = f"{role} {descriptor.digest}" + (f" of {owner}" if owner else "")
    try:
        blob = layout.blob_path(descriptor.digest)
    except ValueError as exc:
        raise SaveError(f"{what}: {_line(exc)}") from None
    try:
        size = blob.stat().st_size
    except FileNotFoundError:
        raise SaveError(
            f"{what} is not in the OCI layout {layout.root};"
            " build the image (and fetch its base layers) into it first"
        ) from None
    if size != descriptor.size:
        raise SaveError(
            f"{what} in {layout.root} has {size} bytes, not the"
            f" {descriptor.size} its descriptor says; delete it and rebuild"
        )
    return blob


def _read_blob(layout: Layout, descriptor: oci.Descriptor, role: str, owner: str) -> bytes:
    _require(layout, descriptor, role, owner)
    data = layout.read(descriptor.digest)
    if oci.sha256_digest(data) != descriptor.digest:
        raise SaveError(_corrupt(descriptor.digest, layout.blob_path(descriptor.digest)))
    return data


def _corrupt(digest: str, path: Path) -> str:
    return f"blob {digest} ({path}) does not match its digest; delete it and rebuild"


def _parse(data: bytes, descriptor: oci.Descriptor) -> dict[str, Any]:
    try:
        return oci.parse_json_document(data, f"{descriptor.media_type} {descriptor.digest}")
    except ValueError as exc:
        raise SaveError(_line(exc)) from None


def _read_manifest(layout: Layout, descriptor: oci.Descriptor, owner: str) -> oci.Manifest:
    if descriptor.media_type in oci.INDEX_TYPES:
        raise SaveError(
            f"{descriptor.digest} is a multi-platform index; a docker archive holds one"
            " platform's image: save the manifest of one platform of it"
        )
    if descriptor.media_type not in oci.MANIFEST_TYPES:
        raise SaveError(
            f"{descriptor.digest} has media type {descriptor.media_type!r}, not an image manifest"
        )
    document = _parse(_read_blob(layout, descriptor, "manifest", owner), descriptor)
    try:
        return oci.Manifest.from_json(document)
    except (ValueError, KeyError, TypeError) as exc:
        raise SaveError(f"manifest {descriptor.digest} is malformed: {_line(exc)}") from None


def _collect(layout: Layout, top: oci.Descriptor) -> list[str]:
    """Every blob digest the descriptor reaches (itself included), each once, in order."""
    found: dict[str, None] = {}

    def visit(descriptor: oci.Descriptor, role: str, owner: str) -> None:
        if descriptor.digest in found:
            return
        if descriptor.media_type in oci.INDEX_TYPES:
            document = _parse(_read_blob(layout, descriptor, role, owner), descriptor)
            found[descriptor.digest] = None
            try:
                children = oci.Index.from_json(document).manifests
            except (ValueError, KeyError, TypeError) as exc:
                raise SaveError(f"index {descriptor.digest} is malformed: {_line(exc)}") from None
            for child in children:
                visit(child, "manifest", f"index {descriptor.digest}")
        elif descriptor.media_type in oci.MANIFEST_TYPES:
            manifest = _read_manifest(layout, descriptor, owner)
            found[descriptor.digest] = None
            visit(manifest.config, "config", f"image {descriptor.digest}")
            for layer in manifest.layers:
                visit(layer, "layer", f"image {descriptor.digest}")
        else:
            _require(layout, descriptor, role, owner)
            found[descriptor.digest] = None

    visit(top, "image", "")
    return list(found)


# -- layers --------------------------------------------------------------------------------


def _compression(descriptor: oci.Descriptor) -> str:
    media_type = descriptor.media_type
    if media_type.endswith(("+gzip", ".gzip")):
        return "gzip"
    if media_type.endswith("+zstd"):
        return "zstd"
    if media_type.endswith(".tar"):
        return "none"
    raise SaveError(
        f"layer {descriptor.digest} has media type {media_type!r}; only tar, tar+gzip and"
        " tar+zstd layers can be saved"
    )


@contextlib.contextmanager
def _scratch(layout: Layout) -> Iterator[Path]:
    with contextlib.ExitStack() as stack:
        try:
            folder = stack.enter_context(temp_folder(layout.tmp_dir, "save-"))
        except OSError as exc:
            raise SaveError(
                f"cannot make a temp folder in {layout.tmp_dir}: {_line(exc)}"
            ) from None
        yield folder


def _uncompressed_layers(
    layout: Layout,
    top: oci.Descriptor,
    image: oci.Manifest,
    diff_ids: Sequence[str],
    scratch: Path,
) -> list[_Layer]:
    """Each layer as an uncompressed tar: the blob itself, or its decompressed temp copy.

    Every layer's uncompressed bytes are checked against the diff_id its config gives.
    """
    done: dict[str, _Layer] = {}
    layers = []
    for descriptor, diff_id in zip(image.layers, diff_ids, strict=True):
        if descriptor.digest not in done:
            done[descriptor.digest] = _uncompressed(layout, top, descriptor, diff_id, scratch)
        layer = done[descriptor.digest]
        if layer.diff_id != diff_id:
            raise SaveError(
                f"layer {descriptor.digest} of image {top.digest} appears twice with"
                f" different diff_ids; rebuild the image"
            )
        layers.append(layer)
    return layers


def _uncompressed(
    layout: Layout, top: oci.Descriptor, descriptor: oci.Descriptor, diff_id: str, scratch: Path
) -> _Layer:
    blob = layout.blob_path(descriptor.digest)
    compression = _compression(descriptor)
    if compression == "none":
        if descriptor.digest != diff_id:
            raise SaveError(
                f"uncompressed layer {descriptor.digest} of image {top.digest} is not the"
                f" diff_id {diff_id} its config lists; rebuild the image"
            )
        return _Layer(diff_id, descriptor.size, blob, descriptor.digest)
    target = scratch / descriptor.digest.partition(":")[2]
    hashed = hashlib.sha256()
    size = 0
    try:
        with (
            open(target, "wb") as out,
            contextlib.closing(_chunks(blob, compression, descriptor)) as chunks,
        ):
            for chunk in chunks:
                hashed.update(chunk)
                out.write(chunk)
                size += len(chunk)
    except OSError as exc:
        raise SaveError(f"cannot decompress layer {descriptor.digest}: {_line(exc)}") from None
    actual = "sha256:" + hashed.hexdigest()
    if actual != diff_id:
        raise SaveError(
            f"layer {descriptor.digest} of image {top.digest} decompresses to {actual}, not"
            f" the diff_id {diff_id} its config lists; rebuild the image"
        )
    return _Layer(diff_id, size, target, "")


def _chunks(
    blob: Path, compression: str, descriptor: oci.Descriptor
) -> Generator[bytes, None, None]:
    """The decompressed bytes of a gzip or zstd blob, a chunk at a time."""
    what = f"{compression} layer {descriptor.digest}"
    if compression == "gzip":
        with gzip.open(blob, "rb") as stream:
            while True:
                try:
                    chunk = stream.read(CHUNK)
                except (OSError, EOFError, zlib.error) as exc:
                    raise SaveError(f"cannot decompress {what}: {_line(exc)}") from None
                if not chunk:
                    return
                yield chunk
    import zstandard

    with open(blob, "rb") as raw:
        reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
        while True:
            try:
                chunk = reader.read(CHUNK)
            except zstandard.ZstdError as exc:
                raise SaveError(f"cannot decompress {what}: {_line(exc)}") from None
            if not chunk:
                return
            yield chunk


# -- the docker archive --------------------------------------------------------------------


def _repo_tags(repo_tags: Sequence[str]) -> list[_Tag]:
    tags: dict[str, _Tag] = {}
    for text in repo_tags:
        try:
            reference = parse(text)
        except ReferenceError as exc:
            raise SaveError(f"invalid repo tag: {_line(exc)}") from None
        if reference.digest or not reference.tag:
            raise SaveError(f"invalid repo tag {text!r}: write it as name:tag, without a digest")
        repository = reference.repository
        if reference.registry == DEFAULT_REGISTRY:
            repository = reference.path.removeprefix("library/")
        tag = _Tag(f"{repository}:{reference.tag}", str(reference), repository, reference.tag)
        tags.setdefault(tag.familiar, tag)
    return list(tags.values())


def _json_line(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def _docker_members(
    config_descriptor: oci.Descriptor,
    config_bytes: bytes,
    config: oci.ImageConfig,
    layers: Sequence[_Layer],
    tags: Sequence[_Tag],
) -> list[_Member]:
    config_name = _blob_name(config_descriptor.digest)
    members: dict[str, _Member] = {
        "blobs/": _Member("blobs/"),
        "blobs/sha256/": _Member("blobs/sha256/"),
        config_name: _Member(config_name, config_bytes),
    }
    for layer in layers:
        name = _blob_name(layer.diff_id)
        members[name] = _Member(name, source=layer.source, digest=layer.digest)
    manifest = oci.Manifest(
        oci.Descriptor(oci.CONFIG, config_descriptor.digest, len(config_bytes)),
        tuple(oci.Descriptor(oci.LAYER_TAR, layer.diff_id, layer.size) for layer in layers),
    ).to_bytes()
    manifest_descriptor = oci.describe(oci.MANIFEST, manifest)
    manifest_name = _blob_name(manifest_descriptor.digest)
    members[manifest_name] = _Member(manifest_name, manifest)

    platform = config.platform if config.os and config.architecture else None
    named = [
        oci.Descriptor(
            oci.MANIFEST,
            manifest_descriptor.digest,
            manifest_descriptor.size,
            annotations=((IMAGE_NAME, tag.full), (oci.REF_NAME, tag.tag)),
            platform=platform,
        )
        for tag in tags
    ]
    if not named:
        named = [oci.Descriptor(oci.MANIFEST, manifest_descriptor.digest, len(manifest))]
    members["index.json"] = _Member("index.json", oci.Index(tuple(named)).to_bytes())
    docker_manifest = [
        {
            "Config": config_name,
            "RepoTags": [tag.familiar for tag in tags],
            "Layers": [_blob_name(layer.diff_id) for layer in layers],
        }
    ]
    members["manifest.json"] = _Member("manifest.json", _json_line(docker_manifest))
    members["oci-layout"] = _Member("oci-layout", LAYOUT_VERSION)
    if tags and layers:
        top = layers[-1].diff_id.partition(":")[2]
        repositories: dict[str, dict[str, str]] = {}
        for tag in tags:
            repositories.setdefault(tag.repository, {})[tag.tag] = top
        members["repositories"] = _Member("repositories", _json_line(_sorted_mapping(repositories)))
    return list(members.values())


def _sorted_mapping(mapping: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    return {key: dict(sorted(mapping[key].items())) for key in sorted(mapping)}


# -- writing -------------------------------------------------------------------------------


@contextlib.contextmanager
def _atomic(path: Path) -> Iterator[IO[bytes]]:
    """A temp file beside ``path``, renamed to it when the block ends without an error."""
    try:
        with atomic_file(path) as out:
            yield out
    except OSError as exc:
        raise SaveError(f"cannot write {path}: {_line(exc)}") from None


def _header(member: _Member, size: int) -> bytes:
    info = tarfile.TarInfo(member.name)
    info.type = tarfile.DIRTYPE if member.is_dir else tarfile.REGTYPE
    info.mode = 0o755 if member.is_dir else 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    info.size = size
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _write_tar(out: _Sink, members: Sequence[_Member]) -> None:
    """The members as a tar, sorted by name, each file streamed and checked."""
    written = 0
    for member in sorted(members, key=lambda m: m.name):
        if member.source is not None:
            written += _write_file(out, member, member.source)
            continue
        data = member.data or b""
        written += out.write(_header(member, len(data)))
        if data:
            written += out.write(data + _padding(len(data)))
    end = b"\0" * (2 * BLOCK)
    written += out.write(end)
    out.write(_padding(written, RECORD))


def _write_file(out: _Sink, member: _Member, source: Path) -> int:
    with open(source, "rb") as stream:
        size = os.fstat(stream.fileno()).st_size
        written = out.write(_header(member, size))
        hashed = hashlib.sha256() if member.digest else None
        left = size
        while left:
            chunk = stream.read(min(CHUNK, left))
            if not chunk:
                raise SaveError(f"{source} shrank while it was being saved; save again")
            if hashed is not None:
                hashed.update(chunk)
            written += out.write(chunk)
            left -= len(chunk)
    if hashed is not None and "sha256:" + hashed.hexdigest() != member.digest:
        raise SaveError(_corrupt(member.digest, source))
    return written + out.write(_padding(size))


def _padding(size: int, unit: int = BLOCK) -> bytes:
    return b"\0" * (-size % unit)
