"""Dockerfile -> image spec: the base image, the config changes and the ordered COPY/ADD list.

Two steps, because the second needs the base image's config (its ENV and WORKDIR take
part in expansion) and the first must not:

- ``read_dockerfile`` + ``select_chain``: the instructions (logical lines with their
  line numbers), parser directives, validation, global ARGs and FROM lines expanded, and
  the chain of stages that builds the target. It tells how many layers the image gets,
  which is what the task graph needs, without building anything.
- ``evaluate``: runs the chain's instructions on the base config as BuildKit does (ARG
  scoping and inheritance by child stages, ARG and ENV values in one environment where
  the later one wins, ENV/LABEL pairs expanded with the environment before the
  instruction, relative WORKDIRs, ENTRYPOINT clearing an inherited CMD, shell forms),
  giving an ``ImageSpec``.

Splitting the file into instructions follows BuildKit's parser (``parser/parser.go``):
parser directives, a byte-order mark, line continuations that skip comment and empty
lines. Expansion is ours too (rules.shellwords), after BuildKit's lexer.
"""

from __future__ import annotations

import io
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from doit_oci.registry.oci import ContainerConfig, ImageConfig, Platform
from doit_oci.rules.argsplit import split_json_or_shell, split_key_values, split_raw_words
from doit_oci.rules.errors import UserError
from doit_oci.rules.golang import SPACES, clean
from doit_oci.rules.shellwords import ExpandError, expand_word, expand_words

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
LAYER_KEYWORDS = frozenset({"COPY", "ADD"})
DEFAULT_SHELL = ("/bin/sh", "-c")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# BuildKit's parser directives; an unknown one ends the directives like any comment.
_DIRECTIVES = frozenset({"escape", "syntax", "check"})
_DIRECTIVE = re.compile(r"#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*\Z")
_COMMAND = re.compile(r"[\t\v\f\r ]+")
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://|git@")
_STAGE_NAME = re.compile(r"[a-z][a-z0-9-_.]*\Z")
_PORT = re.compile(r"(\d+)(?:-(\d+))?(?:/(tcp|udp|sctp)?)?\Z")
# The platform ARGs BuildKit defines itself (``automatic_args``): they reach FROM lines
# undeclared, and a default written in the Dockerfile wins over them.
_AUTOMATIC = frozenset(
    {
        "TARGETPLATFORM",
        "TARGETOS",
        "TARGETARCH",
        "TARGETVARIANT",
        "BUILDPLATFORM",
        "BUILDOS",
        "BUILDARCH",
        "BUILDVARIANT",
    }
)
# moby/sys/signal's names for Linux, without the optional "SIG" prefix.
_SIGNALS = frozenset(
    {
        *("ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO"),
        *("IOT", "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP"),
        *("SYS", "TERM", "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM"),
        *("WINCH", "XCPU", "XFSZ", "RTMIN", "RTMAX"),
        *(f"RTMIN+{n}" for n in range(1, 16)),
        *(f"RTMAX-{n}" for n in range(1, 15)),
    }
)


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case
    value: str  # the arguments as written, continuation lines joined
    line: int  # 1-based line of the instruction's first line
    where: str  # "path:line"

    def fail(self, what: str, fix: str) -> UserError:
        return UserError(what, self.where, fix)

    @property
    def text(self) -> str:
        """The instruction on one line, as history records it."""
        return f"{self.keyword} {' '.join(self.value.split())}".strip()


@dataclass(frozen=True)
class Stage:
    index: int
    name: str  # lower-cased alias, or ""
    image: str  # the FROM argument as written
    platform: str  # the --platform flag as written, or ""
    from_line: Instruction
    instructions: tuple[Instruction, ...]


@dataclass(frozen=True)
class Dockerfile:
    path: str  # as shown in messages
    escape: str
    global_args: tuple[Instruction, ...]
    stages: tuple[Stage, ...]


