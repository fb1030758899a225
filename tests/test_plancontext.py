"""rules.plancontext: the seed's virtual context, as Istio's docker-builder lays it out
(tools/docker-copy.sh, crane.go's ``translate``): base names, the arch directory, the
lenient lookup, ambiguity, and docker-copy.sh's permissions.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pytest
from copying import ROOT_DIR, WHERE, digest, lower_dirs, mkdir, paths, step, summary, write

from doit_oci.rules.context import find_sources
from doit_oci.rules.copyplan import plan_copy
from doit_oci.rules.digests import file_digest
from doit_oci.rules.dockerfile.model import CopyStep
from doit_oci.rules.errors import UserError
from doit_oci.rules.plancontext import PlanContext
from doit_oci.rules.tree import FILE, Entry, Tree


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    return workspace


@pytest.fixture
def plan(ws: Path) -> dict[str, Path]:
    """The files and targets of an image, spread over the workspace like Istio's."""
    files = {
        "dockerfile": write(ws, "docker/Dockerfile.app", "FROM scratch\n"),
        "conf": write(ws, "config/app.yaml", "a: 1\n", 0o600),
        "script": write(ws, "tools/run.sh", "#!/bin/sh\n", 0o700),
        "prog": write(ws, "out/linux_amd64/prog", b"\x7fELF", 0o755),
        "tool": write(ws, "out/linux_amd64/release/tool", b"\x7fELF", 0o750),
        "certs": mkdir(ws, "tests/certs", 0o700),
    }
    write(ws, "tests/certs/a.pem", "A", 0o600)
    write(ws, "tests/certs/run.sh", "#!/bin/sh\n", 0o700)
    mkdir(ws, "tests/certs/sub", 0o700)
    write(ws, "tests/certs/sub/b.pem", "B", 0o640)
    return files


def plan_context(ws: Path, deps: Iterable[Path], arch: str = "amd64") -> PlanContext:
    return PlanContext(tuple(deps), ws, ws / "out" / f"linux_{arch}", arch)


def run_plan(
    s: CopyStep, context: PlanContext, ws: Path, lower: Iterable[Entry] = ()
) -> list[Entry]:
    return plan_copy(s, context, Tree(lower), ws, digest)


def test_plan_arch_sources_come_from_the_arch_out_directory(
    ws: Path, plan: dict[str, Path]
) -> None:
    context = plan_context(ws, plan.values())
    entries = run_plan(step("amd64/prog", "amd64/tool", dest="/usr/bin/"), context, ws)
    assert summary(entries) == {
        "usr": ROOT_DIR,
        "usr/bin": ROOT_DIR,
        "usr/bin/prog": (FILE, 0o755, 0, 0),
        "usr/bin/tool": (FILE, 0o755, 0, 0),
    }
    assert entries[2].source == "out/linux_amd64/prog"
    assert entries[3].source == "out/linux_amd64/release/tool"
    assert entries[2].digest == file_digest(plan["prog"])


def test_plan_files_are_at_their_base_names(ws: Path, plan: dict[str, Path]) -> None:
    context = plan_context(ws, plan.values())
    entries = run_plan(step("app.yaml", "prog", "Dockerfile.app", dest="/etc/"), context, ws)
    by_path = {e.path: e.source for e in entries if e.kind == FILE}
    assert by_path == {
        "etc/Dockerfile.app": "docker/Dockerfile.app",
        "etc/app.yaml": "config/app.yaml",
        "etc/prog": "out/linux_amd64/prog",
    }


def test_plan_lookup_by_base_name(ws: Path, plan: dict[str, Path]) -> None:
    context = plan_context(ws, plan.values())
    entries = run_plan(step("some/where/app.yaml", dest="/etc/app.yaml"), context, ws)
    assert [(e.path, e.source) for e in entries] == [
        ("etc", ""),
        ("etc/app.yaml", "config/app.yaml"),
    ]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("certs/a.pem", "tests/certs/a.pem"),  # a listed directory, at its base name
        ("certs/sub/b.pem", "tests/certs/sub/b.pem"),
        ("tests/certs/sub/b.pem", "tests/certs/sub/b.pem"),  # the directory at any depth
        ("x/y/certs/a.pem", "tests/certs/a.pem"),
    ],
)
def test_plan_lookup_in_a_listed_directory(
    ws: Path, plan: dict[str, Path], source: str, expected: str
) -> None:
    context = plan_context(ws, plan.values())
    (entry,) = run_plan(step(source, dest="/f"), context, ws)
    assert entry.source == expected


