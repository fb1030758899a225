"""Whole-string matching in time linear in the string, as Go's regexp matches (RE2): the
expressions a ``.dockerignore`` line becomes are run as a Thompson automaton, every state
at once, so that no pattern can make a match backtrack exponentially (Python's ``re``
would: ``*a*a*a*a*a*a*a*a*a*b`` against forty ``a`` took seconds, each ``*a`` doubling it).

An expression is a sequence of items: a one-character expression (a literal, a class,
``.``) with a quantifier (``""``, ``*`` or ``?``; a lazy ``*?``/``??`` matches the same
strings), or a group (a sequence of items) that is optional or not.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from doit_oci.rules.golang import BadPattern, regexp_class, regexp_escape


@dataclass(frozen=True)
class One:
    """One character matched by ``regex`` (a Python expression of one character)."""

    regex: str
    quantifier: str = ""


@dataclass(frozen=True)
class Group:
    """A sequence matched whole, once, or (``optional``) not at all."""

    items: tuple[One | Group, ...]
    optional: bool = False


Item = One | Group

CHAR, SPLIT, JUMP, MATCH = "char", "split", "jump", "match"


@dataclass(frozen=True)
class Op:
    """One instruction: CHAR (``pattern``, then ``to``), SPLIT (``to`` and ``other``),
    JUMP (``to``) or MATCH."""

    kind: str
    to: int = -1
    other: int = -1
    pattern: re.Pattern[str] | None = None


def _emit(items: Sequence[Item], code: list[Op]) -> None:
    for item in items:
        if isinstance(item, Group):
            if item.optional:
                split = len(code)
                code.append(Op(SPLIT))
                _emit(item.items, code)
                code[split] = Op(SPLIT, split + 1, len(code))
            else:
                _emit(item.items, code)
            continue
        pattern = re.compile(item.regex)
        quantifier = item.quantifier[:1]  # a lazy one matches the same strings
        start = len(code)
        if quantifier == "*":
            code += [Op(SPLIT, start + 1, start + 3), Op(CHAR, start + 2, pattern=pattern)]
            code.append(Op(JUMP, start))
        elif quantifier == "?":
            code += [Op(SPLIT, start + 1, start + 2), Op(CHAR, start + 2, pattern=pattern)]
        else:
            code.append(Op(CHAR, start + 1, pattern=pattern))


@dataclass(frozen=True)
class Automaton:
    """``Automaton.of(items).fullmatch(text)``: whether ``items`` match all of ``text``."""

    code: tuple[Op, ...]
    _known: dict[tuple[int, str], bool] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, items: Sequence[Item]) -> Automaton:
        code: list[Op] = []
        _emit(items, code)
        code.append(Op(MATCH))
        return cls(tuple(code))

    def _closure(self, starts: Sequence[int]) -> set[int]:
        found: set[int] = set()
        todo = list(starts)
        while todo:
            pc = todo.pop()
            if pc in found:
                continue
            found.add(pc)
            op = self.code[pc]
            if op.kind == SPLIT:
                todo += [op.to, op.other]
            elif op.kind == JUMP:
                todo.append(op.to)
        return found

    def _takes(self, pc: int, char: str) -> bool:
        key = (pc, char)
        known = self._known.get(key)
        if known is None:
            pattern = self.code[pc].pattern
            known = pattern is not None and pattern.fullmatch(char) is not None
            self._known[key] = known
        return known

    def fullmatch(self, text: str) -> bool:
        states = self._closure([0])
        for char in text:
            following = [
                self.code[pc].to
                for pc in states
                if self.code[pc].kind == CHAR and self._takes(pc, char)
            ]
            if not following:
                return False
            states = self._closure(following)
        return any(self.code[pc].kind == MATCH for pc in states)


# ------------------------------------------------ the Go expressions patternmatcher emits


@dataclass(frozen=True)
class Atom:
    """One element of a translated expression, with what the prefix analysis needs."""

    base: str
    separator: bool = False  # an unquantified literal "/"
    crosses: bool = False  # may match a "/" (so path components cannot be told apart)
    quantifier: str = ""  # "", "*", "?", "*?" or "??"
    repeatable: bool = True

    @property
    def regex(self) -> str:
        return self.base + self.quantifier


def go_regex_atoms(body: str) -> list[Atom]:
    """Parse the Go expression patternmatcher would build into Python regex atoms."""
    atoms: list[Atom] = []
    end = len(body)
    pos = 0
    while pos < end:
        char = body[pos]
        if char == "\\":
            literal = regexp_escape(body, pos)
            atoms.append(Atom(re.escape(literal), separator=literal == "/"))
            pos += 2
        elif char == "[":
            regex, pos = regexp_class(body, pos)
            atoms.append(Atom(regex, crosses=re.fullmatch(regex, "/") is not None))
        elif body.startswith("(.*/)", pos):
            atoms.append(Atom("(?:.*/)", crosses=True))
            pos += len("(.*/)")
        elif char == ".":
            atoms.append(Atom(".", crosses=True))
            pos += 1
        elif char in "*?":
            if not atoms or not atoms[-1].repeatable:
                raise BadPattern(f"{char!r} has nothing to repeat")
            last = atoms[-1]
            if last.quantifier and (char != "?" or len(last.quantifier) > 1):
                raise BadPattern("invalid nested repetition")
            quantifier = last.quantifier + char  # a second "?" makes it non-greedy
            atoms[-1] = Atom(last.base, crosses=last.crosses, quantifier=quantifier)
            pos += 1
        elif char == "^":
            atoms.append(Atom("^", repeatable=False))
            pos += 1
        elif char in "()|$+{}":
            # patternmatcher escapes these; a bare one cannot come out of its translation.
            raise BadPattern(f"unexpected {char!r} in the translated expression")
        else:
            atoms.append(Atom(re.escape(char), separator=char == "/"))
            pos += 1
    return atoms


def item_of(atom: Atom) -> Item:
    if atom.base == "(?:.*/)":  # patternmatcher's "(.*/)" for a "**/": a group
        return Group((One(".", "*"), One("/")), optional=atom.quantifier.startswith("?"))
    return One(atom.base, atom.quantifier)


class Matcher(Protocol):
    def fullmatch(self, text: str, /) -> bool: ...


@dataclass(frozen=True)
class Regex:
    """A Python expression as a Matcher: for those that cannot backtrack (one ``.*``)."""

    pattern: re.Pattern[str]

    def fullmatch(self, text: str) -> bool:
        return self.pattern.fullmatch(text) is not None
