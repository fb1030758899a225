"""rules.build: which units a build has, what they stand on, and what make is asked for."""

from __future__ import annotations

from pathlib import Path

import pytest

from doit_oci.registry.oci import Platform
from doit_oci.rules.build import base_candidates, find_plan_base, load_build
from doit_oci.rules.errors import UserError
from doit_oci.rules.options import Options
from doit_oci.rules.plan import load_plan
from doit_oci.rules.units import PlanImage, RegistryImage, Scratch, local_platform

AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64")


def workspace(tmp_path: Path, plan: str, dockerfiles: dict[str, str]) -> Path:
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "images.yaml").write_text(plan)
    for name, text in dockerfiles.items():
        (tmp_path / name).write_text(text)
    return tmp_path


PLAN = """\
images:
- name: base
  dockerfile: base.Dockerfile
  base: true
- name: other-base
  dockerfile: other.Dockerfile
  base: true
- name: app
  dockerfile: app.Dockerfile
  targets: [${TARGET_OUT}/app]
- name: tool
  dockerfile: tool.Dockerfile
  targets: [${TARGET_OUT}/tool, ${TARGET_OUT}/app]
- name: emulated
  dockerfile: tool.Dockerfile
  emulationRequired: true
- name: amd-only
  dockerfile: tool.Dockerfile
  platforms: [linux/amd64]
"""
DOCKERFILES = {
    "base.Dockerfile": "FROM scratch\nENV A=1\n",
    "other.Dockerfile": "FROM scratch\nWORKDIR /x\n",
    "app.Dockerfile": "ARG V=debug\nFROM base AS debug\nFROM other-base AS other\nFROM ${V}\n"
    "COPY app /app\nCOPY app /app2\n",
    "tool.Dockerfile": "FROM base:1.0\nCOPY tool /tool\n",
}


def build(tmp_path: Path, **options: object):  # type: ignore[no-untyped-def]
    ws = workspace(tmp_path, PLAN, DOCKERFILES)
    defaults: dict[str, object] = {"tags": ("1.0",)}
    defaults.update(options)
    return load_build(Options(**defaults), ws, {})  # type: ignore[arg-type]


def test_targets_default_to_every_image_that_is_not_a_base(tmp_path: Path) -> None:
    result = build(tmp_path)
    assert [u.key for u in result.units] == ["base", "app", "tool", "emulated", "amd-only"]
    assert result.wanted == ("app", "tool", "emulated", "amd-only")
    assert result.unit("app").base == PlanImage("base")
    assert result.unit("app").layer_count == 2
    assert result.unit("base").base == Scratch()
    assert result.make_goals == (
        (AMD64, (str(tmp_path / "out/linux_amd64/app"), str(tmp_path / "out/linux_amd64/tool"))),
    )
    assert result.unit("app").dir == tmp_path / "out/build/linux_amd64/app"
    assert dict(result.unit("app").build_args)["BASE_DISTRIBUTION"] == "debug"
    assert dict(result.unit("app").build_args)["TARGETARCH"] == "amd64"


def test_a_base_named_as_target_is_wanted_and_others_only_when_needed(tmp_path: Path) -> None:
    result = build(tmp_path, targets=("other-base",))
    assert [u.key for u in result.units] == ["other-base"]
    assert result.wanted == ("other-base",)
    assert result.make_goals == ()  # no image of the build has make targets


def test_a_build_arg_chooses_the_stage_and_so_the_base(tmp_path: Path) -> None:
    result = build(tmp_path, targets=("app",), build_args=(("V", "other"),))
    assert [u.key for u in result.units] == ["other-base", "app"]
    assert result.unit("app").base == PlanImage("other-base")


def test_several_platforms_name_units_by_platform(tmp_path: Path) -> None:
    result = build(tmp_path, platforms=(AMD64, ARM64), targets=("tool", "amd-only", "emulated"))
    keys = [u.key for u in result.units]
    assert "tool@linux_arm64" in keys and "base@linux_arm64" in keys
    assert "amd-only@linux_arm64" not in keys  # its platforms: exclude arm64
    if local_platform() == AMD64:
        assert "emulated@linux_arm64" not in keys  # emulationRequired, not local
        assert "emulated@linux_amd64" in keys
    assert [p for p, _ in result.make_goals] == [AMD64, ARM64]
    assert result.make_goals[1][1] == (
        str(tmp_path / "out/linux_arm64/tool"),
        str(tmp_path / "out/linux_arm64/app"),
    )


