"""Tests of rules.plan: Istio's tools/docker.yaml schema, variables per platform, errors.

The plan below is written in the style of Istio's tools/docker.yaml (comments, an
``example:`` block, flow-style platform lists, ${...} variables) and is read as it is.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from doit_oci.registry.oci import Platform
from doit_oci.rules.errors import UserError
from doit_oci.rules.plan import (
    IMAGE_KEYS,
    ImagePlan,
    Plan,
    expand,
    load_plan,
    plan_variables,
    platform_variables,
)

AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64")
WINDOWS = Platform("windows", "amd64")

ISTIO_STYLE = """\
# docker.yaml provides details about each Dockerfile in the repo.
# Artifacts are built outside of docker, then copied into the image.

# Example image config
example:
- name: helloworld # Name of the image. Will end up pushed to <HUB>/helloworld:<TAG>
  dockerfile: helloworld/Dockerfile.proxyv2
  files:
  # Include a static file
  - samples/README.md
  targets:
  # Build a file with make, then include as a static file
  - ${TARGET_OUT_LINUX}/helloworld

images:

# Base images
- name: base
  dockerfile: docker/Dockerfile.base
  base: true
  platforms: [ "linux/amd64", "linux/arm64" ]

- name: distroless
  dockerfile: docker/Dockerfile.distroless
  base: true
  platforms: [ "linux/amd64", "linux/arm64" ]

# Production images
- name: proxyv2
  dockerfile: pilot/docker/Dockerfile.proxyv2
  files:
  - tools/packaging/common/envoy_bootstrap.json
  - ${TARGET_OUT_LINUX}/${RELEASE_MODE}/${SIDECAR}
  targets:
  - ${TARGET_OUT_LINUX}/pilot-agent
  platforms: [ "linux/amd64", "linux/arm64" ]

- name: pilot
  dockerfile: pilot/docker/Dockerfile.pilot
  targets:
  - ${TARGET_OUT_LINUX}/pilot-discovery
  platforms: [ "linux/amd64", "linux/arm64" ]

- name: install-cni-windows
  dockerfile: cni/deployments/kubernetes/Dockerfile.install-cni-windows
  targets:
  - ${TARGET_OUT_WINDOWS}/istio-cni.exe
  - ${TARGET_OUT_WINDOWS}/install-cni.exe
  platforms: [ "windows/amd64", "windows/arm64" ]

  # Test images
- name: app_sidecar_debian_12
  dockerfile: pkg/test/echo/docker/Dockerfile.app_sidecar
  files:
  - tools/packaging/common/envoy_bootstrap.json
  - tests/testdata/certs
  - pkg/test/echo/docker/echo-start.sh
  targets:
  - ${TARGET_OUT_LINUX}/release/istio-sidecar.deb
  - ${TARGET_OUT_LINUX}/client
  platforms: [ "linux/amd64", "linux/arm64" ]
  emulationRequired: true

# Test base images
- name: app_sidecar_base_debian_12 # latest debian
  dockerfile: pkg/test/echo/docker/Dockerfile.app_sidecar_base
  base: true
  platforms: [ "linux/amd64", "linux/arm64" ]
