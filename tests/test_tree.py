"""Unit tests for rules.tree: image paths, parents, symlink resolution and the JSON form."""

from __future__ import annotations

import json

import pytest

from doit_oci.rules.tree import (
    DIR,
    FILE,
    HARDLINK,
    KINDS,
    SYMLINK,
    Entry,
    LinkLoop,
    Tree,
    image_path,
    parents,
)


def d(path: str, mode: int = 0o755) -> Entry:
    return Entry(path, DIR, mode)


def link(path: str, target: str) -> Entry:
    return Entry(path, SYMLINK, 0o777, link=target)


def f(path: str, mode: int = 0o644) -> Entry:
    return Entry(path, FILE, mode, size=1, digest="sha256:" + "0" * 64, source="src/" + path)


# ----------------------------------------------------------------------------- image_path


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/usr/bin/", "usr/bin"),
        ("/usr/bin", "usr/bin"),
        ("usr/bin", "usr/bin"),
        ("/", ""),
        ("", ""),
        (".", ""),
        ("//usr//local/./bin/", "usr/local/bin"),
        ("/usr/../etc", "etc"),
        ("/../../etc", "etc"),  # never above the root
        ("../x", "x"),
        ("/a b/ü", "a b/ü"),
    ],
)
def test_image_path(given: str, expected: str) -> None:
    assert image_path(given) == expected


# -------------------------------------------------------------------------------- parents


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("a/b/c", ["a", "a/b"]),
        ("a/b", ["a"]),
        ("a", []),
        ("", []),
        ("usr/local/bin/prog", ["usr", "usr/local", "usr/local/bin"]),
    ],
)
def test_parents_outermost_first(path: str, expected: list[str]) -> None:
    assert list(parents(path)) == expected


# -------------------------------------------------------------------------------- entries


def test_entry_sort_key_puts_a_directory_before_its_children_and_siblings() -> None:
    paths = ["a.b", "a/z", "a", "a/b/c", "a-b", "b"]
    ordered = sorted((Entry(p, FILE, 0o644) for p in paths), key=lambda e: e.sort_key)
    assert [e.path for e in ordered] == ["a", "a/b/c", "a/z", "a-b", "a.b", "b"]


def test_entry_json_drops_defaults_but_keeps_path_kind_and_mode() -> None:
    entry = Entry("etc", DIR, 0)
    assert entry.to_json() == {"path": "etc", "kind": "dir", "mode": 0}
    full = Entry("bin/x", FILE, 0o4755, 1, 2, 3, "sha256:" + "a" * 64, "", "out/x")
    assert full.to_json() == {
        "path": "bin/x",
        "kind": "file",
        "mode": 0o4755,
        "uid": 1,
        "gid": 2,
        "size": 3,
        "digest": "sha256:" + "a" * 64,
        "source": "out/x",
    }


def test_entry_from_json_ignores_unknown_keys() -> None:
    entry = Entry.from_json({"path": "x", "kind": "symlink", "mode": 511, "link": "y", "new": 1})
    assert entry == Entry("x", SYMLINK, 0o777, link="y")


def test_kinds() -> None:
    assert KINDS == (DIR, FILE, SYMLINK, HARDLINK)


# ------------------------------------------------------------------------------------ tree


def test_later_entries_replace_earlier_ones() -> None:
    tree = Tree([f("etc/passwd", 0o600)])
    tree.add([f("etc/passwd", 0o644), d("etc")])
    assert len(tree) == 2
    assert tree.get("etc/passwd") == f("etc/passwd", 0o644)
    assert "etc" in tree and "etc/group" not in tree
    assert tree.get("nothing") is None
    assert {e.path for e in tree} == {"etc", "etc/passwd"}


