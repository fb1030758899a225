"""Running a chain's instructions on the base image's config, as BuildKit does.

One handler per instruction keyword, looked up in ``_HANDLERS`` and sharing one ``_State``:
ARG scoping and inheritance by child stages, ARG and ENV values in one environment where
the later one wins, ENV/LABEL pairs expanded with the environment from before the
instruction, relative WORKDIRs, ENTRYPOINT clearing an inherited CMD, shell forms after
SHELL. The result is an ``ImageSpec``: the final config, the history, the COPY steps.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from doit_oci.registry.oci import ContainerConfig, ImageConfig
from doit_oci.rules.dockerfile.forms import (
    arg_words,
    check_path,
    check_source,
    exec_form,
    is_signal,
    pairs,
    ports,
    split_flags,
    volume_words,
)
from doit_oci.rules.dockerfile.model import (
    LAYER_KEYWORDS,
    Chain,
    CopyStep,
    HistoryStep,
    ImageSpec,
    Instruction,
)
from doit_oci.rules.dockerfile.stages import arg_value, expand_in
from doit_oci.rules.errors import UserError
from doit_oci.rules.golang import clean
from doit_oci.rules.shellwords import ExpandError, empty_variables, expand_words

DEFAULT_SHELL = ("/bin/sh", "-c")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# instructions that leave no history entry: RUN, skipped when ignoreRuns is set
_UNRECORDED = frozenset({"RUN"})


@dataclass
class _State:
    """What the instructions have made so far: the config, the steps, what expansion sees."""

    build_args: Mapping[str, str]
    escape: str
    global_args: Mapping[str, str | None]  # the ARGs before FROM, as expanded
    env: dict[str, str]
    env_order: list[str]  # ENV names in the order the config lists them
    # What expansion sees: the ENVs and the ARGs with a value, the later one winning, as
    # in BuildKit, where both set the build state's environment. A stage built on an
    # earlier stage inherits it, ARGs included.
    variables: dict[str, str]
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
    cmd_set: bool = False  # the current stage has a CMD of its own
    declared: set[str] = field(default_factory=set)  # names the stages' ARGs declare
    history: list[HistoryStep] = field(default_factory=list)
    copies: list[CopyStep] = field(default_factory=list)
    # directories that WORKDIRs asked for since the last COPY, and the USER at each
    pending_dirs: list[str] = field(default_factory=list)
    pending_users: list[str] = field(default_factory=list)
    pending_where: str = ""
    warnings: list[str] = field(default_factory=list)


def evaluate(chain: Chain, build_args: Mapping[str, str], base: ImageConfig | None) -> ImageSpec:
    """Apply the chain's instructions to ``base`` (None for scratch)."""
    state = _start(chain, build_args, base)
    for stage in chain.stages:
        state.cmd_set = False
        for ins in stage.instructions:
            # ``scope``: what the instruction's words are expanded in (ARG adds to it)
            _HANDLERS[ins.keyword](state, ins, dict(state.variables))
            if ins.keyword not in _UNRECORDED:
                layer = len(state.copies) - 1 if ins.keyword in LAYER_KEYWORDS else None
                state.history.append(HistoryStep(ins.text, layer))
    _trailing_workdir(state)
    return _spec(state)