@dataclass(frozen=True)
class Chain:
    """The stages that build the target, root first, and what the root stands on."""

    dockerfile: Dockerfile
    stages: tuple[Stage, ...]
    base: str  # the expanded FROM reference of the root stage: "scratch" or an image
    base_where: str  # path:line of that FROM
    global_args: tuple[tuple[str, str | None], ...]  # declared before FROM, as expanded

    @property
    def layer_count(self) -> int:
        """How many layer steps ``evaluate`` will give: one per COPY/ADD, plus one for
        directories that a trailing WORKDIR creates."""
        count = 0
        pending = False
        for stage in self.stages:
            for ins in stage.instructions:
                if ins.keyword in LAYER_KEYWORDS:
                    count += 1
                    pending = False
                elif ins.keyword == "WORKDIR":
                    pending = True
        return count + (1 if pending else 0)


@dataclass(frozen=True)
class CopyStep:
    """One COPY/ADD: its sources in the context, destination and ownership, expanded."""

    where: str
    keyword: str
    sources: tuple[str, ...]
    dest: str  # absolute, cleaned
    dest_is_dir: bool  # ends with "/" (or is "/" or ".")
    chown: str = ""
    chmod: int | None = None
    workdirs: tuple[str, ...] = ()  # absolute directories WORKDIR asked for before it
    created_by: str = ""
    # the USER in effect at each of those WORKDIRs ("" for root): BuildKit creates a
    # WORKDIR's missing directories owned by it
    workdir_users: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "where": self.where,
            "keyword": self.keyword,
            "sources": list(self.sources),
            "dest": self.dest,
            "dest_is_dir": self.dest_is_dir,
            "chown": self.chown,
            "chmod": self.chmod,
            "workdirs": list(self.workdirs),
            "created_by": self.created_by,
        }
        if any(self.workdir_users):
            data["workdir_users"] = list(self.workdir_users)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> CopyStep:
        chmod = data.get("chmod")
        return cls(
            where=str(data["where"]),
            keyword=str(data["keyword"]),
            sources=tuple(str(s) for s in data["sources"]),  # type: ignore[attr-defined]
            dest=str(data["dest"]),
            dest_is_dir=bool(data["dest_is_dir"]),
            chown=str(data.get("chown") or ""),
            chmod=int(chmod) if isinstance(chmod, int) else None,
            workdirs=tuple(str(w) for w in data.get("workdirs") or ()),  # type: ignore[attr-defined]
            created_by=str(data.get("created_by") or ""),
            workdir_users=tuple(str(u) for u in data.get("workdir_users") or ()),  # type: ignore[attr-defined]
        )


@dataclass(frozen=True)
class HistoryStep:
    created_by: str
    layer: int | None  # index into ImageSpec.copies, None for a config-only step


@dataclass(frozen=True)
class ImageSpec:
    """What the Dockerfile makes of its base: the final container config and the steps."""

    config: ContainerConfig
    author: str
    history: tuple[HistoryStep, ...]
    copies: tuple[CopyStep, ...]
    warnings: tuple[str, ...] = ()


def read_dockerfile(text: str, path: str, ignore_runs: bool = False) -> Dockerfile:
    """Split a Dockerfile into global ARGs and stages, and check every instruction."""
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
        ins = Instruction(keyword, rest[0] if rest else "", line, f"{path}:{line}")
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
        _json(ins, ins.value)
    if keyword == "SHELL":
        shell = _json(ins, ins.value)
        if shell is None:
            raise ins.fail("SHELL must be a JSON array", 'write SHELL ["/bin/sh", "-c"]')
        if not shell:
            raise ins.fail("SHELL needs at least one argument", 'write SHELL ["/bin/sh", "-c"]')
    if keyword == "VOLUME" and not _volume_words(ins):
        raise ins.fail("VOLUME needs at least one path", "write VOLUME /path")
    if keyword == "EXPOSE" and not ins.value.split():
        raise ins.fail("EXPOSE needs at least one port", "write EXPOSE PORT[/PROTOCOL]")
    if keyword in ("ENV", "LABEL") and not _pairs(ins, escape):
        raise ins.fail(f"{keyword} needs at least one name=value", f"write {keyword} name=value")
    if keyword == "ARG":
        _arg_words(ins, escape)
    if keyword in ("USER", "WORKDIR", "STOPSIGNAL", "MAINTAINER") and not ins.value.strip():
        raise ins.fail(f"{keyword} needs one argument", f"write {keyword} <value>")
    if keyword in ("COPY", "ADD"):
        flags, args = _split_flags(ins)
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
            _check_source(ins, source)