def test_plan_listed_directory_copies_its_contents(ws: Path, plan: dict[str, Path]) -> None:
    context = plan_context(ws, plan.values())
    entries = run_plan(step("certs", dest="/etc/certs/"), context, ws, lower_dirs("etc"))
    assert paths(entries) == [
        "etc",
        "etc/certs",
        "etc/certs/a.pem",
        "etc/certs/run.sh",
        "etc/certs/sub",
        "etc/certs/sub/b.pem",
    ]


def test_plan_dot_copies_the_whole_virtual_context(ws: Path, plan: dict[str, Path]) -> None:
    context = plan_context(ws, plan.values())
    entries = run_plan(step(".", dest="/ctx/"), context, ws)
    assert paths(entries) == [
        "ctx",
        "ctx/Dockerfile.app",
        "ctx/amd64",
        "ctx/amd64/prog",
        "ctx/amd64/tool",
        "ctx/app.yaml",
        "ctx/certs",
        "ctx/certs/a.pem",
        "ctx/certs/run.sh",
        "ctx/certs/sub",
        "ctx/certs/sub/b.pem",
        "ctx/prog",
        "ctx/run.sh",
        "ctx/tool",
    ]
    assert summary(entries)["ctx/amd64"] == ROOT_DIR


def test_plan_wildcards(ws: Path, plan: dict[str, Path]) -> None:
    context = plan_context(ws, plan.values())
    assert find_sources(context, "amd64/*", WHERE, "COPY") == ["amd64/prog", "amd64/tool"]
    assert find_sources(context, "*.yaml", WHERE, "COPY") == ["app.yaml"]
    assert find_sources(context, "certs/*.pem", WHERE, "COPY") == ["certs/a.pem"]


def test_plan_without_arch_targets_has_no_arch_directory(ws: Path, plan: dict[str, Path]) -> None:
    context = plan_context(ws, [plan["conf"], plan["dockerfile"]])
    with pytest.raises(UserError, match="not found"):
        run_plan(step("amd64", dest="/x/"), context, ws)
    assert find_sources(context, "*", WHERE, "COPY") == ["Dockerfile.app", "app.yaml"]


def test_plan_other_arch_is_not_the_arch_directory(ws: Path, plan: dict[str, Path]) -> None:
    context = plan_context(ws, plan.values())
    with pytest.raises(UserError, match="'arm64/nothing' not found"):
        run_plan(step("arm64/nothing", dest="/x"), context, ws)


def test_plan_missing_source_names_what_the_image_has(ws: Path, plan: dict[str, Path]) -> None:
    context = plan_context(ws, plan.values())
    with pytest.raises(UserError) as caught:
        run_plan(step("missing.txt", dest="/x"), context, ws)
    assert "'missing.txt' not found in the image's files and targets" in caught.value.what
    assert caught.value.fix == (
        "list it under 'files' or 'targets' in the plan (the image has: Dockerfile.app,"
        " app.yaml, certs, prog, run.sh, tool)"
    )
    assert caught.value.where == WHERE


def test_plan_ambiguous_base_name_lists_the_candidates(ws: Path, plan: dict[str, Path]) -> None:
    twin = write(ws, "other/app.yaml", "b: 2\n")
    context = plan_context(ws, [*plan.values(), twin])
    for source in ("app.yaml", "conf/app.yaml"):
        with pytest.raises(UserError, match="ambiguous") as caught:
            run_plan(step(source, dest="/x"), context, ws)
        assert "config/app.yaml" in str(caught.value)
        assert "other/app.yaml" in str(caught.value)
    # the same file listed twice is not ambiguous
    context = plan_context(ws, [*plan.values(), plan["conf"]])
    assert len(run_plan(step("app.yaml", dest="/x"), context, ws)) == 1


