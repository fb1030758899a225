"""The digests doit-oci gives, pinned: a change to how the code is cut must not change them.

Recorded at commit 9d9f02d (before the core was cut into steps, issue 12), on inputs that
depend on nothing but this repository: the example's Dockerfiles and files, with fixed
bytes in place of the binaries make would compile (a compiler or C library update must
not move these digests), built with SKIP_MAKE. Each way in is covered: this repository's
plan (one and two platforms, variants, every compression), --save archives, a registry
base, and a project of its own used through a plan dodo.py, Python rules and
pyproject.toml alone.

``DOIT_OCI_RECORD=1 pytest tests/test_same_digests.py -s`` prints what a run gives, to
record anew after a change that is meant to move digests (say why in the commit).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from registries import RunningRegistry
from support import copy_example, doit, index_of

RECORD = os.environ.get("DOIT_OCI_RECORD") == "1"
PROGRAMS = ("hello", "whoami", "showconfig")


def fake_binaries(workspace: Path, arch: str) -> None:
    """What make would leave in out/linux_<arch>/, as fixed bytes."""
    out = workspace / "out" / f"linux_{arch}"
    (out / "rootfs" / "tmp").mkdir(parents=True, exist_ok=True)
    os.chmod(out / "rootfs" / "tmp", 0o1777)
    for name in PROGRAMS:
        path = out / name
        path.write_bytes(f"#!/bin/sh\necho {name} for {arch}\n".encode() * 100)
        os.chmod(path, 0o755)


def check(label: str, found: dict[str, str], pinned: dict[str, str]) -> None:
    if RECORD:
        print(f"\n{label} = {json.dumps(found, indent=4, sort_keys=True)}")
        return
    assert found == pinned, label


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


EXAMPLE = {
    "base:latest": "sha256:55ba68731a736372dd9255bae86a379deea95a0db4d0b65319ea06ba3bb51fdf",
    "hello:latest": "sha256:5fa1319f3ac2bac3a8f513e85e375d6a9eb7af755928a2208231e5a004a65d1a",
    "showconfig:latest": "sha256:b53ac9e67d712dde4664b1ab3b57a106e95fd5d7701d3fc248ca2322662acd26",
    "whoami:latest": "sha256:a948d5a2601a36e590331c6e41dec72464d3460c94ce5098e9404b6e92c581fd",
}
EXAMPLE_TWO_PLATFORMS = {
    "hello:1.0": "sha256:c01c2099b75518bd59e6d2af85f53f6be07a1036fd14fa596f3a96fb45dbf632",
    "hello:1.0-distroless": "sha256:4b7f4096eb71fc0efb55983752c14d1bb149a35717f1cb0d2a98487d7ccf2c3a",
    "hello:dev": "sha256:c01c2099b75518bd59e6d2af85f53f6be07a1036fd14fa596f3a96fb45dbf632",
    "hello:dev-distroless": "sha256:4b7f4096eb71fc0efb55983752c14d1bb149a35717f1cb0d2a98487d7ccf2c3a",
    "showconfig:1.0": "sha256:647fb4720b7ecddd42bb89ad6faceabaf57a44dd534b64115d4ef99775b841fe",
    "showconfig:1.0-distroless": "sha256:b98ea524d35cdcaa74db7675eae4fd42b4869390ae21b96ddc35ebe37fe80fd4",
    "showconfig:dev": "sha256:647fb4720b7ecddd42bb89ad6faceabaf57a44dd534b64115d4ef99775b841fe",
    "showconfig:dev-distroless": "sha256:b98ea524d35cdcaa74db7675eae4fd42b4869390ae21b96ddc35ebe37fe80fd4",
    "whoami:1.0": "sha256:544374bfed41e1c0b25e2bf260f5193f7f2c0a270d0b924b04317c59cb643a1a",
    "whoami:1.0-distroless": "sha256:9e0072af15ed5bfb6b79981758de5d45a09ca82b262873c49e947f9f0490fb22",
    "whoami:dev": "sha256:544374bfed41e1c0b25e2bf260f5193f7f2c0a270d0b924b04317c59cb643a1a",
    "whoami:dev-distroless": "sha256:9e0072af15ed5bfb6b79981758de5d45a09ca82b262873c49e947f9f0490fb22",
}
EXAMPLE_ZSTD = {
    "hello:latest-distroless": "sha256:a9ca3ea58fb82783b78b1c34be0c5e481e3a45ddb41742857743b96f9187d88c",
    "showconfig:latest-distroless": "sha256:5cd32980836fc97f6c3ea45fbf91fa8f0e36cc135bdc37420d9bd40f7c931a91",
    "whoami:latest-distroless": "sha256:24a1bdeae5370245c998fc8e88e4591e749419bd9f82bac3f9a97e4fd1c03c6b",
}
SAVED = {
    "hello-arm64.tar.gz": "sha256:a8a4e6c74291208931a93a95637005e9a0a339cd1ee10195ed7defaabaa41b8b",
    "hello.oci.tar": "sha256:14ddf310c50bf34a7cedfa0d7a88a077c644ebde5f1eb9e5a8891f9310a99301",
    "hello.tar.gz": "sha256:8be92283080d2c9513ede4dc91b87b1a3fcbe876d65856e516224538ffb49ee3",
    "showconfig-arm64.tar.gz": "sha256:14d956b539a92486c84b7310144d849549a0c9b0b782321db9fb6c7203608b3a",
    "showconfig.oci.tar": "sha256:431e10531b4b3369d40b13e1f634a2c1264ca39965f6142464d6a71c39f34e00",
    "showconfig.tar.gz": "sha256:0c750d9fe1c07f3486a5efb2902e24fb358402dc48ee6d9de4b4376751d70720",
    "whoami-arm64.tar.gz": "sha256:ee9651a3367f8aa14ca30f460c1f3f4404f6217429987a5a85835335f9704c91",
    "whoami.oci.tar": "sha256:f23b61d645867d4a3c0d4c94c639de017b6b2315e99b058578ca810998963bbb",
    "whoami.tar.gz": "sha256:9d9b1f24abb3294df85e40243928e712c642e5fa4fb8e30f09baa9ada6652c50",
}
REGISTRY_BASE = {
    # moved on purpose (issue 13, item 11): the base's tree is read from its layers, so the
    # layer declares the directories above what it holds and WORKDIR makes /srv, as BuildKit
    # does (was sha256:5ab455627b71a7224e243225c4e5f8283c4a551a0eedb757cf0c799acc25086c)
    "onbase:latest": "sha256:dbeb69125d5063e45745c9f11f244b8513a8f3b354d616efe02aeb6a66f071e1"
}
THREE_WAYS = {
    "index app-amd64:latest": "sha256:6417415a76feeb8e456f778681c29c5ad55b638d3db48d4a8fc314859f3cc1bf",
    "index app-arm64:latest": "sha256:8cafe7ef6edfdaad4f4ed91d7ad938ae23eeb182fdcd08cd29c07a05aee07075",
    "index app:1.0": "sha256:7fab4dc5864fd96958e6ca21011d4b40959b56b28499552d9b08f329a65a3f52",
    "index base:latest": "sha256:d23b5ff9e186920d03cb183c4150a8e60c8dac4c91ed5938a84d066db277edbc",
    "plan app:latest": "sha256:6417415a76feeb8e456f778681c29c5ad55b638d3db48d4a8fc314859f3cc1bf",
    "python app:latest": "sha256:6417415a76feeb8e456f778681c29c5ad55b638d3db48d4a8fc314859f3cc1bf",
    "python base:latest": "sha256:01043cb1d570f77402f002582c4d971ab15918473d480ba97d67a39dd167c4ea",
    "python tool:latest": "sha256:833225978ac45228bba4ec3d1a4e98a8341732f6e5e8c5ce2ab9616713b4fba5",
    "yaml app:latest": "sha256:6417415a76feeb8e456f778681c29c5ad55b638d3db48d4a8fc314859f3cc1bf",
}


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = copy_example(tmp_path / "ws")
    fake_binaries(root, "amd64")
    fake_binaries(root, "arm64")
    return root


SKIP = {"SKIP_MAKE": "true"}


def test_the_example(workspace: Path) -> None:
    run = doit(workspace, "build_images", "--targets", "hello,whoami,showconfig,base", env=SKIP)
    assert run.code == 0, run.text
    check("EXAMPLE", index_of(workspace), EXAMPLE)


def test_the_example_for_two_platforms_and_variants_gzip(workspace: Path) -> None:
    run = doit(
        workspace,
        "build_images",
        "--architectures",
        "linux/amd64,linux/arm64",
        "--variants",
        "default,distroless",
        "--tag",
        "1.0,dev",
        "--compression",
        "gzip",
        env={**SKIP, "SOURCE_DATE_EPOCH": "1700000000"},
    )
    assert run.code == 0, run.text
    check("EXAMPLE_TWO_PLATFORMS", index_of(workspace), EXAMPLE_TWO_PLATFORMS)


def test_the_example_zstd_with_build_args(workspace: Path) -> None:
    run = doit(
        workspace,
        "build_images",
        "--compression",
        "zstd",
        "--build-arg=GREETING=bonjour",
        "--variants",
        "distroless",
        env=SKIP,
    )
    assert run.code == 0, run.text
    check("EXAMPLE_ZSTD", index_of(workspace), EXAMPLE_ZSTD)


def test_saved_archives(workspace: Path) -> None:
    run = doit(
        workspace,
        "build_images",
        "--save",
        "--architectures",
        "linux/amd64,linux/arm64",
        "--hub",
        "gcr.io/istio-testing",
        "--tag",
        "1.2",
        env=SKIP,
    )
    assert run.code == 0, run.text
    folder = workspace / "out" / "release" / "docker"
    found = {path.name: sha256(path) for path in sorted(folder.iterdir())}
    check("SAVED", found, SAVED)


BASE_PLAN = """\
images:
- name: onbase
  dockerfile: example/onbase/Dockerfile
  targets: ['${TARGET_OUT_LINUX}/hello']