def test_skip_make_asks_make_for_nothing(tmp_path: Path) -> None:
    assert build(tmp_path, skip_make=True).make_goals == ()


@pytest.mark.parametrize(
    ("reference", "tags", "hubs", "found"),
    [
        ("base", ("1.0",), (), "base"),
        ("base:1.0", ("1.0",), (), "base"),
        ("base:2.0", ("1.0",), (), None),
        ("base:2.0", ("1.0", "2.0"), (), "base"),
        ("localhost:5000/base:1.0", ("1.0",), ("localhost:5000",), "base"),
        ("localhost:5000/base", ("latest",), ("localhost:5000",), "base"),
        ("localhost:5000/base", ("1.0",), ("localhost:5000",), None),
        ("localhost:5000/base:1.0", ("1.0",), ("other:5000",), None),
        ("gcr.io/istio/base:1.0", ("1.0",), ("gcr.io/istio",), "base"),
        ("docker.io/library/base:1.0", ("1.0",), ("docker.io/library",), "base"),
        ("debian", ("1.0",), (), None),
    ],
)
def test_find_plan_base(
    tmp_path: Path,
    reference: str,
    tags: tuple[str, ...],
    hubs: tuple[str, ...],
    found: str | None,
) -> None:
    ws = workspace(tmp_path, PLAN, DOCKERFILES)
    plan = load_plan("plans/images.yaml", AMD64, ws, {})
    image = find_plan_base(reference, plan, Options(tags=tags, hubs=hubs))
    assert (image.name if image else None) == found


def test_base_candidates() -> None:
    assert base_candidates("pilot", Options(tags=("1.0",), hubs=("hub.io/x",))) == {
        "pilot",
        "pilot:1.0",
        "hub.io/x/pilot:1.0",
    }


@pytest.mark.parametrize(
    ("dockerfiles", "message"),
    [
        (
            {"tool.Dockerfile": "FROM Base:9.9\nCOPY tool /tool\n"},
            "tool.Dockerfile:1: base image 'Base:9.9' is neither scratch, an image of this plan,"
            " nor a valid image reference",
        ),
        ({"base.Dockerfile": "FROM app\n"}, "base images form a cycle: app -> base -> app"),
        (
            {"tool.Dockerfile": "FROM --platform=linux/s390x base\n"},
            "FROM --platform=linux/s390x differs from the platform being built (linux/amd64)",
        ),
    ],
)
def test_graph_errors(tmp_path: Path, dockerfiles: dict[str, str], message: str) -> None:
    ws = workspace(tmp_path, PLAN, {**DOCKERFILES, **dockerfiles})
    with pytest.raises(UserError) as caught:
        load_build(Options(tags=("1.0",), targets=("app", "tool")), ws, {})
    assert message in str(caught.value)


def test_a_base_from_a_registry(tmp_path: Path) -> None:
    dockerfiles = {**DOCKERFILES, "tool.Dockerfile": "FROM base:9.9\nCOPY tool /tool\n"}
    ws = workspace(tmp_path, PLAN, dockerfiles)
    result = load_build(Options(tags=("1.0",), targets=("tool",)), ws, {})
    (unit,) = result.units
    assert unit.base == RegistryImage("docker.io/library/base:9.9")
    record = tmp_path / "out/build/linux_amd64/_bases/docker.io_library_base_9.9.json"
    assert unit.base.record(unit.dir.parent) == record


def test_a_base_not_built_for_the_platform(tmp_path: Path) -> None:
    plan = PLAN.replace(
        "  base: true\n- name: other-base",
        "  base: true\n  platforms: [linux/amd64]\n- name: other-base",
        1,
    )
    ws = workspace(tmp_path, plan, DOCKERFILES)
    with pytest.raises(UserError, match="base image 'base' is not built for linux/arm64"):
        load_build(Options(tags=("1.0",), targets=("app",), platforms=(ARM64,)), ws, {})


