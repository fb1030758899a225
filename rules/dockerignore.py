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
special here; callers decide what to do with them. Go's own primitives (``Clean``,
``TrimSpace``, ``Match``'s syntax, regexp classes) come from ``rules.golang``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from doit_oci.rules.golang import (
    BadPattern,
    clean,
    match_regex,
    trim_space,
)
from doit_oci.rules.inputs import IGNORE_LIMIT, read_bytes
from doit_oci.rules.nfa import Automaton, Item, Matcher, Regex, go_regex_atoms, item_of

__all__ = ["DockerIgnore", "IgnoreError", "Pattern", "load"]

MatchKind = Literal["exact", "prefix", "suffix", "regexp"]

_BOM = "\ufeff"
# Characters patternmatcher escapes because they mean something in a regular expression but
# nothing in filepath.Match.
_REGEX_ONLY = frozenset(".+()|{}$")


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


def _parent_dirs(path: str) -> list[str]:
    """The parent directories patternmatcher tries: ``a``, ``a/b`` for ``a/b/c``."""
    cut = path.rfind("/")
    parent = clean(path[: cut + 1]) if cut >= 0 else "."
    if parent == ".":
        return []
    dirs = parent.split("/")
    return ["/".join(dirs[: i + 1]) for i in range(len(dirs))]


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


def _compile(regex: str) -> re.Pattern[str]:
    try:
        return re.compile(regex)
    except re.error as err:  # pragma: no cover - the translation only emits valid syntax
        raise BadPattern(f"cannot be compiled: {err}") from None


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
    regex: Matcher = field(init=False, repr=False, compare=False)
    """What matches a whole path as the Go expression does, in linear time."""
    head: tuple[Matcher, ...] = field(init=False, repr=False, compare=False)
    """Expressions the first path components of any match must each match in full."""
    bounded: bool = field(init=False, repr=False, compare=False)
    """True when a match has exactly ``len(head)`` components."""

    def __post_init__(self) -> None:
        try:
            match_regex(self.text)  # filepath.Match's syntax errors first, as Docker
            kind, body = _docker_translate(self.text)
            regex, head, bounded = _python_form(self.text, kind, body)
        except BadPattern as err:
            shown = f"!{self.text}" if self.exclusion else self.text
            raise IgnoreError(str(err), pattern=shown, line=self.line) from None
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "docker_regex", f"^{body}$" if kind == "regexp" else "")
        object.__setattr__(self, "regex", regex)
        object.__setattr__(self, "head", head)
        object.__setattr__(self, "bounded", bounded)

    def matches(self, path: str) -> bool:
        """Whether this pattern matches ``path`` itself (no parent-directory matching)."""
        return self.regex.fullmatch(path)

    def matches_below(self, components: list[str]) -> bool:
        """Whether this pattern might match some path strictly below ``components``.

        False is certain; True may be a false alarm.
        """
        for expr, component in zip(self.head, components, strict=False):
            if not expr.fullmatch(component):
                return False
        return not self.bounded or len(self.head) > len(components)


def _literal_head(components: list[str]) -> tuple[Matcher, ...]:
    return tuple(Regex(_compile(re.escape(component))) for component in components)


def _python_form(
    text: str, kind: MatchKind, body: str
) -> tuple[Matcher, tuple[Matcher, ...], bool]:
    """What matches a whole path, what each first path component of a match must match,
    and whether matches are bounded (have exactly as many components)."""
    if kind == "exact":
        return Regex(_compile(re.escape(text))), _literal_head(text.split("/")), True
    if kind == "prefix":
        stem = text[:-2]  # strip the trailing "**"
        *dirs, partial = stem.split("/")
        stem_head = (*_literal_head(dirs), Regex(_compile(re.escape(partial) + "[^/]*")))
        return Regex(_compile(re.escape(stem) + "(?s:.*)")), stem_head, False
    if kind == "suffix":
        tail = text[2:]  # strip the leading "**"
        if tail.startswith("/"):
            either = f"(?s:.*){re.escape(tail)}|{re.escape(tail[1:])}"
        else:
            either = "(?s:.*)" + re.escape(tail)
        return Regex(_compile(either)), (), False
    # an expression with several stars: a Python expression could backtrack exponentially
    atoms = go_regex_atoms(body)
    whole = Automaton.of([item_of(atom) for atom in atoms])
    head: list[Matcher] = []
    segment: list[Item] = []
    for atom in atoms:
        if atom.crosses:
            return whole, tuple(head), False
        if atom.separator:
            head.append(Automaton.of(segment))
            segment = []
        else:
            segment.append(item_of(atom))
    head.append(Automaton.of(segment))
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
            entry = trim_space(line)
            if entry == "":
                continue
            invert = entry.startswith("!")
            if invert:
                entry = trim_space(entry[1:])
            if entry:
                entry = clean(entry)
                if len(entry) > 1 and entry.startswith("/"):
                    entry = entry[1:]
            if invert:
                entry = "!" + entry
            # ... then patternmatcher's New.
            entry = clean(trim_space(entry))
            exclusion = entry.startswith("!")
            if exclusion:
                if entry == "!":
                    raise IgnoreError(
                        "an exception needs a pattern after '!'",
                        pattern=trim_space(line),
                        line=number,
                    )
                entry = entry[1:]
            try:
                patterns.append(Pattern(entry, exclusion, number))
            except IgnoreError as err:
                raise IgnoreError(err.problem, pattern=trim_space(line), line=number) from None
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
        path = clean(relpath)
        if path == "." or not self.patterns:
            return False
        last = self._last_match(path)
        return last >= 0 and not self.patterns[last].exclusion

    def may_include_under(self, reldir: str) -> bool:
        """False when nothing below directory ``reldir`` can be included, so a walker may skip
        it: the directory is excluded and no later exception could match anything below it.
        True otherwise (which may be a false alarm, never a wrong False).
        """
        path = clean(reldir)
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
        data = read_bytes(Path(path), ".dockerignore", path, IGNORE_LIMIT)
    except FileNotFoundError:
        return DockerIgnore()
    try:
        return DockerIgnore.parse(data.decode("utf-8", "surrogateescape"))
    except IgnoreError as err:
        raise err.with_source(path) from None
