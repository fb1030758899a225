"""The forms of an instruction's arguments, as BuildKit's instruction parser takes them.

COPY/ADD flags, the exec (JSON) form, VOLUME paths, ARG words, ENV/LABEL pairs, ADD's
remote sources, read from the arguments as written; EXPOSE ports and STOPSIGNAL signals,
once expanded. Each failure is the instruction's one-line error. Used by ``read`` to
check a Dockerfile and by ``evaluate`` to run it.
"""

from __future__ import annotations

import re
from types import MappingProxyType

from doit_oci.rules.argsplit import split_json_or_shell, split_key_values, split_raw_words
from doit_oci.rules.dockerfile.model import Instruction
from doit_oci.rules.shellwords import ExpandError

_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://|git@")
_COPY_FLAGS = MappingProxyType(
    {"COPY": ("chown", "chmod", "from", "link"), "ADD": ("chown", "chmod", "link")}
)
_PORT = re.compile(r"(\d+)(?:-(\d+))?(?:/(tcp|udp|sctp)?)?\Z")
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


def check_source(ins: Instruction, source: str) -> None:
    """ADD's remote sources (URLs, git) are refused: as written, and once expanded."""
    if ins.keyword == "ADD" and _URL.match(source):
        raise ins.fail(
            f"ADD of a URL ({source}) is not supported", "download it in make and COPY the file"
        )


def split_flags(ins: Instruction) -> tuple[dict[str, str], list[str]]:
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
    as_json = exec_form(ins, text)
    args = as_json if as_json is not None else text.split()
    return flags, args


def exec_form(ins: Instruction, text: str) -> list[str] | None:
    """The exec (JSON array) form of an instruction's arguments, or None for shell form."""
    try:
        return split_json_or_shell(text)
    except ExpandError as exc:
        raise ins.fail(str(exc), 'write a JSON array of strings, e.g. ["a", "b"]') from None


def volume_words(ins: Instruction) -> list[str]:
    """VOLUME's paths as written: a JSON array, or words split on blanks."""
    as_json = exec_form(ins, ins.value)
    return as_json if as_json is not None else ins.value.split()


def pairs(ins: Instruction, escape: str) -> list[tuple[str, str]]:
    """ENV/LABEL's ``name=value`` pairs (or the legacy ``name value``), unexpanded."""
    try:
        return split_key_values(ins.value, escape)
    except ExpandError as exc:
        raise ins.fail(str(exc), f"write {ins.keyword} key=value ...") from None


def arg_words(ins: Instruction, escape: str) -> list[tuple[str, str | None]]:
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


def _words(ins: Instruction, escape: str) -> list[str]:
    try:
        return split_raw_words(ins.value, escape)
    except ExpandError as exc:
        raise ins.fail(str(exc), "fix the quoting") from None


def is_signal(text: str) -> bool:
    """moby/sys/signal.ParseSignal on Linux: a non-zero number, or a known name with or
    without "SIG" in any case."""
    if re.fullmatch(r"[+-]?[0-9]+", text):
        return int(text) != 0
    return text.upper().removeprefix("SIG") in _SIGNALS


def ports(ins: Instruction, text: str) -> list[str]:
    """An EXPOSE word once expanded: ``80``, ``80/udp``, ``8000-8002`` -> ``80/tcp``..."""
    match = _PORT.match(text.lower())
    if not match:
        raise ins.fail(f"invalid port {text!r}", "write PORT, PORT/tcp, PORT/udp or FIRST-LAST")
    first = int(match.group(1))
    last = int(match.group(2) or first)
    proto = match.group(3) or "tcp"
    if not first <= last <= 65535:
        raise ins.fail(f"invalid port range {text!r}", "ports go from 0 to 65535, low to high")
    return [f"{port}/{proto}" for port in range(first, last + 1)]


PATH_MAX = 4096  # Linux's: no runtime makes a longer path
NAME_MAX = 255


def check_path(ins: Instruction, path: str, what: str) -> None:
    """A path of the image (or of the context) that a file system can hold."""
    if len(path.encode("utf-8", "surrogateescape")) > PATH_MAX:
        raise ins.fail(f"{what} is longer than {PATH_MAX} bytes", "name a shorter path")
    longest = max(path.split("/"), key=len)
    if len(longest.encode("utf-8", "surrogateescape")) > NAME_MAX:
        raise ins.fail(
            f"{what} has a name longer than {NAME_MAX} bytes ({longest[:20]}...)",
            "name a shorter file",
        )