"""

ISTIO_FILES = (
    "docker/Dockerfile.base",
    "docker/Dockerfile.distroless",
    "pilot/docker/Dockerfile.proxyv2",
    "pilot/docker/Dockerfile.pilot",
    "cni/deployments/kubernetes/Dockerfile.install-cni-windows",
    "pkg/test/echo/docker/Dockerfile.app_sidecar",
    "pkg/test/echo/docker/Dockerfile.app_sidecar_base",
    "pkg/test/echo/docker/echo-start.sh",
    "tools/packaging/common/envoy_bootstrap.json",
    "tests/testdata/certs/cert.pem",
    "out/linux_amd64/release/envoy",
    "out/linux_arm64/release/envoy",
    "out/linux_amd64/debug/envoy",
)


def _touch(workspace: Path, *names: str) -> None:
    for name in names:
        path = workspace / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)


def _write_plan(workspace: Path, text: str, name: str = "plans/x.yaml") -> str:
    path = workspace / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return name


def _line_of(text: str, needle: str) -> int:
    """The 1-based line of the first line of ``text`` that holds ``needle``."""
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in the plan")


@pytest.fixture
def istio(tmp_path: Path) -> Path:
    workspace = tmp_path / "istio"
    _touch(workspace, *ISTIO_FILES)
    _write_plan(workspace, ISTIO_STYLE, "tools/docker.yaml")
    return workspace


# -- Istio's schema ------------------------------------------------------------------------


def test_istio_style_plan(istio: Path) -> None:
    plan = load_plan("tools/docker.yaml", AMD64, istio, {})
    out = istio / "out" / "linux_amd64"

    def where(name: str) -> str:
        return f"tools/docker.yaml:{_line_of(ISTIO_STYLE, f'- name: {name}')}"

    both = ("linux/amd64", "linux/arm64")
    assert plan.path == "tools/docker.yaml"
    assert plan.platform == AMD64
    assert plan.args == ()
    assert plan.ignore_runs is False
    assert plan.names == (
        "base",
        "distroless",
        "proxyv2",
        "pilot",
        "install-cni-windows",
        "app_sidecar_debian_12",
        "app_sidecar_base_debian_12",
    )
    assert plan.images[0] == ImagePlan(
        name="base",
        where="tools/docker.yaml:18",
        dockerfile=istio / "docker/Dockerfile.base",
        context=None,
        files=(),
        targets=(),
        base=True,
        platforms=both,
    )
    assert plan.find("distroless") == ImagePlan(
        name="distroless",
        where=where("distroless"),
        dockerfile=istio / "docker/Dockerfile.distroless",
        context=None,
        files=(),
        targets=(),
        base=True,
        platforms=both,
    )
    assert plan.find("proxyv2") == ImagePlan(
        name="proxyv2",
        where=where("proxyv2"),
        dockerfile=istio / "pilot/docker/Dockerfile.proxyv2",
        context=None,
        files=(istio / "tools/packaging/common/envoy_bootstrap.json", out / "release/envoy"),
        targets=(f"{out}/pilot-agent",),
        platforms=both,
    )
    assert plan.find("pilot") == ImagePlan(
        name="pilot",
        where=where("pilot"),
        dockerfile=istio / "pilot/docker/Dockerfile.pilot",
        context=None,
        files=(),
        targets=(f"{out}/pilot-discovery",),
        platforms=both,
    )
    windows_out = istio / "out" / "windows_amd64"
    assert plan.find("install-cni-windows") == ImagePlan(
        name="install-cni-windows",
        where=where("install-cni-windows"),
        dockerfile=istio / "cni/deployments/kubernetes/Dockerfile.install-cni-windows",
        context=None,
        files=(),
        targets=(f"{windows_out}/istio-cni.exe", f"{windows_out}/install-cni.exe"),
        platforms=("windows/amd64", "windows/arm64"),
    )
    assert plan.find("app_sidecar_debian_12") == ImagePlan(
        name="app_sidecar_debian_12",
        where=where("app_sidecar_debian_12"),
        dockerfile=istio / "pkg/test/echo/docker/Dockerfile.app_sidecar",
        context=None,
        files=(
            istio / "tools/packaging/common/envoy_bootstrap.json",
            istio / "tests/testdata/certs",
            istio / "pkg/test/echo/docker/echo-start.sh",
        ),
        targets=(f"{out}/release/istio-sidecar.deb", f"{out}/client"),
        emulation_required=True,
        platforms=both,
    )
    assert plan.find("app_sidecar_base_debian_12") == ImagePlan(
        name="app_sidecar_base_debian_12",
        where=where("app_sidecar_base_debian_12"),
        dockerfile=istio / "pkg/test/echo/docker/Dockerfile.app_sidecar_base",
        context=None,
        files=(),
        targets=(),
        base=True,
        platforms=both,
    )
    # the example block is not an image
    assert plan.find("helloworld") is None


def test_istio_style_plan_per_platform(istio: Path) -> None:
    arm = load_plan("tools/docker.yaml", ARM64, istio, {})
    out = istio / "out" / "linux_arm64"
    proxy = arm.find("proxyv2")
    assert proxy is not None
    assert proxy.files[1] == out / "release" / "envoy"
    assert proxy.targets == (f"{out}/pilot-agent",)
    windows = load_plan("tools/docker.yaml", WINDOWS, istio, {})
    cni = windows.find("install-cni-windows")
    assert cni is not None
    assert cni.targets[0] == f"{istio}/out/windows_amd64/istio-cni.exe"
    # TARGET_OUT_LINUX stays linux_<arch> on windows
    pilot = windows.find("pilot")
    assert pilot is not None
    assert pilot.targets == (f"{istio}/out/linux_amd64/pilot-discovery",)


def test_istio_style_plan_debug_image(istio: Path) -> None:
    plan = load_plan("tools/docker.yaml", AMD64, istio, {"DEBUG_IMAGE": "1"})
    proxy = plan.find("proxyv2")
    assert proxy is not None
    assert proxy.files[1] == istio / "out/linux_amd64/debug/envoy"


def test_istio_style_plan_build_output_is_looked_for_later(istio: Path) -> None:
    # a file under out/ may be made by make (Istio's `make init` fetches envoy): the plan
    # loads, and the image's build looks for it
    plan = load_plan("tools/docker.yaml", ARM64, istio, {"DEBUG_IMAGE": ""})
    proxy = plan.find("proxyv2")
    assert proxy is not None
    assert istio / "out/linux_arm64/debug/envoy" in proxy.files
    assert not (istio / "out/linux_arm64/debug/envoy").exists()


@pytest.mark.parametrize(
    ("platform", "image", "builds"),
    [
        (AMD64, "pilot", True),
        (ARM64, "pilot", True),
        (Platform("linux", "ppc64le"), "pilot", False),
        (WINDOWS, "pilot", False),
        (WINDOWS, "install-cni-windows", True),
        (AMD64, "install-cni-windows", False),
    ],
)
def test_builds_for(istio: Path, platform: Platform, image: str, builds: bool) -> None:
    found = load_plan("tools/docker.yaml", AMD64, istio, {}).find(image)
    assert found is not None
    assert found.builds_for(platform) is builds


def test_an_image_without_platforms_builds_for_all(tmp_path: Path) -> None:
    _touch(tmp_path, "Dockerfile")
    _write_plan(tmp_path, "images:\n- name: a\n  dockerfile: Dockerfile\n")
    image = load_plan("plans/x.yaml", AMD64, tmp_path, {}).images[0]
    assert image.platforms == ()
    assert image.builds_for(WINDOWS)
    assert image.builds_for(Platform("linux", "arm", "v7"))


def test_dependencies(istio: Path) -> None:
    image = load_plan("tools/docker.yaml", AMD64, istio, {}).find("app_sidecar_debian_12")
    assert image is not None
    out = istio / "out" / "linux_amd64"
    assert image.dependencies(istio) == (
        istio / "tools/packaging/common/envoy_bootstrap.json",
        istio / "tests/testdata/certs",
        istio / "pkg/test/echo/docker/echo-start.sh",
        out / "release/istio-sidecar.deb",
        out / "client",
    )


def test_plan_find_and_names() -> None:
    image = ImagePlan("a", "p:1", Path("/d"), None, (), ())
    plan = Plan("p", AMD64, (image,))
    assert plan.find("a") is image
    assert plan.find("b") is None
    assert plan.names == ("a",)


# -- variables -----------------------------------------------------------------------------


VARIABLES = {"A": "1", "AB": "2", "A_B": "3", "EMPTY": "", "$": "dollar", "1": "one"}


@pytest.mark.parametrize(
    ("text", "expanded"),
    [
        ("${A}", "1"),
        ("$A", "1"),
        ("$AB", "2"),
        ("${A}B", "1B"),
        ("$A_B", "3"),
        ("x/$A/y", "x/1/y"),
        ("${EMPTY}x", "x"),
        ("${UNKNOWN}", ""),
        ("$UNKNOWN/x", "/x"),
        ("no variables", "no variables"),
        # as Go's os.Expand: a lone or trailing '$' stays, so does '$' before other text
        ("$", "$"),
        ("a$", "a$"),
        ("$.x", "$.x"),
        ("$ x", "$ x"),
        ("$/", "$/"),
        # one-character shell names are looked up
        ("$$", "dollar"),
        ("$1x", "onex"),
        ("${1}", "one"),
        ("$?", ""),
        ("${12}", ""),
        # any text in braces is a name; "${}" and an unclosed "${" are dropped
        ("${A-B}", ""),
        ("${}x", "x"),
        ("${A", "A"),
        ("a${", "a"),
    ],
)
def test_expand(text: str, expanded: str) -> None:
    assert expand(text, VARIABLES) == expanded


@pytest.mark.parametrize(
    ("platform", "os_", "arch", "target_out"),
    [
        (AMD64, "linux", "amd64", "linux_amd64"),
        (ARM64, "linux", "arm64", "linux_arm64"),
        (Platform("linux", "arm64", "v8"), "linux", "arm64", "linux_arm64"),
        (WINDOWS, "windows", "amd64", "windows_amd64"),
    ],
)
def test_platform_variables(
    tmp_path: Path, platform: Platform, os_: str, arch: str, target_out: str
) -> None:
    assert platform_variables(platform, tmp_path) == {
        "TARGET_OS": os_,
        "TARGET_ARCH": arch,
        "TARGET_OUT": f"{tmp_path}/out/{target_out}",
        "TARGET_OUT_LINUX": f"{tmp_path}/out/linux_{arch}",
        "TARGET_OUT_WINDOWS": f"{tmp_path}/out/windows_{arch}",
    }


def test_platform_variables_are_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    variables = platform_variables(AMD64, Path("."))
    assert variables["TARGET_OUT"] == str(tmp_path.resolve() / "out" / "linux_amd64")
    assert os.path.isabs(variables["TARGET_OUT_LINUX"])


@pytest.mark.parametrize(
    ("environ", "name", "value"),
    [
        ({}, "SIDECAR", "envoy"),
        ({"SIDECAR": "ztunnel"}, "SIDECAR", "ztunnel"),
        ({}, "RELEASE_MODE", "release"),
        ({"DEBUG_IMAGE": "1"}, "RELEASE_MODE", "debug"),
        ({"DEBUG_IMAGE": ""}, "RELEASE_MODE", "debug"),  # set is enough, as in the seed
        ({"RELEASE_MODE": "debug"}, "RELEASE_MODE", "release"),
        ({"HUB": "gcr.io/x"}, "HUB", "gcr.io/x"),
        ({"TARGET_OS": "darwin"}, "TARGET_OS", "linux"),  # the platform wins
        ({"TARGET_OUT": "/elsewhere"}, "TARGET_OUT", "<out>/linux_amd64"),
    ],
)
def test_plan_variables(tmp_path: Path, environ: dict[str, str], name: str, value: str) -> None:
    variables = plan_variables(AMD64, tmp_path, environ)
    assert variables[name] == value.replace("<out>", str(tmp_path / "out"))


PLAN_WITH_VARIABLES = """\
images:
- name: vars
  dockerfile: Dockerfile
  targets:
  - ${TARGET_OS}-${TARGET_ARCH}
  - ${TARGET_OUT}/bin
  - $TARGET_OUT_LINUX/bin
  - ${TARGET_OUT_WINDOWS}/bin.exe
  - ${SIDECAR}.${RELEASE_MODE}
  - from-env-${FROM_ENV}
  - unknown-${NOT_SET_ANYWHERE}
