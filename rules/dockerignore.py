"""Reading and matching ``.dockerignore`` files the way Docker and BuildKit do.

Reading follows BuildKit's ``dockerignore.ReadAll`` followed by patternmatcher's ``New``:

* the file is split into lines on ``"\\n"``; one trailing ``"\\r"`` is dropped from each line,
  and a UTF-8 byte-order mark is dropped from the first line;
* a line whose *first character* is ``#`` is a comment (``"  # x"`` is a pattern, not a comment);
* surrounding whitespace is trimmed (Go's ``unicode.IsSpace`` set) and empty lines are skipped;
* a leading ``!`` makes an exception; the rest is trimmed again, cleaned like Go's
  ``filepath.Clean`` and loses one leading ``"/"``; a bare ``!`` is an error.

Matching follows moby/patternmatcher:

* a pattern is Go ``filepath.Match`` syntax (``*`` and ``?`` never match ``"/"``, ``[...]`` and
  ``[^...]`` classes, ``\\`` escapes) plus ``**``, which matches any number of directories;
* it is checked with ``filepath.Match``'s syntax rules, then translated to a regular expression
  exactly as patternmatcher translates it (quirks included: for instance ``**foo`` is a plain
  suffix test and ``*`` written inside ``[...]`` is mangled the same way), and that Go
  expression is turned into an equivalent Python one once, when the file is parsed;
* a path is excluded when the last pattern matching it, or matching one of its parent
  directories, is not an exception (patternmatcher's ``MatchesOrParentMatches``).

Where Docker accepts a pattern but then fails the build (a backwards range such as
``[Local-Only]``) or gives an escape a regular-expression meaning (``\\d``, ``\\b``, ...),
parsing raises :class:`IgnoreError` instead.  ``Dockerfile`` and ``.dockerignore`` are not
special here; callers decide what to do with them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["DockerIgnore", "IgnoreError", "Pattern", "load"]

MatchKind = Literal["exact", "prefix", "suffix", "regexp"]

# Go's unicode.IsSpace: Latin-1 spaces plus the Unicode White_Space property.  Python's
# str.strip() would also strip U+001C..U+001F, which Go keeps.
_GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_BOM = "\ufeff"
# Characters patternmatcher escapes because they mean something in a regular expression but
# nothing in filepath.Match.
_REGEX_ONLY = frozenset(".+()|{}$")
_MAX_RUNE = 0x10FFFF

# Go regexp/syntax POSIX classes, as inclusive code-point ranges.
_POSIX_CLASSES: dict[str, tuple[tuple[int, int], ...]] = {
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


class IgnoreError(ValueError):
    """A ``.dockerignore`` pattern Docker would refuse (or that would fail a Docker build)."""

    def __init__(self, problem: str, *, pattern: str, line: int, source: str | None = None) -> None:
        self.problem = problem
        self.pattern = pattern
        self.line = line
        self.source = source
        where = f"{source}:{line}" if source is not None else f"line {line}"
        super().__init__(f"{where}: bad pattern {pattern!r}: {problem}")

    def with_source(self, source: str) -> IgnoreError:
        """The same error, located in the file ``source``."""
        return IgnoreError(self.problem, pattern=self.pattern, line=self.line, source=source)


class _BadPattern(Exception):
    """Internal: a problem with the pattern being compiled; becomes an IgnoreError."""


# --------------------------------------------------------------------------- Go helpers


def _go_trim_space(text: str) -> str:
    return text.strip(_GO_SPACE)


def _go_clean(path: str) -> str:
    """Go's ``path/filepath.Clean`` for "/"-separated paths."""
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


def _parent_dirs(path: str) -> list[str]:
    """The parent directories patternmatcher tries: ``a``, ``a/b`` for ``a/b/c``."""
    cut = path.rfind("/")
    parent = _go_clean(path[: cut + 1]) if cut >= 0 else "."
    if parent == ".":
        return []
    dirs = parent.split("/")
    return ["/".join(dirs[: i + 1]) for i in range(len(dirs))]


