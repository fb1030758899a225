"""The annotations of manifests and indexes: the automatic ones (created from
SOURCE_DATE_EPOCH, the git checkout's source and revision), the plan's, the Python
rules', the command line's, in that order; read from a real git checkout."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from doit_oci.registry.oci import Platform
from doit_oci.rules import api
from doit_oci.rules.annotations import (
    CREATED,
    REVISION,
    SOURCE,
    automatic,
    common,
    created_at,
    merged,
)
from doit_oci.rules.build import load_build
from doit_oci.rules.errors import UserError
from doit_oci.rules.gitsource import GitSource, pick_remote, read_source, strip_credentials
from doit_oci.rules.options import read_options
from doit_oci.rules.plan import load_plan

AMD64 = Platform("linux", "amd64")


def test_created_is_written_as_the_configs() -> None:
    assert created_at(0) == "1970-01-01T00:00:00Z"
    assert created_at(1700000000) == "2023-11-14T22:13:20Z"
    assert automatic(0, None) == ((CREATED, "1970-01-01T00:00:00Z"),)
    source = GitSource("a" * 40, "https://example.com/x.git")
    assert dict(automatic(5, source)) == {
        CREATED: "1970-01-01T00:00:05Z",
        REVISION: "a" * 40,
        SOURCE: "https://example.com/x.git",
    }
    assert dict(automatic(0, GitSource("b" * 40))) == {CREATED: created_at(0), REVISION: "b" * 40}


def test_later_layers_win_and_an_index_takes_what_its_manifests_agree_on() -> None:
    assert merged([("a", "1"), ("b", "1")], [("a", "2")], [("c", "3")]) == (
        ("a", "2"),
        ("b", "1"),
        ("c", "3"),
    )
    assert common([(("a", "1"), ("b", "1")), (("a", "1"), ("b", "2"))]) == (("a", "1"),)
    assert common([]) == ()


@pytest.mark.parametrize(
    ("url", "clean"),
    [
        ("https://user:token@github.com/org/repo.git", "https://github.com/org/repo.git"),
        ("https://ghp_secret@github.com/org/repo", "https://github.com/org/repo"),
        ("https://github.com/org/repo", "https://github.com/org/repo"),
        ("ssh://git:pw@host:2222/repo.git", "ssh://host:2222/repo.git"),
        ("https://u:p@host/x?y=1#frag", "https://host/x?y=1"),
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
        ("/srv/git/repo.git", "/srv/git/repo.git"),
    ],
)
def test_credentials_are_stripped_from_the_remote(url: str, clean: str) -> None:
    assert strip_credentials(url) == clean


def test_origin_first_else_the_first_remote() -> None:
    assert pick_remote("remote.up.url https://a\nremote.origin.url https://b\n") == "https://b"
    assert pick_remote("remote.up.url https://a\nremote.z.url https://c\n") == "https://a"
    assert pick_remote("") == ""


def git(folder: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "HOME": str(folder),
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        ["git", "-C", str(folder), *args], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_a_checkout_gives_its_head_and_its_remote_without_credentials(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    assert read_source(tmp_path) is None  # no commit yet: no revision rather than a wrong one
    (tmp_path / "f").write_text("x")
    git(tmp_path, "add", "f")
    git(tmp_path, "commit", "-q", "-m", "one")
    head = git(tmp_path, "rev-parse", "HEAD")
    assert read_source(tmp_path) == GitSource(head, "")
    git(tmp_path, "remote", "add", "origin", "https://bot:s3cret@git.example.com/team/app.git")
    (tmp_path / "sub").mkdir()
    found = read_source(tmp_path / "sub")  # a workspace inside the checkout
    assert found == GitSource(head, "https://git.example.com/team/app.git")


def test_no_checkout_or_no_git_gives_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert read_source(tmp_path) is None
    git(tmp_path, "init", "-q")
    (tmp_path / "f").write_text("x")
    git(tmp_path, "add", "f")
    git(tmp_path, "commit", "-q", "-m", "one")
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert read_source(tmp_path) is None


PLAN = """\
annotations:
  org.example.team: core
  org.example.tier: two
