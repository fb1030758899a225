"""What a run tells and keeps: the status task, the summary table, parallel runs, and the
state kept when a run is stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from support import REPO, copy_example, doit, index_of


def test_status_says_which_images_are_out_of_date_and_why(example: Path) -> None:
    fresh = doit(example, "status")
    assert fresh.code == 0
    assert "hello       out of date: base base: never built; never built" in fresh.out
    assert doit(example, "build_images").code == 0
    clean = doit(example, "status")
    digests = index_of(example)
    for name in ("hello", "whoami", "showconfig"):
        assert f"{name:<10}  up to date   {digests[f'{name}:latest']}" in clean.out
    (example / "example/showconfig/config.json").write_text('{"changed": true}\n')
    dockerfile = example / "example/whoami/Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("app=whoami", "app=whoami2"))
    before = snapshot_names(example)
    stale = doit(example, "status")
    lines = {line.split()[0]: line for line in stale.out.splitlines() if "date" in line}
    assert "up to date" in lines["hello"]
    assert lines["whoami"].endswith("out of date: Dockerfile (or the base's config) changed")
    assert lines["showconfig"].endswith(
        "out of date: layer 1: example/showconfig/config.json changed"
    )
    # the status changes nothing: the build then does exactly that
    assert snapshot_names(example) == before
    run = doit(example, "build_images")
    assert set(run.executed) == {
        "parse:whoami",
        "image:whoami",
        "translate:showconfig",
        "layer:showconfig.1",
        "image:showconfig",
        "layout",
    }


def snapshot_names(workspace: Path) -> list[tuple[str, int]]:
    return sorted(
        (str(p.relative_to(workspace)), p.stat().st_mtime_ns)
        for p in (workspace / "out").rglob("*")
        if p.is_file() and "cache" not in p.parts  # the digest cache may learn
    )


def test_doit_info_names_the_check_that_failed(example: Path) -> None:
    assert doit(example, "build_images").code == 0
    (example / "example/showconfig/config.json").write_text("{}\n")
    info = doit(example, "info", "translate:showconfig")
    assert "status     : run" in info.out
    assert "the files its COPYs take are as recorded" in info.out


def test_a_summary_table_ends_every_build(example: Path) -> None:
    run = doit(example, "build_images")
    assert run.code == 0
    table = [
        line.split()
        for line in run.err.splitlines()
        if line.startswith(("image ", "hello ", "whoami ", "showconfig "))
    ]
    assert table[0] == ["image", "layers", "built/cached/reused", "uploaded", "digest", "time"]
    digests = index_of(example)
    rows = {row[0]: row for row in table[1:]}
    assert rows["hello"][1:5] == ["2/0/0", "0", "B", digests["hello:latest"]]
    (example / "example/showconfig/config.json").write_text('{"changed": 1}\n')
    again = doit(example, "build_images")
    rows = {
        line.split()[0]: line.split()
        for line in again.err.splitlines()
        if line.startswith(("hello ", "showconfig "))
    }
    assert rows["showconfig"][1] == "1/0/1" and rows["hello"][1] == "0/0/2"


def test_four_processes_give_the_same_digests_as_one(tmp_path: Path) -> None:
    serial = copy_example(tmp_path / "serial")
    parallel = copy_example(tmp_path / "parallel")
    assert doit(serial, "-n", "1", "build_images").code == 0
    assert doit(parallel, "-n", "4", "build_images").code == 0
    assert index_of(serial) == index_of(parallel)


def test_a_run_stopped_with_sigterm_keeps_what_it_finished(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    (workspace / "plans").mkdir(parents=True)
    (workspace / "dodo.py").write_text((REPO / "dodo.py").read_text())
    (workspace / "a.txt").write_text("a\n")
    (workspace / "fast.Dockerfile").write_text("FROM scratch\nCOPY a.txt /a.txt\n")
    (workspace / "slow.Dockerfile").write_text("FROM scratch\nCOPY slow /slow\n")
    (workspace / "Makefile").write_text(
        "$(TARGET_OUT)/slow:\n\tsleep 5\n\tmkdir -p $(@D) && touch $@\n"
    )
    (workspace / "plans/images.yaml").write_text(
        "images:\n- name: fast\n  dockerfile: fast.Dockerfile\n  files: [a.txt]\n"
        "- name: slow\n  dockerfile: slow.Dockerfile\n  targets: ['${TARGET_OUT}/slow']\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "doit", "build_images"],
        cwd=workspace,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    done = workspace / "out/build/linux_amd64/fast/image.json"
    deadline = time.monotonic() + 30
    while not done.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 143, err
    assert "Traceback" not in err
    assert "stopped by SIGTERM" in err
    assert "image:fast" in out
    leftover = workspace / "out/tmp/blob-killed"  # what a killed writer leaves, unlocked
    leftover.parent.mkdir(parents=True, exist_ok=True)
    leftover.write_bytes(b"half a layer")
    again = doit(workspace, "build_images")
    assert again.code == 0, again.text
    assert not leftover.exists()  # the next build that got to its layout removed it
    assert not [task for task in again.executed if task.endswith("fast") or ":fast." in task]
    assert {"image:slow", "layout"} <= set(again.executed)


def test_the_summary_says_which_image_failed(tmp_path: Path) -> None:
    workspace = small_workspace(tmp_path / "ws")
    assert doit(workspace, "build_images").code == 0
    (workspace / "app.Dockerfile").write_text("FROM base\nCOPY missing.txt /srv/\n")
    run = doit(workspace, "build_images")
    assert run.code == 1 and "Traceback" not in run.text
    (row,) = [line for line in run.err.splitlines() if line.startswith("app ")]
    assert "failed (translate:app)" in row and "sha256:" not in row


def small_workspace(root: Path) -> Path:
    """A plan without make: a base and an image on it, from files of the workspace."""
    (root / "plans").mkdir(parents=True)
    (root / "dodo.py").write_text((REPO / "dodo.py").read_text())
    (root / "data").mkdir()
    for name in ("one", "two", "three"):
        (root / "data" / f"{name}.txt").write_text(f"{name}\n")
    (root / "etc.txt").write_text("base\n")
    (root / "base.Dockerfile").write_text("FROM scratch\nCOPY etc.txt /etc/base.txt\n")
    (root / "app.Dockerfile").write_text("FROM base\nCOPY data /srv/data/\nENV A=1\n")
    (root / "plans/images.yaml").write_text(
        "images:\n- name: base\n  dockerfile: base.Dockerfile\n  files: [etc.txt]\n"
        "  base: true\n- name: app\n  dockerfile: app.Dockerfile\n  files: [data]\n"
    )
    return root


def test_a_restored_cache_dir_on_a_fresh_checkout_runs_nothing(tmp_path: Path) -> None:
    import shutil

    workspace = small_workspace(tmp_path / "checkout")
    cache = tmp_path / "ci-cache"
    run = doit(workspace, "build_images", env={"DOIT_OCI_CACHE": str(cache)})
    assert run.code == 0, run.text
    assert (cache / "oci/index.json").is_file() and (cache / "doit.db").is_file()
    assert not (workspace / "out").exists() and not (workspace / ".doit.db").exists()
    digests = json.loads((cache / "oci/index.json").read_text())
    saved = tmp_path / "saved"
    shutil.copytree(cache, saved)  # what a CI cache action keeps
    # a new runner: a fresh checkout at the same path and the cache restored, all new mtimes
    shutil.rmtree(workspace)
    shutil.rmtree(cache)
    time.sleep(0.01)
    small_workspace(workspace)
    shutil.copytree(saved, cache, copy_function=shutil.copy)
    first = doit(workspace, "build_images", "--cache-dir", str(cache))
    assert first.code == 0, first.text
    assert first.executed == []
    hashed = [line for line in first.err.splitlines() if line.startswith("hashed ")]
    # the sources, the Dockerfiles and the restored records: each hashed once, no more
    assert len(hashed) == 1
    count, times = hashed[0].split()[1], hashed[0].split("(")[1].split()[0]
    assert count == times and int(count) >= 6
    second = doit(workspace, "build_images", "--cache-dir", str(cache))
    assert second.executed == [] and "hashed" not in second.err
    assert json.loads((cache / "oci/index.json").read_text()) == digests


def test_gc_removes_what_no_image_refers_to(example: Path) -> None:
    assert doit(example, "build_images").code == 0
    blobs = example / "out/oci/blobs/sha256"
    first = {p.name for p in blobs.iterdir()}
    old = index_of(example)["showconfig:latest"]
    (example / "example/showconfig/config.json").write_text('{"new": true}\n')
    assert doit(example, "build_images", "--tag", "2.0").code == 0
    grown = {p.name for p in blobs.iterdir()}
    assert first < grown  # the old layer, config and manifest stay until gc
    (example / "out/tmp").mkdir(exist_ok=True)
    (example / "out/tmp/blob-leftover").write_bytes(b"half")
    # gc never drops a name: showconfig:latest still needs the old image
    run = doit(example, "gc", "--tag", "2.0")
    assert run.code == 0, run.text
    assert {p.name for p in blobs.iterdir()} == grown
    assert "gc: removed 0 blobs (0 B) and 1 leftovers of killed runs" in run.out
    assert not list((example / "out/tmp").iterdir())
    assert len(index_of(example)) == 6
    # dropping the names this run does not give is a choice of its own, and says what
    run = doit(example, "gc", "--tag", "2.0", "--prune-tags")
    assert run.code == 0, run.text
    kept = {p.name for p in blobs.iterdir()}
    assert old[7:] not in kept
    assert len(grown - kept) == 3  # showconfig's old layer, config and manifest
    for name in ("hello:latest", "showconfig:latest", "whoami:latest"):
        assert f"gc: dropped the name {name}" in run.out
    assert "gc: removed 3 blobs" in run.out
    assert sorted(index_of(example)) == ["hello:2.0", "showconfig:2.0", "whoami:2.0"]
    # what is left is whole: the images still read, and a build has nothing to do
    for name in ("hello", "showconfig", "whoami"):
        subprocess.run(
            ["skopeo", "inspect", f"oci:{example}/out/oci:{name}:2.0"],
            capture_output=True,
            check=True,
        )
    assert doit(example, "build_images", "--tag", "2.0").executed == []


def test_clean_and_forget(example: Path) -> None:
    assert doit(example, "build_images").code == 0
    digests = index_of(example)
    assert doit(example, "forget", "image:hello").code == 0
    assert doit(example, "build_images").executed == ["image:hello"]
    assert doit(example, "clean", "translate:whoami", "layer:whoami.0").code == 0
    assert not (example / "out/build/linux_amd64/whoami/layer-0.inputs.json").exists()
    again = doit(example, "build_images")
    assert {"translate:whoami", "layer:whoami.0"} <= set(again.executed)
    assert index_of(example) == digests


def test_gc_of_another_plan_or_tag_keeps_every_name(example: Path) -> None:
    assert doit(example, "build_images").code == 0
    assert doit(example, "build_images", "--tag", "dev").code == 0
    (example / "plans/t2.yaml").write_text(
        "images:\n- name: only\n  dockerfile: example/hello/Dockerfile\n"
        "  targets: ['${TARGET_OUT_LINUX}/hello']\n"
    )
    names = index_of(example)
    blobs = sorted((example / "out/oci/blobs/sha256").iterdir())
    for args, env in (
        (("gc",), {"PLAN": "plans/t2.yaml"}),
        (("gc", "--tag", "1.0"), {}),
        (("gc", "--plan", "plans/t2.yaml", "--tag", "9"), {}),
    ):
        run = doit(example, *args, env=env)
        assert run.code == 0, run.text
        assert "gc: removed 0 blobs" in run.out
        assert index_of(example) == names  # api:1.0 and api:dev both still there
        assert sorted((example / "out/oci/blobs/sha256").iterdir()) == blobs
