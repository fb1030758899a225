"""rules.context: finding COPY sources in a build context directory, as ``docker build``
(BuildKit) does: cleaning, wildcards, .dockerignore, symlinks, what a layer cannot hold.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from copying import WHERE, mkdir, paths, run, step, summary, write

from doit_oci.rules.context import ContextDir, find_sources
from doit_oci.rules.errors import UserError
from doit_oci.rules.tree import DIR


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    return workspace


@pytest.fixture
def ctx(ws: Path) -> Path:
    return mkdir(ws, "ctx")


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


@pytest.mark.parametrize("inside", [False, True], ids=["named", "in-a-directory"])
def test_special_files_are_refused(ctx: Path, ws: Path, inside: bool) -> None:
    mkdir(ctx, "d")
    os.mkfifo(ctx / "d" / "fifo")
    source = "d" if inside else "d/fifo"
    with pytest.raises(UserError, match="special file") as caught:
        run(step(source, dest="/x/"), ctx, ws)
    assert "fifo" in caught.value.what


def test_context_dir_modes_are_not_normalised(ctx: Path, ws: Path) -> None:
    write(ctx, "app.yaml", mode=0o600)
    write(ctx, "run.sh", mode=0o700)
    mkdir(ctx, "certs", 0o700)
    write(ctx, "certs/a.pem", mode=0o600)
    modes = {e.path: e.mode for e in run(step("app.yaml", "run.sh", "certs", dest="/m/"), ctx, ws)}
    assert modes == {"m": 0o755, "m/a.pem": 0o600, "m/app.yaml": 0o600, "m/run.sh": 0o700}
