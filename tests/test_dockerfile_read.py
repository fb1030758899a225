"""rules.dockerfile.read against BuildKit's parser (``parser/parser.go``) and the forms of
its instructions (``instructions/parse.go``): instructions, lines, stages, and the mistakes
found before anything is expanded.

Every row spells its Dockerfile out line by line, so that line numbers in the
expected messages can be read off the row.
"""

from __future__ import annotations

from typing import Any

import pytest
from dockerfiles import JSON_FIX, PATH, STRINGS_ONLY, build, dockerfile

from doit_oci.rules.dockerfile.read import build_arg_names, read_dockerfile
from doit_oci.rules.errors import UserError

# --- read_dockerfile: instructions, lines, stages ------------------------------------------


def shape(text: str) -> tuple[str, list[tuple[str, str, int]], list[tuple[Any, ...]]]:
    """The escape, the global ARGs and the stages, with their instructions, of ``text``."""
    df = read_dockerfile(text, PATH)
    return (
        df.escape,
        [(ins.keyword, ins.value, ins.line) for ins in df.global_args],
        [
            (
                stage.index,
                stage.name,
                stage.image,
                stage.platform,
                stage.from_line.line,
                [(ins.keyword, ins.value, ins.line) for ins in stage.instructions],
            )
            for stage in df.stages
        ],
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            dockerfile("FROM scratch"),
            ("\\", [], [(0, "", "scratch", "", 1, [])]),
            id="scratch",
        ),
        pytest.param(
            dockerfile(
                "ARG A=1",
                "FROM alpine AS Build",
                "COPY a b",
                "from build as final",
                "copy c d",
            ),
            (
                "\\",
                [("ARG", "A=1", 1)],
                [
                    (0, "build", "alpine", "", 2, [("COPY", "a b", 3)]),
                    (1, "final", "build", "", 4, [("COPY", "c d", 5)]),
                ],
            ),
            id="aliases-lowercase-and-case-insensitive-as",
        ),
        pytest.param(
            dockerfile("FROM --platform=$BUILDPLATFORM golang:1.22 AS build"),
            ("\\", [], [(0, "build", "golang:1.22", "$BUILDPLATFORM", 1, [])]),
            id="platform-flag",
        ),
        pytest.param(
            dockerfile(
                "FROM scratch",
                "ENV A=1 \\",
                "# a comment inside the continuation",
                "",
                "  \t",
                "    B=2",
                "LABEL x=y",
            ),
            (
                "\\",
                [],
                [(0, "", "scratch", "", 1, [("ENV", "A=1     B=2", 2), ("LABEL", "x=y", 7)])],
            ),
            id="continuation-skips-comments-and-blank-lines",
        ),
        pytest.param(
            dockerfile(
                "# escape=`",
                "FROM scratch",
                "COPY a\\b `",
                "    /c/",
            ),
            ("`", [], [(0, "", "scratch", "", 2, [("COPY", "a\\b     /c/", 3)])]),
            id="escape-directive-backtick",
        ),
        pytest.param(
            "\ufeffFROM scratch\r\nUSER x\r\n",
            ("\\", [], [(0, "", "scratch", "", 1, [("USER", "x", 2)])]),
            id="byte-order-mark-and-crlf",
        ),
        pytest.param(
            dockerfile(
                "  # indented comment", "   FROM scratch", "\tuser  root  # not a comment  "
            ),
            ("\\", [], [(0, "", "scratch", "", 2, [("USER", "root  # not a comment", 3)])]),
            id="indentation-and-trailing-hash",
        ),
        pytest.param(
            dockerfile("FROM scratch", "USER a \\"),
            ("\\", [], [(0, "", "scratch", "", 1, [("USER", "a", 2)])]),
            id="continuation-at-end-of-file",
        ),
        pytest.param(
            dockerfile("# foo=bar", "# escape=`", "FROM scratch"),
            ("\\", [], [(0, "", "scratch", "", 3, [])]),
            id="unknown-directive-ends-directives",
        ),
        pytest.param(
            dockerfile("", "# escape=`", "FROM scratch"),
            ("\\", [], [(0, "", "scratch", "", 3, [])]),
            id="directive-after-blank-line-is-a-comment",
        ),
        pytest.param(
            dockerfile("# syntax=docker/dockerfile:1", "# check=skip=all", "#ESCAPE = `", "FROM x"),
            ("`", [], [(0, "", "x", "", 4, [])]),
            id="syntax-and-check-directives-before-escape",
        ),
        pytest.param(
            dockerfile("FROM scratch", "CMD"),
            ("\\", [], [(0, "", "scratch", "", 1, [("CMD", "", 2)])]),
            id="instruction-without-arguments-is-kept",
        ),
    ],
)
def test_read_dockerfile(text: str, expected: tuple[Any, ...]) -> None:
    assert shape(text) == expected


