"""One end-to-end suite, run the same way for every way in: a dodo.py with a plan (with
and without a task prefix), a dodo.py with Python rules, pyproject.toml alone with one
plan and with two. Each project is a user's own: its Makefile, Dockerfiles and modules,
doit-oci installed (not on PYTHONPATH). Build, no-op, one change, push, status, gc,
verify, push_index and a bad input behave the same in each, by construction."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from registries import RunningRegistry
from runtimes import RunningContainerd
from support import Run, push_base

from doit_oci.registry import oci

MAKEFILE = """\
TARGET_OUT ?= $(CURDIR)/out/linux_amd64
$(TARGET_OUT)/app: src/app.sh
\tmkdir -p $(@D)
\tcp src/app.sh $@
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
OTHER_PLAN = """\
images:
- name: base
  dockerfile: docker/base.Dockerfile
  files: [docker/passwd]
  base: true
- name: other
  dockerfile: docker/other.Dockerfile
  files: [docker/other.txt]
"""
BASE = "FROM scratch\nCOPY passwd /etc/passwd\nENV PATH=/usr/local/bin\n"
APP = (
    "FROM base\nARG TARGETARCH\nCOPY ${TARGETARCH}/app /usr/local/bin/app\n"
    'USER 1000\nENTRYPOINT ["/usr/local/bin/app"]\n'
)
OTHER = "FROM base\nCOPY other.txt /srv/other.txt\n"
PLAN_DODO = """\
from doit_oci import doit_config, image_tasks

DOIT_CONFIG = doit_config(default_task="{group}")
task_images = image_tasks("plans/images.yaml", group="{group}", prefix="{prefix}")


def task_layer():       # the project's own task, named like one of ours
    return {{"actions": ["echo mine"], "verbosity": 2}}
"""
RULES_DODO = """\
from doit_oci import doit_config, oci_image

DOIT_CONFIG = doit_config(default_task="oci_images")

task_base = oci_image(name="base", dockerfile="docker/base.Dockerfile", files=["docker/passwd"])
task_app = oci_image(name="app", dockerfile="docker/app.Dockerfile",
                     targets=["${TARGET_OUT}/app"])
"""
PYPROJECT = """\
[project]
name = "someone-elses-project"
version = "1.0"

[tool.doit]
loader = "doit_oci"
plans = [{plans}]
"""


@dataclass(frozen=True)
class Way:
    name: str
    group: str  # the task that builds everything
    prefix: str  # before the task names of the app's plan

    def task(self, step: str) -> str:
        return f"{self.prefix}{step}"


WAYS = [
    Way("plan", "build_images", ""),
    Way("plan-prefix", "images", "oci."),
    Way("rules", "oci_images", ""),
    Way("pyproject", "build_images", ""),
    Way("pyproject-two-plans", "build_images", "images."),
]


def project(root: Path, way: Way) -> Path:
    for folder in ("docker", "plans", "src"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "Makefile").write_text(MAKEFILE)
    (root / "src/app.sh").write_text("#!/bin/sh\necho app\n")
    (root / "plans/images.yaml").write_text(PLAN)
    (root / "docker/passwd").write_text("root:x:0:0::/:/bin/sh\napp:x:1000:1000::/:/bin/sh\n")
    (root / "docker/base.Dockerfile").write_text(BASE)
    (root / "docker/app.Dockerfile").write_text(APP)
    if way.name.startswith("plan"):
        (root / "dodo.py").write_text(PLAN_DODO.format(group=way.group, prefix=way.prefix))
    elif way.name == "rules":
        (root / "dodo.py").write_text(RULES_DODO)
    else:
        plans = ['"plans/images.yaml"']
        if way.name == "pyproject-two-plans":
            (root / "plans/other.yaml").write_text(OTHER_PLAN)
            (root / "docker/other.Dockerfile").write_text(OTHER)
            (root / "docker/other.txt").write_text("other\n")
            plans.append('"plans/other.yaml"')
        (root / "pyproject.toml").write_text(PYPROJECT.format(plans=", ".join(plans)))
    return root


def doit(root: Path, *args: str, env: dict[str, str] | None = None) -> Run:
    """doit as a user runs it: installed, in the project, no path to this repository."""
    full = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TAG", "HUB", "PUSH")}
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


def names(root: Path) -> dict[str, str]:
    index = json.loads((root / "out/oci/index.json").read_text())
    return {
        m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
        for m in index["manifests"]
    }


def ok(run: Run) -> Run:
    assert run.code == 0, run.text
    assert "Traceback" not in run.text
    return run


@pytest.fixture(params=WAYS, ids=[way.name for way in WAYS])
def way(request: pytest.FixtureRequest) -> Way:
    assert isinstance(request.param, Way)
    return request.param


