"""Table-driven tests of rules.shellwords against BuildKit's lexer behaviour.

Many rows restate, as Python data, cases of BuildKit's shell test data (envVarTest, the
words test and lex_test.go); the rest cover the remaining branches.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from doit_oci.rules.shellwords import ExpandError, empty_variables, expand_word, expand_words

# The environment BuildKit's envVarTest runs with.
ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""}

UNSUPPORTED = "(supported: '-', '+', '?', each optionally after ':')"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        # quotes and escapes (envVarTest)
        ("hello", "hello"),
        ("he'll'o", "hello"),
        (r"he\'llo", "he'llo"),
        (r"abc\tdef", "abctdef"),
        (r'"abc\tdef"', r"abc\tdef"),
        (r'"abc\\tdef"', r"abc\tdef"),
        (r"'abc\tdef'", r"abc\tdef"),
        ("hello\\", "hello"),
        ("hello\\\\", "hello\\"),
        ('"hel\'lo"', "hel'lo"),
        ("'hello\\'", "hello\\"),
        (r"'hello\there'", r"hello\there"),
        (r"'hello\\there'", r"hello\\there"),
        ("\"''\"", "''"),
        ("'\"hello\"'", '"hello"'),
        # $NAME and literal dollars (envVarTest)
        ("$.", "$."),
        ("$1", ""),
        ("he$1x", "hex"),
        ("he$.x", "he$.x"),
        ("he$pwd.", "he."),
        ("he$PWD", "he/home"),
        (r"he\$PWD", "he$PWD"),
        (r"he\\$PWD", r"he\/home"),
        (r'"he\$PWD"', "he$PWD"),
        (r'"he\\$PWD"', r"he\/home"),
        (r"'he\$PWD'", r"he\$PWD"),
        ('"$PWD"', "/home"),
        ("'$PWD'", "$PWD"),
        (r"'\$PWD'", r"\$PWD"),
        ("\"he'$PWD'\"", "he'/home'"),
        ("$KOREAN", "한국어"),
        ("안녕$KOREAN", "안녕한국어"),
        ("안'녕'하세요", "안녕하세요"),
        (r"안녕\'하세요", "안녕'하세요"),
        (r'"안녕\t하세요"', r"안녕\t하세요"),
        # ${NAME} and escaped braces (envVarTest)
        (r"\${}", "${}"),
        (r"\${}aaa", "${}aaa"),
        (r"he\${}xx", "he${}xx"),
        ("he${hi}xx", "hexx"),
        ("he${PWD}", "he/home"),
        ("'he${XX}'", "he${XX}"),
        ('"he${PWD}"', "he/home"),
        ("${aaa}}", "}"),
        # defaults and alternatives, nested (envVarTest)
        ("he${XXX:-000}xx", "he000xx"),
        ("he${PWD:-000}xx", "he/homexx"),
        ("he${XXX:-$PWD}xx", "he/homexx"),
        ("he${XXX:-${PWD:-yyy}}xx", "he/homexx"),
        ("he${XXX:-${YYY:-yyy}}xx", "heyyyxx"),
        ("he${XXX:+${PWD}}xx", "hexx"),
        ("he${PWD:+${XXX}}xx", "hexx"),
        ("he${PWD:+${SHELL}}xx", "hebashxx"),
        ("he${XXX:+000}xx", "hexx"),
        ("he${PWD:+000}xx", "he000xx"),
        ("he${PWD:+${PWD}:}xx", "he/home:xx"),
        (r"he${XXX:-\$PWD:}xx", "he$PWD:xx"),
        (r"he${XXX:-\${PWD}z}xx", "he${PWDz}xx"),
        ("${aaa:-bbb}}", "bbb}"),
        ("${aaa:-${bbb:-ccc}}", "ccc"),
        ("${aaa:-bbb {foo}", "bbb {foo"),
        # whitespace is not a separator for a single word
        ("a  b\tc", "a  b\tc"),
        ("${XXX:-a  b}", "a  b"),
        # a "$" that starts no name, and shell special parameters (names of their own)
        ("$", "$"),
        ("a$", "a$"),
        ("$ a", "$ a"),
        ("$/x", "$/x"),
        ("$@$$$#$?$!$*$-x", "x"),
        ("${-}", ""),
        ("$123abc", "abc"),
        ("$A_1.b", ".b"),
        # quotes protect the closing brace of a default; escapes work inside it
        ('${XXX:-"}"}', "}"),
        ("${XXX:-'a}b'}", "a}b"),
        (r"${XXX:-\}}", "}"),
        ('"${XXX:-"a b"}"', "a b"),
        # inside double quotes the escape only escapes " $ and itself
        (r'"a\"b"', 'a"b'),
        (r'"a\b"', r"a\b"),
        (r'"a\'b"', r"a\'b"),
        ('"a`b"', "a`b"),
        ('"a\\\nb"', "a\\\nb"),
    ],
)
def test_expand_word(source: str, expected: str) -> None:
    assert expand_word(source, ENV) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (r"he`$PWD", "he$PWD"),
        (r"he\$PWD", r"he\/home"),
        (r"C:\Windows\System32", r"C:\Windows\System32"),
        ("a``b", "a`b"),
        ("a` b", "a b"),
        ("hello`", "hello"),
        ('"a`"b"', 'a"b'),
        ('"a`$PWD"', "a$PWD"),
        ('"a``b"', "a`b"),
        ('"a`xb"', "a`xb"),
        (r'"a\"', "a\\"),
        ("'a`'", "a`"),
        ("${XXX:-`}}", "}"),
        ("${PWD}`${PWD}", "/home${PWD}"),
    ],
)
def test_expand_word_backtick_escape(source: str, expected: str) -> None:
    assert expand_word(source, ENV, escape="`") == expected


MODIFIER_ENV = {"SET": "value", "EMPTY": "", "ARG": "x"}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("${SET-w}|${EMPTY-w}|${UNSET-w}", "value||w"),
        ("${SET:-w}|${EMPTY:-w}|${UNSET:-w}", "value|w|w"),
        ("${SET+w}|${EMPTY+w}|${UNSET+w}", "w|w|"),
        ("${SET:+w}|${EMPTY:+w}|${UNSET:+w}", "w||"),
        ("${SET?m}|${EMPTY?m}", "value|"),
        ("${SET:?m}", "value"),
        ("${UNSET:-}", ""),
        ("${SET:-}", "value"),
        ("${UNSET-$SET and ${ARG}}", "value and x"),
        ("${UNSET:-${EMPTY:-${ARG}}}", "x"),
        ("${SET:+${UNSET:-in}}", "in"),
    ],
)
def test_expand_word_modifiers(source: str, expected: str) -> None:
    assert expand_word(source, MODIFIER_ENV) == expected


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("${VAR:?message here$ARG}", "VAR: message herex"),
        ("${EMPTY:?message here$ARG}", "EMPTY: message herex"),
        ("${UNSET?message here$ARG}", "UNSET: message herex"),
        ("${A:?is required}", "A: is required"),
        ("${UNSET?}", "UNSET: is not allowed to be unset"),
        ("${UNSET:?}", "UNSET: is not allowed to be unset"),
        ("${EMPTY:?}", "EMPTY: is not allowed to be empty"),
        ("x ${UNSET?} y", "failed to process 'x ${UNSET?} y': UNSET: is not allowed"),
    ],
)
def test_expand_word_required(source: str, message: str) -> None:
    with pytest.raises(ExpandError) as info:
        expand_word(source, MODIFIER_ENV)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        # unterminated quotes (envVarTest)
        ("he'llo", "unterminated quote: missing closing single-quote (')"),
        (r"he\\'llo", "unterminated quote: missing closing single-quote (')"),
        ('"hello', 'unterminated quote: missing closing double-quote (")'),
        ('"hello\\"', 'unterminated quote: missing closing double-quote (")'),
        ('"hello\\', 'unterminated quote: missing closing double-quote (")'),
        ("'hello", "unterminated quote: missing closing single-quote (')"),
        ("안'녕하세요", "unterminated quote: missing closing single-quote (')"),
        # missing names (envVarTest)
        ("${}", "bad substitution ${}: missing variable name"),
        ("he${}xx", "bad substitution ${}: missing variable name"),
        ("${{aaa}", "bad substitution ${{aaa}: missing variable name"),
        ("${{aaa:-bbb}", "bad substitution ${{aaa:-bbb}: missing variable name"),
        ("${:}", "bad substitution ${:}: missing variable name"),
        ("${:-bbb}", "bad substitution ${:-bbb}: missing variable name"),
        ("${:+bbb}", "bad substitution ${:+bbb}: missing variable name"),
        ("${XXX:-${}}", "bad substitution ${}: missing variable name"),
        # unterminated braces (envVarTest)
        ("he${PWD", "unterminated substitution ${PWD: missing '}'"),
        ("${aaa", "unterminated substitution ${aaa: missing '}'"),
        ("${", "unterminated substitution ${: missing '}'"),
        ("${aaa:", "unterminated substitution ${aaa:: missing '}'"),
        ("${aaa:-bbb", "unterminated substitution ${aaa:-bbb: missing '}'"),
        ("${aaa:-bbb ${foo}", "unterminated substitution ${aaa:-bbb ${foo}: missing '}'"),
        ("${aaa:-'b}", "unterminated substitution ${aaa:-'b}: missing '}'"),
        # unsupported modifiers (envVarTest and bash forms BuildKit may know, we do not)
        ("he${.}", f"bad substitution ${{.}}: unsupported modifier '.' {UNSUPPORTED}"),
        ("he${XXX:YYY}", "bad substitution ${XXX:YYY}: unsupported modifier ':Y'"),
        ("${A:x}", "bad substitution ${A:x}: unsupported modifier ':x'"),
        ("he${PWD:=000}xx", "bad substitution ${PWD:=000}: unsupported modifier ':='"),
        ("${PWD=000}", "bad substitution ${PWD=000}: unsupported modifier '='"),
        ("${A:}", "bad substitution ${A:}: unsupported modifier ':'"),
        ("${A#x}", "bad substitution ${A#x}: unsupported modifier '#'"),
        ("${A##*/}", "bad substitution ${A##*/}: unsupported modifier '#'"),
        ("${A%x}", "bad substitution ${A%x}: unsupported modifier '%'"),
        ("${A%%.*}", "bad substitution ${A%%.*}: unsupported modifier '%'"),
        ("${A/x/y}", "bad substitution ${A/x/y}: unsupported modifier '/'"),
        ("${A//x/y}", "bad substitution ${A//x/y}: unsupported modifier '/'"),
        ("${A:1:2}", "bad substitution ${A:1:2}: unsupported modifier ':1'"),
        ("${A^^}", "bad substitution ${A^^}: unsupported modifier '^'"),
        ("${A,,} more", "bad substitution ${A,,}: unsupported modifier ','"),
        ("${A[0]}", "bad substitution ${A[0]}: unsupported modifier '['"),
        (r"${A^\}x}", r"bad substitution ${A^\}x}: unsupported modifier '^'"),
        ("${#A}", "bad substitution ${#A}: unsupported modifier '#'"),
        ("${!A}", "bad substitution ${!A}: unsupported modifier '!'"),
        ("${A#x", "unterminated substitution ${A#x: missing '}'"),
        # the whole input is named
        ("x'y", 'failed to process "x\'y": unterminated quote'),
    ],
)
def test_expand_word_errors(source: str, message: str) -> None:
    with pytest.raises(ExpandError) as info:
        expand_word(source, ENV)
    assert message in str(info.value)


# The environment of BuildKit's words test.
WORDS_ENV = {
    "hi": "hi",
    "space": "abc  def",
    "leading": "  ab c",
    "trailing": "ab c   ",
    "EMPTY": "",
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("hello", ["hello"]),
        ("hello${hi}bye", ["hellohibye"]),
        ("hello${nothing}bye", ["hellobye"]),
        ("hello${space}bye", ["helloabc", "defbye"]),
        ('hello"${space}"bye', ["helloabc  defbye"]),
        ('hello "${space}"bye', ["hello", "abc  defbye"]),
        ("hello${leading}def", ["hello", "ab", "cdef"]),
        ('hello"${leading}" def', ["hello  ab c", "def"]),
        ('hello"${leading}"', ["hello  ab c"]),
        ("hello${leading}", ["hello", "ab", "c"]),
        ("hello${trailing}", ["helloab", "c"]),
        ("hello${trailing}d", ["helloab", "c", "d"]),
        ('hello"${trailing}"d', ["helloab c   d"]),
        ('hel"lo${trailing}"', ["helloab c   "]),
        ('hello" there  "', ["hello there  "]),
        ("hello there     ", ["hello", "there"]),
        ("  hello \t\n there  ", ["hello", "there"]),
        (r"hello\ there", ["hello there"]),
        (r"hello\" there", ['hello"', "there"]),
        (r'hello"\\there"', [r"hello\there"]),
        (r'hello"\there"', [r"hello\there"]),
        (r"hello'\\there'", [r"hello\\there"]),
        (r"hello'\there'", [r"hello\there"]),
        ("hello'$there'", ["hello$there"]),
        ("'a b' \"c d\"", ["a b", "c d"]),
        # empty words are dropped: from unquoted expansions and, as in lex.go, quoted ones
        ("a $EMPTY b", ["a", "b"]),
        ("$EMPTY", []),
        ('"$EMPTY"', []),
        ('a "" b', ["a", "b"]),
        ('""', []),
        ("''", []),
        ('x""', ["x"]),
        ('" "', [" "]),
        ("", []),
        # a default word is split like any unquoted expansion, even if quoted inside
        ('${X:-"a b"}', ["a", "b"]),
        ('"${X:-a b}"', ["a b"]),
    ],
)
def test_expand_words(source: str, expected: list[str]) -> None:
    assert expand_words(source, WORDS_ENV) == expected


def test_expand_words_backtick_escape() -> None:
    assert expand_words("a` b c``d C:\\x", {}, escape="`") == ["a b", "c`d", "C:\\x"]


def test_expand_words_error() -> None:
    with pytest.raises(ExpandError) as info:
        expand_words('hello" there', WORDS_ENV)
    assert 'unterminated quote: missing closing double-quote (")' in str(info.value)


@pytest.mark.parametrize(
    "call",
    [
        lambda: expand_word("x", {}, "/"),
        lambda: expand_words("x", {}, "/"),
    ],
)
def test_invalid_escape_token(call: Callable[[], object]) -> None:
    with pytest.raises(ExpandError) as info:
        call()
    assert "invalid escape token '/' does not match ` or \\" in str(info.value)


@pytest.mark.parametrize(
    ("word", "names"),
    [
        ("${BINARY}", ["BINARY"]),
        ("$A$B${A}", ["A", "B"]),  # in order, each once
        ("${SET}/${EMPTY}", ["EMPTY"]),
        ("${UNSET:-x}", ["UNSET"]),  # looked up, even though the default fills in
        ("'$A'", []),  # quoted: never looked up
        ("\\$A", []),
        ("plain", []),
        ("$A${B", ["A"]),  # a malformed word: those before the mistake
    ],
)
def test_empty_variables(word: str, names: list[str]) -> None:
    assert empty_variables(word, {"SET": "x", "EMPTY": ""}) == names