@pytest.mark.parametrize(
    ("lines", "args", "target", "message"),
    [
        # FROM and stages
        pytest.param(
            ("FROM scratch AS a", "FROM scratch AS A"),
            {},
            "",
            f"{PATH}:2: stage name 'a' is used twice; give each stage its own name",
            id="duplicate-stage-name",
        ),
        pytest.param(
            ("FROM scratch AS 1st",),
            {},
            "",
            f"{PATH}:1: invalid stage name '1st'; start it with a letter; use letters, digits,"
            " '-', '_' and '.'",
            id="invalid-stage-name",
        ),
        pytest.param(
            ("FROM a b",),
            {},
            "",
            f"{PATH}:1: FROM needs an image, optionally followed by 'AS name';"
            " write FROM image [AS name]",
            id="from-two-words",
        ),
        pytest.param(
            ("FROM",),
            {},
            "",
            f"{PATH}:1: FROM needs an image, optionally followed by 'AS name';"
            " write FROM image [AS name]",
            id="from-alone",
        ),
        pytest.param(
            ("FROM --arch=arm64 a",),
            {},
            "",
            f"{PATH}:1: unknown FROM flag '--arch'; FROM takes only --platform=os/arch",
            id="from-unknown-flag",
        ),
        pytest.param(
            ("FROM --platform a",),
            {},
            "",
            f"{PATH}:1: FROM --platform needs a value; write FROM --platform=os/arch image",
            id="from-platform-without-value",
        ),
        pytest.param(
            ("ARG A=1", "# FROM scratch"),
            {},
            "",
            f"{PATH}: the Dockerfile has no FROM instruction; start it with FROM",
            id="no-from",
        ),
        pytest.param(
            ("ENV A=1", "FROM scratch"),
            {},
            "",
            f"{PATH}:1: ENV before the first FROM; only ARG may come before FROM",
            id="instruction-before-from",
        ),
        # the file's form
        pytest.param(
            ("FROM scratch", "COPPY a b"),
            {},
            "",
            f"{PATH}:2: unknown instruction 'COPPY'; check its spelling, or the line before it"
            " for a missing '\\' continuation",
            id="unknown-instruction",
        ),
        pytest.param(
            ("FROM scratch", "ENV A=1", "  B=2"),
            {},
            "",
            f"{PATH}:3: unknown instruction 'B=2'; check its spelling, or the line before it"
            " for a missing '\\' continuation",
            id="missing-continuation",
        ),
        pytest.param(
            ("# escape=x", "FROM scratch"),
            {},
            "",
            f"{PATH}:1: invalid escape directive 'x'; use '# escape=\\' or '# escape=`'",
            id="invalid-escape-directive",
        ),
        pytest.param(
            ("# escape=`", "# escape=\\", "FROM scratch"),
            {},
            "",
            f"{PATH}:2: only one escape parser directive can be used; remove the repeated"
            " directive",
            id="repeated-escape-directive",
        ),
        # unsupported instructions
        pytest.param(
            ("FROM scratch", "RUN make"),
            {},
            "",
            f"{PATH}:2: RUN is not supported: doit-oci builds images without running containers;"
            " build the files with make and COPY them, or set 'ignoreRuns: true' in the plan to"
            " skip RUN with a warning",
            id="run",
        ),
        pytest.param(
            ("FROM scratch AS unused", "run make", "FROM scratch"),
            {},
            "",
            f"{PATH}:2: RUN is not supported: doit-oci builds images without running containers;"
            " build the files with make and COPY them, or set 'ignoreRuns: true' in the plan to"
            " skip RUN with a warning",
            id="run-in-any-stage",
        ),
        pytest.param(
            ("FROM scratch", "ONBUILD COPY a /"),
            {},
            "",
            f"{PATH}:2: ONBUILD is not supported; run those steps in the Dockerfiles that use"
            " this image",
            id="onbuild",
        ),
        # JSON forms
        pytest.param(
            ("FROM scratch", "CMD [1, 2]"),
            {},
            "",
            f"{PATH}:2: {STRINGS_ONLY}; {JSON_FIX}",
            id="cmd-json-not-strings",
        ),
        pytest.param(
            ("FROM scratch", 'ENTRYPOINT ["a", null]'),
            {},
            "",
            f"{PATH}:2: {STRINGS_ONLY}; {JSON_FIX}",
            id="entrypoint-json-null",
        ),
        pytest.param(
            ("FROM scratch", "VOLUME [true]"),
            {},
            "",
            f"{PATH}:2: {STRINGS_ONLY}; {JSON_FIX}",
            id="volume-json-not-strings",
        ),
        pytest.param(
            ("FROM scratch", "SHELL /bin/bash -c"),
            {},
            "",
            f'{PATH}:2: SHELL must be a JSON array; write SHELL ["/bin/sh", "-c"]',
            id="shell-not-json",
        ),
        pytest.param(
            ("FROM scratch", "SHELL []"),
            {},
            "",
            f'{PATH}:2: SHELL needs at least one argument; write SHELL ["/bin/sh", "-c"]',
            id="shell-empty",
        ),
        # arguments
        pytest.param(
            ("FROM scratch", "ENV A"),
            {},
            "",
            f"{PATH}:2: missing value: 'A' has no '=' so it is the legacy 'KEY value' form, which"
            " must have two arguments; write ENV key=value ...",
            id="env-legacy-without-value",
        ),
        pytest.param(
            ("FROM scratch", "LABEL a=1 b"),
            {},
            "",
            f"{PATH}:2: syntax error - can't find = in 'b'. Must be of the form: name=value;"
            " write LABEL key=value ...",
            id="label-pair-without-equals",
        ),
        pytest.param(
            ("FROM scratch", "ENV"),
            {},
            "",
            f"{PATH}:2: ENV needs at least one name=value; write ENV name=value",
            id="env-empty",
        ),
        pytest.param(
            ("ARG =x", "FROM scratch"),
            {},
            "",
            f"{PATH}:1: ARG '=x' has no name; write ARG NAME or ARG NAME=default",
            id="arg-without-name",
        ),
        pytest.param(
            ("FROM scratch", "ARG"),
            {},
            "",
            f"{PATH}:2: ARG needs a name; write ARG NAME or ARG NAME=default",
            id="arg-empty",
        ),
        pytest.param(
            ("FROM scratch", "USER"),
            {},
            "",
            f"{PATH}:2: USER needs one argument; write USER <value>",
            id="user-without-argument",
        ),
        pytest.param(
            ("FROM scratch", "EXPOSE"),
            {},
            "",
            f"{PATH}:2: EXPOSE needs at least one port; write EXPOSE PORT[/PROTOCOL]",
            id="expose-without-port",
        ),
        pytest.param(
            ("FROM scratch", "VOLUME"),
            {},
            "",
            f"{PATH}:2: VOLUME needs at least one path; write VOLUME /path",
            id="volume-without-path",
        ),
        pytest.param(
            ("FROM scratch", "VOLUME []"),
            {},
            "",
            f"{PATH}:2: VOLUME needs at least one path; write VOLUME /path",
            id="volume-empty-json",
        ),
        pytest.param(
            ("FROM scratch", "MAINTAINER"),
            {},
            "",
            f"{PATH}:2: MAINTAINER needs one argument; write MAINTAINER <value>",
            id="maintainer-empty",
        ),
        # COPY and ADD
        pytest.param(
            ("FROM scratch AS a", "FROM scratch", "COPY --from=a /x /y"),
            {},
            "",
            f"{PATH}:3: COPY --from is not supported; build the files with make and COPY them"
            " from the context",
            id="copy-from",
        ),
        pytest.param(
            ("FROM scratch", "COPY --exclude=*.md . /app/"),
            {},
            "",
            f"{PATH}:2: COPY flag --exclude is not supported; COPY takes --chown, --chmod,"
            " --from, --link",
            id="copy-unknown-flag",
        ),
        pytest.param(
            ("FROM scratch", "ADD --from=a x /y"),
            {},
            "",
            f"{PATH}:2: ADD flag --from is not supported; ADD takes --chown, --chmod, --link",
            id="add-from-flag",
        ),
        pytest.param(
            ("FROM scratch", "COPY --chown a /b"),
            {},
            "",
            f"{PATH}:2: --chown needs a value; write --chown=<value>",
            id="chown-without-value",
        ),
        pytest.param(
            ("FROM scratch", "ADD https://example.com/a.tgz /opt/"),
            {},
            "",
            f"{PATH}:2: ADD of a URL (https://example.com/a.tgz) is not supported;"
            " download it in make and COPY the file",
            id="add-url",
        ),
        pytest.param(
            ("FROM scratch", "ADD git@github.com:moby/buildkit.git /src/"),
            {},
            "",
            f"{PATH}:2: ADD of a URL (git@github.com:moby/buildkit.git) is not supported;"
            " download it in make and COPY the file",
            id="add-git",
        ),
        pytest.param(
            ("FROM scratch", "COPY <<EOF /etc/motd", "hello", "EOF"),
            {},
            "",
            f"{PATH}:2: heredocs in COPY are not supported; put the content in a file of the"
            " context and COPY it",
            id="copy-heredoc",
        ),
        pytest.param(
            ("FROM scratch", "RUN <<-'EOF'", "make", "EOF"),
            {},
            "",
            f"{PATH}:2: heredocs in RUN are not supported; put the content in a file of the"
            " context and COPY it",
            id="run-heredoc",
        ),
        pytest.param(
            ("FROM scratch", "COPY onlyone"),
            {},
            "",
            f"{PATH}:2: COPY needs at least one source and a destination; write COPY <src>..."
            " <dest>",
            id="copy-one-argument",
        ),
        pytest.param(
            ("FROM scratch", "ADD --link x"),
            {},
            "",
            f"{PATH}:2: ADD needs at least one source and a destination; write ADD <src>... <dest>",
            id="add-one-argument-after-flags",
        ),
        pytest.param(
            ("FROM scratch", 'COPY ["a", 1]'),
            {},
            "",
            f"{PATH}:2: {STRINGS_ONLY}; {JSON_FIX}",
            id="copy-json-not-strings",
        ),
    ],
)
def test_errors(lines: tuple[str, ...], args: dict[str, str], target: str, message: str) -> None:
    with pytest.raises(UserError) as caught:
        build(lines, args, target)
    assert str(caught.value) == message


def test_build_arg_names() -> None:
    df = read_dockerfile(
        dockerfile("ARG A B=1", "ARG C", "FROM scratch", "ARG D", "ENV E=$A"), PATH
    )
    assert build_arg_names(df) == {"A", "B", "C", "D"}  # declared before FROM or in a stage
