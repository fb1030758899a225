"""rules.dockerfile.stages against BuildKit's ``dockerfile2llb/convert.go``: global ARGs,
FROM lines, the automatic platform ARGs and targets.

Every row spells its Dockerfile out line by line, so that line numbers in the
expected messages can be read off the row.
"""

from __future__ import annotations

from typing import Any

import pytest
from dockerfiles import AMD64, PATH, build, dockerfile

from doit_oci.registry.oci import Platform
from doit_oci.rules.dockerfile.read import read_dockerfile
from doit_oci.rules.dockerfile.stages import automatic_args, root_platform, select_chain
from doit_oci.rules.errors import UserError

# --- select_chain: FROM lines, global ARGs, targets ------------------------------------------

ISTIO = (
    "ARG BASE_DISTRIBUTION=debug",
    "ARG BASE_VERSION=latest",
    "FROM base:${BASE_VERSION} AS debug",
    "FROM distroless:${BASE_VERSION} AS distroless",
    "FROM ${BASE_DISTRIBUTION:-debug}",
    "COPY app /usr/local/bin/",
)


@pytest.mark.parametrize(
    ("lines", "args", "target", "expected"),
    [
        pytest.param(
            ISTIO,
            {},
            "",
            (
                [0, 2],
                "base:latest",
                f"{PATH}:3",
                (("BASE_DISTRIBUTION", "debug"), ("BASE_VERSION", "latest")),
                1,
            ),
            id="istio-default-debug",
        ),
        pytest.param(
            ISTIO,
            {"BASE_DISTRIBUTION": "distroless", "BASE_VERSION": "1.2"},
            "",
            (
                [1, 2],
                "distroless:1.2",
                f"{PATH}:4",
                (("BASE_DISTRIBUTION", "distroless"), ("BASE_VERSION", "1.2")),
                1,
            ),
            id="istio-build-args-choose-distroless",
        ),
        pytest.param(
            ISTIO,
            {"BASE_DISTRIBUTION": ""},
            "",
            (
                [0, 2],
                "base:latest",
                f"{PATH}:3",
                (("BASE_DISTRIBUTION", ""), ("BASE_VERSION", "latest")),
                1,
            ),
            id="istio-empty-build-arg-takes-the-colon-dash-default",
        ),
        pytest.param(
            ISTIO,
            {},
            "DEBUG",
            (
                [0],
                "base:latest",
                f"{PATH}:3",
                (("BASE_DISTRIBUTION", "debug"), ("BASE_VERSION", "latest")),
                0,
            ),
            id="target-is-case-insensitive",
        ),
        pytest.param(
            ("FROM scratch AS a", "COPY x /", "FROM a AS b", "WORKDIR /w", "FROM b", "COPY y /"),
            {},
            "",
            ([0, 1, 2], "scratch", f"{PATH}:1", (), 2),
            id="stage-on-stage-on-stage",
        ),
        pytest.param(
            ("FROM scratch AS a", "COPY x /", "FROM a AS b", "WORKDIR /w", "FROM b", "COPY y /"),
            {},
            "b",
            ([0, 1], "scratch", f"{PATH}:1", (), 2),
            id="target-with-trailing-workdir",
        ),
        pytest.param(
            ("FROM img-${TARGETARCH}${TARGETVARIANT:+-}$TARGETVARIANT",),
            {},
            "",
            ([0], "img-amd64", f"{PATH}:1", (), 0),
            id="platform-args-reach-from-undeclared",
        ),
        pytest.param(
            ("FROM img${TAG}",),
            {"TAG": ":1"},
            "",
            ([0], "img", f"{PATH}:1", (), 0),
            id="undeclared-build-arg-does-not-reach-from",
        ),
        pytest.param(
            ("ARG TAG", "FROM img:$TAG"),
            {"TAG": "2"},
            "",
            ([0], "img:2", f"{PATH}:2", (("TAG", "2"),), 0),
            id="declared-global-takes-the-build-arg",
        ),
        pytest.param(
            ("ARG TAG", "FROM img${TAG:+:}$TAG"),
            {},
            "",
            ([0], "img", f"{PATH}:2", (("TAG", None),), 0),
            id="declared-global-without-value",
        ),
        pytest.param(
            ("ARG A=x", "ARG B=${A}y C", "FROM $B"),
            {},
            "",
            ([0], "xy", f"{PATH}:3", (("A", "x"), ("B", "xy"), ("C", None)), 0),
            id="global-default-sees-earlier-globals",
        ),
        pytest.param(
            ("ARG TARGETARCH=arm64", "FROM img-$TARGETARCH"),
            {},
            "",
            ([0], "img-arm64", f"{PATH}:2", (("TARGETARCH", "arm64"),), 0),
            id="global-default-wins-over-platform-value",
        ),
        pytest.param(
            ("ARG TARGETARCH", "FROM img-$TARGETARCH"),
            {},
            "",
            ([0], "img-amd64", f"{PATH}:2", (("TARGETARCH", "amd64"),), 0),
            id="global-platform-arg-declared-without-default",
        ),
        pytest.param(
            ("FROM debian AS debian", "FROM debian"),
            {},
            "",
            ([0, 1], "debian", f"{PATH}:1", (), 0),
            id="from-naming-its-own-stage-is-an-image",
        ),
        pytest.param(
            ("FROM scratch AS Builder", "FROM BUILDER"),
            {},
            "",
            ([0, 1], "scratch", f"{PATH}:1", (), 0),
            id="stage-reference-is-case-insensitive",
        ),
        pytest.param(
            ('ARG IMAGE="my img"', "FROM ${IMAGE}"),
            {},
            "",
            ([0], "my img", f"{PATH}:2", (("IMAGE", "my img"),), 0),
            id="quoted-global-default",
        ),
    ],
)
def test_select_chain(
    lines: tuple[str, ...], args: dict[str, str], target: str, expected: tuple[Any, ...]
) -> None:
    df = read_dockerfile(dockerfile(*lines), PATH)
    chain = select_chain(df, {**AMD64, **args}, target)
    assert (
        [stage.index for stage in chain.stages],
        chain.base,
        chain.base_where,
        chain.global_args,
        chain.layer_count,
    ) == expected