def _check_glob_syntax(pattern: str) -> None:
    """Raise _BadPattern where Go's ``filepath.Match`` reports ``ErrBadPattern``."""
    end = len(pattern)

    def class_char(pos: int) -> int:
        # filepath.getEsc: one (possibly escaped) character, which must be followed by more.
        if pos >= end:
            raise _BadPattern("character class is missing its closing ']'")
        if pattern[pos] in "-]":
            raise _BadPattern(f"unescaped {pattern[pos]!r} in a character class")
        if pattern[pos] == "\\":
            pos += 1
            if pos >= end:
                raise _BadPattern("character class is missing its closing ']'")
        pos += 1
        if pos >= end:
            raise _BadPattern("character class is missing its closing ']'")
        return pos

    pos = 0
    while pos < end:
        char = pattern[pos]
        if char == "\\":
            if pos + 1 >= end:
                raise _BadPattern("trailing backslash escapes nothing")
            pos += 2
        elif char == "[":
            pos += 1
            if pos < end and pattern[pos] == "^":
                pos += 1
            ranges = 0
            while True:
                if pos < end and pattern[pos] == "]" and ranges > 0:
                    pos += 1
                    break
                pos = class_char(pos)
                if pattern[pos] == "-":
                    pos = class_char(pos + 1)
                ranges += 1
        else:
            pos += 1


def _docker_translate(pattern: str) -> tuple[MatchKind, str]:
    """patternmatcher's ``compile``: the match kind and the Go regular expression body."""
    kind: MatchKind = "exact"
    out: list[str] = []
    end = len(pattern)
    pos = 0
    first = True
    while pos < end:
        char = pattern[pos]
        pos += 1
        if char == "*":
            if pos < end and pattern[pos] == "*":
                pos += 1
                if pos < end and pattern[pos] == "/":
                    pos += 1  # "**/" is treated as "**"
                if pos >= end:
                    if kind == "exact":
                        kind = "prefix"
                    else:
                        out.append(".*")
                        kind = "regexp"
                else:
                    out.append("(.*/)?")
                    kind = "regexp"
                if first:
                    kind = "suffix"
            else:
                out.append("[^/]*")
                kind = "regexp"
        elif char == "?":
            out.append("[^/]")
            kind = "regexp"
        elif char in _REGEX_ONLY:
            out.append("\\" + char)
        elif char == "\\":
            if pos < end:
                out.append("\\" + pattern[pos])
                pos += 1
                kind = "regexp"
            else:
                out.append("\\")
        elif char in "[]":
            out.append(char)
            kind = "regexp"
        else:
            out.append(char)
        first = False
    return kind, "".join(out)


# ------------------------------------------------------- Go regexp -> Python regexp


@dataclass(frozen=True)
class _Atom:
    """One element of a translated expression, with what the prefix analysis needs."""

    base: str
    separator: bool = False  # an unquantified literal "/"
    crosses: bool = False  # may match a "/" (so path components cannot be told apart)
    quantifier: str = ""  # "", "*", "?", "*?" or "??"
    repeatable: bool = True

    @property
    def regex(self) -> str:
        return self.base + self.quantifier


def _go_escape(body: str, pos: int) -> str:
    """The character a Go regexp escape at ``body[pos]`` (a backslash) stands for."""
    if pos + 1 >= len(body):
        raise _BadPattern("trailing backslash escapes nothing")
    char = body[pos + 1]
    if ord(char) < 0x80 and not char.isalnum():
        return char
    if ord(char) < 0x80:
        raise _BadPattern(
            f"escape '\\{char}' means something else to Docker's regular-expression matcher;"
            " drop the backslash"
        )
    raise _BadPattern(f"escape '\\{char}' is rejected by Docker's regular-expression matcher")


def _class_range(low: int, high: int) -> str:
    if low == high:
        return re.escape(chr(low))
    return f"{re.escape(chr(low))}-{re.escape(chr(high))}"


def _posix_items(name: str) -> str:
    negated = name.startswith("^")
    ranges = _POSIX_CLASSES.get(name[1:] if negated else name)
    if ranges is None:
        raise _BadPattern(f"invalid character class '[:{name}:]'")
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


def _go_class(body: str, pos: int) -> tuple[str, int]:
    """Translate the Go regexp character class starting at ``body[pos] == "["``."""
    end = len(body)
    pos += 1
    negated = pos < end and body[pos] == "^"
    if negated:
        pos += 1
    items: list[str] = []
    first = True

    def class_char(at: int) -> tuple[int, int]:
        if at >= end:
            raise _BadPattern("character class is missing its closing ']'")
        if body[at] == "\\":
            return ord(_go_escape(body, at)), at + 2
        return ord(body[at]), at + 1

    while True:
        if pos >= end:
            raise _BadPattern("character class is missing its closing ']'")
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
                raise _BadPattern(
                    f"character range {chr(low)!r}-{chr(high)!r} runs backwards"
                    " (Docker fails the build on it)"
                )
        items.append(_class_range(low, high))
    return "[" + ("^" if negated else "") + "".join(items) + "]", pos


