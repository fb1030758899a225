"""attach:<image>: what is attached to an image pushed, in every repository it was pushed
to: its SBOMs (one per platform, about that platform's manifest), its SLSA provenance
(about the image: the index for several platforms) and cosign's signatures of the image,
of each platform's manifest and of each thing attached. SBOMs and provenance are OCI 1.1
referrers (registry.referrers), never entries of the image's index; signatures are
stored as cosign stores them (registry.signatures). attach/<label>.json records it all.

Up to date when the push record, the image records, the SBOMs, the Dockerfiles, the base
records and the key file are unchanged (doit's file check) and so are the options.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from doit_oci.registry import oci
from doit_oci.registry.push import Destination
from doit_oci.registry.referrers import Artifact, add_referrers, put_artifact
from doit_oci.registry.signatures import add_signature, payload
from doit_oci.rules import about, provenance
from doit_oci.rules.annotations import CREATED, created_at
from doit_oci.rules.digests import file_digest
from doit_oci.rules.sbom import SPDX_JSON, oci_purl
from doit_oci.rules.sign import Signer, load_signer
from doit_oci.rules.steps.base import base_of
from doit_oci.rules.steps.layout import image_descriptor
from doit_oci.rules.steps.records import ImageRecord
from doit_oci.rules.steps.run import Run
from doit_oci.rules.steps.sbom import sbom_path
from doit_oci.rules.steps.shipped import Attached, AttachRecord
from doit_oci.rules.units import Output

if TYPE_CHECKING:  # httpx and the client are imported only when a registry is used
    pass

PARALLEL = 8  # requests in flight at once: the client's connection pool


def record_path(run: Run, label: str) -> Path:
    return run.records / "attach" / f"{label}.json"


def _display(path: Path, workspace: Path) -> str:
    try:
        return str(path.relative_to(workspace))
    except ValueError:
        return str(path)


def dependencies(run: Run, output: Output) -> list[provenance.Dependency]:
    """The bases (by digest), the git commit and every Dockerfile (by digest)."""
    found: dict[str, provenance.Dependency] = {}
    for unit in run.units_of(output):
        below = base_of(run, unit).described()
        if below is not None:
            uri = oci_purl(below[0], below[1], unit.platform)
            found[uri] = provenance.Dependency(uri, provenance.digest_map(below[1]), below[0])
        dockerfile = unit.image.dockerfile
        shown = _display(dockerfile, run.workspace)
        digest = provenance.digest_map(file_digest(dockerfile))
        found[shown] = provenance.Dependency(shown, digest, "Dockerfile")
    source = run.build.source
    if source is not None:
        uri = f"git+{source.url}" if source.url else "git"
        found[uri] = provenance.Dependency(uri, (("gitCommit", source.revision),), "source")
    return [found[key] for key in sorted(found)]


def parameters(run: Run, output: Output, where: Sequence[Destination]) -> dict[str, Any]:
    options = run.options
    return {
        "plan": run.build.plans[0].path,
        "image": output.label,
        "targets": sorted({o.name for o in run.build.outputs}),
        "platforms": [str(unit.platform) for unit in run.units_of(output)],
        "tags": list(output.tags),
        "repositories": [d.name for d in where],
        "buildArgs": dict(options.build_args),
        "annotations": dict(options.annotations),
    }


def statement(run: Run, output: Output, top: oci.Descriptor, where: Sequence[Destination]) -> bytes:
    manifests = [ImageRecord.read(unit.image_record).manifest for unit in run.units_of(output)]
    digests = [top.digest] + ([m.digest for m in manifests] if len(manifests) > 1 else [])
    subjects = [(d.name, digest) for d in where for digest in digests]
    return provenance.statement(
        subjects, parameters(run, output, where), dependencies(run, output), about.version()
    )


def _artifacts(
    run: Run, output: Output, top: oci.Descriptor, where: Sequence[Destination]
) -> list[tuple[str, str, Artifact]]:
    """(kind, platform, artifact) of everything attached to ``output`` but signatures."""
    created = ((CREATED, created_at(run.options.epoch)),)
    found = []
    if run.options.sbom:
        for unit in run.units_of(output):
            manifest = ImageRecord.read(unit.image_record).manifest
            path = sbom_path(run, unit)
            document = path.read_bytes()
            artifact = Artifact(SPDX_JSON, document, manifest, created, path.name)
            found.append(("sbom", str(unit.platform), artifact))
    if run.options.provenance:
        document = statement(run, output, top, where)
        artifact = Artifact(provenance.IN_TOTO, document, top, created, "provenance.json")
        found.append(("provenance", "", artifact))
    return found


def attach_to(
    run: Run,
    destination: Destination,
    artifacts: Sequence[tuple[str, str, Artifact]],
    signed: Sequence[str],
    signer: Signer | None,
) -> list[Attached]:
    """Attach ``artifacts`` in ``destination``'s repository and sign ``signed`` and each
    artifact, all side by side: an artifact's manifest digest is known before it is sent,
    so its signature need not wait for it. Then each subject's referrers index (where the
    registry keeps none) gets the artifacts about it, in one read and one write."""
    client = run.clients.get(destination.registry)
    repository, name = destination.repository, destination.name
    digests = [*signed, *(artifact.descriptor.digest for _, _, artifact in artifacts)]

    def sign(digest: str) -> Attached:
        assert signer is not None
        text = payload(name, digest)
        tag, sig = add_signature(client, repository, digest, text, signer.sign(text))
        return Attached("signature", digest, f"{name}:{tag}", sig)

    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        put = [pool.submit(put_artifact, client, repository, a) for _, _, a in artifacts]
        signing = [pool.submit(sign, digest) for digest in digests] if signer else []
        unlisted: dict[str, list[oci.Descriptor]] = {}
        for (_, _, artifact), future in zip(artifacts, put, strict=True):
            if not future.result():
                unlisted.setdefault(artifact.subject.digest, []).append(artifact.descriptor)
        indexes = [
            pool.submit(add_referrers, client, repository, subject, descriptors)
            for subject, descriptors in unlisted.items()
        ]
        found = [
            Attached(
                kind, a.subject.digest, f"{name}@{a.descriptor.digest}", a.descriptor.digest, p
            )
            for kind, p, a in artifacts
        ]
        found.extend(future.result() for future in signing)
        for future in indexes:
            future.result()
    return found


def attach_all(run: Run, output: Output, label: str, where: Sequence[Destination]) -> None:
    """Attach to ``output`` in every repository of ``where``, and record it."""
    top = image_descriptor(run, output)
    manifests = [ImageRecord.read(unit.image_record).manifest for unit in run.units_of(output)]
    signer: Signer | None = None
    if run.options.sign_key:
        key = run.options.sign_key
        signer = load_signer(run.workspace / key, key, run.environ)
    artifacts = _artifacts(run, output, top, where)
    signed = [top.digest] + ([m.digest for m in manifests] if len(manifests) > 1 else [])
    attached: list[Attached] = []
    for destination in where:
        attached.extend(attach_to(run, destination, artifacts, signed, signer))
    AttachRecord(tuple(attached)).write(record_path(run, label))


def sign_indexes(run: Run, indexes: Sequence[tuple[Destination, str]]) -> list[str]:
    """push_index's: sign each index made, in its repository (once per digest)."""
    key = run.options.sign_key
    signer = load_signer(run.workspace / key, key, run.environ)
    lines = []
    for destination, digest in dict.fromkeys(indexes):
        client = run.clients.get(destination.registry)
        text = payload(destination.name, digest)
        tag, _ = add_signature(client, destination.repository, digest, text, signer.sign(text))
        lines.append(f"signed {destination.name}@{digest} ({destination.name}:{tag})")
    return lines


def file_deps(run: Run, output: Output) -> list[str]:
    """What attaching reads, for doit's file check."""
    paths: list[Path] = []
    for unit in run.units_of(output):
        paths.append(unit.image_record)
        if run.options.sbom:
            paths.append(sbom_path(run, unit))
        if run.options.provenance:
            paths.append(unit.image.dockerfile)
            record = base_of(run, unit).record
            if record is not None:
                paths.append(record)
    if run.options.sign_key:
        paths.append(run.workspace / run.options.sign_key)
    return sorted({str(path) for path in paths})