def test_unknown_target(tmp_path: Path) -> None:
    ws = workspace(tmp_path, PLAN, DOCKERFILES)
    with pytest.raises(UserError, match="unknown target 'nope'"):
        load_build(Options(targets=("nope",)), ws, {})


@pytest.mark.parametrize(
    ("from_line", "build_args"),
    [
        # a global ARG's default, as BuildKit expands --platform
        ("ARG ARCH=amd64\nFROM --platform=linux/${ARCH} base", ()),
        # a build arg overrides the default
        ("ARG ARCH=arm64\nFROM --platform=linux/${ARCH} base", (("ARCH", "amd64"),)),
        # the automatic platform ARGs, declared or not
        ("FROM --platform=$TARGETPLATFORM base", ()),
        ("ARG TARGETOS\nFROM --platform=${TARGETOS}/amd64 base", ()),
    ],
)
def test_from_platform_is_expanded_in_the_global_args(
    tmp_path: Path, from_line: str, build_args: tuple[tuple[str, str], ...]
) -> None:
    dockerfiles = {**DOCKERFILES, "tool.Dockerfile": from_line + "\nCOPY tool /tool\n"}
    ws = workspace(tmp_path, PLAN, dockerfiles)
    options = Options(tags=("1.0",), targets=("tool",), build_args=build_args)
    assert load_build(options, ws, {}).unit("tool").base == PlanImage("base")


def test_from_platform_sees_no_undeclared_build_arg(tmp_path: Path) -> None:
    # as in BuildKit: a build arg reaches FROM lines only through an ARG before the first FROM
    dockerfiles = {**DOCKERFILES, "tool.Dockerfile": "FROM --platform=linux/$ARCH base\n"}
    ws = workspace(tmp_path, PLAN, dockerfiles)
    options = Options(tags=("1.0",), targets=("tool",), build_args=(("ARCH", "amd64"),))
    with pytest.raises(UserError, match=r"FROM --platform=linux/ differs"):
        load_build(options, ws, {})


TYPO_PLAN = """\
images:
- name: distroless
  dockerfile: distroless.Dockerfile
  base: true
- name: app
  dockerfile: app.Dockerfile
"""


@pytest.mark.parametrize(
    ("from_image", "write"),
    [
        ("distrolss", "distroless"),
        ("distrolss:1.0", "distroless:1.0"),
        ("distrolesss@sha256:" + "a" * 64, "distroless@sha256:" + "a" * 64),
        ("distorless", "distroless"),  # two letters swapped
    ],
)
def test_a_typo_of_a_plan_image_fails_at_once(tmp_path: Path, from_image: str, write: str) -> None:
    dockerfiles = {
        "distroless.Dockerfile": "FROM scratch\n",
        "app.Dockerfile": f"FROM {from_image}\n",
    }
    ws = workspace(tmp_path, TYPO_PLAN, dockerfiles)
    with pytest.raises(UserError) as caught:
        load_build(Options(tags=("1.0",), targets=("app",)), ws, {})
    name = from_image.split("@")[0].split(":")[0]
    assert str(caught.value) == (
        f"app.Dockerfile:1: no plan image {name!r} (did you mean 'distroless'?) and it is not a"
        f" registry image either; write FROM {write} for the plan image, or FROM"
        f" docker.io/library/{from_image} for an image of Docker Hub"
    )


@pytest.mark.parametrize(
    "from_image",
    [
        "docker.io/library/distrolss",  # a registry named: taken as written
        "distroless:2.0",  # the plan's name, a tag this build does not make: the registry's
        "debian",  # nothing like a plan image
    ],
)
def test_a_registry_image_is_no_typo(tmp_path: Path, from_image: str) -> None:
    dockerfiles = {
        "distroless.Dockerfile": "FROM scratch\n",
        "app.Dockerfile": f"FROM {from_image}\n",
    }
    ws = workspace(tmp_path, TYPO_PLAN, dockerfiles)
    (unit,) = load_build(Options(tags=("1.0",), targets=("app",)), ws, {}).units
    assert isinstance(unit.base, RegistryImage)
    assert unit.base.reference.endswith(from_image.split("/")[-1])
