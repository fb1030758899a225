"""Unit tests for rules.translate: COPY sources -> layer entries, on real directory trees.

Expectations follow ``docker build`` (BuildKit) for a ``ContextDir`` and Istio's
docker-builder (tools/docker-copy.sh and crane.go's ``translate``) for a ``PlanContext``.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable
from pathlib import Path

import pytest

from doit_oci.rules.chown import parse_chown
from doit_oci.rules.context import ContextDir, find_sources
from doit_oci.rules.copyplan import plan_copy
from doit_oci.rules.digests import DigestCache, file_digest
from doit_oci.rules.dockerfile.model import CopyStep
from doit_oci.rules.errors import UserError
from doit_oci.rules.plancontext import PlanContext
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


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    return workspace


@pytest.fixture
def ctx(ws: Path) -> Path:
    return mkdir(ws, "ctx")


def run(
    s: CopyStep, ctx: Path, ws: Path, lower: Iterable[Entry] = (), ignore: str | None = None
) -> list[Entry]:
    if ignore is not None:
        write(ctx, ".dockerignore", ignore)
    return plan_copy(s, ContextDir(ctx, ws), Tree(lower), ws, digest)


def paths(entries: Iterable[Entry]) -> list[str]:
    return [e.path for e in entries]


# ================================================================== ContextDir: basics


def test_directory_source_copies_its_contents(ctx: Path, ws: Path) -> None:
    mkdir(ctx, "app", 0o750)
    a = write(ctx, "app/a.txt", "alpha", 0o640)
    mkdir(ctx, "app/sub", 0o700)
    b = write(ctx, "app/sub/b.sh", "#!/bin/sh\n", 0o755)
    entries = run(step("app", dest="/opt/app"), ctx, ws)
    assert summary(entries) == {
        "opt": ROOT_DIR,
        "opt/app": (DIR, 0o755, 0, 0),  # created as BuildKit does: 0755, not the source's mode
        "opt/app/a.txt": (FILE, 0o640, 0, 0),
        "opt/app/sub": (DIR, 0o700, 0, 0),
        "opt/app/sub/b.sh": (FILE, 0o755, 0, 0),
    }
    files = {e.path: e for e in entries if e.kind == FILE}
    assert files["opt/app/a.txt"].size == 5
    assert files["opt/app/a.txt"].digest == file_digest(a)
    assert files["opt/app/a.txt"].source == "ctx/app/a.txt"  # relative to the workspace
    assert files["opt/app/sub/b.sh"].digest == file_digest(b)
    assert paths(entries) == sorted(paths(entries), key=lambda p: p.split("/"))


def test_directory_into_an_existing_directory_keeps_that_directory(ctx: Path, ws: Path) -> None:
    mkdir(ctx, "app", 0o700)
    write(ctx, "app/a.txt")
    entries = run(step("app", dest="/opt/"), ctx, ws, lower_dirs("opt", mode=0o775))
    # the existing directory is declared again as it is, as the parent of what changed
    assert summary(entries) == {"opt": (DIR, 0o775, 0, 0), "opt/a.txt": (FILE, 0o644, 0, 0)}


def test_directory_onto_the_root(ctx: Path, ws: Path) -> None:
    mkdir(ctx, "rootfs/etc")
    write(ctx, "rootfs/etc/hosts")
    entries = run(step("rootfs", dest="/"), ctx, ws)
    assert paths(entries) == ["etc", "etc/hosts"]


def test_the_whole_context_with_dot(ctx: Path, ws: Path) -> None:
    write(ctx, "Dockerfile", "FROM scratch\n")
    write(ctx, "a.txt")
    mkdir(ctx, "d")
    write(ctx, "d/b.txt")
    entries = run(step(".", dest="/src/"), ctx, ws)
    assert paths(entries) == ["src", "src/Dockerfile", "src/a.txt", "src/d", "src/d/b.txt"]


def test_empty_directories_are_copied(ctx: Path, ws: Path) -> None:
    mkdir(ctx, "empty", 0o1777)
    mkdir(ctx, "tree/a/b/c", 0o755)
    # the destination is created 0755: a directory source gives its contents, not itself
    assert summary(run(step("empty", dest="/tmp"), ctx, ws)) == {"tmp": (DIR, 0o755, 0, 0)}
    mkdir(ctx, "root/tmp", 0o1777)
    assert summary(run(step("root/", dest="/"), ctx, ws)) == {"tmp": (DIR, 0o1777, 0, 0)}
    assert paths(run(step("tree", dest="/t/"), ctx, ws)) == ["t", "t/a", "t/a/b", "t/a/b/c"]


def test_file_to_a_trailing_slash_destination(ctx: Path, ws: Path) -> None:
    write(ctx, "a.txt", "a")
    entries = run(step("a.txt", dest="/etc/app/"), ctx, ws)
    assert summary(entries) == {
        "etc": ROOT_DIR,
        "etc/app": ROOT_DIR,
        "etc/app/a.txt": (FILE, 0o644, 0, 0),
    }


def test_file_onto_an_existing_directory_lands_inside(ctx: Path, ws: Path) -> None:
    write(ctx, "a.txt")
    entries = run(step("a.txt", dest="/etc"), ctx, ws, lower_dirs("etc"))
    assert summary(entries) == {"etc": ROOT_DIR, "etc/a.txt": (FILE, 0o644, 0, 0)}


def test_file_onto_a_new_path_takes_that_name(ctx: Path, ws: Path) -> None:
    write(ctx, "a.txt")
    entries = run(step("a.txt", dest="/etc/renamed"), ctx, ws, lower_dirs("etc"))
    assert summary(entries) == {"etc": ROOT_DIR, "etc/renamed": (FILE, 0o644, 0, 0)}


def test_file_onto_an_existing_file_replaces_it(ctx: Path, ws: Path) -> None:
    write(ctx, "passwd", "root:x:0:0::/root:/bin/sh\n", 0o600)
    lower = [*lower_dirs("etc"), Entry("etc/passwd", FILE, 0o644, size=3, digest="sha256:0")]
    entries = run(step("passwd", dest="/etc/passwd"), ctx, ws, lower)
    assert summary(entries) == {"etc": ROOT_DIR, "etc/passwd": (FILE, 0o600, 0, 0)}


def test_file_onto_a_path_created_earlier_in_the_same_copy(ctx: Path, ws: Path) -> None:
    mkdir(ctx, "conf")
    write(ctx, "conf/x")
    write(ctx, "b")
    entries = run(step("conf", "b", dest="/etc/"), ctx, ws)
    assert paths(entries) == ["etc", "etc/b", "etc/x"]


def test_several_sources_into_one_directory(ctx: Path, ws: Path) -> None:
    write(ctx, "a")
    write(ctx, "b")
    mkdir(ctx, "c")
    write(ctx, "c/d")
    entries = run(step("a", "b", "c", dest="/x/"), ctx, ws)
    assert paths(entries) == ["x", "x/a", "x/b", "x/d"]


@pytest.mark.parametrize("lower", [[], lower_dirs("x")], ids=["new", "existing"])
def test_several_sources_need_a_trailing_slash(ctx: Path, ws: Path, lower: list[Entry]) -> None:
    write(ctx, "a")
    write(ctx, "b")
    with pytest.raises(UserError) as caught:
        run(step("a", "b", dest="/x"), ctx, ws, lower)
    assert "several sources" in caught.value.what
    assert caught.value.where == WHERE
    assert "/x/" in caught.value.fix


def test_a_name_with_spaces_and_unicode(ctx: Path, ws: Path) -> None:
    write(ctx, "my file ü 日本.txt", "content")
    mkdir(ctx, "dir with space")
    write(ctx, "dir with space/é")
    entries = run(step("my file ü 日本.txt", "dir with space", dest="/a b/"), ctx, ws)
    assert paths(entries) == ["a b", "a b/my file ü 日本.txt", "a b/é"]
    assert entries[1].source == "ctx/my file ü 日本.txt"


def test_a_name_that_is_not_utf8_is_refused(ctx: Path, ws: Path) -> None:
    mkdir(ctx, "d")
    (ctx / "d" / os.fsdecode(b"bad-\xff")).write_bytes(b"x")
    with pytest.raises(UserError, match="not valid UTF-8"):
        run(step("d", dest="/d"), ctx, ws)


def test_dot_segments_in_sources_are_cleaned(ctx: Path, ws: Path) -> None:
    mkdir(ctx, "a")
    write(ctx, "a/f")
    assert paths(run(step("./a/../a/f", dest="/x"), ctx, ws)) == ["x"]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("../x", "outside the build context"),
        ("a/../../x", "outside the build context"),
        ("..", "outside the build context"),
        ("/etc/passwd", "absolute path"),
    ],
)
def test_sources_outside_the_context_are_refused(
    ctx: Path, ws: Path, source: str, message: str
) -> None:
    write(ws, "x")
    write(ctx, "a")
    with pytest.raises(UserError, match=message) as caught:
        run(step(source, dest="/x"), ctx, ws)
    assert caught.value.where == WHERE


def test_a_missing_source_is_an_error(ctx: Path, ws: Path) -> None:
    with pytest.raises(UserError, match="'nope' not found in the context ctx") as caught:
        run(step("nope", dest="/x"), ctx, ws)
    assert ".dockerignore" in caught.value.fix


def test_entries_are_sorted_and_stable(ctx: Path, ws: Path) -> None:
    for name in ("b", "a.b", "a-b", "a/c", "a/b/z", "A"):
        write(ctx, "src/" + name)
    first = run(step("src", dest="/"), ctx, ws)
    assert paths(first) == ["A", "a", "a/b", "a/b/z", "a/c", "a-b", "a.b", "b"]
    assert first == run(step("src", dest="/"), ctx, ws)


def test_a_digest_cache_can_supply_the_digests(ctx: Path, ws: Path, tmp_path: Path) -> None:
    write(ctx, "a", "aaa")
    write(ctx, "b", "bbb")
    cache = DigestCache(tmp_path / "digests.sqlite")
    try:
        s = step("a", "b", dest="/x/")
        entries = plan_copy(s, ContextDir(ctx, ws), Tree(), ws, cache.digest)
        again = plan_copy(s, ContextDir(ctx, ws), Tree(), ws, cache.digest)
        assert cache.hashed == 2
    finally:
        cache.close()
    assert entries == again
    assert [e.digest for e in entries[1:]] == [file_digest(ctx / "a"), file_digest(ctx / "b")]


# ================================================================== wildcards


@pytest.fixture
def wild(ctx: Path) -> Path:
    for name in ("a.txt", "b.txt", "c.md", "ab.txt", ".hidden.txt", "[x].txt", "!.txt"):
        write(ctx, name)
    mkdir(ctx, "src/one")
    mkdir(ctx, "src/two")
    write(ctx, "src/one/main.go")
    write(ctx, "src/two/main.go")
    write(ctx, "src/two/other.go")
    return ctx


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("*.txt", ["!.txt", ".hidden.txt", "[x].txt", "a.txt", "ab.txt", "b.txt"]),
        ("?.txt", ["!.txt", "a.txt", "b.txt"]),
        ("[ab].txt", ["a.txt", "b.txt"]),
        ("[a-b]?.txt", ["ab.txt"]),
        ("[^a].txt", ["!.txt", "b.txt"]),
        ("[!a].txt", ["!.txt", "a.txt"]),  # Go's filepath.Match: only ^ negates
        ("\\[x\\].txt", ["[x].txt"]),
        ("*.md", ["c.md"]),
        ("src/*/main.go", ["src/one/main.go", "src/two/main.go"]),
        ("src/t*/*.go", ["src/two/main.go", "src/two/other.go"]),
        ("*.none", []),
        ("nodir/*", []),
    ],
)
def test_wildcard_matches(wild: Path, ws: Path, pattern: str, expected: list[str]) -> None:
    context = ContextDir(wild, ws)
    assert find_sources(context, pattern, WHERE, "COPY") == expected


def test_wildcard_sources_land_in_the_directory(wild: Path, ws: Path) -> None:
    entries = run(step("?.txt", "*.md", dest="/w/"), wild, ws)
    assert paths(entries) == ["w", "w/!.txt", "w/a.txt", "w/b.txt", "w/c.md"]


def test_wildcard_matching_one_file_may_name_the_file(wild: Path, ws: Path) -> None:
    assert paths(run(step("*.md", dest="/doc/readme"), wild, ws)) == ["doc", "doc/readme"]


def test_wildcard_matching_several_files_needs_a_directory(wild: Path, ws: Path) -> None:
    with pytest.raises(UserError, match="several sources"):
        run(step("*.txt", dest="/doc"), wild, ws)


def test_wildcard_matching_directories_copies_their_contents(wild: Path, ws: Path) -> None:
    entries = run(step("src/*", dest="/go/"), wild, ws)
    assert paths(entries) == ["go", "go/main.go", "go/other.go"]


def test_a_wildcard_without_matches_is_fine_next_to_one_with(wild: Path, ws: Path) -> None:
    assert paths(run(step("*.none", "*.md", dest="/d/"), wild, ws)) == ["d", "d/c.md"]


def test_no_match_at_all_is_an_error(wild: Path, ws: Path) -> None:
    with pytest.raises(UserError, match=r"sources \*\.none z\* match no file") as caught:
        run(step("*.none", "z*", dest="/d/"), wild, ws)
    assert "wildcard" in caught.value.fix


def test_a_bad_wildcard_is_an_error(wild: Path, ws: Path) -> None:
    with pytest.raises(UserError, match="bad wildcard"):
        run(step("[a.txt", dest="/d/"), wild, ws)


# ================================================================== .dockerignore


@pytest.fixture
def ignored(ctx: Path) -> Path:
    write(ctx, "keep.txt")
    write(ctx, "debug.log")
    write(ctx, "deep/er/trace.log")
    write(ctx, "deep/er/notes.txt")
    write(ctx, "secret/key.pem")
    write(ctx, "docs/a.md")
    write(ctx, "docs/keep.md")
    write(ctx, "docs/sub/b.md")
    write(ctx, "tmp/x.tmp")
    write(ctx, "tmp/y.txt")
    return ctx


def test_dockerignore_patterns_filter_a_directory_copy(ignored: Path, ws: Path) -> None:
    ignore = "*.log\nsecret\n**/*.tmp\ndocs\n.dockerignore\n"
    entries = run(step(".", dest="/app/"), ignored, ws, ignore=ignore)
    assert paths(entries) == [
        "app",
        "app/deep",
        "app/deep/er",
        "app/deep/er/notes.txt",
        "app/deep/er/trace.log",  # "*.log" only matches at the top
        "app/keep.txt",
        "app/tmp",
        "app/tmp/y.txt",
    ]


def test_dockerignore_double_star(ignored: Path, ws: Path) -> None:
    entries = run(step(".", dest="/app/"), ignored, ws, ignore="**/*.log\n.dockerignore\n")
    assert "app/deep/er/trace.log" not in paths(entries)
    assert "app/debug.log" not in paths(entries)
    assert "app/deep/er/notes.txt" in paths(entries)


def test_dockerignore_exception_inside_an_excluded_directory(ignored: Path, ws: Path) -> None:
    mkdir(ignored, "docs", 0o750)
    entries = run(step(".", dest="/app/"), ignored, ws, ignore="docs\n!docs/keep.md\n*.log\n")
    assert [p for p in paths(entries) if p.startswith("app/docs")] == [
        "app/docs",
        "app/docs/keep.md",
    ]
    assert summary(entries)["app/docs"] == (DIR, 0o750, 0, 0)
    # and the excluded directory can be named as long as something in it is included
    named = run(step("docs", dest="/d/"), ignored, ws)
    assert paths(named) == ["d", "d/keep.md"]
    assert paths(run(step("docs/*.md", dest="/m/"), ignored, ws)) == ["m", "m/keep.md"]


def test_dockerignore_exception_for_everything_but(ignored: Path, ws: Path) -> None:
    entries = run(step(".", dest="/"), ignored, ws, ignore="*\n!keep.txt\n!docs/sub\n")
    assert paths(entries) == ["docs", "docs/sub", "docs/sub/b.md", "keep.txt"]


def test_an_excluded_source_is_not_found(ignored: Path, ws: Path) -> None:
    write(ignored, ".dockerignore", "secret\n*.log\n")
    for source in ("secret/key.pem", "secret", "debug.log"):
        with pytest.raises(UserError, match="not found"):
            run(step(source, dest="/x"), ignored, ws)


def test_wildcards_skip_excluded_files(ignored: Path, ws: Path) -> None:
    entries = run(step("*", dest="/all/"), ignored, ws, ignore="*.log\nsecret\ndocs\ntmp\ndeep\n")
    assert paths(entries) == ["all", "all/.dockerignore", "all/keep.txt"]


def test_a_bad_dockerignore_is_a_user_error(ctx: Path, ws: Path) -> None:
    write(ctx, ".dockerignore", "ok\n[z-a]\n")
    with pytest.raises(UserError, match="bad pattern"):
        ContextDir(ctx, ws)


# ================================================================== --chown and --chmod


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


@pytest.fixture
def users(ws: Path) -> list[Entry]:
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


def test_chmod_applies_to_files_and_directories_not_symlinks(ctx: Path, ws: Path) -> None:
    mkdir(ctx, "d")
    mkdir(ctx, "d/sub", 0o700)
    write(ctx, "d/sub/f", mode=0o600)
    os.symlink("sub", ctx / "d" / "l")
    entries = run(step("d", dest="/new/d", chmod=0o750), ctx, ws)
    assert summary(entries) == {
        "new": ROOT_DIR,
        "new/d": (DIR, 0o755, 0, 0),  # the destination itself is created 0755
        "new/d/l": (SYMLINK, 0o777, 0, 0, "sub"),
        "new/d/sub": (DIR, 0o750, 0, 0),
        "new/d/sub/f": (FILE, 0o750, 0, 0),
    }


def test_modes_are_kept_as_on_disk(ctx: Path, ws: Path) -> None:
    for name, mode in (("x", 0o700), ("r", 0o600), ("s", 0o4755), ("g", 0o2711), ("z", 0o000)):
        write(ctx, name, mode=mode)
    entries = run(step("x", "r", "s", "g", "z", dest="/m/"), ctx, ws)
    assert {e.path: e.mode for e in entries} == {
        "m": 0o755,
        "m/g": 0o2711,
        "m/r": 0o600,
        "m/s": 0o4755,
        "m/x": 0o700,
        "m/z": 0o000,
    }


# ================================================================== symlinks and links


def test_symlinks_inside_a_directory_stay_symlinks(ctx: Path, ws: Path) -> None:
    mkdir(ctx, "d/sub")
    write(ctx, "d/sub/f")
    os.symlink("sub/f", ctx / "d" / "to-file")
    os.symlink("sub", ctx / "d" / "to-dir")
    os.symlink("../../nowhere", ctx / "d" / "dangling")
    os.symlink("/etc/passwd", ctx / "d" / "absolute")
    entries = run(step("d", dest="/d"), ctx, ws)
    assert summary(entries) == {
        "d": ROOT_DIR,
        "d/absolute": (SYMLINK, 0o777, 0, 0, "/etc/passwd"),
        "d/dangling": (SYMLINK, 0o777, 0, 0, "../../nowhere"),
        "d/sub": ROOT_DIR,
        "d/sub/f": (FILE, 0o644, 0, 0),
        "d/to-dir": (SYMLINK, 0o777, 0, 0, "sub"),
        "d/to-file": (SYMLINK, 0o777, 0, 0, "sub/f"),
    }


def test_a_top_level_symlink_source_is_followed_inside_the_context(ctx: Path, ws: Path) -> None:
    real = write(ctx, "real/file.txt", "content", 0o640)
    os.symlink("real/file.txt", ctx / "link")
    os.symlink("real", ctx / "dirlink")
    os.symlink(ctx / "real" / "file.txt", ctx / "abslink")
    entries = run(step("link", dest="/x"), ctx, ws)
    assert summary(entries) == {"x": (FILE, 0o640, 0, 0)}
    assert entries[0].source == "ctx/real/file.txt"
    assert entries[0].digest == file_digest(real)
    assert paths(run(step("dirlink", dest="/d/"), ctx, ws)) == ["d", "d/file.txt"]
    assert paths(run(step("abslink", dest="/a/"), ctx, ws)) == ["a", "a/abslink"]
    # into a directory the file keeps the name of what was written in the COPY
    assert paths(run(step("link", dest="/dir/"), ctx, ws)) == ["dir", "dir/link"]


def test_a_top_level_symlink_pointing_outside_is_refused(ctx: Path, ws: Path) -> None:
    write(ws, "outside.txt")
    os.symlink("../outside.txt", ctx / "out")
    os.symlink("/etc", ctx / "etc")
    for source in ("out", "etc"):
        with pytest.raises(UserError, match="outside the context") as caught:
            run(step(source, dest="/x"), ctx, ws)
        assert caught.value.where == WHERE


def test_a_top_level_dangling_symlink_is_refused(ctx: Path, ws: Path) -> None:
    os.symlink("nowhere", ctx / "dangling")
    with pytest.raises(UserError, match="dangling symlink"):
        run(step("dangling", dest="/x"), ctx, ws)


def test_a_symlinked_directory_in_the_middle_of_a_source(ctx: Path, ws: Path) -> None:
    write(ctx, "real/f", "inside")
    os.symlink("real", ctx / "alias")
    assert paths(run(step("alias/f", dest="/f"), ctx, ws)) == ["f"]
    write(ws, "secret/f", "outside")
    os.symlink("../secret", ctx / "escape")
    with pytest.raises(UserError, match="outside the context"):
        run(step("escape/f", dest="/f"), ctx, ws)
    with pytest.raises(UserError, match="outside the context"):
        run(step("escape/*", dest="/f/"), ctx, ws)


def test_dockerignore_applies_to_the_real_path_behind_a_symlink(ctx: Path, ws: Path) -> None:
    # Docker sends the context without "real/secret": a path through a link cannot reach it
    write(ctx, "real/secret")
    write(ctx, "real/public")
    os.symlink("real", ctx / "alias")
    write(ctx, ".dockerignore", "real/secret\n")
    with pytest.raises(UserError, match="not found"):
        run(step("alias/secret", dest="/x"), ctx, ws)
    assert paths(run(step("alias/public", dest="/x"), ctx, ws)) == ["x"]
    assert paths(run(step("alias", dest="/d/"), ctx, ws)) == ["d", "d/public"]


def test_wildcards_follow_symlinks_only_before_the_first_wildcard(ctx: Path, ws: Path) -> None:
    # BuildKit resolves the literal prefix through symlinks, then walks without following
    write(ctx, "real/sub/f")
    os.symlink("real", ctx / "alias")
    context = ContextDir(ctx, ws)
    assert find_sources(context, "alias/*", WHERE, "COPY") == ["alias/sub"]
    assert find_sources(context, "alias/s*/f", WHERE, "COPY") == ["alias/sub/f"]
    assert find_sources(context, "*/sub/f", WHERE, "COPY") == ["real/sub/f"]
    assert find_sources(context, "*/sub", WHERE, "COPY") == ["real/sub"]


def test_hard_links_are_stored_once(ctx: Path, ws: Path) -> None:
    first = write(ctx, "d/a", "shared", 0o750)
    os.link(first, ctx / "d" / "b")
    os.link(first, ctx / "d" / "sub-c")
    write(ctx, "d/other", "other")
    entries = run(step("d", dest="/d"), ctx, ws)
    assert summary(entries) == {
        "d": ROOT_DIR,
        "d/a": (FILE, 0o750, 0, 0),
        "d/b": (HARDLINK, 0o750, 0, 0, "d/a"),
        "d/other": (FILE, 0o644, 0, 0),
        "d/sub-c": (HARDLINK, 0o750, 0, 0, "d/a"),
    }
    by_path = {e.path: e for e in entries}
    assert by_path["d/b"].size == 0 and by_path["d/b"].source == ""


def test_hard_links_across_sources_are_separate_copies(ctx: Path, ws: Path) -> None:
    # BuildKit copies each source (and each wildcard match) with a fresh copier, whose
    # hard-link map starts empty
    first = write(ctx, "a", "shared")
    os.link(first, ctx / "b")
    entries = run(step("a", "b", dest="/x/"), ctx, ws)
    assert summary(entries) == {
        "x": ROOT_DIR,
        "x/a": (FILE, 0o644, 0, 0),
        "x/b": (FILE, 0o644, 0, 0),
    }


def test_a_hard_link_whose_first_name_is_replaced_becomes_a_file(ctx: Path, ws: Path) -> None:
    first = write(ctx, "one/a", "shared")
    os.link(first, ctx / "one" / "b")
    write(ctx, "two/a", "replacement")
    entries = run(step("one", "two", dest="/x/"), ctx, ws)
    by_path = {e.path: e for e in entries}
    assert by_path["x/a"].digest == file_digest(ctx / "two" / "a")
    assert by_path["x/b"].kind == FILE
    assert by_path["x/b"].digest == file_digest(first)


@pytest.mark.parametrize("inside", [False, True], ids=["named", "in-a-directory"])
def test_special_files_are_refused(ctx: Path, ws: Path, inside: bool) -> None:
    mkdir(ctx, "d")
    os.mkfifo(ctx / "d" / "fifo")
    source = "d" if inside else "d/fifo"
    with pytest.raises(UserError, match="special file") as caught:
        run(step(source, dest="/x/"), ctx, ws)
    assert "fifo" in caught.value.what


# ================================================================== parents and destinations


def test_missing_parents_are_created_0755_owned_by_chown(ctx: Path, ws: Path) -> None:
    write(ctx, "f", mode=0o600)
    entries = run(step("f", dest="/a/b/c/f", chown="5:6"), ctx, ws, lower_dirs("a"))
    assert summary(entries) == {
        "a": ROOT_DIR,  # existing: declared again as it is
        "a/b": (DIR, 0o755, 5, 6),
        "a/b/c": (DIR, 0o755, 5, 6),
        "a/b/c/f": (FILE, 0o600, 5, 6),
    }


def test_existing_parents_are_declared_again_as_they_are(ctx: Path, ws: Path) -> None:
    # as in Docker's and buildah's layers: every directory above what changed is in the
    # layer, with the metadata the image below gives it
    write(ctx, "x")
    lower = [Entry("tmp", DIR, 0o1777), Entry("usr", DIR, 0o700, 3, 3), Entry("opt", DIR, 0o755)]
    assert summary(run(step("x", dest="/tmp/x"), ctx, ws, lower)) == {
        "tmp": (DIR, 0o1777, 0, 0),
        "tmp/x": (FILE, 0o644, 0, 0),
    }
    assert summary(run(step("x", dest="/usr/local/bin/", chown="1:2"), ctx, ws, lower)) == {
        "usr": (DIR, 0o700, 3, 3),
        "usr/local": (DIR, 0o755, 1, 2),
        "usr/local/bin": (DIR, 0o755, 1, 2),
        "usr/local/bin/x": (FILE, 0o644, 1, 2),
    }


def test_parents_of_a_registry_base_are_unknown(ctx: Path, ws: Path) -> None:
    write(ctx, "x")
    tree = Tree([Entry("usr", DIR, 0o700)], complete=False)
    entries = plan_copy(step("x", dest="/usr/local/bin/x"), ContextDir(ctx, ws), tree, ws, digest)
    assert summary(entries) == {"usr": (DIR, 0o700, 0, 0), "usr/local/bin/x": (FILE, 0o644, 0, 0)}


def test_a_file_in_the_way_of_a_parent_is_an_error(ctx: Path, ws: Path) -> None:
    write(ctx, "x")
    lower = [Entry("etc", DIR, 0o755), Entry("etc/passwd", FILE, 0o644)]
    with pytest.raises(UserError, match="the image has a file there"):
        run(step("x", dest="/etc/passwd/x"), ctx, ws, lower)
    with pytest.raises(UserError, match="the image has a file there"):
        run(step("x", dest="/etc/passwd/"), ctx, ws, lower)


def test_a_directory_onto_a_file_is_an_error(ctx: Path, ws: Path) -> None:
    write(ctx, "d/x")
    lower = [Entry("etc", DIR, 0o755), Entry("etc/passwd", FILE, 0o644)]
    with pytest.raises(UserError, match="which is a file in the image"):
        run(step("d", dest="/etc/passwd"), ctx, ws, lower)


def test_copied_directories_overwrite_existing_directories_metadata(ctx: Path, ws: Path) -> None:
    # BuildKit (and the classic builder) set mode and owner of every directory copied from
    # the source, existing or not; only the destination itself and its parents are kept
    mkdir(ctx, "rootfs", 0o700)
    mkdir(ctx, "rootfs/etc", 0o750)
    write(ctx, "rootfs/etc/conf")
    mkdir(ctx, "rootfs/tmp", 0o755)
    lower = [Entry("etc", DIR, 0o755), Entry("tmp", DIR, 0o1777), Entry("opt", DIR, 0o711)]
    entries = run(step("rootfs", dest="/", chown="9:9"), ctx, ws, lower)
    assert summary(entries) == {
        "etc": (DIR, 0o750, 9, 9),
        "etc/conf": (FILE, 0o644, 9, 9),
        "tmp": (DIR, 0o755, 9, 9),
    }
    into_existing = summary(run(step("rootfs", dest="/opt"), ctx, ws, lower))
    assert into_existing["opt"] == (DIR, 0o711, 0, 0)  # kept as it is


def test_a_directory_over_a_symlink_in_the_image_is_an_error(ctx: Path, ws: Path) -> None:
    write(ctx, "rootfs/bin/tool")
    lower = [*lower_dirs("usr", "usr/bin"), Entry("bin", SYMLINK, 0o777, link="usr/bin")]
    with pytest.raises(UserError, match="/bin, which is a symlink in the image") as caught:
        run(step("rootfs", dest="/"), ctx, ws, lower)
    assert "usr/bin" in caught.value.fix


def test_a_file_over_a_directory_in_the_image_is_an_error(ctx: Path, ws: Path) -> None:
    write(ctx, "rootfs/etc")  # a file named etc
    with pytest.raises(UserError, match="/etc, which is a directory in the image"):
        run(step("rootfs", dest="/"), ctx, ws, lower_dirs("etc"))


def test_a_file_over_a_symlink_in_the_image_replaces_it(ctx: Path, ws: Path) -> None:
    write(ctx, "rootfs/etc/hosts")
    lower = [*lower_dirs("etc"), Entry("etc/hosts", SYMLINK, 0o777, link="/run/hosts")]
    assert summary(run(step("rootfs", dest="/"), ctx, ws, lower)) == {
        "etc": ROOT_DIR,
        "etc/hosts": (FILE, 0o644, 0, 0),
    }


USRMERGE = [
    *lower_dirs("usr", "usr/bin", "usr/lib"),
    Entry("bin", SYMLINK, 0o777, link="usr/bin"),
    Entry("lib", SYMLINK, 0o777, link="/usr/lib"),
    Entry("sbin", SYMLINK, 0o777, link="bin"),
    Entry("run", SYMLINK, 0o777, link="var/run"),
]


@pytest.mark.parametrize(
    ("dest", "expected"),
    [
        ("/bin/x", ["usr", "usr/bin", "usr/bin/x"]),
        ("/bin/", ["usr", "usr/bin", "usr/bin/x"]),
        ("/bin", ["usr", "usr/bin", "usr/bin/x"]),
        ("/sbin/", ["usr", "usr/bin", "usr/bin/x"]),
        ("/lib/sub/", ["usr", "usr/lib", "usr/lib/sub", "usr/lib/sub/x"]),
        ("/run/x", ["var", "var/run", "var/run/x"]),  # a dangling link names its target
    ],
)
def test_destinations_through_symlinks_in_the_image(
    ctx: Path, ws: Path, dest: str, expected: list[str]
) -> None:
    write(ctx, "x")
    assert paths(run(step("x", dest=dest), ctx, ws, USRMERGE)) == expected


def test_a_directory_copied_onto_a_symlinked_directory(ctx: Path, ws: Path) -> None:
    write(ctx, "tools/a")
    write(ctx, "tools/b")
    expected = ["usr", "usr/bin", "usr/bin/a", "usr/bin/b"]
    assert paths(run(step("tools", dest="/bin"), ctx, ws, USRMERGE)) == expected
    assert paths(run(step("tools/", dest="/sbin/"), ctx, ws, USRMERGE)) == expected


def test_workdirs_are_created_when_missing(ctx: Path, ws: Path) -> None:
    write(ctx, "f")
    s = step("f", dest="/app/f", workdirs=("/home/app", "/tmp", "/bin/sub"))
    entries = run(s, ctx, ws, [*USRMERGE, Entry("tmp", DIR, 0o1777)])
    assert summary(entries) == {
        "app": ROOT_DIR,
        "app/f": (FILE, 0o644, 0, 0),
        "home": ROOT_DIR,
        "home/app": ROOT_DIR,
        "usr": ROOT_DIR,
        "usr/bin": ROOT_DIR,
        "usr/bin/sub": ROOT_DIR,
    }


def test_a_workdir_alone_needs_no_context(ws: Path) -> None:
    s = step(dest="/", keyword="WORKDIR", workdirs=("/var/lib/app", "/var"))
    entries = plan_copy(s, None, Tree(lower_dirs("var")), ws, digest)
    assert summary(entries) == {"var": ROOT_DIR, "var/lib": ROOT_DIR, "var/lib/app": ROOT_DIR}
    assert plan_copy(s, None, Tree(lower_dirs("var", "var/lib", "var/lib/app")), ws, digest) == []


def test_workdirs_belong_to_the_user_of_their_time(ws: Path, users: list[Entry]) -> None:
    # BuildKit: Mkdir(wd, 0755, WithParents, WithUser(USER)); existing directories stay
    s = step(
        dest="/",
        keyword="WORKDIR",
        workdirs=("/home/app/work", "/srv", "/data/x"),
        workdir_users=("app", "", "7"),
    )
    entries = plan_copy(s, None, Tree([*users, *lower_dirs("home")]), ws, digest)
    assert summary(entries) == {
        "data": (DIR, 0o755, 7, 7),
        "data/x": (DIR, 0o755, 7, 7),
        "home": ROOT_DIR,
        "home/app": (DIR, 0o755, 1000, 2000),
        "home/app/work": (DIR, 0o755, 1000, 2000),
        "srv": ROOT_DIR,
    }


def test_a_workdir_user_is_resolved_only_to_create_a_directory(
    ws: Path, users: list[Entry]
) -> None:
    existing = step(dest="/", keyword="WORKDIR", workdirs=("/etc",), workdir_users=("nobody",))
    assert summary(plan_copy(existing, None, Tree(users), ws, digest)) == {}
    registry_base = Tree(complete=False)
    s = step(dest="/", keyword="WORKDIR", workdirs=("/w",), workdir_users=("nobody",))
    assert plan_copy(s, None, registry_base, ws, digest) == []
    with pytest.raises(UserError, match=r"USER \(for WORKDIR /w\): no user 'nobody'"):
        plan_copy(s, None, Tree(users), ws, digest)


def test_a_workdir_through_a_file_is_an_error(ws: Path) -> None:
    s = step(dest="/", keyword="WORKDIR", workdirs=("/etc/passwd/x",))
    with pytest.raises(UserError, match="the image has a file there"):
        plan_copy(s, None, Tree([Entry("etc/passwd", FILE, 0o644)]), ws, digest)


# ================================================================== PlanContext


@pytest.fixture
def plan(ws: Path) -> dict[str, Path]:
    """The files and targets of an image, spread over the workspace like Istio's."""
    files = {
        "dockerfile": write(ws, "docker/Dockerfile.app", "FROM scratch\n"),
        "conf": write(ws, "config/app.yaml", "a: 1\n", 0o600),
        "script": write(ws, "tools/run.sh", "#!/bin/sh\n", 0o700),
        "prog": write(ws, "out/linux_amd64/prog", b"\x7fELF", 0o755),
        "tool": write(ws, "out/linux_amd64/release/tool", b"\x7fELF", 0o750),
        "certs": mkdir(ws, "tests/certs", 0o700),
    }
    write(ws, "tests/certs/a.pem", "A", 0o600)
    write(ws, "tests/certs/run.sh", "#!/bin/sh\n", 0o700)
    mkdir(ws, "tests/certs/sub", 0o700)
    write(ws, "tests/certs/sub/b.pem", "B", 0o640)
    return files


