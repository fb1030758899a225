"""Dockerfile word expansion: the shell-like lexer Docker, BuildKit and buildah apply.

This is an independent Python rendering of the behaviour of BuildKit's Dockerfile lexer
(``frontend/dockerfile/shell/lex.go``).  It is pure: no I/O, stdlib only. Splitting an
instruction's arguments before expansion is ``rules.argsplit``.

* :func:`expand_word` -- ``ProcessWord``: quotes removed, variables expanded, one word.
* :func:`expand_words` -- ``ProcessWords``: the same, then split on unquoted whitespace.

Supported substitutions: ``$NAME``, ``${NAME}``, ``${NAME-word}``, ``${NAME:-word}``,
``${NAME+word}``, ``${NAME:+word}``, ``${NAME?message}`` and ``${NAME:?message}``; the
pattern forms (``#``, ``%``, ``/``) and every other modifier raise :class:`ExpandError`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

from doit_oci.rules.golang import is_space

__all__ = ["ExpandError", "check_escape", "empty_variables", "expand_word", "expand_words"]

# Shell special parameters: after "$" each is a (one-character) name of its own.
_SPECIAL_PARAMETERS = frozenset("@*#?-$!0")
_ESCAPE_TOKENS = ("\\", "`")
_SUPPORTED = "supported: '-', '+', '?', each optionally after ':'"


class ExpandError(ValueError):
    """A Dockerfile word that cannot be processed; the message says what is wrong."""


def check_escape(escape: str) -> None:
    """Raise ExpandError unless ``escape`` is one of the escape characters Docker allows."""
    if escape not in _ESCAPE_TOKENS:
        raise ExpandError(f"invalid escape token {escape!r} does not match ` or \\")


class _Words:
    """Collects the words of ``ProcessWords`` as characters arrive (in lists: time linear
    in what arrives, however long a variable's value is)."""

    def __init__(self) -> None:
        self.words: list[str] = []
        self.parts: list[str] = []
        self.in_word = False

    def _end_word(self) -> None:
        self.words.append("".join(self.parts))
        self.parts = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        """An unquoted character: whitespace ends a non-empty word and is dropped."""
        if not is_space(ch):
            self.add_raw_char(ch)
        elif self.in_word and any(self.parts):
            self._end_word()

    def add_raw_char(self, ch: str) -> None:
        self.parts.append(ch)
        self.in_word = True

    def add_string(self, text: str) -> None:
        if not any(is_space(ch) for ch in text):
            if text:  # (an empty string adds nothing, not even an empty word)
                self.add_raw_string(text)
            return
        for ch in text:
            self.add_char(ch)

    def add_raw_string(self, text: str) -> None:
        if text:
            self.parts.append(text)
        self.in_word = True

    def finish(self) -> list[str]:
        if any(self.parts):
            self._end_word()
        return self.words


class _Lexer:
    """One pass over ``text``; ``pos`` is the index of the next unread character."""

    def __init__(self, text: str, env: Mapping[str, str], escape: str) -> None:
        self.text = text
        self.env = env
        self.escape = escape
        self.pos = 0

    def _peek(self) -> str:
        """The next character, or "" at the end of the text."""
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _next(self) -> str:
        ch = self._peek()
        if ch:
            self.pos += 1
        return ch

    def process(self, stop: str = "") -> tuple[str, list[str]]:
        """Read up to ``stop`` (consumed) or, when ``stop`` is "", to the end.

        Returns the processed text and its whitespace-separated words.
        """
        result: list[str] = []
        words = _Words()
        while ch := self._peek():
            if stop and ch == stop:
                self.pos += 1
                return "".join(result), words.finish()
            if ch == "$":
                piece = self._dollar()
                result.append(piece)
                words.add_string(piece)
            elif ch == "'":
                piece = self._single_quoted()
                result.append(piece)
                words.add_raw_string(piece)
            elif ch == '"':
                piece = self._double_quoted()
                result.append(piece)
                words.add_raw_string(piece)
            else:
                self.pos += 1
                if ch == self.escape:
                    ch = self._next()
                    if not ch:
                        break  # an escape at the very end is dropped
                    words.add_raw_char(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
        if stop:
            raise ExpandError(f"unexpected end of text while looking for matching {stop}")
        return "".join(result), words.finish()

    def _single_quoted(self) -> str:
        """Everything up to the next single quote, literally; nothing can be escaped."""
        self.pos += 1
        start = self.pos
        end = self.text.find("'", start)
        if end < 0:
            self.pos = len(self.text)
            raise ExpandError("unterminated quote: missing closing single-quote (')")
        self.pos = end + 1
        return self.text[start:end]

    def _double_quoted(self) -> str:
        """Up to the next unescaped double quote, expanding variables.

        The escape character escapes only ``"``, ``$`` and itself; before anything else it
        is kept literally.
        """
        self.pos += 1
        result: list[str] = []
        while True:
            ch = self._peek()
            if not ch:
                raise ExpandError('unterminated quote: missing closing double-quote (")')
            if ch == '"':
                self.pos += 1
                return "".join(result)
            if ch == "$":
                result.append(self._dollar())
                continue
            self.pos += 1
            if ch == self.escape:
                following = self._peek()
                if not following:
                    continue
                if following in ('"', "$", self.escape):
                    ch = following
                    self.pos += 1
            result.append(ch)

    def _dollar(self) -> str:
        """A ``$`` substitution, starting at the ``$``."""
        start = self.pos
        self.pos += 1
        if self._peek() != "{":
            name = self._name()
            if not name:
                return "$"
            return self.env.get(name, "")

        self.pos += 1
        ch = self._peek()
        if not ch:
            raise _unterminated(self.text, start)
        if ch in "{}:":
            snippet = self.text[start : _braced_end(self.text, self.pos, self.escape)]
            raise ExpandError(f"bad substitution {snippet}: missing variable name")
        name = self._name()
        ch = self._next()
        if ch == "}":
            return self.env.get(name, "")
        if not ch:
            raise _unterminated(self.text, start)

        modifier = ch
        null_is_unset = ch == ":"
        if null_is_unset:
            ch = self._next()
            if not ch:
                raise _unterminated(self.text, start)
            if ch == "}":
                raise _unsupported(self.text, start, self.pos, ":")
            modifier += ch
        elif ch not in "+-?#%/":
            if name in _SPECIAL_PARAMETERS and (ch.isalnum() or ch == "_"):
                modifier = name  # a prefix operator such as ${#NAME} or ${!NAME}
            end = _braced_end(self.text, self.pos, self.escape)
            raise _unsupported(self.text, start, end, modifier)

        try:
            word, _ = self.process("}")
        except ExpandError:
            if self.pos >= len(self.text):
                raise _unterminated(self.text, start) from None
            raise

        if ch not in "+-?":
            raise _unsupported(self.text, start, self.pos, modifier)
        return _substitute(name, ch, null_is_unset, word, self.env.get(name))

    def _name(self) -> str:
        """A variable name: letters, digits and "_"; a run of digits; or one special char."""
        start = self.pos
        self.pos = _name_end(self.text, start)
        return self.text[start : self.pos]


def _name_end(text: str, pos: int) -> int:
    """Where the variable name at ``text[pos]`` ends (``pos`` when there is none)."""
    ch = text[pos] if pos < len(text) else ""
    if ch.isdecimal():
        while pos < len(text) and text[pos].isdecimal():
            pos += 1
        return pos
    if ch and ch in _SPECIAL_PARAMETERS:
        return pos + 1
    while pos < len(text) and (text[pos].isalpha() or text[pos].isdecimal() or text[pos] == "_"):
        pos += 1
    return pos


def _substitute(name: str, op: str, null_is_unset: bool, word: str, value: str | None) -> str:
    """``${name-word}``, ``${name+word}``, ``${name?word}`` (``:`` before ``op`` also takes an
    empty value for unset), given the variable's ``value`` (None when unset)."""
    empty = value is None or (null_is_unset and value == "")
    if op == "-":
        return word if empty or value is None else value
    if op == "+":
        return "" if empty else word
    if value is None:
        raise ExpandError(f"{name}: {word or 'is not allowed to be unset'}")
    if empty:
        raise ExpandError(f"{name}: {word or 'is not allowed to be empty'}")
    return value


def _braced_end(text: str, pos: int, escape: str) -> int:
    """Where the ``${`` opened just before ``pos`` closes (for messages only)."""
    depth = 1
    while pos < len(text):
        ch = text[pos]
        if ch == escape:
            pos += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return pos + 1
        pos += 1
    return len(text)


def _unterminated(text: str, start: int) -> ExpandError:
    return ExpandError(f"unterminated substitution {text[start:]}: missing '}}'")


def _unsupported(text: str, start: int, end: int, modifier: str) -> ExpandError:
    return ExpandError(
        f"bad substitution {text[start:end]}: unsupported modifier {modifier!r} ({_SUPPORTED})"
    )


def _lex(text: str, env: Mapping[str, str], escape: str) -> tuple[str, list[str]]:
    check_escape(escape)
    try:
        return _Lexer(text, env, escape).process()
    except ExpandError as error:
        raise ExpandError(f"failed to process {text!r}: {error}") from None


def expand_word(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """Process ``word`` as one Dockerfile word (BuildKit ``ProcessWord``).

    Variables are expanded (unset ones to ""), quotes removed, escapes applied; whitespace
    is kept as is.  Raises :class:`ExpandError` for malformed input or a failed ``?``.
    """
    return _lex(word, env, escape)[0]


def expand_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Process ``text`` and split it into words (BuildKit ``ProcessWords``).

    Unquoted whitespace, including whitespace produced by an unquoted expansion, separates
    words.  As in BuildKit, a word that ends up empty is dropped, even a quoted one (``""``).
    """
    return _lex(text, env, escape)[1]


def empty_variables(word: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """The variables that processing ``word`` looks up and finds unset or empty in ``env``,
    in order, each once: what to name when a word expands to nothing. A malformed word
    gives those found before the mistake."""
    lookups = _Lookups(env)
    with contextlib.suppress(ExpandError):
        _lex(word, lookups, escape)
    return lookups.empty


class _Lookups(Mapping[str, str]):
    """``env``, noting each name looked up in it that has no value there."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.empty: list[str] = []

    def __getitem__(self, name: str) -> str:
        value = self.env.get(name)
        if not value and name not in self.empty:
            self.empty.append(name)
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self.env)

    def __len__(self) -> int:
        return len(self.env)
