"""Dockerfile instruction arguments split as written, before any expansion.

An independent Python rendering of the argument splitting done by BuildKit's instruction
parser (``frontend/dockerfile/parser/line_parsers.go``); the words it gives are expanded
afterwards with ``rules.shellwords``. Pure: no I/O, stdlib only.

* :func:`split_raw_words` -- ``parseWords``: split on whitespace, quotes and escapes kept.
* :func:`split_key_values` -- ``parseNameVal``: ``ENV`` / ``LABEL`` arguments, values raw.
* :func:`split_json_or_shell` -- ``parseMaybeJSON``: exec form (JSON array) or shell form.
"""

from __future__ import annotations

import json
import re

from doit_oci.rules.golang import SPACES, is_space
from doit_oci.rules.shellwords import ExpandError, check_escape

__all__ = ["split_json_or_shell", "split_key_values", "split_raw_words"]

# The parser's reWhitespace, which splits the legacy "KEY value" form (no newline in it).
_LEGACY_SEPARATOR = re.compile(r"[\t\v\f\r ]+")
_SURROGATES = re.compile("[\ud800-\udfff]")


def split_raw_words(text: str, escape: str = "\\") -> list[str]:
    """Split on unquoted whitespace, keeping quotes and escapes (parser ``parseWords``).

    Never fails: an unterminated quote runs to the end and is reported when the word is
    expanded.  An escape character at the very end of the text is dropped.
    """
    check_escape(escape)
    words: list[str] = []
    word: list[str] = []
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        i += 1
        if quote:
            if ch == quote:
                quote = ""
            elif ch == escape and quote != "'":
                if i == len(text):
                    continue
                word.append(ch)
                ch = text[i]
                i += 1
            word.append(ch)
            continue
        if is_space(ch):
            if word:
                words.append("".join(word))
                word = []
            continue
        if ch in "'\"":
            quote = ch
        elif ch == escape:
            if i == len(text):
                continue
            word.append(ch)
            ch = text[i]
            i += 1
        word.append(ch)
    if word:
        words.append("".join(word))
    return words


def split_key_values(text: str, escape: str = "\\") -> list[tuple[str, str]]:
    """Split ``ENV`` / ``LABEL`` arguments into raw ``(key, value)`` pairs (``parseNameVal``).

    ``k=v k2='v 2'`` gives ``[("k", "v"), ("k2", "'v 2'")]``: quotes and escapes stay in
    place so that the caller expands each part with :func:`expand_word`.  When the first word
    has no ``=``, the legacy form applies: ``KEY value with spaces`` is one pair, split at the
    first blank.  Empty (or all-blank) text gives ``[]``.
    """
    rest = text.strip(SPACES)
    words = split_raw_words(rest, escape)
    if not words:
        return []
    if "=" not in words[0]:
        parts = _LEGACY_SEPARATOR.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise ExpandError(
                f"missing value: {parts[0]!r} has no '=' so it is the legacy 'KEY value' form, "
                "which must have two arguments"
            )
        return [(parts[0], parts[1])]
    pairs: list[tuple[str, str]] = []
    for word in words:
        if "=" not in word:
            raise ExpandError(
                f"syntax error - can't find = in {word!r}. Must be of the form: name=value"
            )
        key, value = word.split("=", 1)
        if not key:
            raise ExpandError(f"empty key in {word!r}: names can not be blank")
        pairs.append((key, value))
    return pairs


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def split_json_or_shell(text: str) -> list[str] | None:
    """The exec-form arguments if ``text`` is a JSON array of strings, else ``None``.

    As in ``parseMaybeJSON``: after leading whitespace the text must start with ``[`` and be
    valid JSON.  A valid JSON array holding anything but strings is an error in Docker, so it
    raises :class:`ExpandError` rather than falling back to the shell form.
    """
    rest = text.lstrip(SPACES)
    if not rest.startswith("["):
        return None
    try:
        value: object = json.loads(rest, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, list):
        return None
    items: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise ExpandError(
                "when using JSON array syntax, arrays must be comprised of strings only"
            )
        # Go decodes a lone surrogate escape to U+FFFD.
        items.append(_SURROGATES.sub("\ufffd", item))
    return items