def plan_context(ws: Path, deps: Iterable[Path], arch: str = "amd64") -> PlanContext:
    return PlanContext(tuple(deps), ws, ws / "out" / f"linux_{arch}", arch)


def run_plan(
    s: CopyStep, context: PlanContext, ws: Path, lower: Iterable[Entry] = ()
) -> list[Entry]:
    return plan_copy(s, context, Tree(lower), ws, digest)


def test_plan_arch_sources_come_from_the_arch_out_directory(
    ws: Path, plan: dict[str, Path]
) -> None:
    context = plan_context(ws, plan.values())
    entries = run_plan(step("amd64/prog", "amd64/tool", dest="/usr/bin/"), context, ws)
    assert summary(entries) == {
        "usr": ROOT_DIR,
        "usr/bin": ROOT_DIR,
        "usr/bin/prog": (FILE, 0o755, 0, 0),
        "usr/bin/tool": (FILE, 0o755, 0, 0),
    }
    assert entries[2].source == "out/linux_amd64/prog"
    assert entries[3].source == "out/linux_amd64/release/tool"
    assert entries[2].digest == file_digest(plan["prog"])


def test_plan_files_are_at_their_base_names(ws: Path, plan: dict[str, Path]) -> None:
    context = plan_context(ws, plan.values())
    entries = run_plan(step("app.yaml", "prog", "Dockerfile.app", dest="/etc/"), context, ws)
    by_path = {e.path: e.source for e in entries if e.kind == FILE}
    assert by_path == {
        "etc/Dockerfile.app": "docker/Dockerfile.app",
        "etc/app.yaml": "config/app.yaml",
        "etc/prog": "out/linux_amd64/prog",
    }


