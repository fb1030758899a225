"""verify --remote: every image this workspace pushed, asked of its registries again: its
manifests (by digest, and each tag) and every blob they need, with a HEAD each. What is
missing is named, one line each, and the push record of that image is dropped, so that
the next --push sends the image again (what the registry has already costs a HEAD).
"""

from __future__ import annotations

from doit_oci.registry import oci, reference
from doit_oci.registry.errors import RegistryError
from doit_oci.registry.push import collect
from doit_oci.rules.steps.records import PushRecord, RecordError
from doit_oci.rules.steps.run import Run


def _descriptor(run: Run, digest: str) -> oci.Descriptor:
    """A pushed image's top descriptor, from the store (its media type from the document)."""
    data = run.layout.read(digest)
    media_type = str(oci.parse_json_document(data, digest).get("mediaType") or oci.MANIFEST)
    return oci.Descriptor(media_type, digest, len(data))


def _missing(run: Run, ref: str, digest: str) -> list[str]:
    """What the registry of ``ref`` lacks of the image ``digest`` pushed there."""
    parsed = reference.parse(ref)
    client = run.clients.get(parsed.registry)
    where = f"{parsed.registry}/{parsed.path}"
    image = collect(run.layout, _descriptor(run, digest))
    gone = []
    head = client.head_manifest(parsed.path, parsed.tag or "latest")
    if head is None or head.digest != digest:
        gone.append(f"{ref} does not name {digest} in the registry")
    for descriptor, _ in image.manifests:
        if client.head_manifest(parsed.path, descriptor.digest) is None:
            gone.append(f"manifest {descriptor.digest} of {ref} is missing from {where}")
    for blob in image.blobs:
        if not client.blob_exists(parsed.path, blob.digest):
            gone.append(f"blob {blob.digest} of {ref} is missing from {where}")
    return gone


def verify_remote(run: Run) -> tuple[list[str], int]:
    """The lines to print and how many things are missing from the registries."""
    folder = run.records / "push"
    lines: list[str] = []
    missing = 0
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            record = PushRecord.read(path)
        except (OSError, RecordError):
            continue
        broken = _check(run, record, lines)
        missing += broken
        if broken:
            path.unlink(missing_ok=True)  # the next push sends it again
    if not missing:
        lines.append("verify: every pushed image is whole in its registries")
    return lines, missing


def _check(run: Run, record: PushRecord, lines: list[str]) -> int:
    broken = 0
    for ref, digest in record.pushed:
        try:
            gone = _missing(run, ref, digest)
        except (OSError, ValueError) as exc:
            gone = [f"{ref}: cannot check it ({exc}): push it again"]
        except RegistryError as exc:
            gone = [str(exc)]
        lines.extend(f"verify: {line}" for line in gone)
        broken += len(gone)
    return broken
