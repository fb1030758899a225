"""Parsing ``WWW-Authenticate`` headers (RFC 7235), leniently: what a registry answers a
request it will not serve without credentials, naming the scheme and where to log in.

``parse_challenge('Bearer realm="https://auth.example/token",service="registry"')`` is
``[Challenge("bearer", (("realm", "https://auth.example/token"), ("service", "registry")))]``.
"""

from __future__ import annotations

from dataclasses import dataclass

_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_TOKEN68 = _TCHAR | frozenset("/")
_SPACE = " \t"


@dataclass(frozen=True)
class Challenge:
    """One challenge of a ``WWW-Authenticate`` header: a lowercase scheme and its parameters.

    Parameter names are lowercased (they are case-insensitive); values are unquoted and
    unescaped, their case kept. A token68 credential (``Negotiate abc==``) is not kept.
    """

    scheme: str
    params: tuple[tuple[str, str], ...] = ()

    def get(self, name: str, default: str = "") -> str:
        """The first value of parameter ``name`` (any case), or ``default``."""
        wanted = name.lower()
        return next((value for key, value in self.params if key == wanted), default)


def parse_challenge(header: str) -> list[Challenge]:
    """The challenges of one ``WWW-Authenticate`` value (RFC 7235), leniently.

    Handles several challenges in one value, quoted strings holding commas and
    backslash escapes, spaces around ``=``, and empty list elements. Text that fits no
    challenge is skipped rather than refused: a registry's header is not ours to fix.
    """
    parser = _ChallengeParser(header)
    return parser.challenges()


class _ChallengeParser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def _skip(self, chars: str) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in chars:
            self.pos += 1

    def _token(self, chars: frozenset[str] = _TCHAR) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in chars:
            self.pos += 1
        return self.text[start : self.pos]

    def _at(self, char: str) -> bool:
        return self.pos < len(self.text) and self.text[self.pos] == char

    def _quoted(self) -> str:
        """A quoted string, the opening quote at ``pos``; unterminated runs to the end."""
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            self.pos += 1
            if char == "\\" and self.pos < len(self.text):
                out.append(self.text[self.pos])
                self.pos += 1
            elif char == '"':
                break
            else:
                out.append(char)
        return "".join(out)

    def _bare_value(self) -> str:
        """An unquoted value: up to the next comma or space (lenient: ``/`` and ``:`` too)."""
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in "," + _SPACE:
            self.pos += 1
        return self.text[start : self.pos]

    def _token68_follows(self) -> bool:
        """Whether a token68 credential (``abc==`` then end or comma) starts at ``pos``."""
        end = self.pos
        while end < len(self.text) and self.text[end] in _TOKEN68:
            end += 1
        if end == self.pos:
            return False
        while end < len(self.text) and self.text[end] == "=":
            end += 1
        rest = end
        while rest < len(self.text) and self.text[rest] in _SPACE:
            rest += 1
        ends = rest == len(self.text) or self.text[rest] == ","
        return ends and "=" not in self.text[self.pos : end].rstrip("=")

    def challenges(self) -> list[Challenge]:
        found: list[Challenge] = []
        while True:
            self._skip(_SPACE + ",")
            if self.pos >= len(self.text):
                return found
            scheme = self._token()
            if not scheme:
                self.pos += 1  # not a challenge: skip the character
                continue
            if self._at("="):
                # ``name=value`` with no scheme before it: a stray parameter, skipped.
                self.pos += 1
                self._skip(_SPACE)
                if self._at('"'):
                    self._quoted()
                else:
                    self._bare_value()
                continue
            self._skip(_SPACE)
            if self._token68_follows():
                self._token(_TOKEN68)
                self._skip("=")
                found.append(Challenge(scheme.lower()))
                continue
            found.append(Challenge(scheme.lower(), self._params()))

    def _params(self) -> tuple[tuple[str, str], ...]:
        params: list[tuple[str, str]] = []
        while True:
            mark = self.pos
            self._skip(_SPACE + ",")
            name = self._token()
            self._skip(_SPACE)
            if not name or not self._at("="):
                # The next challenge's scheme (or the end, or junk): leave it for the caller.
                self.pos = mark
                return tuple(params)
            self.pos += 1
            self._skip(_SPACE)
            value = self._quoted() if self._at('"') else self._bare_value()
            params.append((name.lower(), value))