"""
ON_BASE = """\
ARG TARGETARCH
FROM {base}
ARG TARGETARCH
COPY ${{TARGETARCH}}/hello /usr/local/bin/onbase
WORKDIR /srv
ENTRYPOINT ["/usr/local/bin/onbase"]
"""


def test_an_image_on_a_registry_base(workspace: Path, registry: RunningRegistry) -> None:
    pushed = doit(
        workspace,
        "build_images",
        "--targets",
        "base",
        "--push",
        "--hub",
        f"{registry.host}/bases",
        "--tag",
        "7",
        env=SKIP,
    )
    assert pushed.code == 0, pushed.text
    (workspace / "example" / "onbase").mkdir()
    (workspace / "example" / "onbase" / "Dockerfile").write_text(
        ON_BASE.format(base=f"{registry.host}/bases/base:7")
    )
    (workspace / "plans" / "onbase.yaml").write_text(BASE_PLAN)
    run = doit(workspace, "build_images", "--plan", "plans/onbase.yaml", env=SKIP)
    assert run.code == 0, run.text
    found = {k: v for k, v in index_of(workspace).items() if k.startswith("onbase")}
    check("REGISTRY_BASE", found, REGISTRY_BASE)


def test_the_three_ways(tmp_path: Path) -> None:
    from test_three_ways import INDEX_DODO, project, refs, run

    found: dict[str, str] = {}
    for way in ("plan", "python", "yaml"):
        root = project(tmp_path / way, way)
        task = {"plan": "oci_images", "python": "oci_images", "yaml": "build_images"}[way]
        result = run(root, task)
        assert result.code == 0, result.text
        found.update({f"{way} {name}": digest for name, digest in refs(root).items()})
    root = project(tmp_path / "index", "python")
    (root / "dodo.py").write_text(INDEX_DODO)
    env = {"DOCKER_ARCHITECTURES": "linux/amd64,linux/arm64"}
    result = run(root, "oci_images", "index:app", env=env)
    assert result.code == 0, result.text
    found.update({f"index {name}": digest for name, digest in refs(root).items()})
    check("THREE_WAYS", found, THREE_WAYS)


def test_pinned_digests_are_checked() -> None:
    # a record left empty would let every test above pass
    for pinned in (EXAMPLE, EXAMPLE_TWO_PLATFORMS, EXAMPLE_ZSTD, SAVED, REGISTRY_BASE, THREE_WAYS):
        assert pinned or RECORD
