"""An SPDX 2.3 JSON SBOM of one image for one platform, from what the build knows: the
image as the package described, the image it is built on as a package with its
``pkg:oci`` purl, one file per file the image's own layers add (its path in the image,
SHA-256 and the SHA-1 SPDX asks for), and the Go modules a Go binary was built from
(``pkg:golang`` purls). Pure and deterministic: the namespace and every id come from
digests and paths, ``created`` from SOURCE_DATE_EPOCH, so the same inputs give the same
bytes.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from doit_oci.registry import reference
from doit_oci.registry.oci import Platform
from doit_oci.rules.gobuildinfo import BuildInfo, Module

SPDX_JSON = "application/spdx+json"
NOASSERTION = "NOASSERTION"
# the namespace of the documents' UUIDs (uuid5 of a manifest digest)
NAMESPACE = uuid.UUID("5b0f6bd2-4c39-5d4e-9a53-7a1e3ad0c0c1")


@dataclass(frozen=True)
class ImageFile:
    path: str  # in the image, relative to its root
    sha256: str  # "sha256:<hex>"
    sha1: str  # hex
    go: BuildInfo | None = None  # the build info of a Go binary


@dataclass(frozen=True)
class Described:
    """An image: its name (a reference for a registry's), manifest digest and platform."""

    name: str
    digest: str
    platform: Platform


def _hex(digest: str) -> str:
    return digest.partition(":")[2]


def _spdx_id(kind: str, text: str) -> str:
    return f"SPDXRef-{kind}-" + hashlib.sha256(text.encode()).hexdigest()[:32]


def _purl_part(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def oci_purl(name: str, digest: str, platform: Platform) -> str:
    """``pkg:oci/<name>@sha256%3A<hex>?arch=...&repository_url=...&tag=...``."""
    qualifiers = {"arch": platform.architecture, "os": platform.os}
    if platform.variant:
        qualifiers["variant"] = platform.variant
    short = name
    try:
        ref = reference.parse(name)
    except reference.ReferenceError:
        ref = None
    if ref is not None and "/" in name:
        short = ref.path.rsplit("/", 1)[-1]
        qualifiers["repository_url"] = f"{ref.registry}/{ref.path}"
        if ref.tag:
            qualifiers["tag"] = ref.tag
    query = "&".join(
        f"{k}={_purl_part(v).replace('%2F', '/')}" for k, v in sorted(qualifiers.items())
    )
    return f"pkg:oci/{_purl_part(short.rsplit('/', 1)[-1])}@{_purl_part(digest)}?{query}"


def golang_purl(module: Module) -> str:
    path = "/".join(_purl_part(part) for part in module.path.split("/"))
    return f"pkg:golang/{path}" + (f"@{_purl_part(module.version)}" if module.version else "")


def _purl_ref(purl: str) -> list[dict[str, str]]:
    return [
        {"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl}
    ]


def _package(spdx_id: str, name: str, version: str, purl: str, **more: Any) -> dict[str, Any]:
    package: dict[str, Any] = {
        "SPDXID": spdx_id,
        "name": name,
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": False,
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": NOASSERTION,
        "copyrightText": NOASSERTION,
        "externalRefs": _purl_ref(purl),
        **more,
    }
    if version:
        package["versionInfo"] = version
    return package


def _relation(a: str, kind: str, b: str) -> dict[str, str]:
    return {"spdxElementId": a, "relationshipType": kind, "relatedSpdxElement": b}


def spdx_document(
    image: Described,
    base: Described | None,
    files: Sequence[ImageFile],
    created: str,
    tool: str,
) -> bytes:
    """The SBOM's bytes (canonical JSON: sorted keys, two-space indent, a final newline)."""
    image_id = "SPDXRef-Image"
    packages = [
        _package(
            image_id,
            image.name,
            image.digest,
            oci_purl(image.name, image.digest, image.platform),
            filesAnalyzed=bool(files),
            primaryPackagePurpose="CONTAINER",
            checksums=[{"algorithm": "SHA256", "checksumValue": _hex(image.digest)}],
        )
    ]
    relationships = [_relation("SPDXRef-DOCUMENT", "DESCRIBES", image_id)]
    if base is not None:
        base_id = "SPDXRef-Base"
        packages.append(
            _package(
                base_id,
                base.name,
                base.digest,
                oci_purl(base.name, base.digest, base.platform),
                primaryPackagePurpose="CONTAINER",
            )
        )
        relationships.append(_relation(image_id, "DESCENDANT_OF", base_id))
    entries = []
    modules: dict[str, dict[str, Any]] = {}
    for found in sorted(files, key=lambda f: f.path):
        file_id = _spdx_id("File", found.path)
        entries.append(
            {
                "SPDXID": file_id,
                "fileName": "./" + found.path,
                "checksums": [
                    {"algorithm": "SHA1", "checksumValue": found.sha1},
                    {"algorithm": "SHA256", "checksumValue": _hex(found.sha256)},
                ],
                "licenseConcluded": NOASSERTION,
                "copyrightText": NOASSERTION,
            }
        )
        relationships.append(_relation(image_id, "CONTAINS", file_id))
        if found.go is None:
            continue
        main = found.go.main or Module(found.go.path)
        for module, kind in ((main, "GENERATED_FROM"), *((d, "DEPENDS_ON") for d in found.go.deps)):
            purl = golang_purl(module)
            module_id = _spdx_id("Go", purl)
            if module_id not in modules:
                modules[module_id] = _package(
                    module_id, module.path, module.version, purl, primaryPackagePurpose="LIBRARY"
                )
                relationships.append(_relation(image_id, "CONTAINS", module_id))
            relationships.append(_relation(file_id, kind, module_id))
    packages.extend(modules[key] for key in sorted(modules))
    name = f"{image.name} {image.platform}"
    document = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "documentNamespace": "https://spdx.org/spdxdocs/doit-oci/"
        + f"{_purl_part(image.name)}-{uuid.uuid5(NAMESPACE, image.digest)}",
        "creationInfo": {"created": created, "creators": [f"Tool: {tool}"]},
        "packages": packages,
        "files": entries,
        "relationships": relationships,
    }
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False).encode() + b"\n"
