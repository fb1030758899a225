"""rules.golang against Go's documented behaviour.

The tables restate Go's own: ``path.Clean``'s examples and ``cleantests``
(src/path/example_test.go, src/path/path_test.go), ``filepath.Match``'s ``matchTests``
(src/path/filepath/match_test.go), the ``unicode.IsSpace`` and ``strings.TrimSpace``
documentation, and the POSIX classes of regexp/syntax's documentation.
"""

from __future__ import annotations

import re
import sys

import pytest

from doit_oci.rules.golang import (
    SPACES,
    BadPattern,
    clean,
    is_space,
    match_regex,
    regexp_class,
    regexp_escape,
    trim_space,
)

# ------------------------------------------------------------------- unicode.IsSpace


def test_is_space_is_gos_set() -> None:
    # Go: '\t', '\n', '\v', '\f', '\r', ' ', U+0085 (NEL), U+00A0 (NBSP), and the other
    # White_Space code points. Python's isspace() also counts U+001C..U+001F, Go does not.
    pythons = {chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()}
    assert set(SPACES) == pythons - set("\x1c\x1d\x1e\x1f")
    assert [c for c in "\t\n\v\f\r \x85\xa0" if not is_space(c)] == []
    assert [c for c in "\x1c\x1d\x1e\x1f\x00\u200bab" if is_space(c)] == []
    assert is_space("\u3000") and is_space("\u2028")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\t\n Hello, Gophers \n\t\r\n", "Hello, Gophers"),  # strings.TrimSpace's example
        ("\x1c x \x1f", "\x1c x \x1f"),
        ("\u3000\x85x\xa0", "x"),
        ("", ""),
    ],
)
def test_trim_space(text: str, expected: str) -> None:
    assert trim_space(text) == expected


# ------------------------------------------------------------------------- path.Clean

CLEAN_EXAMPLES = [  # src/path/example_test.go, ExampleClean
    ("a/c", "a/c"),
    ("a//c", "a/c"),
    ("a/c/.", "a/c"),
    ("a/c/b/..", "a/c"),
    ("/../a/c", "/a/c"),
    ("/../a/b/../././/c", "/a/c"),
    ("", "."),
]
CLEAN_TESTS = [  # src/path/path_test.go, cleantests
    ("", "."),
    ("abc", "abc"),
    ("abc/def", "abc/def"),
    ("a/b/c", "a/b/c"),
    (".", "."),
    ("..", ".."),
    ("../..", "../.."),
    ("../../abc", "../../abc"),
    ("/abc", "/abc"),
    ("/", "/"),
    ("abc/", "abc"),
    ("abc/def/", "abc/def"),
    ("a/b/c/", "a/b/c"),
    ("./", "."),
    ("../", ".."),
    ("../../", "../.."),
    ("/abc/", "/abc"),
    ("abc//def//ghi", "abc/def/ghi"),
    ("//abc", "/abc"),
    ("///abc", "/abc"),
    ("//abc//", "/abc"),
    ("abc//", "abc"),
    ("abc/./def", "abc/def"),
    ("/./abc/def", "/abc/def"),
    ("abc/.", "abc"),
    ("abc/def/ghi/../jkl", "abc/def/jkl"),
    ("abc/def/../ghi/../jkl", "abc/jkl"),
    ("abc/def/..", "abc"),
    ("abc/def/../..", "."),
    ("/abc/def/../..", "/"),
    ("abc/def/../../..", ".."),
    ("/abc/def/../../..", "/"),
    ("abc/def/../../../ghi/jkl/../../../mno", "../../mno"),
    ("abc/./../def", "def"),
    ("abc//./../def", "def"),
    ("abc/../../././../def", "../../def"),
]


@pytest.mark.parametrize(("path", "expected"), CLEAN_EXAMPLES + CLEAN_TESTS)
def test_clean(path: str, expected: str) -> None:
    assert clean(path) == expected
    assert clean(expected) == expected  # as TestClean: a clean path stays as it is


# --------------------------------------------------------------------- filepath.Match

