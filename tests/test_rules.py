"""Python rules from a user's dodo.py: every mistake is one line naming dodo.py:<line> of
the rule, what is wrong and what to write instead, before anything is written; an index
of single-platform rules works without naming its platforms anywhere else."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from test_ways import WAYS, doit, names, ok, project

RULES = next(way for way in WAYS if way.name == "rules")
HEAD = "from doit_oci import doit_config, oci_image, oci_index, oci_push, oci_save\n"
BASE = (
    'task_base = oci_image(name="base", dockerfile="docker/base.Dockerfile",'
    ' files=["docker/passwd"])\n'
)

CASES = {
    "dockerfile and base": (
        'task_x = oci_image(name="x", dockerfile="docker/app.Dockerfile", base=":base")',
        "oci_image 'x' has a dockerfile and base= or a files mapping; either name a Dockerfile",
    ),
    "dockerfile and a files mapping": (
        'task_x = oci_image(name="x", dockerfile="docker/app.Dockerfile", files={"/a": "b"})',
        "oci_image 'x' has a dockerfile and base= or a files mapping",
    ),
    "a files list without a Dockerfile": (
        'task_x = oci_image(name="x", base=":base", files=["docker/passwd"])',
        "oci_image 'x' without a Dockerfile needs files as a mapping; write files={",
    ),
    "one name twice": (
        'task_x = oci_image(name="base", base=":base")',
        "'base' is declared twice (first at dodo.py:3); give each image rule a name of its own",
    ),
    "a repository that is no repository": (
        'task_x = oci_push(task_base, ["127.0.0.1:5000/Bad"])',
        "write the repository as host[:port]/path, in lowercase",
    ),
    "a push of no rule": (
        'task_x = oci_push("a", ["127.0.0.1:5000/a"])',
        "oci_push takes an image rule, not 'a'; pass what oci_image or oci_index returned",
    ),
    "env as a list": (
        'task_x = oci_image(name="x", base=":base", env=["A=1"])',
        'env must be a mapping; write env={"MODE": "prod"}',
    ),
    "an entrypoint string": (
        'task_x = oci_image(name="x", base=":base", entrypoint="/x")',
        "entrypoint='/x' is a string; write a list such as entrypoint=[",
    ),
    "a base that is no rule": (
        'task_x = oci_image(name="x", base=":nosuch")',
        "base ':nosuch' names no image rule; name one of the rules: :base, :x, or a registry",
    ),
    "a save to a zip": (
        'task_x = oci_save(task_base, "out/base.zip")',
        "oci_save cannot write 'out/base.zip'; name a .tar.gz or .tgz",
    ),
    "an unknown keyword": (
        'task_x = oci_image(name="x", dockerfil="docker/app.Dockerfile")',
        "oci_image: image_rule() got an unexpected keyword argument 'dockerfil'",
    ),
    "an index of no list": (
        'task_x = oci_index("x", task_base)',
        "oci_index needs a list of image rules",
    ),
}


def rules_project(tmp_path: Path, line: str) -> Path:
    root = project(tmp_path / "p", RULES)
    (root / "dodo.py").write_text(
        HEAD + "DOIT_CONFIG = doit_config(default_task='oci_images')\n" + BASE + line + "\n"
    )
    return root


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_a_mistake_in_a_rule_is_one_line_naming_it(tmp_path: Path, case: str) -> None:
    line, message = CASES[case]
    root = rules_project(tmp_path, line)
    for command in ("list", "oci_images"):
        run = doit(root, command)
        assert run.code == 1 and "Traceback" not in run.text, run.text
        (error,) = run.err.splitlines()
        assert error.startswith("error: dodo.py:4: ") or "dodo.py:4" in error, error
        assert message in error, error
    assert not (root / "out" / "oci").exists()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('task_x = oci_image(name="x", base=":base", expose=["80/xtp"])', "invalid port '80/xtp'"),
        (
            'task_x = oci_image(name="x", base=":base", files={"/a": "docker/nope"})',
            "'docker/nope'",
        ),
    ],
)
def test_a_mistake_found_building_a_rule_names_the_rule(
    tmp_path: Path, line: str, message: str
) -> None:
    # not the Dockerfile written for it under out/rules/
    root = rules_project(tmp_path, line)
    run = doit(root, "oci_images")
    assert run.code == 1 and "Traceback" not in run.text
    (error,) = [line for line in run.err.splitlines() if line.startswith("error:")]
    assert error.startswith("error: dodo.py:4: ") and message in error, error


INDEX = """\
from doit_oci import doit_config, oci_image, oci_index

DOIT_CONFIG = doit_config(default_task="oci_images")

task_base = oci_image(name="base", dockerfile="docker/base.Dockerfile", files=["docker/passwd"])
task_amd = oci_image(name="app-amd64", dockerfile="docker/app.Dockerfile",
                     targets=["${TARGET_OUT}/app"], platforms=["linux/amd64"])
task_arm = oci_image(name="app-arm64", dockerfile="docker/app.Dockerfile",
                     targets=["${TARGET_OUT}/app"], platforms=["linux/arm64"])
task_app = oci_index("app", [task_amd, task_arm], tags=["1.0"])
"""


def test_an_index_of_single_platform_rules_needs_no_platform_option(tmp_path: Path) -> None:
    root = project(tmp_path / "p", RULES)
    (root / "dodo.py").write_text(INDEX)
    listed = ok(doit(root, "list"))
    assert "index:app" in listed.out
    built = ok(doit(root))  # oci_images makes the index too
    assert "index:app" in built.executed
    raw = json.loads(
        subprocess.run(
            ["skopeo", "inspect", "--raw", f"oci:{root}/out/oci:app:1.0"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert [m["platform"]["architecture"] for m in raw["manifests"]] == ["amd64", "arm64"]
    found = names(root)
    assert [m["digest"] for m in raw["manifests"]] == [
        found["app-amd64:latest"],
        found["app-arm64:latest"],
    ]
    narrowed = doit(root, "list", env={"DOCKER_ARCHITECTURES": "linux/amd64"})
    assert narrowed.code == 1 and "Traceback" not in narrowed.text
    assert narrowed.err.startswith("error: dodo.py:10: image rule 'app-arm64' is not built")


def test_a_rule_that_is_not_bound_to_a_name_is_built(tmp_path: Path) -> None:
    root = project(tmp_path / "p", RULES)
    (root / "dodo.py").write_text(
        HEAD
        + "DOIT_CONFIG = doit_config(default_task='oci_images')\n"
        + BASE
        + 'oci_image(name="tool", base=":base", files={"/etc/x": "docker/passwd"})\n'
    )
    ok(doit(root))
    assert {"base:latest", "tool:latest"} <= set(names(root))
