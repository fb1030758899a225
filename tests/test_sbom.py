"""SBOMs and provenance as documents: the SPDX 2.3 JSON validated with SPDX's own
spdx-tools, the in-toto statement read with in-toto's bindings (strict protobuf JSON,
so an unknown field of SLSA Provenance v1 fails), both deterministic."""

from __future__ import annotations

import json
from pathlib import Path

from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from doit_oci.registry.oci import Platform
from doit_oci.rules import provenance
from doit_oci.rules.gobuildinfo import BuildInfo, Module
from doit_oci.rules.sbom import Described, ImageFile, oci_purl, spdx_document

AMD64 = Platform("linux", "amd64")
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
GO = BuildInfo("go1.22.1", "example.com/app/cmd/app", Module("example.com/app", "v1.0.0"),
               (Module("golang.org/x/sys", "v0.1.0"),))  # fmt: skip
FILES = [
    ImageFile("usr/local/bin/app", "sha256:" + "a" * 64, "b" * 40, GO),
    ImageFile("etc/app.conf", "sha256:" + "c" * 64, "d" * 40),
]


def document(tmp_path: Path, base: Described | None) -> tuple[bytes, list[str]]:
    data = spdx_document(Described("app", D1, AMD64), base, FILES, "1970-01-01T00:00:00Z", "t-1")
    path = tmp_path / "app.spdx.json"
    path.write_bytes(data)
    messages = validate_full_spdx_document(parse_file(str(path)))
    return data, [m.validation_message for m in messages]


def test_an_sbom_passes_spdx_tools_validation(tmp_path: Path) -> None:
    base = Described("registry.example.com:5000/team/base:1.0", D2, AMD64)
    data, problems = document(tmp_path, base)
    assert problems == []
    sbom = json.loads(data)
    files = {f["fileName"]: f for f in sbom["files"]}
    assert sorted(files) == ["./etc/app.conf", "./usr/local/bin/app"]
    assert {c["algorithm"]: c["checksumValue"] for c in files["./etc/app.conf"]["checksums"]} == {
        "SHA1": "d" * 40,
        "SHA256": "c" * 64,
    }
    purls = {p["name"]: p["externalRefs"][0]["referenceLocator"] for p in sbom["packages"]}
    assert purls == {
        "app": f"pkg:oci/app@sha256%3A{'1' * 64}?arch=amd64&os=linux",
        "registry.example.com:5000/team/base:1.0": f"pkg:oci/base@sha256%3A{'2' * 64}?arch=amd64"
        "&os=linux&repository_url=registry.example.com%3A5000/team/base&tag=1.0",
        "example.com/app": "pkg:golang/example.com/app@v1.0.0",
        "golang.org/x/sys": "pkg:golang/golang.org/x/sys@v0.1.0",
    }
    kinds = {(r["spdxElementId"], r["relationshipType"]) for r in sbom["relationships"]}
    assert ("SPDXRef-Image", "DESCENDANT_OF") in kinds and (
        "SPDXRef-DOCUMENT",
        "DESCRIBES",
    ) in kinds
    assert sbom["creationInfo"] == {"created": "1970-01-01T00:00:00Z", "creators": ["Tool: t-1"]}
    again, _ = document(tmp_path, base)
    assert again == data  # the same inputs, the same bytes
    other = spdx_document(Described("app", D2, AMD64), None, FILES, "1970-01-01T00:00:00Z", "t-1")
    assert json.loads(other)["documentNamespace"] != sbom["documentNamespace"]


def test_an_image_on_scratch_without_files(tmp_path: Path) -> None:
    data = spdx_document(Described("empty", D1, AMD64), None, [], "1970-01-01T00:00:00Z", "t")
    path = tmp_path / "empty.spdx.json"
    path.write_bytes(data)
    assert validate_full_spdx_document(parse_file(str(path))) == []
    assert oci_purl("empty", D1, Platform("linux", "arm", "v7")).endswith(
        "arch=arm&os=linux&variant=v7"
    )


def test_provenance_reads_with_in_totos_bindings() -> None:
    dependencies = [
        provenance.Dependency("pkg:oci/base@sha256%3A22", provenance.digest_map(D2), "base"),
        provenance.Dependency("git+https://example.com/r.git", (("gitCommit", "f" * 40),)),
    ]
    parameters = {"plan": "plans/images.yaml", "tags": ["1.0"], "buildArgs": {"A": "1"}}
    data = provenance.statement([("r.io/team/app", D1)], parameters, dependencies, "0.1.0")
    parsed = json_format.Parse(data, statement_pb2.Statement())
    Statement.copy_from_pb(parsed).validate()
    assert [(s.name, dict(s.digest)) for s in parsed.subject] == [
        ("r.io/team/app", {"sha256": "1" * 64})
    ]
    assert parsed.predicate_type == "https://slsa.dev/provenance/v1"
    predicate = json_format.ParseDict(json.loads(data)["predicate"], provenance_pb2.Provenance())
    definition = predicate.build_definition
    assert definition.build_type == provenance.BUILD_TYPE
    assert [d.uri for d in definition.resolved_dependencies] == [
        "pkg:oci/base@sha256%3A22",
        "git+https://example.com/r.git",
    ]
    assert predicate.run_details.builder.version["doit-oci"] == "0.1.0"
    assert data == provenance.statement([("r.io/team/app", D1)], parameters, dependencies, "0.1.0")