def test_plan_lookup_by_base_name(ws: Path, plan: dict[str, Path]) -> None:
    context = plan_context(ws, plan.values())
    entries = run_plan(step("some/where/app.yaml", dest="/etc/app.yaml"), context, ws)
    assert [(e.path, e.source) for e in entries] == [
        ("etc", ""),
        ("etc/app.yaml", "config/app.yaml"),
    ]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("certs/a.pem", "tests/certs/a.pem"),  # a listed directory, at its base name
        ("certs/sub/b.pem", "tests/certs/sub/b.pem"),
        ("tests/certs/sub/b.pem", "tests/certs/sub/b.pem"),  # the directory at any depth
        ("x/y/certs/a.pem", "tests/certs/a.pem"),
    ],
)
def test_plan_lookup_in_a_listed_directory(
    ws: Path, plan: dict[str, Path], source: str, expected: str
) -> None:
    context = plan_context(ws, plan.values())
    (entry,) = run_plan(step(source, dest="/f"), context, ws)
    assert entry.source == expected


def test_plan_listed_directory_copies_its_contents(ws: Path, plan: dict[str, Path]) -> None:
    context = plan_context(ws, plan.values())
    entries = run_plan(step("certs", dest="/etc/certs/"), context, ws, lower_dirs("etc"))
    assert paths(entries) == [
        "etc",
        "etc/certs",
        "etc/certs/a.pem",
        "etc/certs/run.sh",
        "etc/certs/sub",
        "etc/certs/sub/b.pem",
    ]