USRMERGE = Tree(
    [
        d("usr"),
        d("usr/bin"),
        d("usr/lib"),
        d("usr/share"),
        link("bin", "usr/bin"),  # relative
        link("lib", "/usr/lib"),  # absolute
        link("usr/lib/share", "../share"),  # relative, going up
        link("sbin", "bin"),  # a link to a link
        link("dot", "./usr/./bin"),
        link("up", "../../../usr"),  # above the root: clamped to it
        link("dangling", "nowhere/at/all"),
        link("loop1", "loop2"),
        link("loop2", "loop1"),
        link("self", "self"),
        link("root", "/"),
        f("usr/bin/prog"),
        link("file-link", "usr/bin/prog"),
    ]
)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("bin/prog", "usr/bin/prog"),
        ("bin", "bin"),  # the last component is not followed
        ("lib/x", "usr/lib/x"),
        ("lib/share/x", "usr/share/x"),
        ("sbin/prog", "usr/bin/prog"),
        ("dot/prog", "usr/bin/prog"),
        ("up/bin/prog", "usr/bin/prog"),
        ("dangling/x", "nowhere/at/all/x"),
        ("root/etc", "etc"),
        ("usr/./bin/prog", "usr/bin/prog"),
        ("usr/bin/../lib", "usr/lib"),
        ("bin/../lib", "usr/lib"),  # ".." after a link goes up from its target
        ("", ""),
        ("a/b/c", "a/b/c"),
    ],
)
def test_resolve_follows_parent_symlinks(path: str, expected: str) -> None:
    assert USRMERGE.resolve(path) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("bin", "usr/bin"),
        ("sbin", "usr/bin"),
        ("lib/share", "usr/share"),
        ("file-link", "usr/bin/prog"),
        ("dangling", "nowhere/at/all"),
        ("root", ""),
        ("usr/bin", "usr/bin"),
    ],
)
def test_realpath_follows_the_last_component_too(path: str, expected: str) -> None:
    assert USRMERGE.realpath(path) == expected


@pytest.mark.parametrize("path", ["loop1/x", "loop1", "self/x", "self"])
def test_symlink_loops_are_refused(path: str) -> None:
    # a loop must end, never hang or recurse: as the kernel (ELOOP) and buildah, refused
    for walk in (USRMERGE.realpath, *((USRMERGE.resolve,) if "/" in path else ())):
        with pytest.raises(LinkLoop) as caught:
            walk(path)
        assert caught.value.path == path
    assert not USRMERGE.is_dir(path)


def test_resolve_limit_counts_hops() -> None:
    chain = Tree([d("z"), *(link(f"l{i}", f"l{i + 1}") for i in range(5)), link("l5", "z")])
    assert chain.resolve("l0/x") == "z/x"
    with pytest.raises(LinkLoop):
        chain.resolve("l0/x", limit=3)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("", True),
        ("usr", True),
        ("usr/bin", True),
        ("bin", True),  # symlink to a directory
        ("sbin", True),  # symlink to a symlink to a directory
        ("lib/share", True),  # relative "../share" seen from the link's real directory
        ("root", True),
        ("usr/bin/prog", False),
        ("file-link", False),
        ("dangling", False),
        ("missing", False),
        ("bin/prog", False),
    ],
)
def test_is_dir(path: str, expected: bool) -> None:
    assert USRMERGE.is_dir(path) is expected


def test_json_round_trip_is_sorted_and_lossless() -> None:
    entries = [
        f("usr/bin/prog", 0o4755),
        d("tmp", 0o1777),
        Entry("usr/bin/again", HARDLINK, 0o755, 7, 8, link="usr/bin/prog"),
        link("bin", "usr/bin"),
        d("usr"),
        d("usr/bin"),
        Entry("home/ü ser", DIR, 0o700, 1000, 1000),
    ]
    tree = Tree(entries)
    data = tree.to_json()
    assert [item["path"] for item in data] == [
        "bin",
        "home/ü ser",
        "tmp",
        "usr",
        "usr/bin",
        "usr/bin/again",
        "usr/bin/prog",
    ]
    again = Tree.from_json(json.loads(json.dumps(data)))
    assert sorted(again, key=lambda e: e.path) == sorted(entries, key=lambda e: e.path)
    assert again.to_json() == data
