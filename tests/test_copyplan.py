"""rules.copyplan: a COPY step -> its layer's entries, on real directory trees, as
``docker build`` (BuildKit) does it: destinations, parents, modes, symlinks, hard links.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from copying import (
    ROOT_DIR,
    WHERE,
    digest,
    lower_dirs,
    mkdir,
    paths,
    run,
    step,
    summary,
    users_tree,
    write,
)

from doit_oci.rules.context import ContextDir
from doit_oci.rules.copyplan import plan_copy
from doit_oci.rules.digests import DigestCache, file_digest
from doit_oci.rules.errors import UserError
from doit_oci.rules.tree import DIR, FILE, HARDLINK, SYMLINK, Entry, Tree


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
