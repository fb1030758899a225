"""Go's text primitives, as Docker and BuildKit get them from Go's standard library.

What a Dockerfile or a ``.dockerignore`` means is decided by Go code, so where Python's
own functions differ from Go's, these ports are used instead:

- ``SPACES``, ``is_space``, ``trim_space``: ``unicode.IsSpace`` and ``strings.TrimSpace``
  (Python's ``str.isspace`` also counts U+001C..U+001F, which Go does not);
- ``clean``: ``path.Clean`` (``posixpath.normpath`` keeps a leading ``//``);
- ``match_regex``: ``path/filepath.Match`` as a Python expression, with Go's syntax errors;
- ``regexp_escape``, ``regexp_class``: escapes and character classes of ``regexp/syntax``
  (POSIX classes included), for expressions that Go code builds and compiles.

Pure functions of text; no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

__all__ = [
    "SPACES",
    "BadPattern",
    "clean",
    "is_space",
    "match_regex",
    "regexp_class",
    "regexp_escape",
    "trim_space",
]

# unicode.IsSpace: the Latin-1 spaces and the other code points of Unicode's White_Space.
SPACES = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_SPACE_SET = frozenset(SPACES)
_UNCLOSED = "character class is missing its closing ']'"
_MAX_RUNE = 0x10FFFF
# regexp/syntax's POSIX classes ([[:alpha:]] ...), as inclusive code-point ranges.
_POSIX_CLASSES: Mapping[str, tuple[tuple[int, int], ...]] = MappingProxyType(
    {
        "alnum": ((0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)),
        "alpha": ((0x41, 0x5A), (0x61, 0x7A)),
        "ascii": ((0x00, 0x7F),),
        "blank": ((0x09, 0x09), (0x20, 0x20)),
        "cntrl": ((0x00, 0x1F), (0x7F, 0x7F)),
        "digit": ((0x30, 0x39),),
        "graph": ((0x21, 0x7E),),
        "lower": ((0x61, 0x7A),),
        "print": ((0x20, 0x7E),),
        "punct": ((0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)),
        "space": ((0x09, 0x0D), (0x20, 0x20)),
        "upper": ((0x41, 0x5A),),
        "word": ((0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)),
        "xdigit": ((0x30, 0x39), (0x41, 0x46), (0x61, 0x66)),
    }
)


class BadPattern(ValueError):
    """A pattern Go refuses (``filepath.ErrBadPattern``, a regexp syntax error), or one
    that Docker would misread; the message says what is wrong with it."""


# ------------------------------------------------------------------ unicode, strings, path


def is_space(char: str) -> bool:
    """``unicode.IsSpace`` for one character."""
    return char in _SPACE_SET


def trim_space(text: str) -> str:
    """``strings.TrimSpace``: ``text`` without its leading and trailing Go spaces."""
    return text.strip(SPACES)


def clean(path: str) -> str:
    """``path.Clean``: the shortest equivalent of a "/"-separated path, lexically."""
    if path == "":
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for comp in path.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(comp)
    cleaned = "/".join(parts)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


# ------------------------------------------------------------------------ filepath.Match


def match_regex(pattern: str) -> re.Pattern[str]:
    """``filepath.Match(pattern, name)`` as ``match_regex(pattern).match(name)`` (Unix).

    ``*`` matches a run of characters other than "/", ``?`` one such character, ``[...]``
    and ``[^...]`` classes hold characters and ranges (only ``^`` negates; ``-`` and ``]``
    must be escaped inside; a backwards range matches nothing), and ``\\`` escapes the next
    character. As Go scans it: each run of stars with the chunk after it takes the first
    place the chunk fits, which the expression keeps in an atomic group. Raises
    ``BadPattern`` where Go's Match returns ``ErrBadPattern``, for the whole pattern.
    """
    chunks: list[tuple[bool, str]] = []  # (after a star, the chunk's expression)
    star = False
    body: list[str] = []
    pos, end = 0, len(pattern)
    while pos < end:
        char = pattern[pos]
        if char == "*":
            chunks.append((star, "".join(body)))
            body, star = [], True
            while pos < end and pattern[pos] == "*":
                pos += 1
            continue
        pos += 1
        if char == "?":
            body.append("[^/]")
        elif char == "\\":
            if pos >= end:
                raise BadPattern("trailing backslash escapes nothing")
            body.append(re.escape(pattern[pos]))
            pos += 1
        elif char == "[":
            regex, pos = _match_class(pattern, pos)
            body.append(regex)
        else:
            body.append(re.escape(char))
    chunks.append((star, "".join(body)))
    out: list[str] = []
    for index, (after_star, regex) in enumerate(chunks):
        if not after_star:
            out.append(regex)
        elif index == len(chunks) - 1:
            out.append("[^/]*" + regex)  # the last chunk may end anywhere the name ends
        else:
            out.append(f"(?>[^/]*?{regex})")
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def _match_class(pattern: str, pos: int) -> tuple[str, int]:
    """The class whose ``[`` is just before ``pattern[pos]``, and where it ends."""
    negated = pos < len(pattern) and pattern[pos] == "^"
    if negated:
        pos += 1
    items: list[str] = []
    count = 0
    while True:
        if pos < len(pattern) and pattern[pos] == "]" and count:
            pos += 1
            break
        low, pos = _class_char(pattern, pos)
        high = low
        if pattern[pos] == "-":
            high, pos = _class_char(pattern, pos + 1)
        count += 1
        if low <= high:  # Go accepts a backwards range, which matches nothing
            items.append(re.escape(low) + ("-" + re.escape(high) if high != low else ""))
    if negated:
        return ("[^" + "".join(items) + "]") if items else "(?s:.)", pos
    return ("[" + "".join(items) + "]") if items else "(?!)", pos


def _class_char(pattern: str, pos: int) -> tuple[str, int]:
    """Go's getEsc: one character of a class, maybe escaped, which more must follow."""
    if pos >= len(pattern):
        raise BadPattern(_UNCLOSED)
    if pattern[pos] in "-]":
        raise BadPattern(f"unescaped {pattern[pos]!r} in a character class")
    if pattern[pos] == "\\":
        pos += 1
        if pos >= len(pattern):
            raise BadPattern(_UNCLOSED)
    if pos + 1 >= len(pattern):
        raise BadPattern(_UNCLOSED)
    return pattern[pos], pos + 1


# ---------------------------------------------------------------------------- regexp/syntax


def regexp_escape(body: str, pos: int) -> str:
    """The character that the escape at ``body[pos]`` (a backslash) stands for.

    Go's regexp reads an escaped ASCII punctuation character as itself; an escaped letter
    or digit is a class or an assertion there (``\\d``, ``\\b``) and any other escape is
    an error, so both raise ``BadPattern``: a pattern meant as a glob would not mean what
    it says. The messages speak of Docker, whose patterns are what reach this.
    """
    if pos + 1 >= len(body):
        raise BadPattern("trailing backslash escapes nothing")
    char = body[pos + 1]
    if ord(char) < 0x80 and not char.isalnum():
        return char
    if ord(char) < 0x80:
        raise BadPattern(
            f"escape '\\{char}' means something else to Docker's regular-expression matcher;"
            " drop the backslash"
        )
    raise BadPattern(f"escape '\\{char}' is rejected by Docker's regular-expression matcher")


def regexp_class(body: str, pos: int) -> tuple[str, int]:
    """The Go regexp character class at ``body[pos] == "["`` as a Python class, and the
    position after it: ranges, escapes, a leading ``]`` or trailing ``-`` taken literally,
    ``[:name:]`` and ``[:^name:]`` POSIX classes. A backwards range raises ``BadPattern``."""
    end = len(body)
    pos += 1
    negated = pos < end and body[pos] == "^"
    if negated:
        pos += 1
    items: list[str] = []
    first = True

    def class_char(at: int) -> tuple[int, int]:
        if at >= end:
            raise BadPattern(_UNCLOSED)
        if body[at] == "\\":
            return ord(regexp_escape(body, at)), at + 2
        return ord(body[at]), at + 1

    while True:
        if pos >= end:
            raise BadPattern(_UNCLOSED)
        if body[pos] == "]" and not first:
            pos += 1
            break
        first = False
        if body.startswith("[:", pos):
            close = body.find(":]", pos + 2)
            if close >= 0:
                items.append(_posix_items(body[pos + 2 : close]))
                pos = close + 2
                continue
        low, pos = class_char(pos)
        high = low
        if pos + 1 < end and body[pos] == "-" and body[pos + 1] != "]":
            high, pos = class_char(pos + 1)
            if high < low:
                raise BadPattern(
                    f"character range {chr(low)!r}-{chr(high)!r} runs backwards"
                    " (Docker fails the build on it)"
                )
        items.append(_class_range(low, high))
    return "[" + ("^" if negated else "") + "".join(items) + "]", pos


def _class_range(low: int, high: int) -> str:
    if low == high:
        return re.escape(chr(low))
    return f"{re.escape(chr(low))}-{re.escape(chr(high))}"


def _posix_items(name: str) -> str:
    negated = name.startswith("^")
    ranges = _POSIX_CLASSES.get(name[1:] if negated else name)
    if ranges is None:
        raise BadPattern(f"invalid character class '[:{name}:]'")
    if negated:
        complement: list[tuple[int, int]] = []
        start = 0
        for low, high in ranges:
            if low > start:
                complement.append((start, low - 1))
            start = high + 1
        complement.append((start, _MAX_RUNE))
        ranges = tuple(complement)
    return "".join(_class_range(low, high) for low, high in ranges)