BAD = "bad"
MATCH_TESTS = [  # src/path/filepath/match_test.go, matchTests
    ("abc", "abc", True),
    ("*", "abc", True),
    ("*c", "abc", True),
    ("a*", "a", True),
    ("a*", "abc", True),
    ("a*", "ab/c", False),
    ("a*/b", "abc/b", True),
    ("a*/b", "a/c/b", False),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True),
    ("a*b?c*x", "abxbbxdbxebxczzy", False),
    ("ab[c]", "abc", True),
    ("ab[b-d]", "abc", True),
    ("ab[e-g]", "abc", False),
    ("ab[^c]", "abc", False),
    ("ab[^b-d]", "abc", False),
    ("ab[^e-g]", "abc", True),
    ("a\\*b", "a*b", True),
    ("a\\*b", "ab", False),
    ("a?b", "a☺b", True),
    ("a[^a]b", "a☺b", True),
    ("a???b", "a☺b", False),
    ("a[^a][^a][^a]b", "a☺b", False),
    ("[a-ζ]*", "α", True),
    ("*[a-ζ]", "A", False),
    ("a?b", "a/b", False),
    ("a*b", "a/b", False),
    ("[\\]a]", "]", True),
    ("[\\-]", "-", True),
    ("[x\\-]", "x", True),
    ("[x\\-]", "-", True),
    ("[x\\-]", "z", False),
    ("[\\-x]", "x", True),
    ("[\\-x]", "-", True),
    ("[\\-x]", "a", False),
    ("[]a]", "]", BAD),
    ("[-]", "-", BAD),
    ("[x-]", "x", BAD),
    ("[x-]", "-", BAD),
    ("[x-]", "z", BAD),
    ("[-x]", "x", BAD),
    ("[-x]", "-", BAD),
    ("[-x]", "a", BAD),
    ("\\", "a", BAD),
    ("[a-b-c]", "a", BAD),
    ("[", "a", BAD),
    ("[^", "a", BAD),
    ("[^bc", "a", BAD),
    ("a[", "a", BAD),
    ("a[", "ab", BAD),
    ("a[", "x", BAD),
    ("a/b[", "x", BAD),
    ("*x", "xxx", True),
]
MORE_MATCH_TESTS = [  # read off match.go
    ("[z-a]", "m", False),  # a backwards range is no error: it matches nothing
    ("[^z-a]", "m", True),
    ("[*]", "*", True),  # a star inside a class is a character
    ("a**b", "axyb", True),
    ("*", "", True),
    ("", "", True),
    ("", "a", False),
    ("[^a]", "/", True),  # only * and ? stay out of "/"
    # each chunk after a star takes the first place it fits, and then stays there
    ("*a[^q]*b", "aa/b", False),
    ("*a[^q]*b", "xa/b", True),
    ("a*", "a\nb", True),
]


@pytest.mark.parametrize(("pattern", "name", "expected"), MATCH_TESTS + MORE_MATCH_TESTS)
def test_match(pattern: str, name: str, expected: bool | str) -> None:
    if expected == BAD:
        with pytest.raises(BadPattern):
            match_regex(pattern)
    else:
        assert (match_regex(pattern).match(name) is not None) is expected


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("a[", "character class is missing its closing ']'"),
        ("[\\", "character class is missing its closing ']'"),
        ("[]a]", "unescaped ']' in a character class"),
        ("[x-]", "unescaped ']' in a character class"),
        ("[a-b-c]", "unescaped '-' in a character class"),
        ("x\\", "trailing backslash escapes nothing"),
        ("ok*[", "character class is missing its closing ']'"),  # after a star too
    ],
)
def test_bad_match_patterns_say_why(pattern: str, message: str) -> None:
    with pytest.raises(BadPattern) as caught:
        match_regex(pattern)
    assert str(caught.value) == message


# ---------------------------------------------------------------------- regexp/syntax

POSIX = {  # regexp/syntax's documentation: [[:name:]] == the class shown
    "alnum": "[0-9A-Za-z]",
    "alpha": "[A-Za-z]",
    "ascii": "[\\x00-\\x7F]",
    "blank": "[\\t ]",
    "cntrl": "[\\x00-\\x1F\\x7F]",
    "digit": "[0-9]",
    "graph": "[!-~]",
    "lower": "[a-z]",
    "print": "[ -~]",
    "punct": "[!-/:-@\\[-`{-~]",
    "space": "[\\t\\n\\v\\f\\r ]",
    "upper": "[A-Z]",
    "word": "[0-9A-Za-z_]",
    "xdigit": "[0-9A-Fa-f]",
}
SAMPLE = [chr(c) for c in range(0x100)] + ["\u3000", "é", "\U0010ffff"]


@pytest.mark.parametrize("name", sorted(POSIX))
def test_posix_classes(name: str) -> None:
    documented = re.compile(POSIX[name])
    for text, negated in ((f"[[:{name}:]]", False), (f"[[:^{name}:]]", True)):
        regex, end = regexp_class(text, 0)
        assert end == len(text)
        ours = re.compile(regex)
        wrong = [
            c
            for c in SAMPLE
            if bool(ours.fullmatch(c)) != (bool(documented.fullmatch(c)) != negated)
        ]
        assert wrong == []


@pytest.mark.parametrize(
    ("text", "inside", "outside"),
    [
        ("[]a]", "]a", "b["),  # a leading ] is a character
        ("[a-]", "a-", "b"),  # so is a trailing -
        ("[^a-c]", "dz/", "abc"),
        ("[\\]\\-]", "]-", "\\"),
        ("[a[:digit:]]", "a5", "b:"),
    ],
)
def test_regexp_class(text: str, inside: str, outside: str) -> None:
    regex, end = regexp_class(text + "rest", 0)
    assert end == len(text)
    ours = re.compile(regex)
    assert [c for c in inside if not ours.fullmatch(c)] == []
    assert [c for c in outside if ours.fullmatch(c)] == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[a", "character class is missing its closing ']'"),
        ("[z-a]", "character range 'z'-'a' runs backwards (Docker fails the build on it)"),
        ("[[:nope:]]", "invalid character class '[:nope:]'"),
        ("[\\d]", "escape '\\d' means something else"),
    ],
)
def test_bad_regexp_classes(text: str, message: str) -> None:
    with pytest.raises(BadPattern, match=re.escape(message)):
        regexp_class(text, 0)


def test_regexp_escape() -> None:
    assert [regexp_escape(f"\\{c}", 0) for c in ".*+?()|[]{}^$\\/-"] == list(".*+?()|[]{}^$\\/-")
    for text, message in (("\\", "trailing"), ("\\b", "means something else"), ("\\é", "rejected")):
        with pytest.raises(BadPattern, match=message):
            regexp_escape(text, 0)