@pytest.fixture
def built(tmp_path: Path, way: Way, installed: None) -> Path:
    root = project(tmp_path / way.name, way)
    first = ok(doit(root, way.group))
    assert way.task("image:app") in first.executed
    assert "app " in first.err and "layers built/cached/reused" in first.err  # the table
    return root


# the digest every way gives the app, on the same inputs
APP_DIGESTS: set[str] = set()


def test_build_and_no_op(built: Path, way: Way) -> None:
    found = names(built)
    assert "app:latest" in found
    APP_DIGESTS.add(found["app:latest"])
    assert len(APP_DIGESTS) == 1, "the ways give different digests"
    again = ok(doit(built, way.group))
    assert again.executed == []
    assert "layers built/cached/reused" in again.err  # the summary ends every build


def test_one_change_rebuilds_what_depends_on_it(built: Path, way: Way) -> None:
    (built / "src/app.sh").write_text("#!/bin/sh\necho changed\n")
    run = ok(doit(built, way.group))
    assert {way.task("make"), way.task("translate:app"), way.task("layer:app.0")} <= set(
        run.executed
    )
    assert way.task("layer:base.0") not in run.executed  # the base is unchanged
    assert way.task("parse:app") not in run.executed


def test_a_change_told_as_json_events(built: Path, way: Way) -> None:
    (built / "src/app.sh").write_text("#!/bin/sh\necho told\n")
    run = ok(doit(built, way.group, env={"PROGRESS": "json"}))
    events = [json.loads(line) for line in run.out.splitlines()]  # nothing else on stdout
    started = {e["task"]: e for e in events if e["event"] == "task-started"}
    layer = started[way.task("layer:app.0")]  # its image known, whatever the prefix
    assert (layer["step"], layer["image"], layer["platform"]) == ("layer", "app", "linux/amd64")
    summary = events[-1]
    assert summary["event"] == "summary" and summary["ok"]
    rows = {(row["plan"], row["image"]): row for row in summary["images"]}
    assert rows[(way.prefix, "app")]["digest"] == names(built)["app:latest"]
    assert rows[(way.prefix, "app")]["built"] == 1


def test_options_on_the_command_line(built: Path, way: Way) -> None:
    ok(doit(built, way.group, "--tag", "9.9"))
    assert "app:9.9" in names(built) and "app:latest" in names(built)


def test_status(built: Path, way: Way) -> None:
    run = ok(doit(built, "status"))
    assert [line for line in run.out.splitlines() if "app " in line and "up to date" in line]
    (built / "src/app.sh").write_text("#!/bin/sh\necho changed\n")
    ok(doit(built, way.task("make")))
    run = ok(doit(built, way.task("status")))
    assert "out of date: layer 0:" in run.out


def test_gc_and_verify(built: Path, way: Way) -> None:
    blobs = built / "out/oci/blobs/sha256"
    before = {p.name for p in blobs.iterdir()}
    (blobs / ("0" * 64)).write_bytes(b"a stray blob, named by nothing")
    run = ok(doit(built, "gc"))
    assert "gc: removed 1 blobs" in run.out
    assert {p.name for p in blobs.iterdir()} == before
    manifest = names(built)["app:latest"]
    (blobs / manifest[7:]).unlink()
    broken = doit(built, "verify")
    assert broken.code != 0 and "Traceback" not in broken.text
    assert f"blob {manifest} is missing" in broken.out and "needed by app:latest" in broken.out
    ok(doit(built, way.group))  # the next build makes it again
    assert "every blob of" in ok(doit(built, "verify")).out


