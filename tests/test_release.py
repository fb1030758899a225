"""Ready to ship, against a real registry (Debian's docker-registry 2.8, which has no
referrers API: the tag schema's fallback is used): one push of the example with refs,
metadata, annotations, SBOMs, provenance and signatures (cosign's encrypted key), read
back with skopeo, spdx-tools, in-toto's bindings and openssl; then a no-op run that makes
no request, and a change that attaches anew to the changed image only.

The tests of this module share that push and run in order."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf import json_format
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement
from registries import RunningRegistry, open_registry
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document
from support import Run, copy_example, cosign_key, doit, snapshot

from doit_oci.registry import oci
from doit_oci.registry.client import RegistryClient
from doit_oci.registry.referrers import EMPTY_CONFIG, Artifact, attach, fallback_tag, push_blobs

IMAGES = ("hello", "whoami", "showconfig")  # base: true is built, not given
PASSWORD = "correct horse"
ACCEPT = ", ".join((oci.MANIFEST, oci.INDEX))


@dataclass
class Released:
    workspace: Path
    registry: RunningRegistry
    hub: str
    args: tuple[str, ...]
    env: dict[str, str]
    first: Run
    public_key: Path
    other_key: Path
    revision: str

    def ok(self, *extra: str) -> Run:
        run = doit(self.workspace, *self.args, *extra, env=self.env)
        assert run.code == 0 and "Traceback" not in run.text, run.text
        return run


def git(folder: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e.x", "HOME": str(folder)}
    env.update(GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@e.x", PATH="/usr/bin:/bin")
    done = subprocess.run(
        ["git", "-C", str(folder), *args], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def public_pem(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path.write_bytes(pem)
    return path


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Released]:
    root = tmp_path_factory.mktemp("release")
    workspace = copy_example(root / "ws")
    plan = workspace / "plans/images.yaml"
    plan.write_text("annotations:\n  org.example.team: core\n" + plan.read_text())
    git(workspace, "init", "-q")
    git(workspace, "add", ".")
    git(workspace, "commit", "-q", "-m", "the example")
    git(workspace, "remote", "add", "origin", "https://bot:s3cret@git.example.com/team/ex.git")
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (root / "cosign.key").write_text(cosign_key(der, PASSWORD))
    public = public_pem(key, root / "cosign.pub")
    other = public_pem(ec.generate_private_key(ec.SECP256R1()), root / "other.pub")
    with open_registry(root / "registry") as registry:
        hub = f"{registry.host}/team"
        args = (
            "build_images", "--push", "--hub", hub, "--tag", "1.0,stable",
            "--annotation=org.example.k=v", "--sbom", "--provenance",
            "--sign-key", str(root / "cosign.key"),
            "--image-refs", "release/refs.txt", "--metadata-file", "release/meta.json",
        )  # fmt: skip
        env = {"COSIGN_PASSWORD": PASSWORD}
        first = doit(workspace, *args, env=env)
        assert first.code == 0, first.text
        revision = git(workspace, "rev-parse", "HEAD")
        yield Released(workspace, registry, hub, args, env, first, public, other, revision)


def skopeo(*args: str) -> str:
    done = subprocess.run(
        ["skopeo", *args], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def get(released: Released, repository: str, what: str, reference: str) -> httpx.Response:
    """A GET of the registry, as a client of the tests (not doit-oci's)."""
    url = f"{released.registry.url}/v2/{repository}/{what}/{reference}"
    return httpx.get(url, headers={"Accept": ACCEPT}, timeout=10)


def metadata(released: Released) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((released.workspace / "release/meta.json").read_text())
    return data


def referrers(released: Released, repository: str, digest: str) -> list[dict[str, Any]]:
    answer = get(released, repository, "manifests", fallback_tag(digest))
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["manifests"]
    return found


def test_the_refs_file_gives_what_skopeo_sees_for_every_tag(released: Released) -> None:
    lines = (released.workspace / "release/refs.txt").read_text().splitlines()
    assert sorted(lines) == lines and len(lines) == len(IMAGES)
    for line in lines:
        repository, _, digest = line.partition("@")
        for tag in ("1.0", "stable"):
            seen = json.loads(
                skopeo("inspect", "--tls-verify=false", f"docker://{repository}:{tag}")
            )
            assert seen["Digest"] == digest, line
    found = metadata(released)
    assert sorted(found) == sorted(IMAGES)
    hello = found["hello"]
    assert hello["references"] == [f"{released.hub}/hello:1.0", f"{released.hub}/hello:stable"]
    assert f"{released.hub}/hello@{hello['digest']}" in lines
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{released.hub}/hello:1.0")
    assert hello["size"] == len(raw.encode()) and hello["mediaType"] == oci.MANIFEST
    (platform,) = hello["platforms"]
    assert platform["manifest"] == hello["digest"]
    assert platform["config"] == json.loads(raw)["config"]["digest"]
    assert platform["base"]["reference"] == "base"
    record = json.loads((released.workspace / "out/build/linux_amd64/base/image.json").read_text())
    assert platform["base"]["digest"] == record["manifest"]["digest"]
    kinds = sorted(item["kind"] for item in hello["attached"])
    assert kinds == ["provenance", "sbom", "signature", "signature", "signature"]


def test_annotations_read_back_with_skopeo(released: Released) -> None:
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{released.hub}/hello:1.0")
    assert json.loads(raw)["annotations"] == {
        "org.opencontainers.image.created": "1970-01-01T00:00:00Z",
        "org.opencontainers.image.source": "https://git.example.com/team/ex.git",  # no secret
        "org.opencontainers.image.revision": released.revision,
        "org.example.team": "core",  # the plan's
        "org.example.k": "v",  # the command line's
    }


def _artifact(released: Released, repository: str, subject: str, kind: str) -> tuple[Any, bytes]:
    (entry,) = [e for e in referrers(released, repository, subject) if e["artifactType"] == kind]
    manifest = get(released, repository, "manifests", entry["digest"]).json()
    assert manifest["subject"]["digest"] == subject
    assert manifest["artifactType"] == kind
    assert manifest["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
    (layer,) = manifest["layers"]
    blob = get(released, repository, "blobs", layer["digest"]).content
    assert "sha256:" + hashlib.sha256(blob).hexdigest() == layer["digest"]
    return manifest, blob


def test_the_sbom_validates_and_names_each_files_sha256(released: Released) -> None:
    digest = metadata(released)["hello"]["digest"]
    _, document = _artifact(released, "team/hello", digest, "application/spdx+json")
    path = released.workspace / "out/sbom/hello.spdx.json"
    assert document == path.read_bytes()
    assert validate_full_spdx_document(parse_file(str(path))) == []
    sbom = json.loads(document)
    (binary,) = sbom["files"]
    assert binary["fileName"] == "./usr/local/bin/hello"
    built = (released.workspace / "out/linux_amd64/hello").read_bytes()
    checksums = {c["algorithm"]: c["checksumValue"] for c in binary["checksums"]}
    assert checksums == {
        "SHA256": hashlib.sha256(built).hexdigest(),
        "SHA1": hashlib.sha1(built).hexdigest(),
    }
    (base,) = [p for p in sbom["packages"] if p["SPDXID"] == "SPDXRef-Base"]
    base_digest = metadata(released)["hello"]["platforms"][0]["base"]["digest"]
    assert base["externalRefs"][0]["referenceLocator"].startswith(
        f"pkg:oci/base@sha256%3A{base_digest[7:]}?"
    )


def test_the_provenance_parses_with_in_totos_bindings(released: Released) -> None:
    digest = metadata(released)["hello"]["digest"]
    _, document = _artifact(released, "team/hello", digest, "application/vnd.in-toto+json")
    parsed = json_format.Parse(document, statement_pb2.Statement())
    Statement.copy_from_pb(parsed).validate()
    seen = json.loads(
        skopeo("inspect", "--tls-verify=false", f"docker://{released.hub}/hello:stable")
    )
    assert [(s.name, "sha256:" + s.digest["sha256"]) for s in parsed.subject] == [
        (f"{released.hub}/hello", seen["Digest"])
    ]
    predicate = json.loads(document)["predicate"]
    dependencies = {
        d["uri"]: d["digest"] for d in predicate["buildDefinition"]["resolvedDependencies"]
    }
    assert dependencies["git+https://git.example.com/team/ex.git"] == {
        "gitCommit": released.revision
    }
    dockerfile = (released.workspace / "example/hello/Dockerfile").read_bytes()
    assert dependencies["example/hello/Dockerfile"] == {
        "sha256": hashlib.sha256(dockerfile).hexdigest()
    }
    parameters = predicate["buildDefinition"]["externalParameters"]
    assert parameters["tags"] == ["1.0", "stable"] and parameters["plan"] == "plans/images.yaml"


def verify(released: Released, repository: str, digest: str, key: Path) -> bool:
    """As cosign verifies: the .sig manifest's payload names ``digest`` and the
    repository, and its signature verifies with ``key`` (openssl)."""
    answer = get(released, repository, "manifests", fallback_tag(digest) + ".sig")
    if answer.status_code == 404:
        return False
    (layer,) = answer.json()["layers"]
    assert layer["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
    payload = get(released, repository, "blobs", layer["digest"]).content
    critical = json.loads(payload)["critical"]
    assert critical["image"]["docker-manifest-digest"] == digest
    assert critical["identity"]["docker-reference"] == f"{released.registry.host}/{repository}"
    assert critical["type"] == "cosign container image signature"
    folder = released.workspace.parent
    (folder / "payload").write_bytes(payload)
    signature = layer["annotations"]["dev.cosignproject.cosign/signature"]
    (folder / "signature").write_bytes(base64.b64decode(signature))
    done = subprocess.run(
        ["openssl", "dgst", "-sha256", "-verify", str(key), "-signature",
         str(folder / "signature"), str(folder / "payload")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0 or "Verification failure" in done.stdout + done.stderr, done
    return done.returncode == 0 and done.stdout.strip() == "Verified OK"


def test_signatures_verify_with_the_public_key_only(released: Released) -> None:
    found = metadata(released)
    for name in IMAGES:
        assert verify(released, f"team/{name}", found[name]["digest"], released.public_key)
        assert not verify(released, f"team/{name}", found[name]["digest"], released.other_key)
    for item in found["hello"]["attached"]:  # the SBOM's and the provenance's too
        if item["kind"] != "signature":
            assert verify(released, "team/hello", item["digest"], released.public_key)


def test_a_no_op_makes_no_request_and_rewrites_nothing(released: Released) -> None:
    before = snapshot(released.workspace / "out"), snapshot(released.workspace / "release")
    requests = len(released.registry.access_log())
    again = released.ok()
    assert again.executed == []
    assert len(released.registry.access_log()) == requests
    assert (
        snapshot(released.workspace / "out"),
        snapshot(released.workspace / "release"),
    ) == before


def test_a_change_attaches_anew_to_that_image_only(released: Released) -> None:
    source = released.workspace / "example/src/hello.c"
    source.write_text(source.read_text().replace('"hello"', '"bonjour"'))
    old = metadata(released)
    requests = len(released.registry.access_log())
    run = released.ok()
    assert {"attach:hello", "release", "sbom:hello"} <= set(run.executed)
    assert not {"attach:whoami", "attach:showconfig", "sbom:whoami"} & set(run.executed)
    puts = {
        e.path.split("/")[3] for e in released.registry.access_log()[requests:] if e.method == "PUT"
    }
    assert puts == {"hello"}
    new = metadata(released)
    assert new["hello"]["digest"] != old["hello"]["digest"]
    assert {k: v for k, v in new.items() if k != "hello"} == {
        k: v for k, v in old.items() if k != "hello"
    }
    assert verify(released, "team/hello", new["hello"]["digest"], released.public_key)
    refs = (released.workspace / "release/refs.txt").read_text()
    assert f"{released.hub}/hello@{new['hello']['digest']}\n" in refs


def test_an_unsigned_image_does_not_verify(released: Released) -> None:
    # last: it builds the images again without the annotation option
    hub = f"{released.registry.host}/plain"
    unsigned = doit(released.workspace, "build_images", "--push", "--hub", hub)
    assert unsigned.code == 0, unsigned.text
    plain = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{hub}/hello"))["Digest"]
    assert not verify(released, "plain/hello", plain, released.public_key)


def test_the_fallback_index_keeps_another_tools_referrers(registry: RunningRegistry) -> None:
    client = RegistryClient(registry.host)
    subject_bytes = oci.Manifest(oci.describe(oci.EMPTY, EMPTY_CONFIG), ()).to_bytes()
    push_blobs(client, "x/app", [EMPTY_CONFIG])
    subject = oci.describe(oci.MANIFEST, subject_bytes)
    client.put_manifest("x/app", subject.digest, subject_bytes, oci.MANIFEST)
    theirs = Artifact("application/vnd.example.scan+json", b'{"ok":1}', subject)
    push_blobs(client, "x/app", [theirs.document])
    client.put_manifest("x/app", theirs.descriptor.digest, theirs.manifest_bytes, oci.MANIFEST)
    index = {"schemaVersion": 2, "mediaType": oci.INDEX, "manifests": [
        {**theirs.descriptor.to_json(), "annotations": {"com.example.tool": "scanner"}}
    ]}  # fmt: skip
    client.put_manifest(
        "x/app", fallback_tag(subject.digest), json.dumps(index).encode(), oci.INDEX
    )
    ours = attach(client, "x/app", Artifact("application/spdx+json", b"{}", subject))
    again = attach(client, "x/app", Artifact("application/spdx+json", b"{}", subject))
    data, _, _ = client.get_manifest("x/app", fallback_tag(subject.digest))
    entries = json.loads(data)["manifests"]
    assert [e["digest"] for e in entries] == [theirs.descriptor.digest, ours.digest]
    assert entries[0]["annotations"] == {"com.example.tool": "scanner"}  # kept as it was
    assert again == ours


def test_a_registry_base_is_named_in_the_annotations(
    tmp_path: Path, registry: RunningRegistry
) -> None:
    from test_same_digests import BASE_PLAN, ON_BASE

    workspace = copy_example(tmp_path / "ws")
    bases = f"{registry.host}/bases"
    pushed = doit(workspace, "build_images", "--targets", "base", "--push", "--hub", bases)
    assert pushed.code == 0, pushed.text
    (workspace / "example/onbase").mkdir()
    (workspace / "example/onbase/Dockerfile").write_text(ON_BASE.format(base=f"{bases}/base"))
    (workspace / "plans/onbase.yaml").write_text(BASE_PLAN)
    hub = f"{registry.host}/apps"
    run = doit(
        workspace, "build_images", "--plan", "plans/onbase.yaml", "--push", "--hub", hub, "--sbom"
    )
    assert run.code == 0, run.text
    base = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{bases}/base"))["Digest"]
    raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{hub}/onbase"))
    annotations = raw["annotations"]
    assert annotations["org.opencontainers.image.base.name"] == f"{bases}/base:latest"
    assert annotations["org.opencontainers.image.base.digest"] == base
    sbom = json.loads((workspace / "out/sbom/onbase.spdx.json").read_text())
    (package,) = [p for p in sbom["packages"] if p["SPDXID"] == "SPDXRef-Base"]
    assert package["name"] == f"{bases}/base:latest"
    assert package["externalRefs"][0]["referenceLocator"].startswith(
        f"pkg:oci/base@sha256%3A{base[7:]}?arch=amd64&os=linux&repository_url="
    )