@pytest.mark.parametrize(
    ("lines", "args", "target", "message"),
    [
        # FROM and stages
        pytest.param(
            ("FROM scratch AS first", "FROM later AS second", "FROM scratch AS later"),
            {},
            "second",
            f"{PATH}:2: FROM later names a stage defined later;"
            " stages can only build on earlier ones",
            id="from-names-a-later-stage",
        ),
        pytest.param(
            ("ARG B", "FROM $B"),
            {},
            "",
            f"{PATH}:2: FROM $B expands to an empty image name; set the build arg it uses,"
            " or give the ARG a default",
            id="from-empty-expansion",
        ),
        pytest.param(
            ("FROM ${IMAGE}",),
            {"IMAGE": "alpine"},
            "",
            f"{PATH}:1: FROM ${{IMAGE}} expands to an empty image name; set the build arg it"
            " uses, or give the ARG a default",
            id="from-undeclared-build-arg",
        ),
        pytest.param(
            ("FROM ${IMAGE:?required}",),
            {},
            "",
            f"{PATH}:1: failed to process '${{IMAGE:?required}}': IMAGE: required;"
            " fix the variable reference",
            id="from-required-variable",
        ),
        pytest.param(
            ("FROM scratch AS a", "FROM a AS b"),
            {},
            "nope",
            f"{PATH}: no stage named 'nope'; stages: a, b",
            id="unknown-target",
        ),
    ],
)
def test_errors(lines: tuple[str, ...], args: dict[str, str], target: str, message: str) -> None:
    with pytest.raises(UserError) as caught:
        build(lines, args, target)
    assert str(caught.value) == message


def test_automatic_args() -> None:
    assert automatic_args(Platform("linux", "arm", "v7"), Platform("linux", "amd64")) == {
        "TARGETPLATFORM": "linux/arm/v7",
        "TARGETOS": "linux",
        "TARGETARCH": "arm",
        "TARGETVARIANT": "v7",
        "BUILDPLATFORM": "linux/amd64",
        "BUILDOS": "linux",
        "BUILDARCH": "amd64",
        "BUILDVARIANT": "",
    }


@pytest.mark.parametrize(
    ("lines", "args", "expected"),
    [
        (("FROM scratch",), {}, ""),
        (("ARG ARCH=amd64", "FROM --platform=linux/${ARCH} scratch"), {}, "linux/amd64"),
        (("ARG ARCH=amd64", "FROM --platform=linux/$ARCH a"), {"ARCH": "s390x"}, "linux/s390x"),
        (("FROM --platform=$BUILDPLATFORM scratch",), {}, "linux/amd64"),
        (("ARG P=${TARGETOS}/arm64", "FROM --platform=$P scratch"), {}, "linux/arm64"),
        (("FROM --platform=linux/$ARCH scratch",), {"ARCH": "arm64"}, "linux/"),  # undeclared
        # the root stage's, where the chain starts
        (("FROM --platform=linux/amd64 scratch AS a", "FROM a"), {}, "linux/amd64"),
    ],
)
def test_root_platform(lines: tuple[str, ...], args: dict[str, str], expected: str) -> None:
    build_args = {**AMD64, **args}
    chain = select_chain(read_dockerfile(dockerfile(*lines), PATH), build_args)
    assert root_platform(chain, build_args) == expected
