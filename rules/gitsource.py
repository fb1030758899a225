"""Where the workspace's sources come from, for the ``org.opencontainers.image.source``
and ``.revision`` annotations: the remote URL (credentials removed) and HEAD of the git
checkout holding the workspace, read once when the tasks are made. Two ``git`` calls at
the edge; nothing (never a guess) when git is absent or the workspace is not a checkout.
"""

from __future__ import annotations

import re
import subprocess
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

_REVISION = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


@dataclass(frozen=True)
class GitSource:
    revision: str  # HEAD's full commit id
    url: str = ""  # the remote (origin first), without credentials; "" without one


def strip_credentials(url: str) -> str:
    """``https://user:token@host/x`` -> ``https://host/x``: the user part of a URL with a
    scheme may hold a token, so all of it goes. An scp-like ``git@host:path`` names an
    ssh user, not a secret, and stays as it is."""
    if "://" not in url:
        return url
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, parts.query, ""))


def pick_remote(config: str) -> str:
    """The URL of ``origin``, else of the first remote, from ``git config
    --get-regexp`` lines (``remote.<name>.url <url>``)."""
    urls: dict[str, str] = {}
    for line in config.splitlines():
        key, _, value = line.partition(" ")
        name = key.removeprefix("remote.").removesuffix(".url")
        if value and name not in urls:
            urls[name] = value.strip()
    if "origin" in urls:
        return urls["origin"]
    return next(iter(urls.values()), "")


def _git(workspace: Path, *args: str) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(
            ["git", "-C", str(workspace), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):  # no git, or one that hangs
        return None


def read_source(workspace: Path) -> GitSource | None:
    """HEAD and the remote of the checkout ``workspace`` is in; None when there is none."""
    head = _git(workspace, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    if head is None or head.returncode != 0:
        return None
    revision = head.stdout.strip()
    if not _REVISION.fullmatch(revision):
        return None
    remotes = _git(workspace, "config", "--get-regexp", r"^remote\..*\.url$")
    url = pick_remote(remotes.stdout) if remotes is not None and remotes.returncode == 0 else ""
    return GitSource(revision, strip_credentials(url))