def _check_source(ins: Instruction, source: str) -> None:
    """ADD's remote sources (URLs, git) are refused: as written, and once expanded."""
    if ins.keyword == "ADD" and _URL.match(source):
        raise ins.fail(
            f"ADD of a URL ({source}) is not supported", "download it in make and COPY the file"
        )


_COPY_FLAGS = {"COPY": ("chown", "chmod", "from", "link"), "ADD": ("chown", "chmod", "link")}


def _split_flags(ins: Instruction) -> tuple[dict[str, str], list[str]]:
    """Leading ``--name=value`` flags of COPY/ADD, and the remaining arguments."""
    text = ins.value.strip()
    flags: dict[str, str] = {}
    while text.startswith("--"):
        word, *rest = text.split(maxsplit=1)
        text = rest[0] if rest else ""
        name, has_value, value = word[2:].partition("=")
        if name not in _COPY_FLAGS[ins.keyword]:
            raise ins.fail(
                f"{ins.keyword} flag --{name} is not supported",
                f"{ins.keyword} takes {', '.join('--' + f for f in _COPY_FLAGS[ins.keyword])}",
            )
        if name != "link" and not has_value:
            raise ins.fail(f"--{name} needs a value", f"write --{name}=<value>")
        flags[name] = value
    as_json = _json(ins, text)
    args = as_json if as_json is not None else text.split()
    return flags, args


def _json(ins: Instruction, text: str) -> list[str] | None:
    """The exec (JSON array) form of an instruction's arguments, or None for shell form."""
    try:
        return split_json_or_shell(text)
    except ExpandError as exc:
        raise ins.fail(str(exc), 'write a JSON array of strings, e.g. ["a", "b"]') from None


def _volume_words(ins: Instruction) -> list[str]:
    """VOLUME's paths as written: a JSON array, or words split on blanks."""
    as_json = _json(ins, ins.value)
    return as_json if as_json is not None else ins.value.split()


def _words(ins: Instruction, escape: str) -> list[str]:
    try:
        return split_raw_words(ins.value, escape)
    except ExpandError as exc:
        raise ins.fail(str(exc), "fix the quoting") from None


def build_arg_names(df: Dockerfile) -> set[str]:
    """Every name an ARG of the Dockerfile declares, before FROM or in a stage: the only
    build args that can change what it builds."""
    stages = [ins for stage in df.stages for ins in stage.instructions if ins.keyword == "ARG"]
    return {name for ins in (*df.global_args, *stages) for name, _ in _arg_words(ins, df.escape)}


def _arg_words(ins: Instruction, escape: str) -> list[tuple[str, str | None]]:
    """``ARG a b=1 c="x y"`` -> [(a, None), (b, '1'), (c, '"x y"')]: defaults unexpanded."""
    out: list[tuple[str, str | None]] = []
    for word in _words(ins, escape):
        name, has_default, default = word.partition("=")
        if not name:
            raise ins.fail(f"ARG {word!r} has no name", "write ARG NAME or ARG NAME=default")
        out.append((name, default if has_default else None))
    if not out:
        raise ins.fail("ARG needs a name", "write ARG NAME or ARG NAME=default")
    return out


def automatic_args(platform: Platform, build_platform: Platform | None = None) -> dict[str, str]:
    """The platform ARGs BuildKit defines for every build."""
    build = build_platform or platform
    return {
        "TARGETPLATFORM": str(platform),
        "TARGETOS": platform.os,
        "TARGETARCH": platform.architecture,
        "TARGETVARIANT": platform.variant,
        "BUILDPLATFORM": str(build),
        "BUILDOS": build.os,
        "BUILDARCH": build.architecture,
        "BUILDVARIANT": build.variant,
    }


def expand_in(ins: Instruction, word: str, env: Mapping[str, str], escape: str) -> str:
    try:
        return expand_word(word, env, escape)
    except ExpandError as exc:
        raise ins.fail(str(exc), "fix the variable reference") from None


