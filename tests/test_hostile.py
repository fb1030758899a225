"""Hostile input (issue 14): every case is one UserError line naming where, at once, or
the image BuildKit would build; never another exception, never time or memory that grows
faster than the input. Each case here failed (a traceback, a hang, minutes of CPU, a
wrong image) before its fix."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from doit_oci.registry import oci
from doit_oci.rules.build import load_build
from doit_oci.rules.chown import parse_chown
from doit_oci.rules.copyplan import plan_copy
from doit_oci.rules.digests import DigestCache
from doit_oci.rules.dockerfile.evaluate import evaluate
from doit_oci.rules.dockerfile.model import CopyStep
from doit_oci.rules.dockerfile.read import read_dockerfile
from doit_oci.rules.dockerfile.stages import select_chain
from doit_oci.rules.dockerignore import DockerIgnore
from doit_oci.rules.errors import UserError
from doit_oci.rules.golang import match_regex
from doit_oci.rules.options import Options
from doit_oci.rules.tree import SYMLINK, Entry, Tree


def within(seconds: float, work: Callable[[], object]) -> object:
    started = time.monotonic()
    result = work()
    assert time.monotonic() - started < seconds, "took too long"
    return result


def refused(text: str) -> str:
    """The one line a Dockerfile's evaluation gives, within a second or two."""

    def work() -> None:
        evaluate(select_chain(read_dockerfile(text, "Dockerfile"), {}), {}, None)

    with pytest.raises(UserError) as caught:
        within(3, work)
    return str(caught.value)


def test_a_value_doubling_at_each_env_is_refused_at_a_stated_size() -> None:
    doubling = "".join("ENV A=${A}${A}\n" for _ in range(40))
    line = refused("FROM scratch\nENV A=0123456789abcdef\n" + doubling)
    assert line == ("Dockerfile:19: ENV expands to more than 1 MiB; check the variables it uses")


def test_a_one_megabyte_destination_is_refused_in_linear_time() -> None:
    line = refused("FROM scratch\nCOPY f /" + "a/" * 500_000 + "\n")
    assert line == "Dockerfile:2: the destination is longer than 4096 bytes; name a shorter path"


def test_a_name_longer_than_a_file_system_takes() -> None:
    line = refused("FROM scratch\nWORKDIR /" + "b" * 300 + "\n")
    assert "the WORKDIR has a name longer than 255 bytes" in line


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x1b", "\x7f"])
def test_a_control_character_is_refused_not_truncated(char: str) -> None:
    with pytest.raises(UserError) as caught:
        read_dockerfile(f"FROM scratch\nCOPY a{char}b /x\n", "Dockerfile")
    assert str(caught.value).startswith(
        f"Dockerfile:2: COPY holds the control character U+{ord(char):04X}"
    )


def test_line_endings_as_buildkit_reads_them() -> None:
    crlf = read_dockerfile("FROM scratch\r\nCOPY a /b\r\n", "Dockerfile")
    assert crlf.stages[0].instructions[0].value == "a /b"


@pytest.mark.parametrize(
    "pattern",
    ["*a" * 12 + "*b", "**/*a*a*a*a*a*a*a*a*a*a*a*c", "[a-z]*" * 30 + "!", "?*" * 40 + "x"],
)
def test_patterns_match_in_linear_time(pattern: str) -> None:
    name = "a" * 3000
    ignore = DockerIgnore.parse(pattern + "\n")
    assert within(2, lambda: ignore.excluded(name)) is False
    assert within(2, lambda: match_regex(pattern.replace("**/", "")).match(name)) is None


def test_ids_past_32_bits_are_refused() -> None:
    with pytest.raises(UserError) as caught:
        parse_chown("4294967296:0", Tree(), lambda e: b"", "Dockerfile:3")
    assert str(caught.value) == (
        "Dockerfile:3: --chown '4294967296:0': the user id 4294967296 is past 4294967294,"
        " the largest a Linux id (and a runtime) takes; use an id from 0 to 4294967294"
    )
    assert parse_chown("4294967294", Tree(), lambda e: b"", "x").uid == 4294967294


def test_a_copy_through_a_symlink_loop_of_the_image_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("f\n")
    lower = Tree([Entry("a", SYMLINK, 0o777, link="b"), Entry("b", SYMLINK, 0o777, link="a")])
    step = CopyStep("Dockerfile:2", "COPY", ("f",), "/a/x/f", False)

    from doit_oci.rules.context import ContextDir

    with pytest.raises(UserError) as caught:
        plan_copy(step, ContextDir(tmp_path, tmp_path), lower, tmp_path, lambda p, s=None: "")
    assert str(caught.value).startswith("Dockerfile:2: COPY goes through /a/x/f, which runs into")


def test_a_file_dated_after_2262_is_hashed_and_the_cache_keeps_working(tmp_path: Path) -> None:
    path = tmp_path / "future"
    path.write_text("from the future\n")
    os.utime(path, ns=(10_413_792_000_000_000_000, 10_413_792_000_000_000_000))
    cache = DigestCache(tmp_path / "cache.sqlite")
    first = cache.digest(path)
    assert first == cache.digest(path) and first.startswith("sha256:")
    other = tmp_path / "now"
    other.write_text("now\n")
    assert cache.digest(other) == cache.digest(other)  # the database is whole


PLAN = "images:\n- name: {name}\n  dockerfile: Dockerfile\n"


@pytest.mark.parametrize(
    ("name", "tag"), [("a__b", "latest"), ("a---b", "latest"), ("app", "_x"), ("app", "1__0")]
)
def test_names_only_docker_allows_are_refused_before_index_json(
    tmp_path: Path, name: str, tag: str
) -> None:
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans/images.yaml").write_text(PLAN.format(name=name))
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    with pytest.raises(UserError) as caught:
        load_build(Options(tags=(tag,)), tmp_path, {})
    assert f"{name}:{tag}" in str(caught.value)
    assert "which the OCI image-spec's grammar does not allow" in str(caught.value)
    assert not oci.is_ref_name(f"{name}:{tag}")


def test_a_plan_string_with_a_nul_is_refused(tmp_path: Path) -> None:
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans/images.yaml").write_text(
        'images:\n- name: app\n  dockerfile: "Docker\\0file"\n'
    )
    with pytest.raises(UserError) as caught:
        load_build(Options(), tmp_path, {})
    assert str(caught.value).startswith(
        "plans/images.yaml:3: dockerfile of image 'app' holds the control character U+0000"
    )
