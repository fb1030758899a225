"""The task dicts of a build (rules.graph, rules.publish) and of Python rules
(rules.ruleset), made in-process with a stand-in for doit: names, what each task reads
and writes, what it waits for."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from doit_oci.registry.oci import Descriptor
from doit_oci.registry.push import Destination
from doit_oci.rules import api, ruleset
from doit_oci.rules.build import load_build
from doit_oci.rules.globals import PROCESS
from doit_oci.rules.graph import Doit, TaskDict
from doit_oci.rules.options import Options
from doit_oci.rules.publish import Extra, PushTask, build_tasks
from doit_oci.rules.steps.run import Run

PLAN = """\
images:
- name: base
  dockerfile: base.Dockerfile
  files: [passwd]
  base: true
- name: app
  dockerfile: app.Dockerfile
  targets: ['${TARGET_OUT}/app']
"""
FILES = {
    "base.Dockerfile": "FROM scratch\nCOPY passwd /etc/passwd\n",
    "app.Dockerfile": "FROM base\nARG TARGETARCH\nCOPY ${TARGETARCH}/app /app\nCOPY app /app2\n",
    "passwd": "root:x:0:0::/:/bin/sh\n",
}


def fake_action(work: Any) -> Any:
    return ("action", work)


def fake_changed(values: Any) -> Any:
    return ("changed", values)


DOIT = Doit(action=fake_action, changed=fake_changed)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "images.yaml").write_text(PLAN)
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    return tmp_path


@pytest.fixture
def clean_process() -> Iterator[None]:
    lock = PROCESS.lock
    PROCESS.reset()
    yield
    PROCESS.reset()
    if PROCESS.lock is not None and PROCESS.lock is not lock:
        PROCESS.lock.close()
    PROCESS.lock = lock


def tasks_of(
    workspace: Path, prefix: str = "", extra: Extra | None = None, **options: Any
) -> dict[str, TaskDict]:
    build = load_build(Options(**options), workspace, {})
    run = Run(build, {})
    made = list(build_tasks(DOIT, run, "group", prefix, extra or Extra(), lambda: [run]))
    names = [task["basename"] for task in made]
    assert len(names) == len(set(names)), "a task name given twice"
    return {task["basename"]: task for task in made}


def test_each_step_declares_what_it_reads_and_writes(workspace: Path) -> None:
    tasks = tasks_of(workspace)
    out = workspace / "out" / "build" / "linux_amd64"
    assert set(tasks) >= {
        "make",
        "parse:base",
        "translate:base",
        "layer:base.0",
        "image:base",
        "parse:app",
        "translate:app",
        "layer:app.0",
        "layer:app.1",
        "image:app",
        "layout",
        "status",
        "gc",
        "verify",
        "push_index",
        "group",
    }
    assert tasks["parse:app"]["file_dep"] == [
        str(workspace / "app.Dockerfile"),
        str(out / "base" / "image.json"),
    ]
    assert tasks["parse:app"]["targets"] == [
        str(out / "app/copies.json"),
        str(out / "app/config.json"),
    ]
    assert tasks["translate:app"]["task_dep"] == ["make", "translate:base"]
    assert tasks["translate:base"]["task_dep"] == []  # no make target, a scratch base
    assert tasks["layer:app.1"]["file_dep"] == [str(out / "app/layer-1.inputs.json")]
    assert tasks["layer:app.1"]["targets"] == [str(out / "app/layer-1.json")]
    assert tasks["image:app"]["file_dep"] == [
        str(out / "app/config.json"),
        str(out / "app/layer-0.json"),
        str(out / "app/layer-1.json"),
        str(out / "base/image.json"),
    ]
    assert tasks["layout"]["file_dep"] == [str(out / "app/image.json")]
    assert tasks["group"]["task_dep"] == ["layout"]
    layer_values = tasks["layer:app.0"]["uptodate"][0]
    assert layer_values == (
        "changed",
        {"compression": "none", "epoch": 0, "version": 3, "cache": ""},
    )
    assert str(tasks["layer:app.0"]["uptodate"][1]) == "its blob is in out/oci"


def test_a_prefix_goes_before_every_name_but_the_group(workspace: Path) -> None:
    tasks = tasks_of(workspace, prefix="oci.", scope="oci")
    plain = {"group", "status", "gc", "verify", "push_index", "load", "lock"}  # over every plan
    assert plain <= set(tasks)
    assert {"oci.status", "oci.gc", "oci.push_index", "oci.lock"} <= set(tasks)
    assert all(name.startswith("oci.") for name in set(tasks) - plain)
    assert tasks["oci.translate:app"]["task_dep"] == ["oci.make", "oci.translate:base"]
    assert tasks["oci.parse:app"]["targets"][0].endswith(
        "out/build/oci/linux_amd64/app/copies.json"
    )


def test_pushes_wait_for_their_base_and_check_each_registry_once(workspace: Path) -> None:
    tasks = tasks_of(
        workspace,
        push=True,
        hubs=("127.0.0.1:5000/team", "127.0.0.1:5000/other"),
        targets=("base", "app"),
        no_clobber=True,
    )
    push = tasks["push:app"]
    # after --no-clobber's check, the base's push and the upload of every layer it holds
    assert push["task_dep"] == [
        "no-clobber",
        "push:base",
        "upload:app.0",
        "upload:app.1",
        "upload:base.0",
    ]
    upload = tasks["upload:base.0"]  # the base's layer goes to both repositories at once
    assert upload["file_dep"] == [tasks["layer:base.0"]["targets"][0]]
    assert upload["setup"] == ["registry:127.0.0.1:5000"] and upload["task_dep"] == ["no-clobber"]
    assert upload["uptodate"][0][1]["to"] == [
        "127.0.0.1:5000/team/base",
        "127.0.0.1:5000/other/base",
        "127.0.0.1:5000/team/app",
        "127.0.0.1:5000/other/app",
    ]
    assert tasks["upload:app.1"]["uptodate"][0][1]["to"] == [
        "127.0.0.1:5000/team/app",
        "127.0.0.1:5000/other/app",
    ]
    assert push["setup"] == ["registry:127.0.0.1:5000"]
    assert push["uptodate"][0][1]["to"] == [
        "127.0.0.1:5000/team/app:latest",
        "127.0.0.1:5000/other/app:latest",
    ]
    assert [n for n in tasks if n.startswith("registry:")] == ["registry:127.0.0.1:5000"]
    assert tasks["group"]["task_dep"] == ["layout", "push:base", "push:app"]
    assert {"index:base", "index:app"} <= set(tasks)  # push_index's joins


def test_a_rule_push_of_the_same_name_is_merged(workspace: Path) -> None:
    rule = PushTask(
        "app",
        lambda: Descriptor("x", "sha256:" + "0" * 64, 1),
        (Destination("registry.example.com", "team/app", ("1.0",)),),
        (),
    )
    other = PushTask("release", rule.descriptor, rule.where, ())
    tasks = tasks_of(
        workspace, extra=Extra(pushes=(rule, other)), push=True, hubs=("127.0.0.1:5000",)
    )
    assert tasks["push:app"]["uptodate"][0][1]["to"] == [
        "127.0.0.1:5000/app:latest",
        "registry.example.com/team/app:1.0",
    ]
    assert tasks["push:app"]["setup"] == [
        "registry:127.0.0.1:5000",
        "registry:registry.example.com",
    ]
    assert "push:release" in tasks and "push:release" not in tasks["group"]["task_dep"]


def test_no_cache_runs_every_task_that_does_something(workspace: Path) -> None:
    tasks = tasks_of(workspace, no_cache=True)
    assert tasks["layer:app.0"]["uptodate"][-1] is False
    assert tasks["translate:app"]["uptodate"][-1] is False
    assert "uptodate" not in tasks["group"]


def test_options_on_the_command_line_reach_python_rules(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, clean_process: None
) -> None:
    monkeypatch.chdir(workspace)
    argv = ["doit", "list", "oci_images", "--tag", "9.9", "--architectures", "linux/arm64"]
    monkeypatch.setattr(sys, "argv", argv)
    declared: list[api.Declaration] = []
    base = api.image_rule(
        "base", "dodo.py:3", declared, dockerfile="base.Dockerfile", files=["passwd"]
    )
    declared.append(base)
    declared.append(
        api.image_rule("tool", "dodo.py:4", declared, base=base, files={"/p": "passwd"})
    )
    tasks = {task["basename"]: task for task in ruleset.rules_tasks(declared)}
    (made,) = PROCESS.runs
    assert [o.tags for o in made.run.build.outputs] == [("9.9",), ("9.9",)]
    assert [str(p) for p in made.run.options.platforms] == ["linux/arm64"]
    assert {"parse:base", "image:tool", "oci_images", "status"} <= set(tasks)
    dockerfile = (workspace / "out" / "rules" / "tool.Dockerfile").read_text()
    assert "FROM base\n" in dockerfile and 'COPY ["passwd", "/p"]' in dockerfile


def test_pushing_every_rule_with_push_and_hub(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, clean_process: None
) -> None:
    monkeypatch.chdir(workspace)
    monkeypatch.setattr(sys, "argv", ["doit", "list"])
    monkeypatch.setenv("PUSH", "true")
    monkeypatch.setenv("HUB", "127.0.0.1:5000")
    declared: list[api.Declaration] = []
    base = api.image_rule(
        "base", "dodo.py:3", declared, dockerfile="base.Dockerfile", files=["passwd"]
    )
    declared.append(base)
    tool = api.image_rule("tool", "dodo.py:4", declared, base=base, files={"/p": "passwd"})
    declared.append(tool)
    declared.append(api.push_rule("dodo.py:5", tool, ["127.0.0.1:5000/x/tool"], ["1"]))
    tasks = {task["basename"]: task for task in ruleset.rules_tasks(declared)}
    # every dependency of every task exists (it did not: "push:base" was missing)
    for task in tasks.values():
        for dep in [*task.get("task_dep", []), *task.get("setup", [])]:
            if "*" in dep:
                continue  # a pattern, resolved by doit
            assert dep in tasks, (task["basename"], dep)
    assert tasks["push:tool"]["uptodate"][0].__class__.__name__ == "config_changed"


def test_the_release_tasks_and_what_they_wait_for(workspace: Path, clean_process: None) -> None:
    (workspace / "key.pem").write_text("a key\n")
    hub = ("registry.example.com/team",)
    options = {"push": True, "hubs": hub, "sbom": True, "provenance": True}
    tasks = tasks_of(workspace, **options, sign_key="key.pem", image_refs="refs.txt")
    out = workspace / "out" / "build" / "linux_amd64"
    assert tasks["sbom:app"]["file_dep"] == [
        str(out / "app/image.json"),
        str(out / "app/layer-0.inputs.json"),
        str(out / "app/layer-1.inputs.json"),
        str(out / "base/image.json"),
    ]
    assert tasks["sbom:app"]["targets"] == [str(workspace / "out/sbom/app.spdx.json")]
    attach = tasks["attach:app"]
    assert attach["task_dep"] == ["push:app", "sbom:app"]
    assert str(workspace / "out/build/push/app.json") in attach["file_dep"]
    assert str(workspace / "key.pem") in attach["file_dep"]  # a new key signs again
    assert str(workspace / "app.Dockerfile") in attach["file_dep"]  # provenance names it
    assert attach["targets"] == [str(workspace / "out/build/attach/app.json")]
    assert tasks["release"]["task_dep"] == [
        "layout",
        "push:app",
        "sbom:base",
        "sbom:app",
        "attach:app",
    ]
    assert "release" in tasks["group"]["task_dep"] and "attach:app" in tasks["group"]["task_dep"]
    without = tasks_of(workspace, push=True, hubs=hub)
    assert not [name for name in without if name.split(":")[0] in ("sbom", "attach", "release")]
    local = tasks_of(workspace, sbom=True, metadata_file="meta.json")  # no push: no attach
    assert "sbom:app" in local and "release" in local and "attach:app" not in local
