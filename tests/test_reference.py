"""Table-driven tests of registry.reference: parsing, normalisation, tags and hubs."""

from __future__ import annotations

import pytest

from doit_oci.registry.reference import (
    Reference,
    ReferenceError,
    check_hub,
    check_tag,
    is_valid_tag,
    parse,
    secrets_removed,
    split_repository,
)

A64 = "a" * 64
B64 = "0123456789abcdef" * 4
NAME_RULE = (
    "each '/'-separated part is lowercase letters and digits, joined by '.', '_', '__' or '-'"
)
TAG_RULE = "a tag is 1 to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'"
DIGEST_RULE = "expected sha256: and 64 lowercase hex digits"


@pytest.mark.parametrize(
    ("text", "registry", "path", "tag", "digest", "normal"),
    [
        # Docker Hub: bare names live under library/
        ("ubuntu", "docker.io", "library/ubuntu", "", "", "docker.io/library/ubuntu"),
        (
            "ubuntu:22.04",
            "docker.io",
            "library/ubuntu",
            "22.04",
            "",
            "docker.io/library/ubuntu:22.04",
        ),
        ("library/ubuntu", "docker.io", "library/ubuntu", "", "", "docker.io/library/ubuntu"),
        ("istio/pilot:1.2", "docker.io", "istio/pilot", "1.2", "", "docker.io/istio/pilot:1.2"),
        ("docker.io/ubuntu", "docker.io", "library/ubuntu", "", "", "docker.io/library/ubuntu"),
        (
            "index.docker.io/ubuntu",
            "docker.io",
            "library/ubuntu",
            "",
            "",
            "docker.io/library/ubuntu",
        ),
        ("index.docker.io/foo/bar:1", "docker.io", "foo/bar", "1", "", "docker.io/foo/bar:1"),
        # a registry host: holds a '.' or a ':' or is localhost
        ("localhost/foo", "localhost", "foo", "", "", "localhost/foo"),
        (
            "localhost:5000/foo/bar:v1",
            "localhost:5000",
            "foo/bar",
            "v1",
            "",
            "localhost:5000/foo/bar:v1",
        ),
        (
            "127.0.0.1:5000/istio/pilot",
            "127.0.0.1:5000",
            "istio/pilot",
            "",
            "",
            "127.0.0.1:5000/istio/pilot",
        ),
        (
            "gcr.io/istio-release/pilot:1.20.0",
            "gcr.io",
            "istio-release/pilot",
            "1.20.0",
            "",
            "gcr.io/istio-release/pilot:1.20.0",
        ),
        ("My.Registry:5000/x", "My.Registry:5000", "x", "", "", "My.Registry:5000/x"),
        ("[::1]:5000/foo", "[::1]:5000", "foo", "", "", "[::1]:5000/foo"),
        # a port-looking suffix without a slash is a tag
        ("host:5000", "docker.io", "library/host", "5000", "", "docker.io/library/host:5000"),
        # separators inside a path component
        ("a__b", "docker.io", "library/a__b", "", "", "docker.io/library/a__b"),
        (
            "a-----b.c_d",
            "docker.io",
            "library/a-----b.c_d",
            "",
            "",
            "docker.io/library/a-----b.c_d",
        ),
        # digests, alone and after a tag
        (
            f"foo@sha256:{A64}",
            "docker.io",
            "library/foo",
            "",
            f"sha256:{A64}",
            f"docker.io/library/foo@sha256:{A64}",
        ),
        (
            f"foo:1@sha256:{B64}",
            "docker.io",
            "library/foo",
            "1",
            f"sha256:{B64}",
            f"docker.io/library/foo:1@sha256:{B64}",
        ),
        (
            f"localhost:5000/a/b:t@sha256:{A64}",
            "localhost:5000",
            "a/b",
            "t",
            f"sha256:{A64}",
            f"localhost:5000/a/b:t@sha256:{A64}",
        ),
        # longest tag
        (
            "foo:" + "T" * 128,
            "docker.io",
            "library/foo",
            "T" * 128,
            "",
            "docker.io/library/foo:" + "T" * 128,
        ),
    ],
)
def test_parse_valid(
    text: str, registry: str, path: str, tag: str, digest: str, normal: str
) -> None:
    ref = parse(text)
    assert ref == Reference(registry, path, tag, digest)
    assert str(ref) == normal
    assert ref.repository == f"{registry}/{path}"
    # the normal form parses to the same reference
    assert parse(normal) == ref


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "invalid image reference '': empty or surrounded by spaces"),
        (" foo", "invalid image reference ' foo': empty or surrounded by spaces"),
        ("foo ", "invalid image reference 'foo ': empty or surrounded by spaces"),
        ("Ubuntu", f"invalid repository name 'Ubuntu' in 'Ubuntu': {NAME_RULE}"),
        ("gcr.io/Org/x", f"invalid repository name 'Org/x' in 'gcr.io/Org/x': {NAME_RULE}"),
        ("-x", f"invalid repository name '-x' in '-x': {NAME_RULE}"),
        ("a..b", f"invalid repository name 'a..b' in 'a..b': {NAME_RULE}"),
        ("a___b", f"invalid repository name 'a___b' in 'a___b': {NAME_RULE}"),
        ("a//b", f"invalid repository name 'a//b' in 'a//b': {NAME_RULE}"),
        ("a/b:tag/c", f"invalid repository name 'a/b:tag/c' in 'a/b:tag/c': {NAME_RULE}"),
        ("foo:", f"invalid tag '': {TAG_RULE}"),
        ("foo:-x", f"invalid tag '-x': {TAG_RULE}"),
        ("foo:.x", f"invalid tag '.x': {TAG_RULE}"),
        ("foo:é", f"invalid tag 'é': {TAG_RULE}"),
        ("foo:" + "t" * 129, f"invalid tag '{'t' * 129}': {TAG_RULE}"),
        ("foo@", f"invalid digest '' in 'foo@': {DIGEST_RULE}"),
        ("foo@sha256:abc", f"invalid digest 'sha256:abc' in 'foo@sha256:abc': {DIGEST_RULE}"),
        (
            f"foo@sha256:{A64.upper()}",
            f"invalid digest 'sha256:{A64.upper()}' in 'foo@sha256:{A64.upper()}': {DIGEST_RULE}",
        ),
        (
            f"foo@sha512:{A64}",
            f"invalid digest 'sha512:{A64}' in 'foo@sha512:{A64}': {DIGEST_RULE}",
        ),
        (f"@sha256:{A64}", "'' names no repository"),
        ("localhost:5000/", "'localhost:5000/' names no repository"),
        ("http://x/y", "invalid image reference 'http://x/y': write it without http://"),
        (
            "user:secret@gcr.io/x/y",
            "invalid image reference '<credentials>@gcr.io/x/y': credentials do not go in it;"
            " log in with `docker login` (they are read from the docker config)",
        ),
        ("exa_mple.com/foo", "invalid registry host 'exa_mple.com' in 'exa_mple.com/foo'"),
        ("-bad.com/foo", "invalid registry host '-bad.com' in '-bad.com/foo'"),
        ("a" * 250 + "/b", f"repository name '{'a' * 250}/b' is longer than 255 characters"),
    ],
)
def test_parse_invalid(text: str, message: str) -> None:
    with pytest.raises(ReferenceError) as caught:
        parse(text)
    assert str(caught.value) == message