"""


@pytest.mark.parametrize(
    ("platform", "environ", "targets"),
    [
        (
            AMD64,
            {"FROM_ENV": "e"},
            (
                "linux-amd64",
                "<ws>/out/linux_amd64/bin",
                "<ws>/out/linux_amd64/bin",
                "<ws>/out/windows_amd64/bin.exe",
                "envoy.release",
                "from-env-e",
                "unknown-",
            ),
        ),
        (
            WINDOWS,
            {"DEBUG_IMAGE": "true", "SIDECAR": "proxy"},
            (
                "windows-amd64",
                "<ws>/out/windows_amd64/bin",
                "<ws>/out/linux_amd64/bin",
                "<ws>/out/windows_amd64/bin.exe",
                "proxy.debug",
                "from-env-",
                "unknown-",
            ),
        ),
        (
            ARM64,
            {},
            (
                "linux-arm64",
                "<ws>/out/linux_arm64/bin",
                "<ws>/out/linux_arm64/bin",
                "<ws>/out/windows_arm64/bin.exe",
                "envoy.release",
                "from-env-",
                "unknown-",
            ),
        ),
    ],
)
def test_variables_in_a_plan(
    tmp_path: Path, platform: Platform, environ: dict[str, str], targets: tuple[str, ...]
) -> None:
    _touch(tmp_path, "Dockerfile")
    _write_plan(tmp_path, PLAN_WITH_VARIABLES)
    image = load_plan("plans/x.yaml", platform, tmp_path, environ).images[0]
    assert image.targets == tuple(t.replace("<ws>", str(tmp_path)) for t in targets)


def test_relative_workspace_gives_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _touch(tmp_path, "Dockerfile", "a.txt")
    _write_plan(tmp_path, PLAN_WITH_VARIABLES.replace("  targets:", "  files: [a.txt]\n  targets:"))
    monkeypatch.chdir(tmp_path)
    plan = load_plan("plans/x.yaml", AMD64, Path("."), {})
    image = plan.images[0]
    assert plan.path == "plans/x.yaml"
    assert image.targets[1] == f"{tmp_path.resolve()}/out/linux_amd64/bin"
    assert image.files == (tmp_path.resolve() / "a.txt",)
    assert image.dockerfile == tmp_path.resolve() / "Dockerfile"


def test_a_variable_can_make_a_key_unknown(tmp_path: Path) -> None:
    # expansion happens on the text, before the YAML is read, as in the seed
    _touch(tmp_path, "Dockerfile")
    _write_plan(tmp_path, "images:\n- name: a\n  dockerfile: Dockerfile\n  ${KEY}: true\n")
    plan = load_plan("plans/x.yaml", AMD64, tmp_path, {"KEY": "base"})
    assert plan.images[0].base is True
    with pytest.raises(UserError, match=r"^plans/x.yaml:4: unknown key 'bse' in image 'a'"):
        load_plan("plans/x.yaml", AMD64, tmp_path, {"KEY": "bse"})


# -- other accepted forms ------------------------------------------------------------------


def test_context_images(tmp_path: Path) -> None:
    _touch(tmp_path, "ctx/Dockerfile", "ctx/app.txt", "other/Dockerfile.special")
    _write_plan(
        tmp_path,
        "images:\n"
        "- name: in-context\n"
        "  context: ctx\n"
        "  targets: [app]\n"
        "- name: special\n"
        "  context: ctx/\n"
        "  dockerfile: other/Dockerfile.special\n",
    )
    plan = load_plan("plans/x.yaml", AMD64, tmp_path, {})
    assert plan.images == (
        ImagePlan(
            name="in-context",
            where="plans/x.yaml:2",
            dockerfile=tmp_path / "ctx" / "Dockerfile",
            context=tmp_path / "ctx",
            files=(),
            targets=("app",),
        ),
        ImagePlan(
            name="special",
            where="plans/x.yaml:5",
            dockerfile=tmp_path / "other" / "Dockerfile.special",
            context=tmp_path / "ctx",
            files=(),
            targets=(),
        ),
    )


def test_context_from_a_variable(tmp_path: Path) -> None:
    _touch(tmp_path, "out/linux_amd64/ctx/Dockerfile")
    _write_plan(tmp_path, "images:\n- name: a\n  context: ${TARGET_OUT}/ctx\n")
    image = load_plan("plans/x.yaml", AMD64, tmp_path, {}).images[0]
    assert image.context == tmp_path / "out/linux_amd64/ctx"
    assert image.dockerfile == tmp_path / "out/linux_amd64/ctx/Dockerfile"


def test_plan_and_image_extensions(tmp_path: Path) -> None:
    _touch(tmp_path, "Dockerfile")
    _write_plan(
        tmp_path,
        "args:\n"
        "  BASE_VERSION: 1.2\n"
        "  DISTRO: debian\n"
        "ignoreRuns: true\n"
        "images:\n"
        "- name: a\n"
        "  dockerfile: Dockerfile\n"
        "  args:\n"
        "    X: 'y'\n"
        "    N: 3\n"
        "  ignoreRuns: false\n"
        "- name: b\n"
        "  dockerfile: Dockerfile\n"
        "  args:\n"
        "  ignoreRuns: true\n",
    )
    plan = load_plan("plans/x.yaml", AMD64, tmp_path, {})
    assert plan.args == (("BASE_VERSION", "1.2"), ("DISTRO", "debian"))
    assert plan.ignore_runs is True
    a, b = plan.images
    assert (a.args, a.ignore_runs) == ((("X", "y"), ("N", "3")), False)
    assert (b.args, b.ignore_runs) == ((), True)


@pytest.mark.parametrize(
    ("entry", "field", "value"),
    [
        ("  base: yes\n", "base", True),  # YAML 1.1 booleans, as the seed's YAML reads them
        ("  base: False\n", "base", False),
        ("  emulationRequired: on\n", "emulation_required", True),
        ("  files:\n", "files", ()),
        ("  targets: []\n", "targets", ()),
        ("  targets:\n  - 42\n  - 1.5\n", "targets", ("42", "1.5")),
        (
            "  platforms: [Linux/ARM64, linux/arm/v7]\n",
            "platforms",
            ("linux/arm64", "linux/arm/v7"),
        ),
    ],
)
def test_image_fields(tmp_path: Path, entry: str, field: str, value: object) -> None:
    _touch(tmp_path, "Dockerfile")
    _write_plan(tmp_path, "images:\n- name: a\n  dockerfile: Dockerfile\n" + entry)
    image = load_plan("plans/x.yaml", AMD64, tmp_path, {}).images[0]
    assert getattr(image, field) == value


@pytest.mark.parametrize("name", ["a", "a/b", "istio/pilot-v2", "a.b_c", "a__b", "123"])
def test_image_names(tmp_path: Path, name: str) -> None:
    _touch(tmp_path, "Dockerfile")
    _write_plan(tmp_path, f"images:\n- name: {name}\n  dockerfile: Dockerfile\n")
    assert load_plan("plans/x.yaml", AMD64, tmp_path, {}).names == (name,)


def test_empty_images_list(tmp_path: Path) -> None:
    _write_plan(tmp_path, "images: []\n")
    assert load_plan("plans/x.yaml", AMD64, tmp_path, {}).images == ()


def test_files_may_be_dangling_symlinks(tmp_path: Path) -> None:
    _touch(tmp_path, "Dockerfile")
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    _write_plan(tmp_path, "images:\n- name: a\n  dockerfile: Dockerfile\n  files: [link]\n")
    assert load_plan("plans/x.yaml", AMD64, tmp_path, {}).images[0].files == (tmp_path / "link",)


def test_a_plan_outside_the_workspace(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    _touch(workspace, "Dockerfile")
    _write_plan(tmp_path, "images:\n- name: a\n  dockerfile: Dockerfile\n", "elsewhere.yaml")
    plan = load_plan(str(tmp_path / "elsewhere.yaml"), AMD64, workspace, {})
    assert plan.path == str(tmp_path / "elsewhere.yaml")
    assert plan.images[0].where == f"{tmp_path}/elsewhere.yaml:2"


# -- errors --------------------------------------------------------------------------------

KNOWN_IMAGE_KEYS = ", ".join(IMAGE_KEYS)
FILE_FIX = "fix the path (relative to the workspace), or list it under 'targets' if make builds it"
YAML_FIX = "fix the YAML syntax"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # malformed YAML
        (
            "images:\n- name: a\n  dockerfile: [Dockerfile\n",
            "plans/x.yaml:3: invalid YAML: while parsing a flow sequence, expected ',' or ']',"
            f" but got '<stream end>'; {YAML_FIX}",
        ),
        (
            "images:\n- name: a\n   dockerfile: Dockerfile\n",
            f"plans/x.yaml:3: invalid YAML: mapping values are not allowed here; {YAML_FIX}",
        ),
        (
            "images:\n- name: a\n  dockerfile: Dockerfile\n - name: b\n",
            "plans/x.yaml:4: invalid YAML: while parsing a block mapping, expected <block end>,"
            f" but found '<block sequence start>'; {YAML_FIX}",
        ),
        (
            "images:\n\t- name: a\n",
            "plans/x.yaml:2: invalid YAML: while scanning for the next token, found character"
            f" '\\t' that cannot start any token; {YAML_FIX}",
        ),
        (
            'images:\n- name: "a\n\n',
            "plans/x.yaml:2: invalid YAML: while scanning a quoted scalar, found unexpected end"
            f" of stream; {YAML_FIX}",
        ),
        (
            "images: []\n---\nimages: []\n",
            "plans/x.yaml:2: invalid YAML: expected a single document in the stream, but found"
            f" another document; {YAML_FIX}",
        ),
        (
            "images:\n- name: *x\n",
            f"plans/x.yaml:2: invalid YAML: found undefined alias 'x'; {YAML_FIX}",
        ),
        (
            "images:\n- name: a\x07\n",
            "plans/x.yaml:2: invalid YAML: unacceptable character #x0007: special characters"
            f" are not allowed; {YAML_FIX}",
        ),
        # the plan's shape
        ("", "plans/x.yaml: the plan is empty; list the images under 'images:'"),
        ("# only a comment\n", "plans/x.yaml: the plan is empty; list the images under 'images:'"),
        (
            "- name: a\n",
            "plans/x.yaml:1: the plan is not a mapping; write it as 'key: value' lines",
        ),
        (
            "example:\n- name: a\n",
            "plans/x.yaml:1: the plan has no 'images:' list; list the images to build",
        ),
        (
            "image:\n- name: a\n",
            "plans/x.yaml:1: unknown key 'image' in the plan; did you mean 'images'?",
        ),
        (
            "images: []\nflavour: x\n",
            "plans/x.yaml:2: unknown key 'flavour' in the plan; known keys: images, example,"
            " args, ignoreRuns, protectedHubs, mirrors, annotations",
        ),
        (
            "images: []\nimages: []\n",
            "plans/x.yaml:2: key 'images' appears twice in the plan; keep one",
        ),
        (
            "images:\n  name: a\n",
            "plans/x.yaml:2: 'images' must be a list; write one '- name: ...' per image",
        ),
        (
            "images:\n",
            "plans/x.yaml:1: 'images' must be a list; write one '- name: ...' per image",
        ),
        (
            "images:\n- pilot\n",
            "plans/x.yaml:2: an image entry is not a mapping; write it as 'key: value' lines",
        ),
        (
            "args: [A=1]\nimages: []\n",
            "plans/x.yaml:1: args is not a mapping; write it as 'key: value' lines",
        ),
        (
            "args:\n  A: [1]\nimages: []\n",
            "plans/x.yaml:2: args.A must be a string; write a plain value",
        ),
        (
            "ignoreRuns: maybe\nimages: []\n",
            "plans/x.yaml:1: ignoreRuns must be true or false; write true or false",
        ),
        # wrong types
        (
            "images:\n- name: [a, b]\n  dockerfile: Dockerfile\n",
            "plans/x.yaml:2: name must be a string; write a plain value",
        ),
        (
            "images:\n- name:\n  dockerfile: Dockerfile\n",
            "plans/x.yaml:2: name must be a string; write a plain value",
        ),
        (
            "images:\n- name: true\n  dockerfile: Dockerfile\n",
            "plans/x.yaml:2: name must be a string; write a plain value",
        ),
        (
            "images:\n- name: a\n  dockerfile: Dockerfile\n  files: a.txt\n",
            "plans/x.yaml:4: files of image 'a' must be a list; write one '- item' per line",
        ),
        (
            "images:\n- name: a\n  dockerfile: Dockerfile\n  targets: {a: b}\n",
            "plans/x.yaml:4: targets of image 'a' must be a list; write one '- item' per line",
        ),
        (
            "images:\n- name: a\n  dockerfile: Dockerfile\n  targets:\n  - [x]\n",
            "plans/x.yaml:5: an entry of targets of image 'a' must be a string;"
            " write a plain value",
        ),
        (
            'images:\n- name: a\n  dockerfile: Dockerfile\n  base: "yes"\n',
            "plans/x.yaml:4: base of image 'a' must be true or false; write true or false",
        ),
        (
            "images:\n- name: a\n  dockerfile: Dockerfile\n  emulationRequired: 1\n",
            "plans/x.yaml:4: emulationRequired of image 'a' must be true or false;"
            " write true or false",
        ),
        (
            "images:\n- name: a\n  dockerfile: [Dockerfile]\n",
            "plans/x.yaml:3: dockerfile of image 'a' must be a string; write a plain value",
        ),
        (
            "images:\n- name: a\n  dockerfile: Dockerfile\n  platforms: linux/amd64\n",
            "plans/x.yaml:4: platforms of image 'a' must be a list; write one '- item' per line",
        ),
        (
            "images:\n- [a]: 1\n",
            "plans/x.yaml:2: a key of an image entry is not a string; use plain keys",
        ),
        # unknown keys
        (
            "images:\n- name: a\n  dockerfile: Dockerfile\n  target:\n  - x\n",
            "plans/x.yaml:4: unknown key 'target' in image 'a'; did you mean 'targets'?",
        ),
        (
            "images:\n- name: a\n  dockerfile: Dockerfile\n  emulationrequired: true\n",
            "plans/x.yaml:4: unknown key 'emulationrequired' in image 'a';"
            " did you mean 'emulationRequired'?",
        ),
        (
            "images:\n- name: a\n  dockerfile: Dockerfile\n  foo: 1\n",
            f"plans/x.yaml:4: unknown key 'foo' in image 'a'; known keys: {KNOWN_IMAGE_KEYS}",
        ),
        (
            "images:\n- nmae: a\n  dockerfile: Dockerfile\n",
            "plans/x.yaml:2: unknown key 'nmae' in an image entry; did you mean 'name'?",
        ),
        (
            "images:\n- name: a\n  dockerfile: Dockerfile\n  name: b\n",
            "plans/x.yaml:4: key 'name' appears twice in an image entry; keep one",
        ),
        # names
        (
            "images:\n- dockerfile: Dockerfile\n",
            "plans/x.yaml:2: an image has no 'name'; add 'name: <image name>'",
        ),
        (
            "images:\n- name: Pilot\n  dockerfile: Dockerfile\n",
            "plans/x.yaml:2: invalid image name 'Pilot'; use lowercase letters, digits and '.',"
            " '_', '-' (and '/' between parts)",
        ),
        (
            "images:\n- name: ''\n  dockerfile: Dockerfile\n",
            "plans/x.yaml:2: invalid image name ''; use lowercase letters, digits and '.',"
            " '_', '-' (and '/' between parts)",
        ),
        (
            "images:\n- name: pilot:1.0\n  dockerfile: Dockerfile\n",
            "plans/x.yaml:2: invalid image name 'pilot:1.0'; use lowercase letters, digits and"
            " '.', '_', '-' (and '/' between parts)",
        ),
        (
            "images:\n"
            "- name: a\n"
            "  dockerfile: Dockerfile\n"
            "\n"
            "- name: b\n"
            "  dockerfile: Dockerfile\n"
            "# again\n"
            "- name: a\n"
            "  dockerfile: Dockerfile\n",
            "plans/x.yaml:8: image name 'a' is used twice (first at plans/x.yaml:2);"
            " give each image a unique name",
        ),
        # Dockerfiles, files, contexts
        (
            "images:\n- name: a\n  files: [a.txt]\n",
            "plans/x.yaml:2: image 'a' has neither 'dockerfile' nor 'context'; add 'dockerfile:"
            " path/to/Dockerfile' (or a 'context:' directory holding one)",
        ),
        (
            "images:\n- name: a\n  dockerfile: nope/Dockerfile\n",
            "plans/x.yaml:3: Dockerfile 'nope/Dockerfile' of image 'a' does not exist;"
            " fix the path (relative to the workspace) or create the file",
        ),
        (
            "images:\n- name: a\n  dockerfile: ctx\n",
            "plans/x.yaml:3: Dockerfile 'ctx' of image 'a' does not exist;"
            " fix the path (relative to the workspace) or create the file",
        ),
        (
            "images:\n- name: a\n  dockerfile: Dockerfile\n  files:\n  - a.txt\n  - b.txt\n",
            f"plans/x.yaml:6: file 'b.txt' of image 'a' does not exist; {FILE_FIX}",
        ),
        (
            "images:\n- name: a\n  dockerfile: Dockerfile\n  files: [../outside/bin]\n",
            f"plans/x.yaml:4: file '../outside/bin' of image 'a' does not exist; {FILE_FIX}",
        ),
        (
            "images:\n- name: a\n  context: ctx\n  files:\n  - a.txt\n",
            "plans/x.yaml:4: image 'a' has both 'context' and 'files'; with a context, COPY"
            " sources are paths in it; drop 'files'",
        ),
        (
            "images:\n- name: a\n  context: nope\n",
            "plans/x.yaml:3: context directory 'nope' of image 'a' does not exist;"
            " create it or fix the path (relative to the workspace)",
        ),
        (
            "images:\n- name: a\n  context: a.txt\n",
            "plans/x.yaml:3: context directory 'a.txt' of image 'a' is not a directory;"
            " create it or fix the path (relative to the workspace)",
        ),
        (
            "images:\n- name: a\n  context: empty\n",
            "plans/x.yaml:3: Dockerfile 'empty/Dockerfile' of image 'a' does not exist;"
            " fix the path (relative to the workspace) or create the file",
        ),
        # platforms
        (
            "images:\n- name: a\n  dockerfile: Dockerfile\n"
            '  platforms: [ "linux/amd64", "linux" ]\n',
            "plans/x.yaml:4: platform 'linux' is not os/arch[/variant];"
            " write it as os/arch, e.g. linux/amd64",
        ),
        (
            "images:\n- name: a\n  dockerfile: Dockerfile\n"
            "  platforms:\n  - linux/amd64,linux/arm64\n",
            "plans/x.yaml:5: platform 'linux/amd64,linux/arm64' is not os/arch[/variant];"
            " write it as os/arch, e.g. linux/amd64",
        ),
    ],
)
def test_errors(tmp_path: Path, text: str, message: str) -> None:
    _touch(tmp_path, "Dockerfile", "a.txt", "ctx/Dockerfile")
    (tmp_path / "empty").mkdir()
    _write_plan(tmp_path, text)
    with pytest.raises(UserError) as caught:
        load_plan("plans/x.yaml", AMD64, tmp_path, {})
    assert str(caught.value) == message.replace("<ws>", str(tmp_path))


def test_error_parts(tmp_path: Path) -> None:
    _write_plan(tmp_path, "images:\n- name: a\n")
    with pytest.raises(UserError) as caught:
        load_plan("plans/x.yaml", AMD64, tmp_path, {})
    error = caught.value
    assert (error.where, error.what, error.fix) == (
        "plans/x.yaml:2",
        "image 'a' has neither 'dockerfile' nor 'context'",
        "add 'dockerfile: path/to/Dockerfile' (or a 'context:' directory holding one)",
    )


def test_missing_plan_file(tmp_path: Path) -> None:
    with pytest.raises(UserError) as caught:
        load_plan("plans/none.yaml", AMD64, tmp_path, {})
    assert str(caught.value) == (
        "plans/none.yaml: plan file not found; give an existing plan with --plan PATH or"
        " PLAN=PATH (relative to the workspace)"
    )


def test_unreadable_plan_file(tmp_path: Path) -> None:
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "bin.yaml").write_bytes(b"\xff\xfe")
    with pytest.raises(UserError) as caught:
        load_plan("plans/bin.yaml", AMD64, tmp_path, {})
    assert str(caught.value) == "plans/bin.yaml: the plan is not UTF-8 (byte 0); save it as UTF-8"


def test_a_directory_is_no_plan(tmp_path: Path) -> None:
    (tmp_path / "plans").mkdir()
    with pytest.raises(UserError) as caught:
        load_plan("plans", AMD64, tmp_path, {})
    assert str(caught.value) == "plans: the plan is a directory, not a file; name the plan file"


@pytest.mark.parametrize("kind", ["fifo", "device", "huge", "nested"])
def test_a_plan_that_is_no_plan_file_is_one_line_at_once(tmp_path: Path, kind: str) -> None:
    import os
    import time

    (tmp_path / "plans").mkdir()
    path = tmp_path / "plans" / "x.yaml"
    expected = {
        "fifo": "plans/x.yaml: the plan is a FIFO, not a file; name the plan file",
        "device": "dev/zero",
        "huge": "plans/x.yaml: the plan is larger than 4 MiB, the most doit-oci reads",
        "nested": "plans/x.yaml: the plan nests lists or mappings too deeply to read",
    }[kind]
    name = "plans/x.yaml"
    if kind == "fifo":
        os.mkfifo(path)  # nobody writes: reading it would block forever
    elif kind == "device":
        name = "/dev/zero"  # reading it would never end
    elif kind == "huge":
        path.write_text("images: []\n" + "#" * (5 << 20))
    else:
        path.write_text("images: " + "[" * 500 + "]" * 500 + "\n")  # 1 kB
    started = time.monotonic()
    with pytest.raises(UserError) as caught:
        load_plan(name, AMD64, tmp_path, {})
    assert time.monotonic() - started < 2
    assert expected in str(caught.value)


def test_the_example_block_is_not_checked(tmp_path: Path) -> None:
    _write_plan(tmp_path, "example:\n- name: Not Valid\n  nonsense: [\n    1]\nimages: []\n")
    assert load_plan("plans/x.yaml", AMD64, tmp_path, {}).images == ()
