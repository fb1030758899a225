"""--progress: the JSON stream of a cold build with a push, of a no-op and of failing builds,
read line by line against docs/events.md; the tty mode in a real pseudo-terminal (tmux),
whose screen shows the live block while make works and no garbled line at the end."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from registries import RunningRegistry
from support import REPO, doit, index_of
from test_events import documented

Events = list[dict[str, Any]]


def stream(out: str) -> Events:
    """Every line of stdout is one JSON object with the documented fields of its kind."""
    docs = documented()
    events = []
    for line in out.splitlines():
        event = json.loads(line)
        assert isinstance(event, dict) and list(event) == ["event", *docs[event["event"]]], line
        events.append(event)
    return events


def of(events: Events, kind: str) -> Events:
    return [event for event in events if event["event"] == kind]


def test_a_cold_build_and_push_then_a_no_op_as_json(
    example: Path, registry: RunningRegistry
) -> None:
    args = ("build_images", "--progress=json", "--push", "--hub", f"{registry.host}/x")
    run = doit(example, *args)
    assert run.code == 0, run.text
    assert run.err == ""  # everything is in the stream, make's output too
    events = stream(run.out)
    started = [e["task"] for e in of(events, "task-started")]
    finished = {e["task"]: e for e in of(events, "task-finished")}
    assert sorted(started) == sorted(finished) and len(set(started)) == len(started)
    for task in started:  # each task's events between its start and its end
        begin = events.index(next(e for e in events if e.get("task") == task))
        end = events.index(finished[task])
        assert events[begin]["event"] == "task-started" and begin < end
        assert finished[task]["ok"] and not finished[task]["uptodate"]
        assert all(e.get("task") != task for e in events[end + 1 :] if e["event"] == "log")
    make_lines = [e["message"] for e in of(events, "log") if e["task"] == "make"]
    assert any("gcc" in line for line in make_lines) and make_lines[-1].startswith("make for ")
    layer = finished["layer:hello.0"]
    assert (layer["step"], layer["image"], layer["platform"]) == ("layer", "hello", "linux/amd64")
    assert layer["bytes"] > 700_000 and layer["cached"] is False
    digests = index_of(example)
    pushed = {e["reference"]: e for e in of(events, "image-pushed")}
    assert sorted(pushed) == sorted(f"{registry.host}/x/{name}" for name in digests)
    for ref_name, digest in digests.items():
        event = pushed[f"{registry.host}/x/{ref_name}"]
        assert event["digest"] == digest and event["tags"] == ["latest"]
        blobs = [
            b
            for b in of(events, "blob")
            if b["repository"] == f"{registry.host}/x/{ref_name[:-7]}"
            and b["task"] == f"push:{ref_name[:-7]}"
        ]
        assert len(blobs) == event["uploaded"] + event["mounted"] + event["skipped"]
        assert sum(b["size"] for b in blobs if b["action"] == "uploaded") == event["bytes_uploaded"]
    # each layer's blob goes up in its own task (upload:<image>.<K>) as soon as it is built,
    # once per registry, mounted into the other repositories; the push then finds them there
    # and sends the configs
    uploads = [b for b in of(events, "blob") if b["task"].startswith("upload:")]
    pushes = [b for b in of(events, "blob") if b["task"].startswith("push:")]
    assert {b["action"] for b in uploads} == {"uploaded", "mounted"}
    assert {b["action"] for b in pushes} == {"uploaded", "skipped"}
    assert all(b["size"] < 100_000 for b in pushes if b["action"] == "uploaded")
    for task in (t for t in finished if t.startswith("upload:")):
        sent = [b["size"] for b in uploads if b["task"] == task and b["action"] == "uploaded"]
        assert finished[task]["bytes"] == sum(sent)
    assert (
        finished["push:hello"]["bytes"]
        == pushed[f"{registry.host}/x/hello:latest"]["bytes_uploaded"]
    )
    summary = events[-1]
    assert summary["event"] == "summary" and summary["ok"] and not summary["problems"]
    assert {row["image"]: row["digest"] for row in summary["images"]} == {
        name[: -len(":latest")]: digest for name, digest in digests.items()
    }
    assert list(summary["timing"])[:2] == ["plan", "make"] and "push" in summary["timing"]

    again = doit(example, *args)
    assert again.code == 0 and again.err == ""
    quiet = stream(again.out)
    assert not of(quiet, "task-started") and not of(quiet, "image-pushed")
    # every task again, up to date; but the check of the registry, which runs only before
    # a push that sends something (a setup task)
    again_tasks = sorted(e["task"] for e in of(quiet, "task-finished"))
    assert again_tasks == sorted(t for t in finished if not t.startswith("registry:"))
    assert all(e["uptodate"] and e["cached"] and e["seconds"] == 0 for e in quiet[:-1])
    assert quiet[-1]["event"] == "summary" and quiet[-1]["timing"] == {}
    assert [row["digest"] for row in quiet[-1]["images"]] == [
        row["digest"] for row in summary["images"]
    ]


def test_a_failing_build_says_in_json_the_line_plain_says(example: Path) -> None:
    source = example / "example" / "src" / "hello.c"
    source.write_text(source.read_text() + "\nthis is not C;\n")
    plain = doit(example, "build_images", "--progress=plain")
    assert plain.code == 1
    (line,) = [line for line in plain.err.splitlines() if line.startswith("error: ")]
    run = doit(example, "build_images", "--progress=json")
    assert run.code == 1 and run.err == ""
    events = stream(run.out)
    (error,) = of(events, "error")
    assert f"error: {error['message']}" == line and error["task"] == "make"
    assert "make failed with exit code 2" in error["message"]
    make = [e for e in of(events, "task-finished") if e["task"] == "make"]
    assert len(make) == 1 and make[0]["ok"] is False
    assert any("this is not C" in e["message"] for e in of(events, "log"))  # gcc's own words
    assert events[-1]["event"] == "summary" and events[-1]["ok"] is False


def test_a_mistake_before_any_task_is_one_error_event(example: Path) -> None:
    run = doit(example, "build_images", "--progress", "json", "--compression", "lzma")
    assert run.code == 1 and run.err == ""
    (event,) = stream(run.out)
    assert event["event"] == "error" and event["task"] == ""
    assert event["message"].startswith("options: unknown compression 'lzma'")
    wrong = doit(example, "build_images", "--progress=loud")
    assert wrong.code == 1
    assert "error: options: unknown progress mode 'loud'; choose one of auto, tty" in wrong.err


# -- tty, in a real terminal -----------------------------------------------------------------

# what a finished run leaves on the screen: doit's task lines, make's, the summary
SCREEN_LINES = [
    r"\.  [a-z]+(:[a-z]+(\.\d+)?)?",
    r"mkdir -p \S+",
    r"chmod 1777 \S+",
    r"\S+/slowcc -O2 .*",
    r"make for linux/amd64: \d+\.\ds",
    r"image +layers built/cached/reused +uploaded +digest +time",
    r"(hello|whoami|showconfig) +2/0/0 +0 B +sha256:[0-9a-f]{64} +\d+\.\d\ds",
    r"hashed \d+ files whose stat changed \(\d+ times\)",
    r"timing: plan \d+\.\d\ds(, [a-z]+ \d+\.\d\ds)+",
    r"EXIT=0",
]


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is installed by .ci/install --test")
def test_tty_draws_one_live_block_and_leaves_no_garbled_line(example: Path, tmp_path: Path) -> None:
    slow = tmp_path / "slowcc"  # make takes seconds: the block shows it at work
    slow.write_text('#!/bin/sh\nsleep 1\nexec gcc "$@"\n')
    slow.chmod(0o755)
    script = tmp_path / "run.sh"
    script.write_text(
        f"cd {example}\nexport PYTHONPATH={REPO} TARGET_CC={slow}\n"
        "unset PROGRESS OTEL_EXPORTER_OTLP_ENDPOINT\n"
        f"{sys.executable} -m doit build_images\n"
        'echo "EXIT=$?"\nsleep 120\n'
    )
    tmux = ["tmux", "-L", f"doit-oci-{os.getpid()}", "-f", "/dev/null"]
    subprocess.run(
        [*tmux, "new-session", "-d", "-x", "150", "-y", "90", f"bash {script}"], check=True
    )
    screens: list[list[str]] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            shown = subprocess.run(
                [*tmux, "capture-pane", "-p", "-J", "-S", "-"], capture_output=True, text=True
            ).stdout
            screens.append([line.rstrip() for line in shown.splitlines() if line.strip()])
            if "EXIT=" in shown:
                break
            time.sleep(0.1)
    finally:
        subprocess.run([*tmux, "kill-server"], check=False)
    final = screens[-1]
    assert "EXIT=0" in final, final
    # while make worked, the last line on the screen was the block's row of it
    assert [s for s in screens if s and re.fullmatch(r"make  [1-9]\d*s", s[-1])], screens[-10:]
    garbled = [line for line in final if not any(re.fullmatch(p, line) for p in SCREEN_LINES)]
    assert not garbled, final
    tasks = [line[3:] for line in final if line.startswith(".  ")]
    assert len(tasks) == len(set(tasks)) and "layout" in tasks and "make" in tasks
    table = next(line for line in final if line.startswith("image "))
    assert final.index(table) > final.index(".  layout")