def test_plan_dot_copies_the_whole_virtual_context(ws: Path, plan: dict[str, Path]) -> None:
    context = plan_context(ws, plan.values())
    entries = run_plan(step(".", dest="/ctx/"), context, ws)
    assert paths(entries) == [
        "ctx",
        "ctx/Dockerfile.app",
        "ctx/amd64",
        "ctx/amd64/prog",
        "ctx/amd64/tool",
        "ctx/app.yaml",
        "ctx/certs",
        "ctx/certs/a.pem",
        "ctx/certs/run.sh",
        "ctx/certs/sub",
        "ctx/certs/sub/b.pem",
        "ctx/prog",
        "ctx/run.sh",
        "ctx/tool",
    ]
    assert summary(entries)["ctx/amd64"] == ROOT_DIR


def test_plan_wildcards(ws: Path, plan: dict[str, Path]) -> None:
    context = plan_context(ws, plan.values())
    assert find_sources(context, "amd64/*", WHERE, "COPY") == ["amd64/prog", "amd64/tool"]
    assert find_sources(context, "*.yaml", WHERE, "COPY") == ["app.yaml"]
    assert find_sources(context, "certs/*.pem", WHERE, "COPY") == ["certs/a.pem"]


def test_plan_without_arch_targets_has_no_arch_directory(ws: Path, plan: dict[str, Path]) -> None:
    context = plan_context(ws, [plan["conf"], plan["dockerfile"]])
    with pytest.raises(UserError, match="not found"):
        run_plan(step("amd64", dest="/x/"), context, ws)
    assert find_sources(context, "*", WHERE, "COPY") == ["Dockerfile.app", "app.yaml"]