def test_plan_ambiguous_directory_lookup(ws: Path, plan: dict[str, Path]) -> None:
    other = mkdir(ws, "more/sub")
    write(ws, "more/sub/a.pem")
    write(ws, "tests/certs/sub/a.pem")
    context = plan_context(ws, [*plan.values(), other])
    with pytest.raises(UserError, match=r"ambiguous: it matches certs/sub/a\.pem, sub/a\.pem"):
        run_plan(step("x/certs/sub/a.pem", dest="/x"), context, ws)


def test_plan_listed_symlink_stands_for_its_target(ws: Path, plan: dict[str, Path]) -> None:
    os.symlink("linux_amd64/prog", ws / "out" / "current")
    context = plan_context(ws, [ws / "out" / "current"])
    (entry,) = run_plan(step("current", dest="/current"), context, ws)
    assert (entry.kind, entry.source) == (FILE, "out/linux_amd64/prog")


# ------------------------------------------------------------- docker-copy.sh permissions
def test_plan_modes_are_normalised_like_docker_copy(ws: Path, plan: dict[str, Path]) -> None:
    # tools/docker-copy.sh: a listed file with any execute bit gets 755, any other listed
    # file a+r; a listed directory gets "chmod -R a+r"
    write(ws, "perm/group-exec", mode=0o610)
    write(ws, "perm/other-exec", mode=0o601)
    write(ws, "perm/setuid", mode=0o4750)
    write(ws, "perm/none", mode=0o000)
    write(ws, "perm/sticky-dir/f", mode=0o600)
    mkdir(ws, "perm/sticky-dir", 0o1700)
    extra = [ws / "perm" / n for n in ("group-exec", "other-exec", "setuid", "none", "sticky-dir")]
    context = plan_context(ws, [*plan.values(), *extra])
    s = step(
        "app.yaml",
        "run.sh",
        "amd64/tool",
        "Dockerfile.app",
        "group-exec",
        "other-exec",
        "setuid",
        "none",
        dest="/m/",
    )
    modes = {e.path: e.mode for e in run_plan(s, context, ws)}
    assert modes == {
        "m": 0o755,
        "m/Dockerfile.app": 0o644,
        "m/app.yaml": 0o644,  # 600 + a+r
        "m/group-exec": 0o755,
        "m/none": 0o444,
        "m/other-exec": 0o755,
        "m/run.sh": 0o755,  # 700
        "m/setuid": 0o755,
        "m/tool": 0o755,  # 750
    }
    certs = {e.path: e.mode for e in run_plan(step("certs", dest="/c"), context, ws)}
    assert certs == {
        "c": 0o755,  # the destination, created as BuildKit creates it
        "c/a.pem": 0o644,
        "c/run.sh": 0o744,  # inside a directory only a+r is added
        "c/sub": 0o744,
        "c/sub/b.pem": 0o644,
    }
    sticky = {e.path: e.mode for e in run_plan(step("sticky-dir", dest="/s"), context, ws)}
    assert sticky == {"s": 0o755, "s/f": 0o644}
    into = {e.path: e.mode for e in run_plan(step("certs", dest="/"), context, ws)}
    assert into["sub"] == 0o744  # directories inside the listed one: a+r added


def test_plan_chmod_still_wins(ws: Path, plan: dict[str, Path]) -> None:
    context = plan_context(ws, plan.values())
    (entry,) = run_plan(step("app.yaml", dest="/a", chmod=0o400), context, ws)
    assert entry.mode == 0o400


def test_plan_listed_file_that_does_not_exist(ws: Path, plan: dict[str, Path]) -> None:
    # e.g. a make target not built yet (SKIP_MAKE): name the path, not just "not found"
    context = plan_context(ws, [*plan.values(), ws / "out" / "linux_amd64" / "later"])
    for source in ("later", "amd64/later", "some/dir/later", "amd64/*"):
        with pytest.raises(UserError, match="out/linux_amd64/later of the plan") as caught:
            run_plan(step(source, dest="/x/"), context, ws)
        assert "make" in caught.value.fix
