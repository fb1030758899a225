"""rules.chown: ``--chown`` by id or by name from the image's /etc/passwd and /etc/group,
as BuildKit resolves it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from copying import ROOT_DIR, WHERE, mkdir, run, step, summary, users_tree, write

from doit_oci.rules.chown import parse_chown
from doit_oci.rules.errors import UserError
from doit_oci.rules.tree import DIR, FILE, SYMLINK, Entry, Tree


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    return workspace


@pytest.fixture
def ctx(ws: Path) -> Path:
    return mkdir(ws, "ctx")


@pytest.fixture
def users(ws: Path) -> list[Entry]:
    """A lower tree whose /etc/passwd and /etc/group are real files in the workspace."""
    return users_tree(ws)


def test_chown_by_ids(ctx: Path, ws: Path) -> None:
    mkdir(ctx, "d")
    write(ctx, "d/f")
    os.symlink("f", ctx / "d" / "l")
    entries = run(step("d", dest="/opt/d", chown="1000:1001"), ctx, ws)
    assert summary(entries) == {
        "opt": (DIR, 0o755, 1000, 1001),  # created parents belong to --chown, as in BuildKit
        "opt/d": (DIR, 0o755, 1000, 1001),
        "opt/d/f": (FILE, 0o644, 1000, 1001),
        "opt/d/l": (SYMLINK, 0o777, 1000, 1001, "f"),
    }
    one = run(step("d/f", dest="/f", chown="42"), ctx, ws)
    assert summary(one) == {"f": (FILE, 0o644, 42, 42)}


@pytest.mark.parametrize(
    ("chown", "ids"),
    [
        ("app:staff", (1000, 50)),
        ("app", (1000, 2000)),  # the user's primary group, as BuildKit reads it
        ("app:0", (1000, 0)),
        ("7:staff", (7, 50)),
        ("istio-proxy:istio-proxy", (1337, 1337)),
        ("root", (0, 0)),
    ],
)
def test_chown_by_names_from_the_lower_tree(
    ctx: Path, ws: Path, users: list[Entry], chown: str, ids: tuple[int, int]
) -> None:
    write(ctx, "f")
    entries = run(step("f", dest="/etc/f", chown=chown), ctx, ws, users)
    assert summary(entries) == {"etc": ROOT_DIR, "etc/f": (FILE, 0o644, *ids)}


def test_chown_names_through_a_symlinked_etc(ctx: Path, ws: Path, users: list[Entry]) -> None:
    lower = [
        Entry("usr", DIR, 0o755),
        *(Entry("usr/" + e.path, e.kind, e.mode, size=e.size, source=e.source) for e in users),
        Entry("etc", SYMLINK, 0o777, link="usr/etc"),
    ]
    write(ctx, "f")
    assert summary(run(step("f", dest="/f", chown="app"), ctx, ws, lower)) == {
        "f": (FILE, 0o644, 1000, 2000)
    }


@pytest.mark.parametrize(
    ("chown", "message"),
    [
        ("nobody", "no user 'nobody' in /etc/passwd"),
        ("app:nogroup", "no group 'nogroup' in /etc/group"),
        ("", ""),
        (":staff", "invalid --chown"),
        ("app:", "invalid --chown"),
        ("²", "no user '²'"),  # a digit to Python's isdigit, but not a number
    ],
)
def test_chown_errors(ctx: Path, ws: Path, users: list[Entry], chown: str, message: str) -> None:
    write(ctx, "f")
    if not message:
        assert run(step("f", dest="/f", chown=chown), ctx, ws, users)[0].uid == 0
        return
    with pytest.raises(UserError, match=message) as caught:
        run(step("f", dest="/f", chown=chown), ctx, ws, users)
    assert caught.value.where == WHERE
    assert caught.value.fix


def test_chown_names_need_an_etc_passwd(ctx: Path, ws: Path) -> None:
    write(ctx, "f")
    with pytest.raises(UserError, match="has no /etc/passwd") as caught:
        run(step("f", dest="/f", chown="app"), ctx, ws)
    assert "numeric ids" in caught.value.fix
    with pytest.raises(UserError, match="has no /etc/group"):
        lower = [Entry("etc/passwd", FILE, 0o644, source="p")]
        write(ws, "p", "app:x:5:5::/:/bin/sh\n")
        run(step("f", dest="/f", chown="app:staff"), ctx, ws, lower)


def test_parse_chown_reads_through_the_given_reader() -> None:
    tree = Tree([Entry("etc/passwd", FILE, 0o644, source="whatever")])
    reads: list[Entry] = []

    def read(entry: Entry) -> bytes:
        reads.append(entry)
        return b"u:x:12:34::/:/bin/sh\n"

    owner = parse_chown("u", tree, read, WHERE)
    assert (owner.uid, owner.gid) == (12, 34)
    assert reads == [tree.get("etc/passwd")]
    assert (parse_chown("5:6", Tree(), read, WHERE).uid, len(reads)) == (5, 1)