def test_reference_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="names no repository"):
        parse("@sha256:" + A64)


@pytest.mark.parametrize(
    ("text", "identifier"),
    [
        ("foo", "latest"),
        ("foo:1.2", "1.2"),
        (f"foo@sha256:{A64}", f"sha256:{A64}"),
        (f"foo:1.2@sha256:{A64}", f"sha256:{A64}"),
    ],
)
def test_identifier(text: str, identifier: str) -> None:
    assert parse(text).identifier == identifier


def test_with_tag_replaces_tag_and_drops_digest() -> None:
    ref = parse(f"localhost:5000/a:old@sha256:{A64}")
    assert ref.with_tag("new") == Reference("localhost:5000", "a", "new")
    assert str(ref.with_tag("new")) == "localhost:5000/a:new"
    with pytest.raises(ReferenceError, match=r"^invalid tag 'a b'"):
        ref.with_tag("a b")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pilot", ("docker.io", "library/pilot")),
        ("istio/pilot", ("docker.io", "istio/pilot")),
        ("localhost:5000/istio/pilot", ("localhost:5000", "istio/pilot")),
        ("example.com/a/b/c", ("example.com", "a/b/c")),
        ("index.docker.io/x", ("docker.io", "library/x")),
    ],
)
def test_split_repository(text: str, expected: tuple[str, str]) -> None:
    assert split_repository(text) == expected