def test_plan_other_arch_is_not_the_arch_directory(ws: Path, plan: dict[str, Path]) -> None:
    context = plan_context(ws, plan.values())
    with pytest.raises(UserError, match="'arm64/nothing' not found"):
        run_plan(step("arm64/nothing", dest="/x"), context, ws)


def test_plan_missing_source_names_what_the_image_has(ws: Path, plan: dict[str, Path]) -> None:
    context = plan_context(ws, plan.values())
    with pytest.raises(UserError) as caught:
        run_plan(step("missing.txt", dest="/x"), context, ws)
    assert "'missing.txt' not found in the image's files and targets" in caught.value.what
    assert caught.value.fix == (
        "list it under 'files' or 'targets' in the plan (the image has: Dockerfile.app,"
        " app.yaml, certs, prog, run.sh, tool)"
    )
    assert caught.value.where == WHERE


def test_plan_ambiguous_base_name_lists_the_candidates(ws: Path, plan: dict[str, Path]) -> None:
    twin = write(ws, "other/app.yaml", "b: 2\n")
    context = plan_context(ws, [*plan.values(), twin])
    for source in ("app.yaml", "conf/app.yaml"):
        with pytest.raises(UserError, match="ambiguous") as caught:
            run_plan(step(source, dest="/x"), context, ws)
        assert "config/app.yaml" in str(caught.value)
        assert "other/app.yaml" in str(caught.value)
    # the same file listed twice is not ambiguous
    context = plan_context(ws, [*plan.values(), plan["conf"]])
    assert len(run_plan(step("app.yaml", dest="/x"), context, ws)) == 1


