"""Table-driven tests of rules.argsplit against BuildKit's instruction parser behaviour
(``parseWords``, ``parseNameVal``, ``parseMaybeJSON`` of parser/line_parsers.go).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from doit_oci.rules.argsplit import split_json_or_shell, split_key_values, split_raw_words
from doit_oci.rules.shellwords import ExpandError, expand_word


@pytest.mark.parametrize(
    "call", [lambda: split_raw_words("x", "/"), lambda: split_key_values("a=b", "/")]
)
def test_invalid_escape_token(call: Callable[[], object]) -> None:
    with pytest.raises(ExpandError) as info:
        call()
    assert "invalid escape token '/' does not match ` or \\" in str(info.value)


@pytest.mark.parametrize(
    ("text", "escape", "expected"),
    [
        ("a b\tc", "\\", ["a", "b", "c"]),
        ("  ", "\\", []),
        ("k='v 2' k3=\"a b\"", "\\", ["k='v 2'", 'k3="a b"']),
        (r"a\ b c", "\\", [r"a\ b", "c"]),
        (r'a="x \" y" b', "\\", [r'a="x \" y"', "b"]),
        (r"a='x \' b", "\\", [r"a='x \'", "b"]),
        ("a=b\\", "\\", ["a=b"]),
        ('a="b\\', "\\", ['a="b']),
        ('a="b c', "\\", ['a="b c']),
        ("a` b c", "`", ["a` b", "c"]),
        (r"a\ b", "`", ["a\\", "b"]),
    ],
)
def test_split_raw_words(text: str, escape: str, expected: list[str]) -> None:
    assert split_raw_words(text, escape) == expected


@pytest.mark.parametrize(
    ("text", "escape", "expected"),
    [
        (
            "k=v k2='v 2' k3=\"a b\"",
            "\\",
            [("k", "v"), ("k2", "'v 2'"), ("k3", '"a b"')],
        ),
        ("KEY value with spaces", "\\", [("KEY", "value with spaces")]),
        ("  KEY    spaced   value  ", "\\", [("KEY", "spaced   value")]),
        ("KEY\tvalue", "\\", [("KEY", "value")]),
        ('KEY "quoted value"', "\\", [("KEY", '"quoted value"')]),
        ("KEY b=c d", "\\", [("KEY", "b=c d")]),
        ("a=", "\\", [("a", "")]),
        ("a=\"\" b=''", "\\", [("a", '""'), ("b", "''")]),
        ("a=b=c", "\\", [("a", "b=c")]),
        (r"a=x\ y b=2", "\\", [("a", r"x\ y"), ("b", "2")]),
        (r'a="x \" y" b=1', "\\", [("a", r'"x \" y"'), ("b", "1")]),
        ("a=x` y b=2", "`", [("a", "x` y"), ("b", "2")]),
        ('"a b"=c', "\\", [('"a b"', "c")]),
        ("", "\\", []),
        (" \t ", "\\", []),
    ],
)
def test_split_key_values(text: str, escape: str, expected: list[tuple[str, str]]) -> None:
    assert split_key_values(text, escape) == expected


def test_split_key_values_unquoted_space_in_default_splits() -> None:
    # The parser splits before expansion, so an unquoted space ends the pair.
    with pytest.raises(ExpandError) as info:
        split_key_values("a=$B b=${C:-d e}x")
    assert "can't find = in 'e}x'" in str(info.value)


def test_split_key_values_then_expand() -> None:
    pairs = split_key_values("k2='v 2' k3=\"$A b\" k4=${U:-x}")
    env = {"A": "a"}
    assert [(k, expand_word(v, env)) for k, v in pairs] == [
        ("k2", "v 2"),
        ("k3", "a b"),
        ("k4", "x"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("A", "missing value: 'A' has no '=' so it is the legacy 'KEY value' form"),
        ("  A  ", "missing value: 'A' has no '='"),
        ("=v", "empty key in '=v': names can not be blank"),
        ("a=1 =2", "empty key in '=2': names can not be blank"),
        ("a=1 b", "syntax error - can't find = in 'b'. Must be of the form: name=value"),
        ("x", "must have two arguments"),
    ],
)
def test_split_key_values_errors(text: str, message: str) -> None:
    with pytest.raises(ExpandError) as info:
        split_key_values(text)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('["echo", "hi there"]', ["echo", "hi there"]),
        ('  \t["a"]  ', ["a"]),
        ("[]", []),
        ('["a\\u00e9", "\\"q\\""]', ["aé", '"q"']),
        ('["\\ud800"]', ["\ufffd"]),
        ("echo hi", None),
        ("", None),
        ("[", None),
        ('["a",]', None),
        ('["a"] x', None),
        ("['a']", None),
        ("[NaN]", None),
        ('x ["a"]', None),
        ('{"a": 1}', None),
    ],
)
def test_split_json_or_shell(text: str, expected: list[str] | None) -> None:
    assert split_json_or_shell(text) == expected


@pytest.mark.parametrize("text", ["[1, 2]", '["a", null]', '[["a"]]', '["a", {"b": "c"}]'])
def test_split_json_or_shell_non_strings(text: str) -> None:
    with pytest.raises(ExpandError) as info:
        split_json_or_shell(text)
    assert "arrays must be comprised of strings only" in str(info.value)
