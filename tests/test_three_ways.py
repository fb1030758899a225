"""doit-oci used from another project, three ways: a dodo.py with a plan, a dodo.py with
rules in Python, and pyproject.toml alone. Same inputs, same digests, and the project's own
`rules` and `registry` modules and tasks keep working."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from registries import RunningRegistry
from support import REPO, Run

MAKEFILE = """\
TARGET_OUT ?= $(CURDIR)/out/linux_amd64
$(TARGET_OUT)/app:
\tmkdir -p $(@D)
\tprintf '#!/bin/sh\\necho app for %s\\n' $(TARGET_ARCH) > $@
\tchmod 755 $@
"""
PLAN = """\
images:
- name: base
  dockerfile: docker/base.Dockerfile
  files: [docker/passwd]
  base: true
- name: app
  dockerfile: docker/app.Dockerfile
  targets: ['${TARGET_OUT}/app']
"""
BASE = "FROM scratch\nCOPY passwd /etc/passwd\nENV PATH=/usr/local/bin\n"
APP = (
    "FROM base\nARG TARGETARCH\nCOPY ${TARGETARCH}/app /usr/local/bin/app\n"
    'USER 1000\nENTRYPOINT ["/usr/local/bin/app"]\n'
)
PLAN_DODO = """\
import rules            # the project's own module of that name
import registry         # and this one
from doit_oci import doit_config, image_tasks

DOIT_CONFIG = doit_config(default_task="oci_images")

task_images = image_tasks("plans/images.yaml", group="oci_images", prefix="oci.")


def task_layer():       # a task of the project whose name is one of ours
    return {"actions": [rules.hello], "verbosity": 2}
"""
RULES_DODO = """\
import os

import rules
from doit_oci import doit_config, oci_image, oci_push, oci_save

DOIT_CONFIG = doit_config(default_task="oci_images")

task_base = oci_image(name="base", dockerfile="docker/base.Dockerfile", files=["docker/passwd"])
task_app = oci_image(name="app", dockerfile="docker/app.Dockerfile",
                     targets=["${TARGET_OUT}/app"])
task_tool = oci_image(name="tool", base=":base",
                      files={"/usr/local/bin/tool": "${TARGET_OUT}/app"},
                      targets=["${TARGET_OUT}/app"], entrypoint=["/usr/local/bin/tool"],
                      env={"MODE": "tool"}, user="1000")
if os.environ.get("REG"):
    task_push = oci_push(task_app, [os.environ["REG"] + "/two/app"], ["1.0"])
task_save = oci_save(task_app, "out/app.tar.gz")


def task_mine():
    return {"actions": [rules.hello], "verbosity": 2}
"""
PYPROJECT = """\
[project]
name = "someone-elses-project"
version = "1.0"

