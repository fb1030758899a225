"""The layout's blobs read for an archive, every one checked: there, of the size its
descriptor says, of the digest it is named by; manifests and indexes parsed; compressed
layers decompressed once, to a temp file (a tar entry needs its size up front), and
checked against the diff_id their config lists. Every failure is a SaveError: one line.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import zlib
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from doit_oci.registry import oci
from doit_oci.registry.files import temp_folder
from doit_oci.registry.layout import Layout
from doit_oci.rules.errors import UserError

CHUNK = 1 << 20


class SaveError(UserError):
    """An archive could not be written; the message is one line saying why and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


@dataclass(frozen=True)
class Layer:
    diff_id: str
    size: int
    source: Path
    digest: str  # what ``source`` hashes to, checked while it is copied; "" when already checked


# -- reading the layout --------------------------------------------------------------------


def one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    else:
        text = str(exc)
    return " ".join(text.split())


def blob_name(digest: str) -> str:
    return "blobs/sha256/" + digest.partition(":")[2]


def require(layout: Layout, descriptor: oci.Descriptor, role: str, owner: str) -> Path:
    """The blob's file, which must be there with the descriptor's size.

    ``role`` and ``owner`` name it in messages: "layer", "image sha256:...".
    """
    what = f"{role} {descriptor.digest}" + (f" of {owner}" if owner else "")
    try:
        blob = layout.blob_path(descriptor.digest)
    except ValueError as exc:
        raise SaveError(f"{what}: {one_line(exc)}") from None
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


def read_blob(layout: Layout, descriptor: oci.Descriptor, role: str, owner: str) -> bytes:
    require(layout, descriptor, role, owner)
    data = layout.read(descriptor.digest)
    if oci.sha256_digest(data) != descriptor.digest:
        raise SaveError(corrupt(descriptor.digest, layout.blob_path(descriptor.digest)))
    return data


def corrupt(digest: str, path: Path) -> str:
    return f"blob {digest} ({path}) does not match its digest; delete it and rebuild"


def parse_document(data: bytes, descriptor: oci.Descriptor) -> dict[str, Any]:
    try:
        return oci.parse_json_document(data, f"{descriptor.media_type} {descriptor.digest}")
    except ValueError as exc:
        raise SaveError(one_line(exc)) from None


def read_manifest(layout: Layout, descriptor: oci.Descriptor, owner: str) -> oci.Manifest:
    if descriptor.media_type in oci.INDEX_TYPES:
        raise SaveError(
            f"{descriptor.digest} is a multi-platform index; a docker archive holds one"
            " platform's image: save the manifest of one platform of it"
        )
    if descriptor.media_type not in oci.MANIFEST_TYPES:
        raise SaveError(
            f"{descriptor.digest} has media type {descriptor.media_type!r}, not an image manifest"
        )
    document = parse_document(read_blob(layout, descriptor, "manifest", owner), descriptor)
    try:
        return oci.Manifest.from_json(document)
    except (ValueError, KeyError, TypeError) as exc:
        raise SaveError(f"manifest {descriptor.digest} is malformed: {one_line(exc)}") from None


def collect(layout: Layout, top: oci.Descriptor) -> list[str]:
    """Every blob digest the descriptor reaches (itself included), each once, in order."""
    found: dict[str, None] = {}

    def visit(descriptor: oci.Descriptor, role: str, owner: str) -> None:
        if descriptor.digest in found:
            return
        if descriptor.media_type in oci.INDEX_TYPES:
            document = parse_document(read_blob(layout, descriptor, role, owner), descriptor)
            found[descriptor.digest] = None
            try:
                children = oci.Index.from_json(document).manifests
            except (ValueError, KeyError, TypeError) as exc:
                raise SaveError(
                    f"index {descriptor.digest} is malformed: {one_line(exc)}"
                ) from None
            for child in children:
                visit(child, "manifest", f"index {descriptor.digest}")
        elif descriptor.media_type in oci.MANIFEST_TYPES:
            manifest = read_manifest(layout, descriptor, owner)
            found[descriptor.digest] = None
            visit(manifest.config, "config", f"image {descriptor.digest}")
            for layer in manifest.layers:
                visit(layer, "layer", f"image {descriptor.digest}")
        else:
            require(layout, descriptor, role, owner)
            found[descriptor.digest] = None

    visit(top, "image", "")
    return list(found)


# -- layers --------------------------------------------------------------------------------


def compression_of(descriptor: oci.Descriptor) -> str:
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
def scratch(layout: Layout) -> Iterator[Path]:
    with contextlib.ExitStack() as stack:
        try:
            folder = stack.enter_context(temp_folder(layout.tmp_dir, "save-"))
        except OSError as exc:
            raise SaveError(
                f"cannot make a temp folder in {layout.tmp_dir}: {one_line(exc)}"
            ) from None
        yield folder


def uncompressed_layers(
    layout: Layout,
    top: oci.Descriptor,
    image: oci.Manifest,
    diff_ids: Sequence[str],
    scratch: Path,
) -> list[Layer]:
    """Each layer as an uncompressed tar: the blob itself, or its decompressed temp copy.

    Every layer's uncompressed bytes are checked against the diff_id its config gives.
    """
    done: dict[str, Layer] = {}
    layers = []
    for descriptor, diff_id in zip(image.layers, diff_ids, strict=True):
        if descriptor.digest not in done:
            done[descriptor.digest] = uncompressed(layout, top, descriptor, diff_id, scratch)
        layer = done[descriptor.digest]
        if layer.diff_id != diff_id:
            raise SaveError(
                f"layer {descriptor.digest} of image {top.digest} appears twice with"
                f" different diff_ids; rebuild the image"
            )
        layers.append(layer)
    return layers


def uncompressed(
    layout: Layout, top: oci.Descriptor, descriptor: oci.Descriptor, diff_id: str, scratch: Path
) -> Layer:
    blob = layout.blob_path(descriptor.digest)
    compression = compression_of(descriptor)
    if compression == "none":
        if descriptor.digest != diff_id:
            raise SaveError(
                f"uncompressed layer {descriptor.digest} of image {top.digest} is not the"
                f" diff_id {diff_id} its config lists; rebuild the image"
            )
        return Layer(diff_id, descriptor.size, blob, descriptor.digest)
    target = scratch / descriptor.digest.partition(":")[2]
    hashed = hashlib.sha256()
    size = 0
    try:
        with (
            open(target, "wb") as out,
            contextlib.closing(chunks(blob, compression, descriptor)) as stream,
        ):
            for chunk in stream:
                hashed.update(chunk)
                out.write(chunk)
                size += len(chunk)
    except OSError as exc:
        raise SaveError(f"cannot decompress layer {descriptor.digest}: {one_line(exc)}") from None
    actual = "sha256:" + hashed.hexdigest()
    if actual != diff_id:
        raise SaveError(
            f"layer {descriptor.digest} of image {top.digest} decompresses to {actual}, not"
            f" the diff_id {diff_id} its config lists; rebuild the image"
        )
    return Layer(diff_id, size, target, "")


def chunks(
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
                    raise SaveError(f"cannot decompress {what}: {one_line(exc)}") from None
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
                raise SaveError(f"cannot decompress {what}: {one_line(exc)}") from None
            if not chunk:
                return
            yield chunk