@pytest.mark.parametrize(
    ("tag", "valid"),
    [
        ("latest", True),
        ("1.20.0", True),
        ("_x", True),
        ("A-b_c.D", True),
        ("v" * 128, True),
        ("v" * 129, False),
        ("", False),
        (".x", False),
        ("-x", False),
        ("a b", False),
        ("a/b", False),
        ("a:b", False),
        ("é", False),
        ("١٢", False),  # Arabic-Indic digits are not ASCII digits
        ("x\n", False),
    ],
)
def test_tags(tag: str, valid: bool) -> None:
    assert is_valid_tag(tag) is valid
    if valid:
        assert check_tag(tag) == tag
    else:
        with pytest.raises(ReferenceError) as caught:
            check_tag(tag)
        assert str(caught.value) == f"invalid tag {tag!r}: {TAG_RULE}"


@pytest.mark.parametrize(
    ("hub", "expected"),
    [
        ("localhost:5000", "localhost:5000"),
        ("localhost:5000/istio/", "localhost:5000/istio"),
        ("127.0.0.1:5000", "127.0.0.1:5000"),
        ("gcr.io", "gcr.io"),
        ("gcr.io/istio-testing", "gcr.io/istio-testing"),
        ("docker.io/istio", "docker.io/istio"),
        ("istio", "istio"),
        ("localhost", "localhost"),
        ("[::1]:5000/a/b", "[::1]:5000/a/b"),
    ],
)
def test_check_hub_valid(hub: str, expected: str) -> None:
    assert check_hub(hub) == expected


@pytest.mark.parametrize(
    ("hub", "message"),
    [
        ("", "empty hub: give a registry such as localhost:5000 or gcr.io/org"),
        ("/", "empty hub: give a registry such as localhost:5000 or gcr.io/org"),
        (
            "http://localhost:5000",
            "invalid hub 'http://localhost:5000': write it without http://",
        ),
        (
            "user:pw@host/x",
            "invalid hub '<credentials>@host/x': credentials do not go in it; log in with"
            " `docker login` (they are read from the docker config)",
        ),
        (
            "https://user:pw@host.io/x",
            "invalid hub 'https://<credentials>@host.io/x': credentials do not go in it; log in"
            " with `docker login` (they are read from the docker config)",
        ),
        (
            "bad_host.com/x",
            "invalid hub 'bad_host.com/x': 'bad_host.com' is not a registry host such as"
            " localhost:5000 or gcr.io",
        ),
        (
            "gcr.io/Org",
            "invalid hub 'gcr.io/Org': each '/'-separated part of the path 'Org' is lowercase"
            " letters and digits, joined by '.', '_', '__' or '-'",
        ),
        (
            "Istio",
            "invalid hub 'Istio': each '/'-separated part of the path 'Istio' is lowercase"
            " letters and digits, joined by '.', '_', '__' or '-'",
        ),
        (
            "localhost:5000//istio",
            "invalid hub 'localhost:5000//istio': each '/'-separated part of the path '/istio'"
            " is lowercase letters and digits, joined by '.', '_', '__' or '-'",
        ),
        (
            "localhost:5000/istio:1",
            "invalid hub 'localhost:5000/istio:1': each '/'-separated part of the path"
            " 'istio:1' is lowercase letters and digits, joined by '.', '_', '__' or '-'",
        ),
        ("gcr.io/" + "a" * 250, f"invalid hub 'gcr.io/{'a' * 250}': longer than 253 characters"),
    ],
)
def test_check_hub_invalid(hub: str, message: str) -> None:
    with pytest.raises(ReferenceError) as caught:
        check_hub(hub)
    assert str(caught.value) == message


@pytest.mark.parametrize("hub", ["localhost:5000/istio", "gcr.io", "istio", "docker.io/istio"])
def test_a_valid_hub_makes_valid_references(hub: str) -> None:
    ref = parse(f"{check_hub(hub)}/pilot:1.0")
    assert ref.tag == "1.0"
    assert ref.path.endswith("pilot")


@pytest.mark.parametrize(
    "text",
    [
        "alpine@sha256:" + "a" * 64,
        "alpine:3.19@sha256:" + "b" * 64,
        "gcr.io/x/y@sha256:" + "c" * 64,
    ],
)
def test_a_digest_is_no_credential(text: str) -> None:
    assert secrets_removed(text) == text
    assert parse(text).digest


def test_no_message_repeats_a_password() -> None:
    for text in ("user:hunter2@host/x", "https://u:hunter2@h.io/x", "u:hunter2@localhost:5000/a"):
        for check in (check_hub, parse, split_repository):
            with pytest.raises(ReferenceError) as caught:
                check(text)
            assert "hunter2" not in str(caught.value)
