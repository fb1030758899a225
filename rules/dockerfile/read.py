"""Reading a Dockerfile: its text split into instructions and stages, and checked.

Splitting follows BuildKit's parser (``parser/parser.go``): parser directives only at the
top, a byte-order mark dropped, line continuations that skip comment and empty lines. The
instructions themselves come from dockerfile-parse, whose input is mended first where it
reads a file differently from BuildKit (``_instructions``). What can be checked before
expansion is checked here, so that a mistake stops the build before any work starts.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence

from doit_oci.rules.dockerfile.forms import (
    arg_words,
    check_source,
    exec_form,
    pairs,
    split_flags,
    volume_words,
)
from doit_oci.rules.dockerfile.model import Dockerfile, Instruction, Stage
from doit_oci.rules.errors import UserError
from doit_oci.rules.golang import SPACES

KNOWN = frozenset(
    {
        "ADD",
        "ARG",
        "CMD",
        "COPY",
        "ENTRYPOINT",
        "ENV",
        "EXPOSE",
        "FROM",
        "HEALTHCHECK",
        "LABEL",
        "MAINTAINER",
        "ONBUILD",
        "RUN",
        "SHELL",
        "STOPSIGNAL",
        "USER",
        "VOLUME",
        "WORKDIR",
    }
)
# BuildKit's parser directives; an unknown one ends the directives like any comment.
_DIRECTIVES = frozenset({"escape", "syntax", "check"})
_DIRECTIVE = re.compile(r"#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*\Z")
_COMMAND = re.compile(r"[\t\v\f\r ]+")
_STAGE_NAME = re.compile(r"[a-z][a-z0-9-_.]*\Z")


def read_dockerfile(text: str, path: str, ignore_runs: bool = False, where: str = "") -> Dockerfile:
    """Split a Dockerfile into global ARGs and stages, and check every instruction.
    Messages name ``path:<line>``, or ``where`` for every line of a Dockerfile written
    for a rule (its place in dodo.py)."""
    escape, lines = _logical_lines(text, path)
    global_args: list[Instruction] = []
    stages: list[Stage] = []
    current: list[Instruction] | None = None
    header: tuple[str, str, str, Instruction] | None = None

    def close() -> None:
        if header is not None and current is not None:
            name, image, platform, from_ins = header
            stages.append(Stage(len(stages), name, image, platform, from_ins, tuple(current)))

    for line, content in lines:
        word, *rest = _COMMAND.split(content.strip(SPACES), maxsplit=1)
        keyword = word.upper()
        ins = Instruction(keyword, rest[0] if rest else "", line, where or f"{path}:{line}")
        if keyword not in KNOWN:
            raise ins.fail(
                f"unknown instruction {word!r}",
                "check its spelling, or the line before it for a missing '\\' continuation",
            )
        if keyword in ("RUN", "COPY", "ADD") and re.search(r"(^|\s)<<-?[\"']?\w", ins.value):
            raise ins.fail(
                f"heredocs in {keyword} are not supported",
                "put the content in a file of the context and COPY it",
            )
        if keyword == "FROM":
            close()
            header = _read_from(ins, stages)
            current = []
            continue
        if current is None and keyword != "ARG":
            raise ins.fail(f"{keyword} before the first FROM", "only ARG may come before FROM")
        _check(ins, ignore_runs, escape)
        (global_args if current is None else current).append(ins)
    close()
    if not stages:
        raise UserError("the Dockerfile has no FROM instruction", path, "start it with FROM")
    return Dockerfile(path, escape, tuple(global_args), tuple(stages))


def _logical_lines(text: str, path: str) -> tuple[str, list[tuple[int, str]]]:
    """The escape character and the instructions as (first line, text) pairs.

    As BuildKit's parser: parser directives only at the very top; a byte-order mark
    dropped; comment lines and blank lines skipped, also inside a continuation; an
    escape character (and blanks after it) at the end of a line joins the next line,
    whose leading blanks are kept.
    """
    lines = [raw.removesuffix("\r") for raw in text.split("\n")]
    if lines:
        lines[0] = lines[0].removeprefix("\ufeff")
    escape = "\\"
    seen: set[str] = set()
    for number, raw in enumerate(lines, start=1):
        match = _DIRECTIVE.match(raw.lstrip(SPACES))
        if not match or match.group(1).lower() not in _DIRECTIVES:
            break
        name, value = match.group(1).lower(), match.group(2)
        if name in seen:
            raise UserError(
                f"only one {name} parser directive can be used",
                f"{path}:{number}",
                "remove the repeated directive",
            )
        seen.add(name)
        if name == "escape":
            if value not in ("\\", "`"):
                raise UserError(
                    f"invalid escape directive {value!r}",
                    f"{path}:{number}",
                    "use '# escape=\\' or '# escape=`'",
                )
            escape = value
    return escape, _instructions(lines, escape)


def _instructions(lines: list[str], escape: str) -> list[tuple[int, str]]:
    """The instructions as (first line, "KEYWORD arguments"), split by dockerfile-parse.

    dockerfile-parse gives the instructions and their line numbers. What it gets wrong is
    mended in its input without moving any line: the directives we already read become
    plain comments (but for the escape directive it needs, on the first line), and a
    blank line inside a continuation, which would end the instruction for it but not for
    Docker, becomes a comment line, which it skips as Docker does; a continuation at the
    end of the file loses its escape, which would make it drop the instruction.
    """
    from dockerfile_parse import DockerfileParser

    prepared: list[str] = []
    continuing = False
    in_directives = True
    for raw in lines:
        stripped = raw.lstrip(SPACES)
        if in_directives and _DIRECTIVE.match(stripped):
            prepared.append("#")
            continue
        in_directives = False
        if continuing and (not stripped or stripped.startswith("#")):
            prepared.append("#")
            continue
        prepared.append(raw)
        continuing = not stripped.startswith("#") and raw.rstrip(SPACES).endswith(escape)
    if continuing:
        # a continuation at the end of the file ends there (dockerfile-parse drops it)
        last = max(i for i, line in enumerate(prepared) if line != "#")
        prepared[last] = prepared[last].rstrip(SPACES)[: -len(escape)]
    if escape != "\\" and prepared:
        prepared[0] = f"# escape={escape}"
    parser = DockerfileParser(
        fileobj=io.BytesIO("\n".join(prepared).encode("utf-8", "surrogateescape")),
        env_replace=False,
    )
    out: list[tuple[int, str]] = []
    for item in parser.structure:
        if item["instruction"] == "COMMENT":
            continue
        word = str(item["content"]).lstrip(SPACES).split(None, 1)[0]
        value = str(item["value"])
        out.append((int(item["startline"]) + 1, f"{word} {value}" if value else word))
    return out


def _read_from(ins: Instruction, stages: Sequence[Stage]) -> tuple[str, str, str, Instruction]:
    words = ins.value.split()
    platform = ""
    while words and words[0].startswith("--"):
        flag, _, value = words.pop(0).partition("=")
        if flag != "--platform":
            raise ins.fail(f"unknown FROM flag {flag!r}", "FROM takes only --platform=os/arch")
        if not value:
            raise ins.fail("FROM --platform needs a value", "write FROM --platform=os/arch image")
        platform = value
    if len(words) == 1:
        return "", words[0], platform, ins
    if len(words) == 3 and words[1].upper() == "AS":
        name = words[2].lower()
        if not _STAGE_NAME.match(name):
            raise ins.fail(
                f"invalid stage name {words[2]!r}",
                "start it with a letter; use letters, digits, '-', '_' and '.'",
            )
        if any(stage.name == name for stage in stages):
            raise ins.fail(f"stage name {name!r} is used twice", "give each stage its own name")
        return name, words[0], platform, ins
    raise ins.fail(
        "FROM needs an image, optionally followed by 'AS name'", "write FROM image [AS name]"
    )


def _check(ins: Instruction, ignore_runs: bool, escape: str) -> None:
    """What can be checked before expansion: forms, flags and numbers of arguments."""
    control = next((c for c in ins.value if (c < " " and c != "\t") or c == "\x7f"), None)
    if control is not None:
        raise ins.fail(
            f"{ins.keyword} holds the control character U+{ord(control):04X}",
            "remove it: no file name or value in an image takes one",
        )
    keyword = ins.keyword
    if keyword == "RUN" and not ignore_runs:
        raise ins.fail(
            "RUN is not supported: doit-oci builds images without running containers",
            "build the files with make and COPY them, or set 'ignoreRuns: true' in the plan"
            " to skip RUN with a warning",
        )
    if keyword == "ONBUILD":
        raise ins.fail(
            "ONBUILD is not supported", "run those steps in the Dockerfiles that use this image"
        )
    if keyword in ("CMD", "ENTRYPOINT"):
        exec_form(ins, ins.value)
    if keyword == "SHELL":
        shell = exec_form(ins, ins.value)
        if shell is None:
            raise ins.fail("SHELL must be a JSON array", 'write SHELL ["/bin/sh", "-c"]')
        if not shell:
            raise ins.fail("SHELL needs at least one argument", 'write SHELL ["/bin/sh", "-c"]')
    if keyword == "VOLUME" and not volume_words(ins):
        raise ins.fail("VOLUME needs at least one path", "write VOLUME /path")
    if keyword == "EXPOSE" and not ins.value.split():
        raise ins.fail("EXPOSE needs at least one port", "write EXPOSE PORT[/PROTOCOL]")
    if keyword in ("ENV", "LABEL") and not pairs(ins, escape):
        raise ins.fail(f"{keyword} needs at least one name=value", f"write {keyword} name=value")
    if keyword == "ARG":
        arg_words(ins, escape)
    if keyword in ("USER", "WORKDIR", "STOPSIGNAL", "MAINTAINER") and not ins.value.strip():
        raise ins.fail(f"{keyword} needs one argument", f"write {keyword} <value>")
    if keyword in ("COPY", "ADD"):
        flags, args = split_flags(ins)
        if "from" in flags:
            raise ins.fail(
                f"{keyword} --from is not supported",
                "build the files with make and COPY them from the context",
            )
        if len(args) < 2:
            raise ins.fail(
                f"{keyword} needs at least one source and a destination",
                f"write {keyword} <src>... <dest>",
            )
        for source in args[:-1]:
            check_source(ins, source)


def build_arg_names(df: Dockerfile) -> set[str]:
    """Every name an ARG of the Dockerfile declares, before FROM or in a stage: the only
    build args that can change what it builds."""
    stages = [ins for stage in df.stages for ins in stage.instructions if ins.keyword == "ARG"]
    return {name for ins in (*df.global_args, *stages) for name, _ in arg_words(ins, df.escape)}
