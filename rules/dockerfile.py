"""Dockerfile -> image spec: the base image, the config changes and the ordered COPY/ADD list.

Two steps, because the second needs the base image's config (its ENV and WORKDIR take
part in expansion) and the first must not:

- ``read_dockerfile`` + ``select_chain``: the instructions (from dockerfile-parse, with
  line numbers), parser directives, validation, global ARGs and FROM lines expanded, and
  the chain of stages that builds the target. It tells how many layers the image gets,
  which is what the task graph needs, without building anything.
- ``evaluate``: runs the chain's instructions on the base config as Docker does (ARG
  scoping, ENV/LABEL pairs expanded with the environment before the instruction,
  relative WORKDIRs, ENTRYPOINT clearing an inherited CMD, shell forms), giving an
  ``ImageSpec``.

Expansion is ours (rules.shellwords), after BuildKit's lexer; dockerfile-parse only
splits the file into instructions.
"""

from __future__ import annotations

import io
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from registry.oci import ContainerConfig, ImageConfig, Platform
from rules.errors import UserError
from rules.shellwords import (
    ExpandError,
    expand_word,
    split_json_or_shell,
    split_key_values,
    split_raw_words,
)

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
_DIRECTIVE = re.compile(r"#\s*([a-zA-Z][a-zA-Z0-9_-]*)\s*=\s*(.*?)\s*$")
_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_STAGE_NAME = re.compile(r"[a-z][a-z0-9-_.]*\Z")
_PORT = re.compile(r"(\d+)(?:-(\d+))?(?:/(tcp|udp|sctp))?\Z")


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

    def to_json(self) -> dict[str, object]:
        return {
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
    from dockerfile_parse import DockerfileParser

    escape = _escape_directive(text, path)
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()), env_replace=False)
    try:
        structure = parser.structure
    except Exception as exc:  # dockerfile-parse raises plain exceptions on odd input
        raise UserError(f"cannot parse the Dockerfile: {exc}", path, "fix its syntax") from None
    global_args: list[Instruction] = []
    stages: list[Stage] = []
    current: list[Instruction] | None = None
    header: tuple[str, str, str, Instruction] | None = None

    def close() -> None:
        if header is not None and current is not None:
            name, image, platform, from_ins = header
            stages.append(Stage(len(stages), name, image, platform, from_ins, tuple(current)))

    for item in structure:
        keyword = str(item["instruction"]).upper()
        if keyword == "COMMENT":
            continue
        line = int(item["startline"]) + 1
        ins = Instruction(keyword, str(item["value"]), line, f"{path}:{line}")
        if keyword not in KNOWN:
            raise ins.fail(
                f"unknown instruction {str(item['instruction']).split()[0]!r}",
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
        if current is None:
            if keyword != "ARG":
                raise ins.fail(f"{keyword} before the first FROM", "only ARG may come before FROM")
            global_args.append(ins)
            continue
        _check(ins, ignore_runs)
        current.append(ins)
    close()
    if not stages:
        raise UserError("the Dockerfile has no FROM instruction", path, "start it with FROM")
    return Dockerfile(path, escape, tuple(global_args), tuple(stages))


def _escape_directive(text: str, path: str) -> str:
    escape = "\\"
    for number, raw in enumerate(text.splitlines(), start=1):
        match = _DIRECTIVE.match(raw.strip())
        if not match:
            break
        name, value = match.group(1).lower(), match.group(2)
        if name == "escape":
            if value not in ("\\", "`"):
                raise UserError(
                    f"invalid escape directive {value!r}",
                    f"{path}:{number}",
                    "use '# escape=\\' or '# escape=`'",
                )
            escape = value
    return escape


def _read_from(ins: Instruction, stages: Sequence[Stage]) -> tuple[str, str, str, Instruction]:
    words = ins.value.split()
    platform = ""
    while words and words[0].startswith("--"):
        flag, _, value = words.pop(0).partition("=")
        if flag != "--platform" or not value:
            raise ins.fail(f"unknown FROM flag {flag!r}", "FROM takes only --platform=os/arch")
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


def _check(ins: Instruction, ignore_runs: bool) -> None:
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
    if keyword in ("CMD", "ENTRYPOINT", "VOLUME"):
        _json(ins, ins.value)
    if keyword == "SHELL" and _json(ins, ins.value) is None:
        raise ins.fail("SHELL must be a JSON array", 'write SHELL ["/bin/sh", "-c"]')
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


_COPY_FLAGS = {"COPY": ("chown", "chmod", "from", "link"), "ADD": ("chown", "chmod", "link")}


def _split_flags(ins: Instruction) -> tuple[dict[str, str], list[str]]:
    """Leading ``--name=value`` flags of COPY/ADD, and the remaining arguments."""
    text = ins.value.strip()
    flags: dict[str, str] = {}
    while text.startswith("--"):
        word, _, text = text.partition(" ")
        text = text.lstrip()
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


def _words(ins: Instruction, escape: str) -> list[str]:
    try:
        return split_raw_words(ins.value, escape)
    except ExpandError as exc:
        raise ins.fail(str(exc), "fix the quoting") from None


def build_arg_names(df: Dockerfile) -> set[str]:
    return {name for ins in df.global_args for name, _ in _arg_words(ins, df.escape)}


def _arg_words(ins: Instruction, escape: str) -> list[tuple[str, str | None]]:
    """``ARG a b=1 c="x y"`` -> [(a, None), (b, '1'), (c, '"x y"')]: defaults unexpanded."""
    out: list[tuple[str, str | None]] = []
    for word in _words(ins, escape):
        name, has_default, default = word.partition("=")
        if not _NAME.match(name):
            raise ins.fail(f"invalid ARG name {name!r}", "use letters, digits and '_'")
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


def select_chain(df: Dockerfile, build_args: Mapping[str, str], target: str = "") -> Chain:
    """Expand the global ARGs and FROM lines and find the stages that build ``target``
    (the last stage when empty). ``build_args`` holds the automatic platform ARGs too."""
    scope: dict[str, str] = {}
    declared: list[tuple[str, str | None]] = []
    for ins in df.global_args:
        for name, default in _arg_words(ins, df.escape):
            if name in build_args:
                value: str | None = build_args[name]
            elif default is not None:
                value = expand_in(ins, default, {**build_args, **scope}, df.escape)
            else:
                value = None
            declared.append((name, value))
            if value is not None:
                scope[name] = value
    # automatic platform ARGs reach FROM lines without being declared
    from_env = {**build_args, **scope}
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
        if any(s.name == image.lower() for s in df.stages[stage.index :]):
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
    escape = chain.dockerfile.escape
    globals_ = dict(chain.global_args)
    for stage in chain.stages:
        args: dict[str, str] = {}
        cmd_set = False
        for ins in stage.instructions:
            scope = {**args, **state.env}
            keyword = ins.keyword
            layer: int | None = None
            if keyword == "ARG":
                for name, default in _arg_words(ins, escape):
                    if name in build_args:
                        args[name] = build_args[name]
                    elif default is not None:
                        args[name] = expand_in(ins, default, scope, escape)
                    elif globals_.get(name) is not None:
                        args[name] = str(globals_[name])
                    scope = {**args, **state.env}
            elif keyword in ("ENV", "LABEL"):
                pairs = _pairs(ins, escape)
                for name, raw in pairs:
                    value = expand_in(ins, raw, scope, escape)
                    if keyword == "ENV":
                        name = expand_in(ins, name, scope, escape)
                        if name not in state.env:
                            env_order.append(name)
                        state.env[name] = value
                    else:
                        state.labels[expand_in(ins, name, scope, escape)] = value
            elif keyword == "USER":
                state.user = expand_in(ins, ins.value.strip(), scope, escape)
                if not state.user:
                    raise ins.fail("USER is empty", "write USER <user>[:<group>]")
            elif keyword == "WORKDIR":
                path = expand_in(ins, ins.value.strip(), scope, escape)
                if not path:
                    raise ins.fail("WORKDIR is empty", "write WORKDIR /path")
                state.workdir = posixpath.normpath(posixpath.join(state.workdir or "/", path))
                state.pending_dirs.append(state.workdir)
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
                    state.ports.update(_ports(ins, expand_in(ins, word, scope, escape)))
            elif keyword == "VOLUME":
                as_json = _json(ins, ins.value)
                words = as_json if as_json is not None else ins.value.split()
                for word in words:
                    volume = expand_in(ins, word, scope, escape)
                    if not volume:
                        raise ins.fail("VOLUME names an empty path", "write VOLUME /path")
                    state.volumes.add(volume)
            elif keyword == "STOPSIGNAL":
                state.stop_signal = expand_in(ins, ins.value.strip(), scope, escape)
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


def _pairs(ins: Instruction, escape: str) -> list[tuple[str, str]]:
    try:
        return split_key_values(ins.value, escape)
    except ExpandError as exc:
        raise ins.fail(str(exc), f"write {ins.keyword} key=value ...") from None


def _command(ins: Instruction, shell: tuple[str, ...]) -> tuple[str, ...]:
    as_json = _json(ins, ins.value)
    if as_json is not None:
        return tuple(as_json)
    return (*shell, ins.value.strip())


def _ports(ins: Instruction, text: str) -> list[str]:
    match = _PORT.match(text.lower())
    if not match:
        raise ins.fail(f"invalid port {text!r}", "write PORT, PORT/tcp, PORT/udp or FIRST-LAST")
    first = int(match.group(1))
    last = int(match.group(2) or first)
    proto = match.group(3) or "tcp"
    if not 0 < first <= last <= 65535:
        raise ins.fail(f"invalid port range {text!r}", "ports go from 1 to 65535")
    return [f"{port}/{proto}" for port in range(first, last + 1)]


def _copy_step(ins: Instruction, scope: Mapping[str, str], escape: str, state: _State) -> CopyStep:
    flags, args = _split_flags(ins)
    words = [expand_in(ins, arg, scope, escape) for arg in args]
    *sources, dest = words
    for source in sources:
        if ins.keyword == "ADD" and re.match(r"[a-z][a-z0-9+.-]*://|git@", source):
            raise ins.fail(
                f"ADD of a URL ({source}) is not supported",
                "download it in make and COPY the file",
            )
        if not source:
            raise ins.fail(f"{ins.keyword} has an empty source", "name a file of the context")
    if not dest:
        raise ins.fail(f"{ins.keyword} has an empty destination", "name a path in the image")
    dest_is_dir = dest.endswith("/") or dest in (".", "..") or dest.endswith(("/.", "/.."))
    full = posixpath.normpath(posixpath.join(state.workdir or "/", dest))
    if full.startswith("//"):
        full = full[1:]
    chmod: int | None = None
    if "chmod" in flags:
        text = expand_in(ins, flags["chmod"], scope, escape)
        if not re.fullmatch(r"[0-7]{3,4}", text):
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
    )
    state.pending_dirs.clear()
    return step