[tool.doit]
loader = "doit_oci"
plans = ["plans/images.yaml"]
"""


def project(root: Path, way: str) -> Path:
    (root / "docker").mkdir(parents=True)
    (root / "plans").mkdir()
    (root / "Makefile").write_text(MAKEFILE)
    (root / "plans/images.yaml").write_text(PLAN)
    (root / "docker/passwd").write_text("root:x:0:0::/:/bin/sh\napp:x:1000:1000::/:/bin/sh\n")
    (root / "docker/base.Dockerfile").write_text(BASE)
    (root / "docker/app.Dockerfile").write_text(APP)
    (root / "rules").mkdir()
    (root / "rules/__init__.py").write_text("def hello():\n    print('the project s rules')\n")
    (root / "registry.py").write_text("NAME = 'the project s registry'\n")
    if way == "plan":
        (root / "dodo.py").write_text(PLAN_DODO)
    elif way == "python":
        (root / "dodo.py").write_text(RULES_DODO)
    else:
        (root / "pyproject.toml").write_text(PYPROJECT)
    return root


def run(root: Path, *args: str, env: dict[str, str] | None = None) -> Run:
    # doit as installed, with no path to this repository: the project sees doit-oci as a user
    full = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    full.update(env or {})
    result = subprocess.run(
        [sys.executable, "-m", "doit", *args],
        cwd=root,
        env=full,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return Run(result.returncode, result.stdout, result.stderr)


def refs(root: Path) -> dict[str, str]:
    index = json.loads((root / "out/oci/index.json").read_text())
    return {
        m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
        for m in index["manifests"]
    }


@pytest.fixture(scope="module")
def installed() -> None:
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import importlib.metadata as m;"
            "print([e.name for e in m.entry_points(group='doit.LOADER')])",
        ],
        capture_output=True,
        text=True,
        cwd="/",
        check=True,
    )
    if "doit_oci" not in probe.stdout:
        pytest.fail("doit-oci is not installed (pip install -e .): .ci/run installs it")


def test_the_three_ways_give_the_same_digests(
    installed: None, tmp_path: Path, registry: RunningRegistry
) -> None:
    plan = project(tmp_path / "plan", "plan")
    python = project(tmp_path / "python", "python")
    yaml_only = project(tmp_path / "yaml", "yaml")

    first = run(plan, "oci_images")
    assert first.code == 0, first.text
    mine = run(plan, "layer")  # the project's own task, beside ours
    assert mine.code == 0 and "the project s rules" in mine.out
    listed = run(plan, "list", "--all")
    assert "oci.image:app" in listed.out and "layer " in listed.out

    second = run(python)  # the default task: oci_images, every image rule
    assert run(python, "save:app").code == 0
    assert second.code == 0, second.text
    third = run(yaml_only, "build_images")
    assert third.code == 0, third.text
    assert "image:app" in third.out

    digests = refs(python)
    assert refs(plan) == refs(yaml_only) == {"app:latest": digests["app:latest"]}
    assert set(digests) == {"base:latest", "app:latest", "tool:latest"}  # every rule is named
    bases = {
        json.loads(path.read_text())["manifest"]["digest"]
        for root in (plan, python, yaml_only)
        for path in (root / "out/build").rglob("linux_amd64/base/image.json")
    }
    assert bases == {digests["base:latest"]}

    # the rule without a Dockerfile: what it says, on the base it names
    config = json.loads(
        subprocess.run(
            ["skopeo", "inspect", "--config", f"oci:{python}/out/oci:tool:latest"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert config["config"]["Entrypoint"] == ["/usr/local/bin/tool"]
    assert config["config"]["Env"] == ["PATH=/usr/local/bin", "MODE=tool"]
    assert config["config"]["User"] == "1000"
    bundle = tmp_path / "tool-bundle"
    subprocess.run(
        ["umoci", "unpack", "--rootless", "--image", f"{python}/out/oci:tool:latest", str(bundle)],
        capture_output=True,
        check=True,
    )
    assert (bundle / "rootfs/usr/local/bin/tool").read_bytes() == (
        python / "out/linux_amd64/app"
    ).read_bytes()
    assert (bundle / "rootfs/etc/passwd").is_file()
    assert (python / "out/app.tar.gz").is_file()  # oci_save

    # and pushed each way: the same digest in the registry
    hub = registry.host
    pushed = [
        run(plan, "oci_images", "--push", "--hub", f"{hub}/one", "--tag", "1.0"),
        run(python, "push:app", env={"REG": hub}),
        run(yaml_only, "build_images", "--push", "--hub", f"{hub}/three", "--tag", "1.0"),
    ]
    for result in pushed:
        assert result.code == 0, result.text
    found = set()
    for repository in ("one", "two", "three"):
        inspected = subprocess.run(
            ["skopeo", "inspect", "--tls-verify=false", f"docker://{hub}/{repository}/app:1.0"],
            capture_output=True,
            text=True,
            check=True,
        )
        found.add(json.loads(inspected.stdout)["Digest"])
    assert found == {digests["app:latest"]}


def test_a_project_module_named_rules_does_not_shadow_ours(installed: None, tmp_path: Path) -> None:
    root = project(tmp_path / "p", "plan")
    result = run(root, "list")
    assert result.code == 0, result.text
    assert "oci_images" in result.out


def test_pyproject_with_several_plans(installed: None, tmp_path: Path) -> None:
    root = project(tmp_path / "p", "yaml")
    (root / "plans/other.yaml").write_text(PLAN.replace("name: app", "name: other"))
    (root / "pyproject.toml").write_text(
        PYPROJECT.replace(
            'plans = ["plans/images.yaml"]', 'plans = ["plans/images.yaml", "plans/other.yaml"]'
        )
    )
    result = run(root, "build_images", "--tag", "2.0")
    assert result.code == 0, result.text
    assert {"images.image:app", "other.image:other"} <= set(result.executed)
    assert {"app:2.0", "other:2.0", "base:2.0"} == set(refs(root)) - {"base:latest"} or {
        "app:2.0",
        "other:2.0",
    } <= set(refs(root))


def test_a_bad_pyproject_is_one_line(installed: None, tmp_path: Path) -> None:
    root = project(tmp_path / "p", "yaml")
    (root / "pyproject.toml").write_text(
        PYPROJECT.replace('plans = ["plans/images.yaml"]', "plans = 3")
    )
    result = run(root, "list")
    assert result.code != 0 and "Traceback" not in result.text
    assert "[tool.doit] plans must be a list of plan files" in result.err


def test_the_python_rules_are_in_the_repository_root(installed: None) -> None:
    assert (REPO / "rules" / "api.py").is_file()  # doit_oci.rules is the rules/ folder


INDEX_DODO = """\
from doit_oci import doit_config, oci_image, oci_index

DOIT_CONFIG = doit_config(default_task="oci_images")

task_base = oci_image(name="base", dockerfile="docker/base.Dockerfile", files=["docker/passwd"])
task_amd = oci_image(name="app-amd64", dockerfile="docker/app.Dockerfile",
                     targets=["${TARGET_OUT}/app"], platforms=["linux/amd64"])
task_arm = oci_image(name="app-arm64", dockerfile="docker/app.Dockerfile",
                     targets=["${TARGET_OUT}/app"], platforms=["linux/arm64"])
task_app = oci_index("app", [task_amd, task_arm], tags=["1.0"])
"""


def test_oci_index_joins_single_platform_rules(installed: None, tmp_path: Path) -> None:
    root = project(tmp_path / "p", "python")
    (root / "dodo.py").write_text(INDEX_DODO)
    env = {"DOCKER_ARCHITECTURES": "linux/amd64,linux/arm64"}
    assert run(root, env=env).code == 0
    result = run(root, "index:app", env=env)
    assert result.code == 0, result.text
    raw = json.loads(
        subprocess.run(
            ["skopeo", "inspect", "--raw", f"oci:{root}/out/oci:app:1.0"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert [m["platform"]["architecture"] for m in raw["manifests"]] == ["amd64", "arm64"]
    names = refs(root)
    assert raw["manifests"][0]["digest"] == names["app-amd64:latest"]
    assert raw["manifests"][1]["digest"] == names["app-arm64:latest"]
