"""Helpers of the COPY tests: real trees to copy from, CopySteps, and plan_copy run on them.

Expectations follow ``docker build`` (BuildKit) for a ``ContextDir`` and Istio's
docker-builder (tools/docker-copy.sh and crane.go's ``translate``) for a ``PlanContext``.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable
from pathlib import Path

from doit_oci.rules.context import ContextDir
from doit_oci.rules.copyplan import plan_copy
from doit_oci.rules.digests import file_digest
from doit_oci.rules.dockerfile.model import CopyStep
from doit_oci.rules.tree import DIR, FILE, HARDLINK, SYMLINK, Entry, Tree

WHERE = "Dockerfile:7"

ROOT_DIR = (DIR, 0o755, 0, 0)


def step(
    *sources: str,
    dest: str,
    chown: str = "",
    chmod: int | None = None,
    workdirs: Iterable[str] = (),
    keyword: str = "COPY",
    workdir_users: Iterable[str] = (),
) -> CopyStep:
    """A CopyStep as rules.dockerfile makes it: absolute clean dest, trailing "/" noted."""
    dest_is_dir = dest.endswith("/") or dest.endswith("/.")
    clean = posixpath.normpath(dest)
    if clean.startswith("//"):
        clean = clean[1:]
    return CopyStep(
        WHERE,
        keyword,
        tuple(sources),
        clean,
        dest_is_dir,
        chown,
        chmod,
        tuple(workdirs),
        workdir_users=tuple(workdir_users),
    )


def digest(path: Path, st: os.stat_result) -> str:
    return file_digest(path)


def write(root: Path, rel: str, content: bytes | str = b"x", mode: int = 0o644) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    path.chmod(mode)
    return path


def mkdir(root: Path, rel: str, mode: int = 0o755) -> Path:
    path = root / rel
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)
    return path


def summary(entries: Iterable[Entry]) -> dict[str, tuple[object, ...]]:
    """path -> (kind, mode, uid, gid[, link]) for a readable comparison."""
    out: dict[str, tuple[object, ...]] = {}
    for e in entries:
        row: tuple[object, ...] = (e.kind, e.mode, e.uid, e.gid)
        if e.kind in (SYMLINK, HARDLINK):
            row += (e.link,)
        out[e.path] = row
    return out


def lower_dirs(*paths: str, mode: int = 0o755) -> list[Entry]:
    return [Entry(p, DIR, mode) for p in paths]


def run(
    s: CopyStep, ctx: Path, ws: Path, lower: Iterable[Entry] = (), ignore: str | None = None
) -> list[Entry]:
    if ignore is not None:
        write(ctx, ".dockerignore", ignore)
    return plan_copy(s, ContextDir(ctx, ws), Tree(lower), ws, digest)


def paths(entries: Iterable[Entry]) -> list[str]:
    return [e.path for e in entries]


def users_tree(ws: Path) -> list[Entry]:
    """A lower tree whose /etc/passwd and /etc/group are real files in the workspace."""
    passwd = write(
        ws,
        "base/passwd",
        "root:x:0:0:root:/root:/bin/sh\n"
        "# a comment\n"
        "broken line\n"
        "app:x:1000:2000:App:/home/app:/bin/sh\n"
        "istio-proxy:x:1337:1337::/:/sbin/nologin\n",
    )
    group = write(ws, "base/group", "root:x:0:\nstaff:x:50:app\napp:x:2000:\nistio-proxy:x:1337:\n")
    return [
        Entry("etc", DIR, 0o755),
        Entry("etc/passwd", FILE, 0o644, size=passwd.stat().st_size, source="base/passwd"),
        Entry("etc/group", FILE, 0o644, size=group.stat().st_size, source="base/group"),
    ]