def test_plan_ambiguous_directory_lookup(ws: Path, plan: dict[str, Path]) -> None:
    other = mkdir(ws, "more/sub")
    write(ws, "more/sub/a.pem")
    write(ws, "tests/certs/sub/a.pem")
    context = plan_context(ws, [*plan.values(), other])
    with pytest.raises(UserError, match=r"ambiguous: it matches certs/sub/a\.pem, sub/a\.pem"):
        run_plan(step("x/certs/sub/a.pem", dest="/x"), context, ws)


def test_plan_listed_symlink_stands_for_its_target(ws: Path, plan: dict[str, Path]) -> None:
    os.symlink("linux_amd64/prog", ws / "out" / "current")
    context = plan_context(ws, [ws / "out" / "current"])
    (entry,) = run_plan(step("current", dest="/current"), context, ws)
    assert (entry.kind, entry.source) == (FILE, "out/linux_amd64/prog")


# ------------------------------------------------------------- docker-copy.sh permissions


def test_plan_modes_are_normalised_like_docker_copy(ws: Path, plan: dict[str, Path]) -> None:
    # tools/docker-copy.sh: a listed file with any execute bit gets 755, any other listed
    # file a+r; a listed directory gets "chmod -R a+r"
    write(ws, "perm/group-exec", mode=0o610)
    write(ws, "perm/other-exec", mode=0o601)
    write(ws, "perm/setuid", mode=0o4750)
    write(ws, "perm/none", mode=0o000)
    write(ws, "perm/sticky-dir/f", mode=0o600)
    mkdir(ws, "perm/sticky-dir", 0o1700)
    extra = [ws / "perm" / n for n in ("group-exec", "other-exec", "setuid", "none", "sticky-dir")]
    context = plan_context(ws, [*plan.values(), *extra])
    s = step(
        "app.yaml",
        "run.sh",
        "amd64/tool",
        "Dockerfile.app",
        "group-exec",
        "other-exec",
        "setuid",
        "none",
        dest="/m/",
    )
    modes = {e.path: e.mode for e in run_plan(s, context, ws)}
    assert modes == {
        "m": 0o755,
        "m/Dockerfile.app": 0o644,
        "m/app.yaml": 0o644,  # 600 + a+r
        "m/group-exec": 0o755,
        "m/none": 0o444,
        "m/other-exec": 0o755,
        "m/run.sh": 0o755,  # 700
        "m/setuid": 0o755,
        "m/tool": 0o755,  # 750
    }
    certs = {e.path: e.mode for e in run_plan(step("certs", dest="/c"), context, ws)}
    assert certs == {
        "c": 0o755,  # the destination, created as BuildKit creates it
        "c/a.pem": 0o644,
        "c/run.sh": 0o744,  # inside a directory only a+r is added
        "c/sub": 0o744,
        "c/sub/b.pem": 0o644,
    }
    sticky = {e.path: e.mode for e in run_plan(step("sticky-dir", dest="/s"), context, ws)}
    assert sticky == {"s": 0o755, "s/f": 0o644}
    into = {e.path: e.mode for e in run_plan(step("certs", dest="/"), context, ws)}
    assert into["sub"] == 0o744  # directories inside the listed one: a+r added


