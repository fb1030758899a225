"""Unit tests of pinned bases: the bases.lock format (rules.lock), the options that use it
(--locked, --offline, --architectures all, REGISTRY_MIRRORS) and a plan's mirrors:, the
mirror specs (registry.mirror) and which index entries are platforms (registry.pull)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from doit_oci.registry import oci
from doit_oci.registry.mirror import Mirror, parse_mirrors
from doit_oci.registry.pull import platform_of
from doit_oci.rules.errors import UserError
from doit_oci.rules.lock import Lock, parse_lock, pin, read_lock
from doit_oci.rules.lock import moves as lock_moves
from doit_oci.rules.options import read_options
from doit_oci.rules.plan import load_plan

A, B, C = ("sha256:" + c * 64 for c in "abc")
AMD64, ARM64 = oci.Platform("linux", "amd64"), oci.Platform("linux", "arm64")
BASE = "ghcr.io/x/base:1.2"
LONE = "docker.io/library/debian@" + C


def sample() -> Lock:
    return Lock(
        (
            pin(LONE, "", [(AMD64, C)]),
            pin(BASE, A, [(oci.Platform("linux", "arm64", "v8"), C), (AMD64, B)]),
        )
    )


def test_the_lock_is_sorted_and_reads_back_the_same() -> None:
    text = sample().to_bytes().decode()
    body = text.split("\n", 3)[3]  # after the three comment lines
    assert body == (
        "version: 1\nbases:\n"
        f"- reference: {LONE}\n  platforms:\n    linux/amd64: {C}\n"
        f"- reference: {BASE}\n  index: {A}\n  platforms:\n"
        f"    linux/amd64: {B}\n    linux/arm64: {C}\n"
    )
    assert parse_lock(text, "bases.lock") == sample()
    assert yaml.safe_load(text)["bases"][1]["platforms"] == {"linux/amd64": B, "linux/arm64": C}
    # JSON of the same shape is read as well
    as_json = '{"version": 1, "bases": [{"reference": "%s", "platforms": {"linux/amd64": "%s"}}]}'
    assert parse_lock(as_json % (LONE, C), "bases.lock") == Lock((pin(LONE, "", [(AMD64, C)]),))
    assert Lock().to_bytes().endswith(b"version: 1\nbases: []\n")


def test_a_pin_names_the_digest_and_each_platform() -> None:
    index, lone = sample().get(BASE), sample().get(LONE)
    assert index is not None and lone is not None
    assert (index.digest, lone.digest) == (A, C)
    assert index.manifest_for(oci.Platform("linux", "arm64", "v8")) == C
    assert index.manifest_for(ARM64) == C
    assert index.manifest_for(oci.Platform("linux", "s390x")) == ""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bases: [\n", "bases.lock:2: invalid YAML"),
        ("version: 2\nbases: []\n", "bases.lock: not a lock file of version 1"),
        ("version: 1\nbases: {}\n", "bases.lock: 'bases' is not a list"),
        ("version: 1\nbases: [3]\n", "bases.lock: base 1 is not a mapping"),
        (
            f"version: 1\nbases:\n- reference: {BASE}\n  index: sha256:12\n  platforms: {{}}\n",
            f"bases.lock: {BASE} (base 1): index 'sha256:12' is not a sha256: digest",
        ),
        (
            f"version: 1\nbases:\n- reference: {BASE}\n  platforms: {{}}\n",
            f"bases.lock: {BASE} (base 1) has no platforms",
        ),
        (
            f"version: 1\nbases:\n- reference: {BASE}\n  platforms: {{linux/amd64: {A},"
            f" linux/arm64: {B}}}\n",
            f"bases.lock: {BASE} (base 1) has no index and more than one platform",
        ),
        (
            f"version: 1\nbases:\n- reference: {BASE}\n  tag: x\n  platforms: {{linux: {A}}}\n",
            f"bases.lock: {BASE} (base 1) has unknown keys: tag",
        ),
        (
            f"version: 1\nbases:\n- reference: {BASE}\n  platforms: {{linux: {A}}}\n",
            f"bases.lock: {BASE} (base 1): platform 'linux' is not os/arch[/variant]",
        ),
        (
            f"version: 1\nbases:\n- {{reference: {BASE}, platforms: {{linux/amd64: {A}}}}}\n"
            f"- {{reference: {BASE}, platforms: {{linux/amd64: {B}}}}}\n",
            f"bases.lock: {BASE} is pinned twice",
        ),
    ],
)
def test_a_damaged_lock_is_one_line_saying_what_to_do(text: str, message: str) -> None:
    with pytest.raises(UserError) as caught:
        parse_lock(text, "bases.lock")
    line = str(caught.value)
    assert line.startswith(message) and line.endswith("; write it again with doit lock")
    assert "\n" not in line


def test_no_lock_file_is_none(tmp_path: Path) -> None:
    assert read_lock(tmp_path / "bases.lock", "bases.lock") is None


def test_what_moved_is_one_line_per_base() -> None:
    old = sample()
    moved = Lock((pin(BASE, B, [(AMD64, A)]), pin("ghcr.io/x/new:1", "", [(AMD64, A)])))
    assert lock_moves(old, moved) == [
        f"{LONE}  sha256:cccccccccccc -> (gone)",
        f"{BASE}  sha256:aaaaaaaaaaaa -> sha256:bbbbbbbbbbbb",
        "ghcr.io/x/new:1  (new) -> sha256:aaaaaaaaaaaa",
    ]
    assert lock_moves(old, old) == []
    assert lock_moves(None, Lock((pin(LONE, "", [(AMD64, C)]),))) == [
        f"{LONE}  (new) -> sha256:cccccccccccc"
    ]


def test_an_update_keeps_the_other_bases_only_when_asked() -> None:
    new = pin(BASE, B, [(AMD64, A)])
    assert sample().updated([new], keep_others=True).pins == (sample().pins[0], new)
    assert sample().updated([new], keep_others=False).pins == (new,)


def test_attestations_and_entries_without_a_platform_are_no_platform() -> None:
    def entry(platform: oci.Platform | None, **annotations: str) -> oci.Descriptor:
        return oci.Descriptor(oci.MANIFEST, A, 1, platform=platform).annotated(**annotations)

    assert platform_of(entry(AMD64)) == AMD64
    assert platform_of(entry(oci.Platform("linux", "arm64", "v8"))) == ARM64
    assert platform_of(entry(oci.Platform("linux", "arm", "v7"))) == oci.Platform(
        "linux", "arm", "v7"
    )
    assert platform_of(entry(oci.Platform("unknown", "unknown"))) is None
    assert (
        platform_of(entry(AMD64, **{"vnd.docker.reference.type": "attestation-manifest"})) is None
    )
    assert platform_of(entry(None)) is None


def test_mirrors_of_the_environment() -> None:
    assert parse_mirrors("docker.io=mirror.example.com, ghcr.io=other.example.com/ghcr") == (
        Mirror("docker.io", "mirror.example.com"),
        Mirror("ghcr.io", "other.example.com", "ghcr"),
    )
    assert parse_mirrors("index.docker.io=127.0.0.1:5001") == (
        Mirror("docker.io", "127.0.0.1:5001"),
    )
    assert Mirror("ghcr.io", "m.example.com", "gh").repository("x/y") == "gh/x/y"
    read = read_options(["build_images"], {"REGISTRY_MIRRORS": "docker.io=m.example.com"})
    assert read.mirrors == (Mirror("docker.io", "m.example.com"),)
    for wrong, why in [
        ("docker.io", "'docker.io' is not registry=host[/prefix]"),
        ("docker.io=mirror", "'mirror' is not a host such as mirror.example.com"),
        ("=m.example.com", "'' is not a registry host"),
        ("docker.io=M..x", "invalid hub"),
    ]:
        with pytest.raises(UserError) as caught:
            read_options(["build_images"], {"REGISTRY_MIRRORS": wrong})
        assert why in str(caught.value) and str(caught.value).startswith("REGISTRY_MIRRORS: ")


def test_mirrors_of_a_plan(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "images:\n- name: a\n  dockerfile: Dockerfile\n"
        "mirrors:\n  docker.io: m.example.com\n  ghcr.io: [a.example.com, b.example.com/gh]\n"
    )
    loaded = load_plan("plan.yaml", AMD64, tmp_path, {})
    assert loaded.mirrors == (
        Mirror("docker.io", "m.example.com"),
        Mirror("ghcr.io", "a.example.com"),
        Mirror("ghcr.io", "b.example.com", "gh"),
    )
    plan.write_text("images:\n- name: a\n  dockerfile: Dockerfile\nmirrors:\n  docker.io: nohost\n")
    with pytest.raises(UserError) as caught:
        load_plan("plan.yaml", AMD64, tmp_path, {})
    assert str(caught.value).startswith("plan.yaml:5: mirror docker.io=nohost: 'nohost' is not")


def test_locked_offline_and_all_platforms_options() -> None:
    read = read_options(["build_images", "--locked", "--offline"], {})
    assert (read.locked, read.offline) == (True, True)
    env = read_options(["build_images"], {"LOCKED": "true", "OFFLINE": "true"})
    assert (env.locked, env.offline) == (True, True)
    assert read_options(["lock", "--check"], {}, task="lock").check
    every = read_options(["build_images", "--architectures", "all"], {})
    assert every.all_platforms and every.offers("app", ARM64)
    chosen = every.__class__(offered=(("app", (AMD64,)),))
    assert chosen.offers("app", AMD64) and not chosen.offers("app", ARM64)
    assert chosen.offers("other", ARM64)  # no registry base: not narrowed
    refusals = [
        (
            ["--offline", "--push", "--hub", "h.example.com"],
            "--offline makes no request: it cannot go with --push",
        ),
        (
            ["--offline", "--cache-repo", "h.example.com/cache"],
            "--offline makes no request: it cannot go with --cache-repo",
        ),
        (["--architectures", "all,linux/amd64"], "--architectures all takes every platform"),
        (["--architectures", "all", "--platform-tags"], "--platform-tags builds one platform"),
    ]
    for argv, message in refusals:
        with pytest.raises(UserError) as caught:
            read_options(["build_images", *argv], {})
        assert message in str(caught.value)