def test_push_and_push_index(built: Path, way: Way, registry: RunningRegistry) -> None:
    hub = f"{registry.host}/{way.name}"
    release = ("--image-refs", "refs.txt", "--metadata-file", "meta.json", "--sbom")
    pushed = ok(doit(built, way.group, "--push", "--hub", hub, "--tag", "1.0", *release))
    assert way.task("push:app") in pushed.executed
    assert way.task("attach:app") in pushed.executed and way.task("sbom:app") in pushed.executed
    inspected = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", f"docker://{hub}/app:1.0"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(inspected.stdout)["Digest"] == names(built)["app:1.0"]
    # the refs file names every image of every plan of the run, by the digest pushed
    refs = (built / "refs.txt").read_text().splitlines()
    assert f"{hub}/app@{names(built)['app:1.0']}" in refs
    expected = {"pyproject-two-plans": {"app", "other"}, "rules": {"app", "base"}}.get(
        way.name, {"app"}
    )  # Python rules build every rule; a plan's base: true images are not targets
    assert {line.partition("@")[0].rsplit("/", 1)[1] for line in refs} == expected
    assert json.loads((built / "meta.json").read_text())["app"]["references"] == [f"{hub}/app:1.0"]
    nothing = ok(doit(built, way.group, "--push", "--hub", hub, "--tag", "1.0", *release))
    assert nothing.executed == []
    one = ok(doit(built, way.group, "--push", "--platform-tags", "--hub", hub, "--tag", "2.0"))
    assert way.task("push:app") in one.executed
    key = ec.generate_private_key(ec.SECP256R1())
    (built / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    index_args = ("--tag", "2.0", "--image-refs", "ix.txt", "--sign-key", "key.pem")
    joined = ok(doit(built, "push_index", "--hub", hub, *index_args))
    assert way.task("index:app") in joined.executed
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{hub}/app:2.0"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert [m["platform"]["architecture"] for m in json.loads(raw.stdout)["manifests"]] == ["amd64"]
    index = oci.sha256_digest(raw.stdout.encode())
    assert f"{hub}/app@{index}" in (built / "ix.txt").read_text().splitlines()
    # the index push_index made is signed as cosign signs (the payload names it)
    sig = httpx.get(
        f"{registry.url}/v2/{way.name}/app/manifests/sha256-{index[7:]}.sig",
        headers={"Accept": oci.MANIFEST},
    ).json()
    (layer,) = sig["layers"]
    signed = httpx.get(f"{registry.url}/v2/{way.name}/app/blobs/{layer['digest']}").content
    assert json.loads(signed)["critical"]["image"]["docker-manifest-digest"] == index
    signature = base64.b64decode(layer["annotations"]["dev.cosignproject.cosign/signature"])
    key.public_key().verify(signature, signed, ec.ECDSA(hashes.SHA256()))


def test_load_and_load_alone(built: Path, way: Way, containerd: RunningContainerd) -> None:
    env = containerd.env
    loaded = ok(doit(built, way.group, f"--load-runtime=containerd:{way.name}", env=env))
    assert way.task("load:app") in loaded.executed
    app = "docker.io/library/app:latest"
    assert containerd.images(namespace=way.name)[app] == names(built)["app:latest"]
    again = ok(doit(built, way.group, f"--load-runtime=containerd:{way.name}", env=env))
    assert again.executed == []
    alone = ok(doit(built, "load", f"--load-runtime=containerd:{way.name}-alone", env=env))
    assert alone.executed == ["load"]
    assert containerd.images(namespace=f"{way.name}-alone")[app] == names(built)["app:latest"]


def test_a_lock_beside_the_plan_and_locked_offline_builds(
    built: Path, way: Way, registry: RunningRegistry
) -> None:
    seed = push_base(registry.host, f"{way.name}/seed", "1")
    (built / "docker/base.Dockerfile").write_text(
        BASE.replace("FROM scratch", f"FROM {seed.reference}")
    )
    locked = ok(doit(built, "lock"))
    lock = built / ("bases.lock" if way.name == "rules" else "plans/bases.lock")
    assert f"lock: wrote {lock.relative_to(built)} (1 bases)" in locked.out
    assert f"- reference: {seed.reference}\n  platforms:\n    linux/amd64: {seed.top}\n" in (
        lock.read_text()
    )
    run = ok(doit(built, way.group, "--locked"))
    assert way.task(f"base:{seed.reference}") in run.executed
    assert ok(doit(built, way.group, "--offline")).executed == []


def test_a_bad_input_is_one_line(built: Path, way: Way) -> None:
    before = sorted(p.relative_to(built) for p in (built / "out").rglob("*"))
    (built / "docker/app.Dockerfile").write_text(APP.replace("FROM base", "FROM bsae"))
    run = doit(built, way.group)
    assert run.code == 1 and "Traceback" not in run.text and run.out == ""
    (error,) = run.err.splitlines()
    assert error.startswith("error: docker/app.Dockerfile:1: no plan image 'bsae'"), error
    assert "(did you mean 'base'?)" in error
    assert sorted(p.relative_to(built) for p in (built / "out").rglob("*")) == before


@pytest.fixture(scope="module")
def installed() -> None:
    probe = subprocess.run(
        [sys.executable, "-c", "import doit_oci.rules.tasks"],
        capture_output=True,
        cwd="/",
        check=False,
    )
    if probe.returncode != 0:
        pytest.fail("doit-oci is not installed (pip install -e .): .ci/run installs it")


def test_help_and_a_misspelt_option(built: Path, way: Way) -> None:
    helped = doit(built, way.group, "--help")
    assert helped.code == 0 and "--architectures=VALUE" in helped.out
    assert "(env DOCKER_ARCHITECTURES; default linux/amd64)" in helped.out
    wrong = doit(built, way.group, "--tags", "1.0")
    assert wrong.code == 1 and "Traceback" not in wrong.text and wrong.out == ""
    assert wrong.err == (
        f"error: doit {way.group}: unknown option --tags (did you mean --tag?);"
        f" see doit {way.group} --help for its options\n"
    )