def _go_regex_atoms(body: str) -> list[_Atom]:
    """Parse the Go expression patternmatcher would build into Python regex atoms."""
    atoms: list[_Atom] = []
    end = len(body)
    pos = 0
    while pos < end:
        char = body[pos]
        if char == "\\":
            literal = _go_escape(body, pos)
            atoms.append(_Atom(re.escape(literal), separator=literal == "/"))
            pos += 2
        elif char == "[":
            regex, pos = _go_class(body, pos)
            atoms.append(_Atom(regex, crosses=re.fullmatch(regex, "/") is not None))
        elif body.startswith("(.*/)", pos):
            atoms.append(_Atom("(?:.*/)", crosses=True))
            pos += len("(.*/)")
        elif char == ".":
            atoms.append(_Atom(".", crosses=True))
            pos += 1
        elif char in "*?":
            if not atoms or not atoms[-1].repeatable:
                raise _BadPattern(f"{char!r} has nothing to repeat")
            last = atoms[-1]
            if last.quantifier and (char != "?" or len(last.quantifier) > 1):
                raise _BadPattern("invalid nested repetition")
            quantifier = last.quantifier + char  # a second "?" makes it non-greedy
            atoms[-1] = _Atom(last.base, crosses=last.crosses, quantifier=quantifier)
            pos += 1
        elif char == "^":
            atoms.append(_Atom("^", repeatable=False))
            pos += 1
        elif char in "()|$+{}":
            # patternmatcher escapes these; a bare one cannot come out of its translation.
            raise _BadPattern(f"unexpected {char!r} in the translated expression")
        else:
            atoms.append(_Atom(re.escape(char), separator=char == "/"))
            pos += 1
    return atoms


def _compile(regex: str) -> re.Pattern[str]:
    try:
        return re.compile(regex)
    except re.error as err:  # pragma: no cover - the translation only emits valid syntax
        raise _BadPattern(f"cannot be compiled: {err}") from None


# ------------------------------------------------------------------------- patterns


@dataclass(frozen=True)
class Pattern:
    """One compiled pattern.

    ``text`` is the cleaned pattern without its ``!``; ``exclusion`` is True for an
    exception (a ``!`` line); ``line`` is the 1-based line number in the file.  Constructing a
    Pattern compiles it and raises :class:`IgnoreError` for a bad pattern.
    """

    text: str
    exclusion: bool
    line: int
    kind: MatchKind = field(init=False, compare=False)
    """How patternmatcher matches it: a plain comparison, prefix, suffix, or expression."""
    docker_regex: str = field(init=False, repr=False, compare=False)
    """The Go expression patternmatcher compiles for a ``regexp`` pattern, else ``""``."""
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)
    """The equivalent Python expression; it must match a whole path."""
    head: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)
    """Expressions the first path components of any match must each match in full."""
    bounded: bool = field(init=False, repr=False, compare=False)
    """True when a match has exactly ``len(head)`` components."""

    def __post_init__(self) -> None:
        try:
            _check_glob_syntax(self.text)
            kind, body = _docker_translate(self.text)
            regex, head, bounded = _python_form(self.text, kind, body)
        except _BadPattern as err:
            shown = f"!{self.text}" if self.exclusion else self.text
            raise IgnoreError(str(err), pattern=shown, line=self.line) from None
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "docker_regex", f"^{body}$" if kind == "regexp" else "")
        object.__setattr__(self, "regex", regex)
        object.__setattr__(self, "head", head)
        object.__setattr__(self, "bounded", bounded)

    def matches(self, path: str) -> bool:
        """Whether this pattern matches ``path`` itself (no parent-directory matching)."""
        return self.regex.fullmatch(path) is not None

    def matches_below(self, components: list[str]) -> bool:
        """Whether this pattern might match some path strictly below ``components``.

        False is certain; True may be a false alarm.
        """
        for expr, component in zip(self.head, components, strict=False):
            if expr.fullmatch(component) is None:
                return False
        return not self.bounded or len(self.head) > len(components)


def _literal_head(components: list[str]) -> tuple[re.Pattern[str], ...]:
    return tuple(_compile(re.escape(component)) for component in components)