def _start(chain: Chain, build_args: Mapping[str, str], base: ImageConfig | None) -> _State:
    config = base.config if base is not None else ContainerConfig()
    env = config.env_map()
    env_order = [item.partition("=")[0] for item in config.env]
    os_name = base.os if base is not None else build_args.get("TARGETOS", "linux")
    if "PATH" not in env and os_name != "windows":
        # BuildKit gives every (non-Windows) image a PATH, even one built FROM scratch
        env["PATH"] = DEFAULT_PATH
        env_order.append("PATH")
    return _State(
        build_args=build_args,
        escape=chain.dockerfile.escape,
        global_args=dict(chain.global_args),
        env=env,
        env_order=env_order,
        variables=dict(env),
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


# ------------------------------------------------------------------ one per instruction


def _arg(state: _State, ins: Instruction, scope: dict[str, str]) -> None:
    for name, default in arg_words(ins, state.escape):
        state.declared.add(name)
        inherited = state.global_args.get(name)
        value = arg_value(ins, name, default, inherited, state.build_args, scope, state.escape)
        if value is not None:
            state.variables[name] = scope[name] = value


def _env(state: _State, ins: Instruction, scope: dict[str, str]) -> None:
    for raw_name, raw in pairs(ins, state.escape):  # each sees the scope from before
        name = expand_in(ins, raw_name, scope, state.escape)
        value = expand_in(ins, raw, scope, state.escape)
        if not name:
            raise ins.fail(f"ENV name {raw_name!r} is empty", "name the variable")
        if name not in state.env:
            state.env_order.append(name)
        state.env[name] = state.variables[name] = value


def _label(state: _State, ins: Instruction, scope: dict[str, str]) -> None:
    for raw_name, raw in pairs(ins, state.escape):
        name = expand_in(ins, raw_name, scope, state.escape)
        state.labels[name] = expand_in(ins, raw, scope, state.escape)


def _user(state: _State, ins: Instruction, scope: dict[str, str]) -> None:
    state.user = expand_in(ins, ins.value.strip(), scope, state.escape)
    if not state.user:
        raise ins.fail("USER is empty", "write USER <user>[:<group>]")


def _workdir(state: _State, ins: Instruction, scope: dict[str, str]) -> None:
    path = expand_in(ins, ins.value.strip(), scope, state.escape)
    if not path:
        raise ins.fail("WORKDIR is empty", "write WORKDIR /path")
    check_path(ins, path, "the WORKDIR")
    state.workdir = _absolute(state.workdir, path)
    check_path(ins, state.workdir, "the WORKDIR")
    state.pending_dirs.append(state.workdir)
    state.pending_users.append(state.user)
    state.pending_where = ins.where


def _entrypoint(state: _State, ins: Instruction, scope: dict[str, str]) -> None:
    state.entrypoint = _command(ins, state.shell)
    if not state.cmd_set:
        state.cmd = None  # an ENTRYPOINT clears the CMD it inherits


def _cmd(state: _State, ins: Instruction, scope: dict[str, str]) -> None:
    state.cmd = _command(ins, state.shell)
    state.cmd_set = True


def _shell(state: _State, ins: Instruction, scope: dict[str, str]) -> None:
    state.shell = tuple(exec_form(ins, ins.value) or DEFAULT_SHELL)


def _expose(state: _State, ins: Instruction, scope: dict[str, str]) -> None:
    for word in ins.value.split():
        for port in _expand_words(ins, word, scope, state.escape):
            state.ports.update(ports(ins, port))


def _volume(state: _State, ins: Instruction, scope: dict[str, str]) -> None:
    for word in volume_words(ins):
        volume = expand_in(ins, word, scope, state.escape)
        if not volume.strip():
            raise ins.fail("VOLUME names an empty path", "write VOLUME /path")
        state.volumes.add(volume)


def _stopsignal(state: _State, ins: Instruction, scope: dict[str, str]) -> None:
    signal = expand_in(ins, ins.value.strip(), scope, state.escape)
    if not is_signal(signal):
        raise ins.fail(
            f"invalid STOPSIGNAL {signal!r}",
            "give a signal name such as SIGTERM or TERM, or a number",
        )
    state.stop_signal = signal


def _maintainer(state: _State, ins: Instruction, scope: dict[str, str]) -> None:
    state.author = ins.value.strip()


def _healthcheck(state: _State, ins: Instruction, scope: dict[str, str]) -> None:
    state.warnings.append(
        f"{ins.where}: HEALTHCHECK is ignored: the OCI image format has no field for it"
    )


def _run(state: _State, ins: Instruction, scope: dict[str, str]) -> None:
    # reached only with ignoreRuns set: read_dockerfile refuses RUN otherwise
    state.warnings.append(f"{ins.where}: RUN skipped (ignoreRuns is set)")


def _copy(state: _State, ins: Instruction, scope: dict[str, str]) -> None:
    state.copies.append(_copy_step(ins, scope, state))


_HANDLERS: Mapping[str, Callable[[_State, Instruction, dict[str, str]], None]] = MappingProxyType(
    {
        "ADD": _copy,
        "ARG": _arg,
        "CMD": _cmd,
        "COPY": _copy,
        "ENTRYPOINT": _entrypoint,
        "ENV": _env,
        "EXPOSE": _expose,
        "HEALTHCHECK": _healthcheck,
        "LABEL": _label,
        "MAINTAINER": _maintainer,
        "RUN": _run,
        "SHELL": _shell,
        "STOPSIGNAL": _stopsignal,
        "USER": _user,
        "VOLUME": _volume,
        "WORKDIR": _workdir,
    }
)


# --------------------------------------------------------------------------- the result


def _trailing_workdir(state: _State) -> None:
    """A WORKDIR after the last COPY still creates its directory, in a layer of its own."""
    if not state.pending_dirs:
        return
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


def _spec(state: _State) -> ImageSpec:
    env = tuple(f"{name}={state.env[name]}" for name in state.env_order if name in state.env)
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


# ------------------------------------------------------------------------------ helpers


def _users(users: Sequence[str]) -> tuple[str, ...]:
    """The USERs of pending WORKDIRs, or none when all are root (the common case)."""
    return tuple(users) if any(users) else ()


def _command(ins: Instruction, shell: tuple[str, ...]) -> tuple[str, ...] | None:
    """ENTRYPOINT/CMD: the exec form as it is, the shell form after the SHELL. An empty
    JSON array leaves none, as in Docker's image config (which omits empty ones)."""
    as_json = exec_form(ins, ins.value)
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


def _empty_source(ins: Instruction, arg: str, scope: Mapping[str, str], state: _State) -> UserError:
    """A source that expands to nothing: the variables that have no value, and what to do
    about the first, by how far it got (declared, passed, before FROM, nowhere)."""
    names = empty_variables(arg, scope, state.escape)
    if not names:
        return ins.fail(f"{ins.keyword} has an empty source", "name a file of the context")
    name = names[0]
    verb = "has" if len(names) == 1 else "have"
    what = f"{ins.keyword} source {arg!r} is empty: {' and '.join(names)} {verb} no value"
    pass_it = f"pass --build-arg={name}=... (or an 'args:' entry in the plan)"
    default = f"or give it a default: 'ARG {name}=<default>'"
    if name in state.env:
        fix = f"give ENV {name} a value"
    elif name in state.declared:
        fix = f"{pass_it}, {default}"
    elif name in state.global_args:
        fix = f"add 'ARG {name}' to this stage: an ARG before FROM reaches a stage only when"
        fix += " declared there again"
    elif name in state.build_args:
        fix = f"add 'ARG {name}' to this stage: a build arg reaches only the stages that declare it"
    else:
        fix = f"declare 'ARG {name}' in this stage and {pass_it}, {default}"
    return ins.fail(what, fix)


def _copy_step(ins: Instruction, scope: Mapping[str, str], state: _State) -> CopyStep:
    escape = state.escape
    flags, args = split_flags(ins)
    words = [expand_in(ins, arg, scope, escape) for arg in args]
    *sources, dest = words
    for arg, source in zip(args[:-1], sources, strict=True):
        check_source(ins, source)
        if not source:
            raise _empty_source(ins, arg, scope, state)
        check_path(ins, source, f"the source {source[:40]!r}")
    if not dest:
        raise ins.fail(f"{ins.keyword} has an empty destination", "name a path in the image")
    check_path(ins, dest, "the destination")
    dest_is_dir = dest.endswith("/") or dest in (".", "..") or dest.endswith(("/.", "/.."))
    full = _absolute(state.workdir, dest)
    check_path(ins, full, "the destination")
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