def _arg_value(
    ins: Instruction,
    name: str,
    default: str | None,
    inherited: str | None,
    build_args: Mapping[str, str],
    scope: Mapping[str, str],
    escape: str,
) -> str | None:
    """An ARG's value as BuildKit gives it: the build arg passed for it, else its default
    expanded in ``scope``, else ``inherited`` (a global ARG's value), else the platform's
    value for an automatic platform ARG. A default wins over the platform's value, since
    BuildKit does not count those as passed build args."""
    if name in build_args and name not in _AUTOMATIC:
        return build_args[name]
    if default is not None:
        return expand_in(ins, default, scope, escape)
    if inherited is not None:
        return inherited
    return build_args.get(name)


def select_chain(df: Dockerfile, build_args: Mapping[str, str], target: str = "") -> Chain:
    """Expand the global ARGs and FROM lines and find the stages that build ``target``
    (the last stage when empty). ``build_args`` holds the automatic platform ARGs too."""
    # Only the platform ARGs and the declared global ARGs reach FROM lines, as in BuildKit:
    # a build arg without an ARG before the first FROM is not used there.
    scope = {name: value for name, value in build_args.items() if name in _AUTOMATIC}
    declared: list[tuple[str, str | None]] = []
    for ins in df.global_args:
        for name, default in _arg_words(ins, df.escape):
            value = _arg_value(ins, name, default, None, build_args, scope, df.escape)
            declared.append((name, value))
            if value is not None:
                scope[name] = value
    from_env = scope
    if target:
        wanted = [s for s in df.stages if s.name == target.lower()]
        if not wanted:
            names = ", ".join(s.name for s in df.stages if s.name) or "none"
            raise UserError(f"no stage named {target!r}", df.path, f"stages: {names}")
        stage = wanted[0]
    else:
        stage = df.stages[-1]
    chain: list[Stage] = []
    while True:
        chain.append(stage)
        image = expand_in(stage.from_line, stage.image, from_env, df.escape)
        if not image:
            raise stage.from_line.fail(
                f"FROM {stage.image} expands to an empty image name",
                "set the build arg it uses, or give the ARG a default",
            )
        earlier = [s for s in df.stages[: stage.index] if s.name == image.lower()]
        if earlier:
            stage = earlier[-1]
            continue
        if any(s.name == image.lower() for s in df.stages[stage.index + 1 :]):
            raise stage.from_line.fail(
                f"FROM {image} names a stage defined later", "stages can only build on earlier ones"
            )
        return Chain(df, tuple(reversed(chain)), image, stage.from_line.where, tuple(declared))


@dataclass
class _State:
    env: dict[str, str]
    labels: dict[str, str]
    user: str
    workdir: str
    entrypoint: tuple[str, ...] | None
    cmd: tuple[str, ...] | None
    ports: set[str]
    volumes: set[str]
    stop_signal: str
    author: str
    shell: tuple[str, ...] = DEFAULT_SHELL
    history: list[HistoryStep] = field(default_factory=list)
    copies: list[CopyStep] = field(default_factory=list)
    pending_dirs: list[str] = field(default_factory=list)
    pending_users: list[str] = field(default_factory=list)
    pending_where: str = ""
    warnings: list[str] = field(default_factory=list)