def _python_form(
    text: str, kind: MatchKind, body: str
) -> tuple[re.Pattern[str], tuple[re.Pattern[str], ...], bool]:
    """The Python expression, the component head, and whether matches are bounded."""
    if kind == "exact":
        return _compile(re.escape(text)), _literal_head(text.split("/")), True
    if kind == "prefix":
        stem = text[:-2]  # strip the trailing "**"
        *dirs, partial = stem.split("/")
        stem_head = (*_literal_head(dirs), _compile(re.escape(partial) + "[^/]*"))
        return _compile(re.escape(stem) + "(?s:.*)"), stem_head, False
    if kind == "suffix":
        tail = text[2:]  # strip the leading "**"
        if tail.startswith("/"):
            either = f"(?s:.*){re.escape(tail)}|{re.escape(tail[1:])}"
        else:
            either = "(?s:.*)" + re.escape(tail)
        return _compile(either), (), False
    atoms = _go_regex_atoms(body)
    whole = _compile("".join(atom.regex for atom in atoms))
    head: list[re.Pattern[str]] = []
    segment: list[str] = []
    for atom in atoms:
        if atom.crosses:
            return whole, tuple(head), False
        if atom.separator:
            head.append(_compile("".join(segment)))
            segment = []
        else:
            segment.append(atom.regex)
    head.append(_compile("".join(segment)))
    return whole, tuple(head), True


# ---------------------------------------------------------------------- the file


@dataclass(frozen=True)
class DockerIgnore:
    """The patterns of one ``.dockerignore`` file, in file order."""

    patterns: tuple[Pattern, ...] = ()

    @classmethod
    def parse(cls, text: str) -> DockerIgnore:
        """Parse the text of a ``.dockerignore`` file (raises :class:`IgnoreError`)."""
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()  # a final newline ends the last line; it does not start another
        patterns: list[Pattern] = []
        for number, line in enumerate(lines, start=1):
            if number == 1 and line.startswith(_BOM):
                line = line[len(_BOM) :]
            line = line.removesuffix("\r")
            if line.startswith("#"):
                continue
            # BuildKit's ReadAll ...
            entry = _go_trim_space(line)
            if entry == "":
                continue
            invert = entry.startswith("!")
            if invert:
                entry = _go_trim_space(entry[1:])
            if entry:
                entry = _go_clean(entry)
                if len(entry) > 1 and entry.startswith("/"):
                    entry = entry[1:]
            if invert:
                entry = "!" + entry
            # ... then patternmatcher's New.
            entry = _go_clean(_go_trim_space(entry))
            exclusion = entry.startswith("!")
            if exclusion:
                if entry == "!":
                    raise IgnoreError(
                        "an exception needs a pattern after '!'",
                        pattern=_go_trim_space(line),
                        line=number,
                    )
                entry = entry[1:]
            try:
                patterns.append(Pattern(entry, exclusion, number))
            except IgnoreError as err:
                raise IgnoreError(err.problem, pattern=_go_trim_space(line), line=number) from None
        return cls(tuple(patterns))

    @property
    def empty(self) -> bool:
        """True when there are no patterns (nothing is ever excluded)."""
        return not self.patterns

    def _last_match(self, path: str) -> int:
        """Index of the last pattern matching ``path`` or a parent of it, or -1."""
        candidates = [path, *_parent_dirs(path)]
        for index in range(len(self.patterns) - 1, -1, -1):
            pattern = self.patterns[index]
            if any(pattern.matches(candidate) for candidate in candidates):
                return index
        return -1

    def excluded(self, relpath: str) -> bool:
        """Whether ``relpath`` ("/"-separated, relative to the context root) is excluded.

        The path is cleaned like Go's ``filepath.Clean``; the root itself is never excluded.
        """
        path = _go_clean(relpath)
        if path == "." or not self.patterns:
            return False
        last = self._last_match(path)
        return last >= 0 and not self.patterns[last].exclusion

    def may_include_under(self, reldir: str) -> bool:
        """False when nothing below directory ``reldir`` can be included, so a walker may skip
        it: the directory is excluded and no later exception could match anything below it.
        True otherwise (which may be a false alarm, never a wrong False).
        """
        path = _go_clean(reldir)
        if path == "." or not self.patterns:
            return True
        last = self._last_match(path)
        if last < 0 or self.patterns[last].exclusion:
            return True
        components = path.split("/")
        return any(
            pattern.exclusion and pattern.matches_below(components)
            for pattern in self.patterns[last + 1 :]
        )


def load(context_dir: str) -> DockerIgnore:
    """Read ``<context_dir>/.dockerignore``; an empty DockerIgnore when there is none."""
    path = os.path.join(context_dir, ".dockerignore")
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return DockerIgnore()
    try:
        return DockerIgnore.parse(data.decode("utf-8", "surrogateescape"))
    except IgnoreError as err:
        raise err.with_source(path) from None
