"""The ``make`` invocation of a build: its command, its environment, its up-to-date check,
and the call itself."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from doit_oci.rules import telemetry
from doit_oci.rules.globals import PROCESS
from doit_oci.rules.progress import tell

# the modes whose output make must not write to itself: a live block, or a JSON stream
TOLD = frozenset({"tty", "json"})


def make_command(goals: Sequence[str], question: bool = False) -> list[str]:
    return ["make", "--no-print-directory", *(["-q"] if question else []), *goals]


def make_environment(environ: Mapping[str, str], variables: Mapping[str, str]) -> dict[str, str]:
    """The caller's environment plus TARGET_OS, TARGET_ARCH, TARGET_OUT and TARGET_OUT_LINUX
    of the platform, and BUILD_WITH_CONTAINER=0 as the seed sets it."""
    env = dict(environ)
    env.update(variables)
    env["BUILD_WITH_CONTAINER"] = "0"
    return env


def make_is_up_to_date(goals: Sequence[str], workspace: Path, env: Mapping[str, str]) -> bool:
    """``make -q``: exit 0 means every goal is up to date (1: needs remaking, 2: error)."""
    result = subprocess.run(
        make_command(goals, question=True),
        cwd=workspace,
        env=dict(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    return result.returncode == 0


def call_make(goals: Sequence[str], workspace: Path, env: Mapping[str, str]) -> int:
    """Run make for ``goals``; its exit code. In a trace, its span (make gets TRACEPARENT);
    with --progress tty or json, each line it prints becomes a log event, so that it
    neither breaks the live block nor the JSON stream; otherwise it writes as it likes."""
    attributes = {"doit_oci.goals": " ".join(goals)}
    with telemetry.span("make", attributes) as span:
        parent = telemetry.traceparent()
        environment = {**env, "TRACEPARENT": parent} if parent else dict(env)
        command = make_command(goals)
        if PROCESS.mode not in TOLD:
            code = subprocess.call(command, cwd=workspace, env=environment)
        else:
            with subprocess.Popen(
                command,
                cwd=workspace,
                env=environment,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
            ) as process:
                assert process.stdout is not None
                for line in process.stdout:
                    tell(line.rstrip("\n"))
                code = process.wait()
        if code:
            span.fail(f"make exited with {code}")
        return code