def evaluate(chain: Chain, build_args: Mapping[str, str], base: ImageConfig | None) -> ImageSpec:
    """Apply the chain's instructions to ``base`` (None for scratch)."""
    config = base.config if base is not None else ContainerConfig()
    state = _State(
        env=config.env_map(),
        labels=dict(config.labels),
        user=config.user,
        workdir=config.working_dir,
        entrypoint=config.entrypoint,
        cmd=config.cmd,
        ports=set(config.exposed_ports),
        volumes=set(config.volumes),
        stop_signal=config.stop_signal,
        author=base.author if base else "",
    )
    env_order = [item.partition("=")[0] for item in config.env]
    os_name = base.os if base is not None else build_args.get("TARGETOS", "linux")
    if "PATH" not in state.env and os_name != "windows":
        # BuildKit gives every (non-Windows) image a PATH, even one built FROM scratch
        state.env["PATH"] = DEFAULT_PATH
        env_order.append("PATH")
    escape = chain.dockerfile.escape
    globals_ = dict(chain.global_args)
    # What expansion sees: the ENVs and the ARGs with a value, the later one winning, as
    # in BuildKit, where both set the build state's environment. A stage built on an
    # earlier stage inherits it, ARGs included.
    variables = dict(state.env)
    for stage in chain.stages:
        cmd_set = False
        for ins in stage.instructions:
            scope = dict(variables)
            keyword = ins.keyword
            layer: int | None = None
            if keyword == "ARG":
                for name, default in _arg_words(ins, escape):
                    inherited = globals_.get(name)
                    value = _arg_value(ins, name, default, inherited, build_args, scope, escape)
                    if value is not None:
                        variables[name] = scope[name] = value
            elif keyword in ("ENV", "LABEL"):
                # every pair sees the environment from before the instruction
                for raw_name, raw in _pairs(ins, escape):
                    name = expand_in(ins, raw_name, scope, escape)
                    value = expand_in(ins, raw, scope, escape)
                    if keyword == "LABEL":
                        state.labels[name] = value
                        continue
                    if not name:
                        raise ins.fail(f"ENV name {raw_name!r} is empty", "name the variable")
                    if name not in state.env:
                        env_order.append(name)
                    state.env[name] = variables[name] = value
            elif keyword == "USER":
                state.user = expand_in(ins, ins.value.strip(), scope, escape)
                if not state.user:
                    raise ins.fail("USER is empty", "write USER <user>[:<group>]")
            elif keyword == "WORKDIR":
                path = expand_in(ins, ins.value.strip(), scope, escape)
                if not path:
                    raise ins.fail("WORKDIR is empty", "write WORKDIR /path")
                state.workdir = _absolute(state.workdir, path)
                state.pending_dirs.append(state.workdir)
                state.pending_users.append(state.user)
                state.pending_where = ins.where
            elif keyword in ("ENTRYPOINT", "CMD"):
                command = _command(ins, state.shell)
                if keyword == "ENTRYPOINT":
                    state.entrypoint = command
                    if not cmd_set:
                        state.cmd = None
                else:
                    state.cmd = command
                    cmd_set = True
            elif keyword == "SHELL":
                state.shell = tuple(_json(ins, ins.value) or DEFAULT_SHELL)
            elif keyword == "EXPOSE":
                for word in ins.value.split():
                    for port in _expand_words(ins, word, scope, escape):
                        state.ports.update(_ports(ins, port))
            elif keyword == "VOLUME":
                for word in _volume_words(ins):
                    volume = expand_in(ins, word, scope, escape)
                    if not volume.strip():
                        raise ins.fail("VOLUME names an empty path", "write VOLUME /path")
                    state.volumes.add(volume)
            elif keyword == "STOPSIGNAL":
                signal = expand_in(ins, ins.value.strip(), scope, escape)
                if not _is_signal(signal):
                    raise ins.fail(
                        f"invalid STOPSIGNAL {signal!r}",
                        "give a signal name such as SIGTERM or TERM, or a number",
                    )
                state.stop_signal = signal
            elif keyword == "MAINTAINER":
                state.author = ins.value.strip()
            elif keyword == "HEALTHCHECK":
                state.warnings.append(
                    f"{ins.where}: HEALTHCHECK is ignored: the OCI image format has no field for it"
                )
            elif keyword == "RUN":
                state.warnings.append(f"{ins.where}: RUN skipped (ignoreRuns is set)")
                continue
            elif keyword in LAYER_KEYWORDS:
                layer = len(state.copies)
                state.copies.append(_copy_step(ins, scope, escape, state))
            state.history.append(HistoryStep(ins.text, layer))
    if state.pending_dirs:
        # a WORKDIR after the last COPY still creates its directory, in a layer of its own
        layer = len(state.copies)
        state.copies.append(
            CopyStep(
                where=state.pending_where,
                keyword="WORKDIR",
                sources=(),
                dest=state.pending_dirs[-1],
                dest_is_dir=True,
                workdirs=tuple(state.pending_dirs),
                created_by="WORKDIR " + state.pending_dirs[-1],
                workdir_users=_users(state.pending_users),
            )
        )
        for index in range(len(state.history) - 1, -1, -1):
            if state.history[index].created_by.startswith("WORKDIR"):
                state.history[index] = HistoryStep(state.history[index].created_by, layer)
                break
    env = tuple(f"{name}={state.env[name]}" for name in env_order if name in state.env)
    final = ContainerConfig(
        user=state.user,
        exposed_ports=tuple(sorted(state.ports)),
        env=env,
        entrypoint=state.entrypoint,
        cmd=state.cmd,
        volumes=tuple(sorted(state.volumes)),
        working_dir=state.workdir,
        labels=tuple(sorted(state.labels.items())),
        stop_signal=state.stop_signal,
    )
    return ImageSpec(
        final, state.author, tuple(state.history), tuple(state.copies), tuple(state.warnings)
    )


