"""rules.dockerfile.evaluate against BuildKit's ``dockerfile2llb/convert.go``: what each
instruction does to the image config, the history and the COPY steps.

Every row spells its Dockerfile out line by line, so that line numbers in the
expected messages can be read off the row.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from dockerfiles import PATH, build, copy

from doit_oci.registry.oci import ContainerConfig, ImageConfig, Platform
from doit_oci.rules.dockerfile.evaluate import DEFAULT_PATH
from doit_oci.rules.dockerfile.model import CopyStep, HistoryStep, ImageSpec
from doit_oci.rules.dockerfile.read import KNOWN
from doit_oci.rules.dockerfile.stages import automatic_args
from doit_oci.rules.errors import UserError

DEFAULT_ENV = f"PATH={DEFAULT_PATH}"

# A base image with something in every field evaluate reads.
BASE = ImageConfig(
    architecture="amd64",
    os="linux",
    author="Base Author",
    config=ContainerConfig(
        user="base-user",
        exposed_ports=("22/tcp",),
        env=("PATH=/bin", "HOME=/root", "LANG=C"),
        entrypoint=("/base-entry",),
        cmd=("base-cmd",),
        volumes=("/base-vol",),
        working_dir="/base",
        labels=(("a", "1"), ("b", "2")),
        stop_signal="SIGINT",
    ),
)


def config_fields(spec: ImageSpec, expected: Mapping[str, Any]) -> dict[str, Any]:
    return {name: getattr(spec.config, name) for name in expected}


# --- evaluate: the final config ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "args", "base", "expected"),
    [
        # FROM scratch and the base image
        pytest.param(
            ("FROM scratch",),
            {},
            None,
            {
                "user": "",
                "env": (DEFAULT_ENV,),
                "entrypoint": None,
                "cmd": None,
                "working_dir": "",
                "labels": (),
                "exposed_ports": (),
                "volumes": (),
                "stop_signal": "",
            },
            id="scratch-gets-the-default-path",
        ),
        pytest.param(
            ("FROM base",),
            {},
            BASE,
            {
                "user": "base-user",
                "env": ("PATH=/bin", "HOME=/root", "LANG=C"),
                "entrypoint": ("/base-entry",),
                "cmd": ("base-cmd",),
                "working_dir": "/base",
                "labels": (("a", "1"), ("b", "2")),
                "exposed_ports": ("22/tcp",),
                "volumes": ("/base-vol",),
                "stop_signal": "SIGINT",
            },
            id="base-config-kept",
        ),
        # ARG
        pytest.param(
            ("ARG V=1", "FROM scratch", "LABEL a=$V", "ARG V", "LABEL b=$V"),
            {},
            None,
            {"labels": (("a", ""), ("b", "1"))},
            id="global-arg-only-after-redeclaring",
        ),
        pytest.param(
            ("FROM scratch", "ARG V=default", "LABEL v=$V"),
            {},
            None,
            {"labels": (("v", "default"),)},
            id="stage-arg-default",
        ),
        pytest.param(
            ("FROM scratch", "ARG V=default", "LABEL v=$V"),
            {"V": "cli"},
            None,
            {"labels": (("v", "cli"),)},
            id="build-arg-beats-stage-default",
        ),
        pytest.param(
            ("ARG V=global", "FROM scratch", "ARG V", "LABEL v=$V"),
            {"V": "cli"},
            None,
            {"labels": (("v", "cli"),)},
            id="redeclared-global-takes-the-build-arg",
        ),
        pytest.param(
            ("ARG V=global", "FROM scratch", "ARG V=stage", "LABEL v=$V"),
            {},
            None,
            {"labels": (("v", "stage"),)},
            id="stage-default-beats-global-default",
        ),
        pytest.param(
            (
                "FROM scratch",
                "LABEL before=$TARGETARCH",
                "ARG TARGETARCH TARGETPLATFORM",
                "LABEL after=$TARGETARCH,$TARGETPLATFORM,${BUILDOS:-none}",
            ),
            {},
            None,
            {"labels": (("after", "amd64,linux/amd64,none"), ("before", ""))},
            id="platform-args-in-a-stage-only-when-declared",
        ),
        pytest.param(
            ("FROM scratch", "ARG TARGETVARIANT", "LABEL v=$TARGETARCH/$TARGETVARIANT"),
            {**automatic_args(Platform("linux", "arm64", "v8"))},
            None,
            {"labels": (("v", "/v8"),)},
            id="platform-variant",
        ),
        pytest.param(
            ("FROM scratch", "ARG TARGETARCH=arm64", "LABEL a=$TARGETARCH"),
            {},
            None,
            {"labels": (("a", "arm64"),)},
            id="stage-default-beats-platform-value",
        ),
        pytest.param(
            ("FROM scratch", "ARG A=1 B=${A}2 C", "LABEL x=$A$B${C-unset}"),
            {},
            None,
            {"labels": (("x", "112unset"),)},
            id="several-args-on-one-line",
        ),
        pytest.param(
            ("FROM scratch", 'ARG G="hello world"', "LABEL g=$G"),
            {},
            None,
            {"labels": (("g", "hello world"),)},
            id="quoted-arg-default",
        ),
        pytest.param(
            ("FROM scratch", "ARG V=arg", "ENV V=env", "LABEL v=$V"),
            {},
            None,
            {"labels": (("v", "env"),), "env": (DEFAULT_ENV, "V=env")},
            id="env-after-arg-wins",
        ),
        pytest.param(
            ("FROM scratch", "ENV V=env", "ARG V=arg", "LABEL v=$V"),
            {},
            None,
            {"labels": (("v", "arg"),), "env": (DEFAULT_ENV, "V=env")},
            id="arg-after-env-wins-in-expansion-only",
        ),
        pytest.param(
            ("FROM base", "ARG HOME=/tmp", "LABEL h=$HOME"),
            {},
            BASE,
            {"labels": (("a", "1"), ("b", "2"), ("h", "/tmp")), "env": BASE.config.env},
            id="arg-after-base-env-wins-in-expansion",
        ),
        pytest.param(
            ("FROM base", "ARG HOME", "LABEL h=$HOME"),
            {},
            BASE,
            {"labels": (("a", "1"), ("b", "2"), ("h", "/root"))},
            id="arg-without-value-keeps-base-env",
        ),
        pytest.param(
            ("FROM scratch AS base", "ARG NAME=joe", "FROM base", "LABEL n=$NAME"),
            {},
            None,
            {"labels": (("n", "joe"),)},
            id="arg-inherited-by-child-stage",
        ),
        pytest.param(
            ("FROM scratch AS other", "ARG NAME=joe", "FROM scratch", "LABEL n=x$NAME"),
            {},
            None,
            {"labels": (("n", "x"),)},
            id="arg-of-unrelated-stage-not-seen",
        ),
        pytest.param(
            ("FROM scratch", "ARG V", "LABEL v=${V-unset}"),
            {},
            None,
            {"labels": (("v", "unset"),)},
            id="arg-without-any-value-stays-unset",
        ),
        pytest.param(
            ("FROM scratch", "LABEL v=${V-unset}"),
            {"V": "cli"},
            None,
            {"labels": (("v", "unset"),)},
            id="undeclared-build-arg-unseen",
        ),
        # ENV
        pytest.param(
            ("FROM scratch", "ENV A hello  world"),
            {},
            None,
            {"env": (DEFAULT_ENV, "A=hello  world")},
            id="env-legacy-form",
        ),
        pytest.param(
            ("FROM scratch", "ENV A=1 B=\"two words\" C='$A' D=\\$A E=a\\ b F="),
            {},
            None,
            {"env": (DEFAULT_ENV, "A=1", "B=two words", "C=$A", "D=$A", "E=a b", "F=")},
            id="env-pairs-quotes-and-escapes",
        ),
        pytest.param(
            ("FROM scratch", "ENV A=1", "ENV A=2 B=$A C=${A}"),
            {},
            None,
            {"env": (DEFAULT_ENV, "A=2", "B=1", "C=1")},
            id="env-pairs-see-the-env-before-the-instruction",
        ),
        pytest.param(
            ("FROM base", "ENV HOME=/home/u NEW=$HOME"),
            {},
            BASE,
            {"env": ("PATH=/bin", "HOME=/home/u", "LANG=C", "NEW=/root")},
            id="env-replaces-base-value-in-place",
        ),
        pytest.param(
            ("FROM scratch", "ENV A=${UNSET:-fallback} B=${A:+set}"),
            {},
            None,
            {"env": (DEFAULT_ENV, "A=fallback", "B=")},
            id="env-modifiers",
        ),
        pytest.param(
            ("FROM scratch", "ENV K=NAME", "ENV $K=v"),
            {},
            None,
            {"env": (DEFAULT_ENV, "K=NAME", "NAME=v")},
            id="env-name-expanded",
        ),
        pytest.param(
            ("FROM scratch", "ENV PATH=$PATH:/opt/bin"),
            {},
            None,
            {"env": (f"PATH={DEFAULT_PATH}:/opt/bin",)},
            id="env-extends-default-path",
        ),
        pytest.param(
            (
                "FROM scratch",
                "ARG GREETING=hello",
                "ENV GREETING=${GREETING} \\",
                "    HELLO_HOME=/home/hello",
            ),
            {},
            None,
            {"env": (DEFAULT_ENV, "GREETING=hello", "HELLO_HOME=/home/hello")},
            id="env-from-arg-over-two-lines",
        ),
        # LABEL
        pytest.param(
            ("FROM base", "LABEL b=20 c=3"),
            {},
            BASE,
            {"labels": (("a", "1"), ("b", "20"), ("c", "3"))},
            id="labels-merge-with-base",
        ),
        pytest.param(
            (
                "FROM scratch",
                'LABEL "com.example.x"="a b" desc=\'single $q\'',
                "LABEL legacy value here",
            ),
            {},
            None,
            {
                "labels": (
                    ("com.example.x", "a b"),
                    ("desc", "single $q"),
                    ("legacy", "value here"),
                )
            },
            id="labels-quoted-keys-and-legacy-form",
        ),
        # USER
        pytest.param(
            ("FROM scratch", "USER 1337:1337"),
            {},
            None,
            {"user": "1337:1337"},
            id="user",
        ),
        pytest.param(
            ("FROM scratch", "ARG U", "USER ${U:-nobody}"),
            {"U": "app"},
            None,
            {"user": "app"},
            id="user-expanded",
        ),
        # WORKDIR
        pytest.param(
            ("FROM base", "WORKDIR app", "WORKDIR ../x/./y"),
            {},
            BASE,
            {"working_dir": "/base/x/y"},
            id="workdir-relative-to-base",
        ),
        pytest.param(
            ("FROM scratch", "WORKDIR rel"),
            {},
            None,
            {"working_dir": "/rel"},
            id="workdir-relative-on-scratch",
        ),
        pytest.param(
            ("FROM scratch", "ENV D=/srv", "WORKDIR $D/app/"),
            {},
            None,
            {"working_dir": "/srv/app"},
            id="workdir-expanded",
        ),
        pytest.param(
            ("FROM scratch", "WORKDIR //double//slash/"),
            {},
            None,
            {"working_dir": "/double/slash"},
            id="workdir-cleaned-like-go",
        ),
        pytest.param(
            ("FROM scratch", "WORKDIR /../../x"),
            {},
            None,
            {"working_dir": "/x"},
            id="workdir-dotdot-above-root",
        ),
        # ENTRYPOINT and CMD
        pytest.param(
            ("FROM scratch", 'ENTRYPOINT ["/bin/app", "--flag"]', 'CMD ["arg"]'),
            {},
            None,
            {"entrypoint": ("/bin/app", "--flag"), "cmd": ("arg",)},
            id="exec-forms",
        ),
        pytest.param(
            ("FROM scratch", "ENV HOME=/h", "CMD echo $HOME  &&  true"),
            {},
            None,
            {"cmd": ("/bin/sh", "-c", "echo $HOME  &&  true")},
            id="cmd-shell-form-not-expanded",
        ),
        pytest.param(
            ("FROM scratch", "CMD echo a \\", "    b"),
            {},
            None,
            {"cmd": ("/bin/sh", "-c", "echo a     b")},
            id="cmd-shell-form-over-two-lines",
        ),
        pytest.param(
            ("FROM scratch", 'SHELL ["/bin/bash", "-eo", "pipefail", "-c"]', "ENTRYPOINT exec app"),
            {},
            None,
            {"entrypoint": ("/bin/bash", "-eo", "pipefail", "-c", "exec app")},
            id="shell-instruction",
        ),
        pytest.param(
            ("FROM scratch AS a", 'SHELL ["/bin/ash", "-c"]', "FROM a", "CMD run"),
            {},
            None,
            {"cmd": ("/bin/ash", "-c", "run")},
            id="shell-inherited-by-child-stage",
        ),
        pytest.param(
            ("FROM base", 'ENTRYPOINT ["/x"]'),
            {},
            BASE,
            {"entrypoint": ("/x",), "cmd": None},
            id="entrypoint-clears-base-cmd",
        ),
        pytest.param(
            ("FROM base", 'CMD ["c"]', 'ENTRYPOINT ["/x"]'),
            {},
            BASE,
            {"entrypoint": ("/x",), "cmd": ("c",)},
            id="entrypoint-keeps-cmd-of-same-stage",
        ),
        pytest.param(
            ("FROM scratch AS a", 'CMD ["c"]', "FROM a", 'ENTRYPOINT ["/x"]'),
            {},
            None,
            {"entrypoint": ("/x",), "cmd": None},
            id="entrypoint-clears-cmd-of-earlier-stage",
        ),
        pytest.param(
            ("FROM base", 'ENTRYPOINT ["/x"]', 'CMD ["c"]'),
            {},
            BASE,
            {"entrypoint": ("/x",), "cmd": ("c",)},
            id="cmd-after-entrypoint",
        ),
        pytest.param(
            ("FROM base", "ENTRYPOINT []"),
            {},
            BASE,
            {"entrypoint": None, "cmd": None},
            id="empty-entrypoint-resets",
        ),
        pytest.param(
            ("FROM base", "CMD []"),
            {},
            BASE,
            {"entrypoint": ("/base-entry",), "cmd": None},
            id="empty-cmd-resets",
        ),
        pytest.param(
            ("FROM scratch", 'CMD ["a", '),
            {},
            None,
            {"cmd": ("/bin/sh", "-c", '["a",')},
            id="invalid-json-is-shell-form",
        ),
        # EXPOSE
        pytest.param(
            ("FROM scratch", "EXPOSE 80 443/tcp 53/UDP 9000-9002/sctp"),
            {},
            None,
            {
                "exposed_ports": (
                    "443/tcp",
                    "53/udp",
                    "80/tcp",
                    "9000/sctp",
                    "9001/sctp",
                    "9002/sctp",
                )
            },
            id="expose-ports-protocols-ranges",
        ),
        pytest.param(
            ("FROM scratch", 'ENV PORTS="8080 8443/udp"', "EXPOSE $PORTS ${ONE:-9090}"),
            {},
            None,
            {"exposed_ports": ("8080/tcp", "8443/udp", "9090/tcp")},
            id="expose-expansion-splits-words",
        ),
        pytest.param(
            ("FROM base", "EXPOSE 22 080 0 81/"),
            {},
            BASE,
            {"exposed_ports": ("0/tcp", "22/tcp", "80/tcp", "81/tcp")},
            id="expose-merges-with-base",
        ),
        # VOLUME
        pytest.param(
            ("FROM scratch", 'VOLUME ["/data", "/logs"]'),
            {},
            None,
            {"volumes": ("/data", "/logs")},
            id="volume-json",
        ),
        pytest.param(
            ("FROM base", "ENV D=/d", 'VOLUME /a $D ["$D/x"]'),
            {},
            BASE,
            {"volumes": ("/a", "/base-vol", "/d", "[/d/x]")},
            id="volume-words-expanded",
        ),
        pytest.param(
            ("FROM scratch", "ENV D=/d", 'VOLUME ["$D/x"]'),
            {},
            None,
            {"volumes": ("/d/x",)},
            id="volume-json-expanded",
        ),
        # STOPSIGNAL
        pytest.param(
            ("FROM scratch", "STOPSIGNAL SIGTERM"),
            {},
            None,
            {"stop_signal": "SIGTERM"},
            id="stopsignal-name",
        ),
        pytest.param(
            ("FROM scratch", "stopsignal 9"),
            {},
            None,
            {"stop_signal": "9"},
            id="stopsignal-number",
        ),
        pytest.param(
            ("FROM scratch", "STOPSIGNAL ${SIG:-rtmin+3}"),
            {},
            None,
            {"stop_signal": "rtmin+3"},
            id="stopsignal-expanded-and-kept-as-written",
        ),
    ],
)
def test_config(
    lines: tuple[str, ...],
    args: dict[str, str],
    base: ImageConfig | None,
    expected: dict[str, Any],
) -> None:
    assert config_fields(build(lines, args, base=base), expected) == expected


@pytest.mark.parametrize(
    ("lines", "base", "author"),
    [
        pytest.param(("FROM base",), BASE, "Base Author", id="base-author"),
        pytest.param(("FROM scratch",), None, "", id="no-author"),
        pytest.param(
            ("FROM base", "ENV X=y", "MAINTAINER  Jane $X <jane@example.com> "),
            BASE,
            "Jane $X <jane@example.com>",
            id="maintainer-not-expanded",
        ),
    ],
)
def test_author(lines: tuple[str, ...], base: ImageConfig | None, author: str) -> None:
    assert build(lines, base=base).author == author


# --- evaluate: history, copies, warnings ---------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "ignore_runs", "history"),
    [
        pytest.param(
            (
                "FROM scratch",
                "ENV  A=1 \\",
                "     B=2",
                "COPY a /a",
                "WORKDIR /w",
                "copy b c",
                "WORKDIR /t",
                "user x",
            ),
            False,
            [
                ("ENV A=1 B=2", None),
                ("COPY a /a", 0),
                ("WORKDIR /w", None),
                ("COPY b c", 1),
                ("WORKDIR /t", 2),
                ("USER x", None),
            ],
            id="layers-and-trailing-workdir",
        ),
        pytest.param(
            ("FROM scratch", "WORKDIR /a", "WORKDIR b"),
            False,
            [("WORKDIR /a", None), ("WORKDIR b", 0)],
            id="only-the-last-trailing-workdir-has-the-layer",
        ),
        pytest.param(
            ("FROM scratch", "RUN make", "COPY a /", "HEALTHCHECK NONE"),
            True,
            [("COPY a /", 0), ("HEALTHCHECK NONE", None)],
            id="run-skipped-healthcheck-recorded",
        ),
        pytest.param(
            ("FROM scratch AS a", "ARG X=1", "COPY a /", "FROM a", "LABEL l=$X", "COPY b /"),
            False,
            [("ARG X=1", None), ("COPY a /", 0), ("LABEL l=$X", None), ("COPY b /", 1)],
            id="chain-history-root-first",
        ),
        pytest.param(
            ("FROM scratch", 'CMD  [ "a",   "b" ]', "EXPOSE 80", "VOLUME /v", "STOPSIGNAL 15"),
            False,
            [
                ('CMD [ "a", "b" ]', None),
                ("EXPOSE 80", None),
                ("VOLUME /v", None),
                ("STOPSIGNAL 15", None),
            ],
            id="config-only-steps",
        ),
    ],
)
def test_history(lines: tuple[str, ...], ignore_runs: bool, history: list[tuple[str, Any]]) -> None:
    spec = build(lines, ignore_runs=ignore_runs)
    assert list(spec.history) == [HistoryStep(created_by, layer) for created_by, layer in history]


@pytest.mark.parametrize(
    ("lines", "args", "base", "copies"),
    [
        pytest.param(
            ("FROM scratch", "COPY a b* dir/[ab].txt ?.go /dest/"),
            {},
            None,
            [
                copy(
                    2,
                    "COPY a b* dir/[ab].txt ?.go /dest/",
                    ("a", "b*", "dir/[ab].txt", "?.go"),
                    "/dest",
                    True,
                )
            ],
            id="several-sources-wildcards-kept",
        ),
        pytest.param(
            ("FROM scratch", "COPY a /file", "COPY b /dir/", "COPY c /"),
            {},
            None,
            [
                copy(2, "COPY a /file", ("a",), "/file", False),
                copy(3, "COPY b /dir/", ("b",), "/dir", True),
                copy(4, "COPY c /", ("c",), "/", True),
            ],
            id="trailing-slash-destinations",
        ),
        pytest.param(
            ("FROM base", "COPY a rel/", "COPY b .", "COPY c rel", "COPY d ../up"),
            {},
            BASE,
            [
                copy(2, "COPY a rel/", ("a",), "/base/rel", True),
                copy(3, "COPY b .", ("b",), "/base", True),
                copy(4, "COPY c rel", ("c",), "/base/rel", False),
                copy(5, "COPY d ../up", ("d",), "/up", False),
            ],
            id="relative-destinations-against-base-workdir",
        ),
        pytest.param(
            ("FROM scratch", "COPY a b", "COPY c .."),
            {},
            None,
            [copy(2, "COPY a b", ("a",), "/b", False), copy(3, "COPY c ..", ("c",), "/", True)],
            id="relative-destinations-on-scratch",
        ),
        pytest.param(
            ("FROM scratch", "WORKDIR /a", "WORKDIR b", "COPY x .", "WORKDIR /c", "COPY y z"),
            {},
            None,
            [
                copy(4, "COPY x .", ("x",), "/a/b", True, workdirs=("/a", "/a/b")),
                copy(6, "COPY y z", ("y",), "/c/z", False, workdirs=("/c",)),
            ],
            id="workdirs-attached-to-the-next-copy",
        ),
        pytest.param(
            ("FROM scratch", "COPY a /a", "WORKDIR /srv/app", "WORKDIR data"),
            {},
            None,
            [
                copy(2, "COPY a /a", ("a",), "/a", False),
                CopyStep(
                    f"{PATH}:4",
                    "WORKDIR",
                    (),
                    "/srv/app/data",
                    True,
                    workdirs=("/srv/app", "/srv/app/data"),
                    created_by="WORKDIR /srv/app/data",
                ),
            ],
            id="trailing-workdir-layer",
        ),
        pytest.param(
            ("FROM scratch", "ARG U=1337", "COPY --chown=$U:${U} --chmod=755 a /x"),
            {},
            None,
            [
                copy(
                    3,
                    "COPY --chown=$U:${U} --chmod=755 a /x",
                    ("a",),
                    "/x",
                    False,
                    chown="1337:1337",
                    chmod=0o755,
                )
            ],
            id="chown-expanded-chmod-octal",
        ),
        pytest.param(
            ("FROM scratch", "ARG M=0644", "ADD --chmod=$M\t--link a /x", "COPY --chmod=4755 b /y"),
            {},
            None,
            [
                copy(3, "ADD --chmod=$M --link a /x", ("a",), "/x", False, chmod=0o644),
                copy(4, "COPY --chmod=4755 b /y", ("b",), "/y", False, chmod=0o4755),
            ],
            id="chmod-expanded-and-link-accepted",
        ),
        pytest.param(
            ("FROM scratch", "ARG D=d", 'COPY ["a b", "$D", "/c d/"]'),
            {},
            None,
            [copy(3, 'COPY ["a b", "$D", "/c d/"]', ("a b", "d"), "/c d", True)],
            id="json-form-expanded",
        ),
        pytest.param(
            ("FROM scratch", "ARG TARGETARCH", "COPY ${TARGETARCH:-amd64}/hello /usr/local/bin/"),
            {**automatic_args(Platform("linux", "arm64"))},
            None,
            [
                copy(
                    3,
                    "COPY ${TARGETARCH:-amd64}/hello /usr/local/bin/",
                    ("arm64/hello",),
                    "/usr/local/bin",
                    True,
                )
            ],
            id="sources-expanded-per-platform",
        ),
        pytest.param(
            ("FROM scratch", "ADD archive.tar.gz /opt/"),
            {},
            None,
            [copy(2, "ADD archive.tar.gz /opt/", ("archive.tar.gz",), "/opt", True)],
            id="add-local-file",
        ),
        pytest.param(
            ("# escape=`", "FROM scratch", "COPY a\\b `", "   /c/"),
            {},
            None,
            [copy(3, "COPY a\\b /c/", ("a\\b",), "/c", True)],
            id="backtick-escape-keeps-backslashes",
        ),
        pytest.param(
            ("FROM scratch AS a", "WORKDIR /w", "FROM a", "COPY x y"),
            {},
            None,
            [copy(4, "COPY x y", ("x",), "/w/y", False, workdirs=("/w",))],
            id="workdir-of-earlier-stage",
        ),
        pytest.param(
            ("FROM base", "WORKDIR /a", "USER app:staff", "WORKDIR b", "USER 0", "WORKDIR /c"),
            {},
            ImageConfig("amd64", "linux", config=ContainerConfig(user="www")),
            [
                CopyStep(
                    f"{PATH}:6",
                    "WORKDIR",
                    (),
                    "/c",
                    True,
                    workdirs=("/a", "/a/b", "/c"),
                    created_by="WORKDIR /c",
                    workdir_users=("www", "app:staff", "0"),
                )
            ],
            id="workdirs-remember-their-user",
        ),
    ],
)
def test_copies(
    lines: tuple[str, ...],
    args: dict[str, str],
    base: ImageConfig | None,
    copies: list[CopyStep],
) -> None:
    assert list(build(lines, args, base=base).copies) == copies


@pytest.mark.parametrize(
    ("lines", "warnings"),
    [
        pytest.param(("FROM scratch", "COPY a /"), [], id="none"),
        pytest.param(
            ("FROM scratch", "RUN make \\", "  all", "HEALTHCHECK CMD true", "run x"),
            [
                f"{PATH}:2: RUN skipped (ignoreRuns is set)",
                f"{PATH}:4: HEALTHCHECK is ignored: the OCI image format has no field for it",
                f"{PATH}:5: RUN skipped (ignoreRuns is set)",
            ],
            id="run-and-healthcheck",
        ),
    ],
)
def test_warnings(lines: tuple[str, ...], warnings: list[str]) -> None:
    assert list(build(lines, ignore_runs=True).warnings) == warnings


@pytest.mark.parametrize(
    ("lines", "args", "target", "message"),
    [
        # arguments
        pytest.param(
            ("FROM scratch", "ENV ${NOPE}=x"),
            {},
            "",
            f"{PATH}:2: ENV name '${{NOPE}}' is empty; name the variable",
            id="env-name-expands-to-nothing",
        ),
        pytest.param(
            ("FROM scratch", "ENV A=${B/x/y}"),
            {},
            "",
            f"{PATH}:2: failed to process '${{B/x/y}}': bad substitution ${{B/x/y}}: unsupported"
            " modifier '/' (supported: '-', '+', '?', each optionally after ':');"
            " fix the variable reference",
            id="env-unsupported-substitution",
        ),
        pytest.param(
            ("FROM scratch", "USER $NOBODY"),
            {},
            "",
            f"{PATH}:2: USER is empty; write USER <user>[:<group>]",
            id="user-expands-to-nothing",
        ),
        pytest.param(
            ("FROM scratch", "WORKDIR ${D}"),
            {},
            "",
            f"{PATH}:2: WORKDIR is empty; write WORKDIR /path",
            id="workdir-expands-to-nothing",
        ),
        pytest.param(
            ("FROM scratch", "EXPOSE http"),
            {},
            "",
            f"{PATH}:2: invalid port 'http'; write PORT, PORT/tcp, PORT/udp or FIRST-LAST",
            id="expose-name",
        ),
        pytest.param(
            ("FROM scratch", "EXPOSE 80/icmp"),
            {},
            "",
            f"{PATH}:2: invalid port '80/icmp'; write PORT, PORT/tcp, PORT/udp or FIRST-LAST",
            id="expose-protocol",
        ),
        pytest.param(
            ("FROM scratch", "EXPOSE 90-80"),
            {},
            "",
            f"{PATH}:2: invalid port range '90-80'; ports go from 0 to 65535, low to high",
            id="expose-reversed-range",
        ),
        pytest.param(
            ("FROM scratch", "EXPOSE 65536"),
            {},
            "",
            f"{PATH}:2: invalid port range '65536'; ports go from 0 to 65535, low to high",
            id="expose-too-high",
        ),
        pytest.param(
            ("FROM scratch", 'VOLUME ["/a", " "]'),
            {},
            "",
            f"{PATH}:2: VOLUME names an empty path; write VOLUME /path",
            id="volume-blank-path",
        ),
        pytest.param(
            ("FROM scratch", "STOPSIGNAL SIGFOO"),
            {},
            "",
            f"{PATH}:2: invalid STOPSIGNAL 'SIGFOO'; give a signal name such as SIGTERM or TERM,"
            " or a number",
            id="stopsignal-unknown",
        ),
        pytest.param(
            ("FROM scratch", "STOPSIGNAL 0"),
            {},
            "",
            f"{PATH}:2: invalid STOPSIGNAL '0'; give a signal name such as SIGTERM or TERM,"
            " or a number",
            id="stopsignal-zero",
        ),
        # COPY and ADD
        pytest.param(
            ("FROM scratch", "COPY --chmod=u+x a /b"),
            {},
            "",
            f"{PATH}:2: invalid --chmod 'u+x'; give octal permissions such as 0755",
            id="chmod-symbolic",
        ),
        pytest.param(
            ("FROM scratch", "COPY --chmod=0789 a /b"),
            {},
            "",
            f"{PATH}:2: invalid --chmod '0789'; give octal permissions such as 0755",
            id="chmod-not-octal",
        ),
        pytest.param(
            ("FROM scratch", "COPY --chmod=17777 a /b"),
            {},
            "",
            f"{PATH}:2: invalid --chmod '17777'; give octal permissions such as 0755",
            id="chmod-too-large",
        ),
        pytest.param(
            ("FROM scratch", "ARG SITE=https://example.com", "ADD ${SITE}/a.tgz /opt/"),
            {},
            "",
            f"{PATH}:3: ADD of a URL (https://example.com/a.tgz) is not supported;"
            " download it in make and COPY the file",
            id="add-url-after-expansion",
        ),
        pytest.param(
            ("FROM scratch", "COPY $NONE /x"),
            {},
            "",
            f"{PATH}:2: COPY source '$NONE' is empty: NONE has no value; declare 'ARG NONE' in"
            " this stage and pass --build-arg=NONE=... (or an 'args:' entry in the plan), or give"
            " it a default: 'ARG NONE=<default>'",
            id="copy-source-expands-to-nothing",
        ),
        pytest.param(
            ("FROM scratch", "ARG BINARY", "COPY ${BINARY} /usr/local/bin/"),
            {},
            "",
            f"{PATH}:3: COPY source '${{BINARY}}' is empty: BINARY has no value; pass"
            " --build-arg=BINARY=... (or an 'args:' entry in the plan), or give it a default:"
            " 'ARG BINARY=<default>'",
            id="copy-source-declared-arg-without-value",
        ),
        pytest.param(
            ("FROM scratch", "COPY ${BINARY} /usr/local/bin/"),
            {"BINARY": "app"},
            "",
            f"{PATH}:2: COPY source '${{BINARY}}' is empty: BINARY has no value; add 'ARG BINARY'"
            " to this stage: a build arg reaches only the stages that declare it",
            id="copy-source-build-arg-not-declared-in-the-stage",
        ),
        pytest.param(
            ("ARG BINARY=app", "FROM scratch", "COPY ${BINARY} /usr/local/bin/"),
            {},
            "",
            f"{PATH}:3: COPY source '${{BINARY}}' is empty: BINARY has no value; add 'ARG BINARY'"
            " to this stage: an ARG before FROM reaches a stage only when declared there again",
            id="copy-source-global-arg-not-declared-in-the-stage",
        ),
        pytest.param(
            ("FROM scratch", "ARG DIR", "COPY a ${DIR}${NAME} /x/"),
            {},
            "",
            f"{PATH}:3: COPY source '${{DIR}}${{NAME}}' is empty: DIR and NAME have no value;"
            " pass --build-arg=DIR=... (or an 'args:' entry in the plan), or give it a default:"
            " 'ARG DIR=<default>'",
            id="copy-source-two-variables",
        ),
        pytest.param(
            ("FROM scratch", "ENV BIN=", "COPY $BIN /x"),
            {},
            "",
            f"{PATH}:3: COPY source '$BIN' is empty: BIN has no value; give ENV BIN a value",
            id="copy-source-empty-env",
        ),
        pytest.param(
            ("FROM scratch", 'COPY ["", "/x"]'),
            {},
            "",
            f"{PATH}:2: COPY has an empty source; name a file of the context",
            id="copy-source-empty-as-written",
        ),
        pytest.param(
            ("FROM scratch", "COPY a $NONE"),
            {},
            "",
            f"{PATH}:2: COPY has an empty destination; name a path in the image",
            id="copy-destination-expands-to-nothing",
        ),
    ],
)
def test_errors(lines: tuple[str, ...], args: dict[str, str], target: str, message: str) -> None:
    with pytest.raises(UserError) as caught:
        build(lines, args, target)
    assert str(caught.value) == message


def test_ignore_runs_accepts_run() -> None:
    spec = build(("FROM scratch", "RUN make"), ignore_runs=True)
    assert spec.history == ()


def test_error_at_the_first_line_of_a_continued_instruction() -> None:
    with pytest.raises(UserError) as caught:
        build(("FROM scratch", "EXPOSE 80 \\", "   # the web port", "   nope"))
    assert caught.value.where == f"{PATH}:2"
    assert caught.value.what == "invalid port 'nope'"


def test_windows_base_gets_no_default_path() -> None:
    windows = ImageConfig(architecture="amd64", os="windows")
    assert build(("FROM mcr", "ENV A=1"), base=windows).config.env == ("A=1",)


def test_every_instruction_a_stage_can_hold_has_a_handler() -> None:
    lines = (
        "FROM scratch",
        "ADD a /a",
        "ARG A",
        "CMD c",
        "COPY b /b",
        "ENTRYPOINT e",
        "ENV E=1",
        "EXPOSE 80",
        "HEALTHCHECK NONE",
        "LABEL l=1",
        "MAINTAINER m",
        "RUN r",
        'SHELL ["/bin/sh"]',
        "STOPSIGNAL 9",
        "USER u",
        "VOLUME /v",
        "WORKDIR /w",
    )
    # every instruction read_dockerfile lets into a stage (it refuses ONBUILD)
    assert {line.split()[0] for line in lines[1:]} == KNOWN - {"FROM", "ONBUILD"}
    spec = build(lines, ignore_runs=True)
    assert len(spec.history) == len(lines) - 2  # all but FROM and the skipped RUN
