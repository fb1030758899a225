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
# Moved on purpose (issue 16): every manifest and index carries the automatic annotations
# (org.opencontainers.image.created from SOURCE_DATE_EPOCH; base.name and base.digest on a
# registry base; no source or revision, these workspaces are no git checkouts). Without
# them (--no-auto-annotations) the images are byte for byte what they were: see
# test_without_automatic_annotations_the_digests_are_the_old_ones. The docker archives
# (*.tar.gz) hold no OCI manifest and did not move.
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
    "base:latest": "sha256:56c8becdb1d22f0d9c98fa16f7f6f61a2f692cf0b2e04dcc6efdc4b33ff7f32b",
    "hello:latest": "sha256:a3fccb70b2c651b6b4456b3d5a25fb44d0592463757f894c2d6d3244429cb375",
    "showconfig:latest": "sha256:128e3b0d2cf48f8013f02e1268c40ebe15e8c137fd1dc1e5cdcc038d40f2de40",
    "whoami:latest": "sha256:e328411e1983376817c664d75eff07748f54538e39f796519f6bcf876ab1c9b5",
}
EXAMPLE_TWO_PLATFORMS = {
    "hello:1.0": "sha256:be21d560c73513aaba7c25fa42f2ad87c2b9b640c3e809125c189c05d3a129c8",
    "hello:1.0-distroless": "sha256:efba014cae2e289cd7a8e6a79996d1de7f65637e67a43490291c11185770bada",
    "hello:dev": "sha256:be21d560c73513aaba7c25fa42f2ad87c2b9b640c3e809125c189c05d3a129c8",
    "hello:dev-distroless": "sha256:efba014cae2e289cd7a8e6a79996d1de7f65637e67a43490291c11185770bada",
    "showconfig:1.0": "sha256:aae3a14d0cd8da3442f47d568c9d301a98853bcf906daa9e0cb334631ed5f5b6",
    "showconfig:1.0-distroless": "sha256:7af913338a71c2c644492d8aabcb2932c72e66cfb348eabd1db1d4d2bc8e99cc",
    "showconfig:dev": "sha256:aae3a14d0cd8da3442f47d568c9d301a98853bcf906daa9e0cb334631ed5f5b6",
    "showconfig:dev-distroless": "sha256:7af913338a71c2c644492d8aabcb2932c72e66cfb348eabd1db1d4d2bc8e99cc",
    "whoami:1.0": "sha256:38acf648bab44fa9301a8376fe5f7963aac88496d302f7aba3c17282914abeb3",
    "whoami:1.0-distroless": "sha256:33c043681332af01ddfc8fa124bb1ae41cd34f3cbd5d7ed0a3a8ac30c9510c2d",
    "whoami:dev": "sha256:38acf648bab44fa9301a8376fe5f7963aac88496d302f7aba3c17282914abeb3",
    "whoami:dev-distroless": "sha256:33c043681332af01ddfc8fa124bb1ae41cd34f3cbd5d7ed0a3a8ac30c9510c2d",
}
EXAMPLE_ZSTD = {
    "hello:latest-distroless": "sha256:57a753c881dfa41cc0c41b9a38ae16c8fdadf5b343bef187ef73556df92a9083",
    "showconfig:latest-distroless": "sha256:524a16df27c1106bf0de55f7925df0c29da9b408fccb08006a5b7d5278672621",
    "whoami:latest-distroless": "sha256:2f285e1686c978f80d4c39777f2d4021d4c9092666fd923d00b2d4c563949b16",
}
SAVED = {
    "hello-arm64.tar.gz": "sha256:a8a4e6c74291208931a93a95637005e9a0a339cd1ee10195ed7defaabaa41b8b",
    "hello.oci.tar": "sha256:456c2191a54c020737741e4ad8fc7247d9a27037b7dfe76a817b0ca2dcc0ba0d",
    "hello.tar.gz": "sha256:8be92283080d2c9513ede4dc91b87b1a3fcbe876d65856e516224538ffb49ee3",
    "showconfig-arm64.tar.gz": "sha256:14d956b539a92486c84b7310144d849549a0c9b0b782321db9fb6c7203608b3a",
    "showconfig.oci.tar": "sha256:847b62ce48623f56df6a5f770e7d115ac5ddac7b57d4e17663d0a1df13b8b4b2",
    "showconfig.tar.gz": "sha256:0c750d9fe1c07f3486a5efb2902e24fb358402dc48ee6d9de4b4376751d70720",
    "whoami-arm64.tar.gz": "sha256:ee9651a3367f8aa14ca30f460c1f3f4404f6217429987a5a85835335f9704c91",
    "whoami.oci.tar": "sha256:1abf84c881baf3c7680530262173a69a7f34ce67b8fb117844079616fdecb344",
    "whoami.tar.gz": "sha256:9d9b1f24abb3294df85e40243928e712c642e5fa4fb8e30f09baa9ada6652c50",
}
REGISTRY_BASE = {
    # moved on purpose (issue 13, item 11): the base's tree is read from its layers, so the
    # layer declares the directories above what it holds and WORKDIR makes /srv, as BuildKit
    # does (was sha256:5ab455627b71a7224e243225c4e5f8283c4a551a0eedb757cf0c799acc25086c).
    # Built with --no-auto-annotations: base.name names the test registry's random port
    "onbase:latest": "sha256:dbeb69125d5063e45745c9f11f244b8513a8f3b354d616efe02aeb6a66f071e1"
}
THREE_WAYS = {
    "index app-amd64:latest": "sha256:899831b49a92a82df43e0004a7efff22114425fbf17cdea7e5da7f6273e98e8d",
    "index app-arm64:latest": "sha256:562d176a9c446aa259954429798607a628557411211c539a910ef318be5c07b7",
    "index app:1.0": "sha256:8b16bf34eb9ab2c1b52ea4cd4fc84fcc98c40103873af648dc9f8ef2816dde02",
    "index base:latest": "sha256:9a35e8d9bb4881c24fed6e0746e455ac484d5fec9f9894f84544349688bb8347",
    "plan app:latest": "sha256:899831b49a92a82df43e0004a7efff22114425fbf17cdea7e5da7f6273e98e8d",
    "python app:latest": "sha256:899831b49a92a82df43e0004a7efff22114425fbf17cdea7e5da7f6273e98e8d",
    "python base:latest": "sha256:acbcd977ab2f793041acf5ebf31414b7122ba6e68f21b34731e65c8b19068b36",
    "python tool:latest": "sha256:bc97c99275c1eb6f924479a9b955ea44d283190d911132af2c8511191b332f09",
    "yaml app:latest": "sha256:899831b49a92a82df43e0004a7efff22114425fbf17cdea7e5da7f6273e98e8d",
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


# EXAMPLE as it was before the automatic annotations (issue 16)
EXAMPLE_WITHOUT_AUTOMATIC_ANNOTATIONS = {
    "base:latest": "sha256:55ba68731a736372dd9255bae86a379deea95a0db4d0b65319ea06ba3bb51fdf",
    "hello:latest": "sha256:5fa1319f3ac2bac3a8f513e85e375d6a9eb7af755928a2208231e5a004a65d1a",
    "showconfig:latest": "sha256:b53ac9e67d712dde4664b1ab3b57a106e95fd5d7701d3fc248ca2322662acd26",
    "whoami:latest": "sha256:a948d5a2601a36e590331c6e41dec72464d3460c94ce5098e9404b6e92c581fd",
}


def test_without_automatic_annotations_the_digests_are_the_old_ones(workspace: Path) -> None:
    run = doit(
        workspace,
        "build_images",
        "--targets",
        "hello,whoami,showconfig,base",
        "--no-auto-annotations",
        env=SKIP,
    )
    assert run.code == 0, run.text
    check(
        "EXAMPLE_WITHOUT_AUTOMATIC_ANNOTATIONS",
        index_of(workspace),
        EXAMPLE_WITHOUT_AUTOMATIC_ANNOTATIONS,
    )


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
    plan = ("--plan", "plans/onbase.yaml")
    run = doit(workspace, "build_images", *plan, "--no-auto-annotations", env=SKIP)
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
    for pinned in (
        EXAMPLE,
        EXAMPLE_WITHOUT_AUTOMATIC_ANNOTATIONS,
        EXAMPLE_TWO_PLATFORMS,
        EXAMPLE_ZSTD,
        SAVED,
        REGISTRY_BASE,
        THREE_WAYS,
    ):
        assert pinned or RECORD