def _users(users: Sequence[str]) -> tuple[str, ...]:
    """The USERs of pending WORKDIRs, or none when all are root (the common case)."""
    return tuple(users) if any(users) else ()


def _pairs(ins: Instruction, escape: str) -> list[tuple[str, str]]:
    try:
        return split_key_values(ins.value, escape)
    except ExpandError as exc:
        raise ins.fail(str(exc), f"write {ins.keyword} key=value ...") from None


def _command(ins: Instruction, shell: tuple[str, ...]) -> tuple[str, ...] | None:
    """ENTRYPOINT/CMD: the exec form as it is, the shell form after the SHELL. An empty
    JSON array leaves none, as in Docker's image config (which omits empty ones)."""
    as_json = _json(ins, ins.value)
    if as_json is not None:
        return tuple(as_json) or None
    return (*shell, ins.value.strip())


def _expand_words(ins: Instruction, text: str, env: Mapping[str, str], escape: str) -> list[str]:
    try:
        return expand_words(text, env, escape)
    except ExpandError as exc:
        raise ins.fail(str(exc), "fix the variable reference") from None


def _absolute(workdir: str, path: str) -> str:
    """``path`` made absolute against ``workdir`` and cleaned, as Go's path.Clean does."""
    return "/" + clean(posixpath.join(workdir or "/", path)).lstrip("/")


def _is_signal(text: str) -> bool:
    """moby/sys/signal.ParseSignal on Linux: a non-zero number, or a known name with or
    without "SIG" in any case."""
    if re.fullmatch(r"[+-]?[0-9]+", text):
        return int(text) != 0
    return text.upper().removeprefix("SIG") in _SIGNALS


def _ports(ins: Instruction, text: str) -> list[str]:
    match = _PORT.match(text.lower())
    if not match:
        raise ins.fail(f"invalid port {text!r}", "write PORT, PORT/tcp, PORT/udp or FIRST-LAST")
    first = int(match.group(1))
    last = int(match.group(2) or first)
    proto = match.group(3) or "tcp"
    if not first <= last <= 65535:
        raise ins.fail(f"invalid port range {text!r}", "ports go from 0 to 65535, low to high")
    return [f"{port}/{proto}" for port in range(first, last + 1)]


def _copy_step(ins: Instruction, scope: Mapping[str, str], escape: str, state: _State) -> CopyStep:
    flags, args = _split_flags(ins)
    words = [expand_in(ins, arg, scope, escape) for arg in args]
    *sources, dest = words
    for source in sources:
        _check_source(ins, source)
        if not source:
            raise ins.fail(f"{ins.keyword} has an empty source", "name a file of the context")
    if not dest:
        raise ins.fail(f"{ins.keyword} has an empty destination", "name a path in the image")
    dest_is_dir = dest.endswith("/") or dest in (".", "..") or dest.endswith(("/.", "/.."))
    full = _absolute(state.workdir, dest)
    chmod: int | None = None
    if "chmod" in flags:
        text = expand_in(ins, flags["chmod"], scope, escape)
        if not re.fullmatch(r"[0-7]+", text) or int(text, 8) > 0o7777:
            raise ins.fail(f"invalid --chmod {text!r}", "give octal permissions such as 0755")
        chmod = int(text, 8)
    chown = expand_in(ins, flags["chown"], scope, escape) if "chown" in flags else ""
    step = CopyStep(
        where=ins.where,
        keyword=ins.keyword,
        sources=tuple(sources),
        dest=full,
        dest_is_dir=dest_is_dir,
        chown=chown,
        chmod=chmod,
        workdirs=tuple(state.pending_dirs),
        created_by=ins.text,
        workdir_users=_users(state.pending_users),
    )
    state.pending_dirs.clear()
    state.pending_users.clear()
    return step
