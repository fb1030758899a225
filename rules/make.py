"""The ``make`` invocation of a build: its command, its environment, its up-to-date check."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path


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