images:
- name: app
  dockerfile: app.Dockerfile
  annotations:
    org.example.tier: one
    org.opencontainers.image.title: app
- name: other
  dockerfile: app.Dockerfile
"""


def workspace(tmp_path: Path, plan: str = PLAN) -> Path:
    (tmp_path / "plans").mkdir(parents=True)
    (tmp_path / "plans/p.yaml").write_text(plan)
    (tmp_path / "app.Dockerfile").write_text("FROM scratch\n")
    return tmp_path


def test_a_plans_annotations(tmp_path: Path) -> None:
    plan = load_plan("plans/p.yaml", AMD64, workspace(tmp_path), {})
    assert plan.annotations == (("org.example.team", "core"), ("org.example.tier", "two"))
    app = plan.find("app")
    assert app is not None and dict(app.annotations) == {
        "org.example.tier": "one",
        "org.opencontainers.image.title": "app",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "annotations: [a]\nimages: []\n",
            "plans/p.yaml:1: annotations is not a mapping; write it as 'key: value' lines",
        ),
        (
            "annotations:\n  a b: x\nimages: []\n",
            "plans/p.yaml:2: invalid annotation key 'a b'; write keys such as org.example.team",
        ),
        (
            "images:\n- name: app\n  dockerfile: app.Dockerfile\n  annotations:\n    k: [1]\n",
            "plans/p.yaml:5: annotations of image 'app'.k must be a string; write a plain value",
        ),
    ],
)
def test_a_wrong_annotation_in_a_plan_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(UserError) as caught:
        load_plan("plans/p.yaml", AMD64, workspace(tmp_path, text), {})
    assert str(caught.value) == message


def test_every_layer_in_order_on_the_units(tmp_path: Path) -> None:
    root = workspace(tmp_path)
    argv = ["build_images", "--plan", "plans/p.yaml", "--annotation=org.example.team=cli"]
    build = load_build(read_options(argv, {}), root, {})
    app, other = (dict(build.unit(key).annotations) for key in ("app", "other"))
    assert app == {
        CREATED: "1970-01-01T00:00:00Z",
        "org.example.team": "cli",  # the command line over the plan
        "org.example.tier": "one",  # the image over the plan
        "org.opencontainers.image.title": "app",
    }
    assert other == {CREATED: created_at(0), "org.example.team": "cli", "org.example.tier": "two"}
    assert build.source is None  # not a checkout
    off = load_build(read_options([*argv, "--no-auto-annotations"], {}), root, {})
    assert CREATED not in dict(off.unit("app").annotations)


def test_a_checkout_annotates_every_unit(tmp_path: Path) -> None:
    root = workspace(tmp_path)
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "one")
    git(root, "remote", "add", "origin", "https://x:y@example.com/r.git")
    build = load_build(read_options(["build_images", "--plan", "plans/p.yaml"], {}), root, {})
    found = dict(build.unit("app").annotations)
    assert found[REVISION] == git(root, "rev-parse", "HEAD")
    assert found[SOURCE] == "https://example.com/r.git"
    off = ["build_images", "--plan", "plans/p.yaml", "--no-auto-annotations"]
    assert load_build(read_options(off, {}), root, {}).source is None  # git not even asked


def test_python_rules_take_annotations() -> None:
    rule = api.image_rule("app", "dodo.py:3", [], dockerfile="d", annotations={"a.b": "1"})
    assert rule.annotations == (("a.b", "1"),)
    with pytest.raises(UserError) as caught:
        api.image_rule("app", "dodo.py:3", [], dockerfile="d", annotations=["a"])
    assert str(caught.value).startswith("dodo.py:3: annotations must be a mapping")
    with pytest.raises(UserError) as caught:
        api.image_rule("app", "dodo.py:3", [], dockerfile="d", annotations={"a b": "1"})
    assert str(caught.value).startswith("dodo.py:3: invalid annotation key 'a b'")