def test_plan_chmod_still_wins(ws: Path, plan: dict[str, Path]) -> None:
    context = plan_context(ws, plan.values())
    (entry,) = run_plan(step("app.yaml", dest="/a", chmod=0o400), context, ws)
    assert entry.mode == 0o400


def test_context_dir_modes_are_not_normalised(ctx: Path, ws: Path) -> None:
    write(ctx, "app.yaml", mode=0o600)
    write(ctx, "run.sh", mode=0o700)
    mkdir(ctx, "certs", 0o700)
    write(ctx, "certs/a.pem", mode=0o600)
    modes = {e.path: e.mode for e in run(step("app.yaml", "run.sh", "certs", dest="/m/"), ctx, ws)}
    assert modes == {"m": 0o755, "m/a.pem": 0o600, "m/app.yaml": 0o600, "m/run.sh": 0o700}


def test_plan_listed_file_that_does_not_exist(ws: Path, plan: dict[str, Path]) -> None:
    # e.g. a make target not built yet (SKIP_MAKE): name the path, not just "not found"
    context = plan_context(ws, [*plan.values(), ws / "out" / "linux_amd64" / "later"])
    for source in ("later", "amd64/later", "some/dir/later", "amd64/*"):
        with pytest.raises(UserError, match="out/linux_amd64/later of the plan") as caught:
            run_plan(step(source, dest="/x/"), context, ws)
        assert "make" in caught.value.fix


@pytest.mark.parametrize(
    ("content", "archive"),
    [
        (b"\x1f\x8b\x08\x00rest", True),
        (b"BZh91AY&SY", True),
        (b"\xfd7zXZ\x00\x00", True),
        (b"\x28\xb5\x2f\xfd\x00", True),
        (b"\x00" * 257 + b"ustar\x0000" + b"\x00" * 243, True),
        (b"plain text\n", False),
        (b"", False),
    ],
)
def test_add_refuses_local_archives_that_docker_would_extract(
    ctx: Path, ws: Path, content: bytes, archive: bool
) -> None:
    (ctx / "thing").write_bytes(content)
    add = step("thing", dest="/opt/", keyword="ADD")
    if archive:
        with pytest.raises(UserError, match="ADD of the local archive 'thing'"):
            run(add, ctx, ws)
    else:
        assert paths(run(add, ctx, ws)) == ["opt", "opt/thing"]
    # COPY never extracts
    assert paths(run(step("thing", dest="/opt/"), ctx, ws)) == ["opt", "opt/thing"]
