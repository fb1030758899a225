"""Table tests for rules.dockerignore.

Most expectations restate moby/patternmatcher's and BuildKit's own test tables (TestMatches,
TestMatch, TestCompile, TestReadAll) and the examples of Docker's .dockerignore documentation;
the rest pin down behaviour read from their sources.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from doit_oci.rules.dockerignore import DockerIgnore, IgnoreError, Pattern, load

# --------------------------------------------------------------- patternmatcher TestMatches

# (pattern, path, result): "exact" = the pattern matches the path itself; "inexact" = it only
# matches a parent directory; "fail" = the path is not excluded.
SINGLE_PATTERN_CASES = [
    ("**", "file", "exact"),
    ("**", "file/", "exact"),
    ("**/", "file", "exact"),
    ("**/", "file/", "exact"),
    ("**", "/", "exact"),
    ("**/", "/", "exact"),
    ("**", "dir/file", "exact"),
    ("**/", "dir/file", "exact"),
    ("**", "dir/file/", "exact"),
    ("**/", "dir/file/", "exact"),
    ("**/**", "dir/file", "exact"),
    ("**/**", "dir/file/", "exact"),
    ("dir/**", "dir/file", "exact"),
    ("dir/**", "dir/file/", "exact"),
    ("dir/**", "dir/dir2/file", "exact"),
    ("dir/**", "dir/dir2/file/", "exact"),
    ("**/dir", "dir", "exact"),
    ("**/dir", "dir/file", "inexact"),
    ("**/dir2/*", "dir/dir2/file", "exact"),
    ("**/dir2/*", "dir/dir2/file/", "inexact"),
    ("**/dir2/**", "dir/dir2/dir3/file", "exact"),
    ("**/dir2/**", "dir/dir2/dir3/file/", "exact"),
    ("**file", "file", "exact"),
    ("**file", "dir/file", "exact"),
    ("**/file", "dir/file", "exact"),
    ("**file", "dir/dir/file", "exact"),
    ("**/file", "dir/dir/file", "exact"),
    ("**/file*", "dir/dir/file", "exact"),
    ("**/file*", "dir/dir/file.txt", "exact"),
    ("**/file*txt", "dir/dir/file.txt", "exact"),
    ("**/file*.txt", "dir/dir/file.txt", "exact"),
    ("**/file*.txt*", "dir/dir/file.txt", "exact"),
    ("**/**/*.txt", "dir/dir/file.txt", "exact"),
    ("**/**/*.txt2", "dir/dir/file.txt", "fail"),
    ("**/*.txt", "file.txt", "exact"),
    ("**/**/*.txt", "file.txt", "exact"),
    ("a**/*.txt", "a/file.txt", "exact"),
    ("a**/*.txt", "a/dir/file.txt", "exact"),
    ("a**/*.txt", "a/dir/dir/file.txt", "exact"),
    ("a/*.txt", "a/dir/file.txt", "fail"),
    ("a/*.txt", "a/file.txt", "exact"),
    ("a/*.txt**", "a/file.txt", "exact"),
    ("a[b-d]e", "ae", "fail"),
    ("a[b-d]e", "ace", "exact"),
    ("a[b-d]e", "aae", "fail"),
    ("a[^b-d]e", "aze", "exact"),
    (".*", ".foo", "exact"),
    (".*", "foo", "fail"),
    ("abc.def", "abcdef", "fail"),
    ("abc.def", "abc.def", "exact"),
    ("abc.def", "abcZdef", "fail"),
    ("abc?def", "abcZdef", "exact"),
    ("abc?def", "abcdef", "fail"),
    ("**/foo/bar", "foo/bar", "exact"),
    ("**/foo/bar", "dir/foo/bar", "exact"),
    ("**/foo/bar", "dir/dir2/foo/bar", "exact"),
    ("abc/**", "abc", "fail"),
    ("abc/**", "abc/def", "exact"),
    ("abc/**", "abc/def/ghi", "exact"),
    ("**/.foo", ".foo", "exact"),
    ("**/.foo", "bar.foo", "fail"),
    ("a(b)c/def", "a(b)c/def", "exact"),
    ("a(b)c/def", "a(b)c/xyz", "fail"),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", "exact"),
    (
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        "exact",
    ),
    ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", "exact"),
    ("a\\\\", "a\\", "exact"),
    ("a\\*b", "a*b", "exact"),
]


@pytest.mark.parametrize(("pattern", "path", "result"), SINGLE_PATTERN_CASES)
def test_patternmatcher_single_pattern(pattern: str, path: str, result: str) -> None:
    ignore = DockerIgnore.parse(pattern)
    assert len(ignore.patterns) == 1
    assert ignore.patterns[0].matches(path) is (result == "exact")
    assert ignore.excluded(path) is (result != "fail")


MULTI_PATTERN_CASES = [
    (["**", "!util/docker/web"], "util/docker/web/foo", False),
    (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", True),
    (
        ["**", "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl"],
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        False,
    ),
    (["**", "!dist/*.whl"], "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", False),
    # The Matches* unit tests of patternmatcher.
    (["*"], "fileutils.go", True),
    (["*.go"], "fileutils.go", True),
    (["!fileutils.go", "*.go"], "fileutils.go", True),
    (["docs", "!docs/README.md"], "docs/README.md", False),
    (["docs/", "!docs/README.md"], "docs/README.md", False),
    (["docs/*", "!docs/README.md"], "docs/README.md", False),
    (["*.go", "!fileutils.go"], "fileutils.go", False),
    (["*.go"], ".", False),
    ([], "/any/path/there", False),
]


@pytest.mark.parametrize(("patterns", "path", "expected"), MULTI_PATTERN_CASES)
def test_patternmatcher_multiple_patterns(patterns: list[str], path: str, expected: bool) -> None:
    assert DockerIgnore.parse("\n".join(patterns)).excluded(path) is expected


# ----------------------------------------------- patternmatcher TestMatch (filepath.Match)

FILEPATH_MATCH_CASES = [
    ("abc", "abc", True),
    ("*", "abc", True),
    ("*c", "abc", True),
    ("a*", "a", True),
    ("a*", "abc", True),
    ("a*", "ab/c", True),  # through the parent directory "ab"
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
    ("*x", "xxx", True),
]


@pytest.mark.parametrize(("pattern", "path", "expected"), FILEPATH_MATCH_CASES)
def test_filepath_match_semantics(pattern: str, path: str, expected: bool) -> None:
    assert DockerIgnore.parse(pattern).excluded(path) is expected


# ------------------------------------------------------------- patternmatcher TestCompile

COMPILE_CASES = [
    ("*", "regexp", "^[^/]*$"),
    ("file*", "regexp", "^file[^/]*$"),
    ("*file", "regexp", "^[^/]*file$"),
    ("a*/b", "regexp", "^a[^/]*/b$"),
    ("**", "suffix", ""),
    ("**/**", "regexp", "^(.*/)?.*$"),
    ("dir/**", "prefix", ""),
    ("**/dir", "suffix", ""),
    ("**/dir2/*", "regexp", "^(.*/)?dir2/[^/]*$"),
    ("**/dir2/**", "regexp", "^(.*/)?dir2/.*$"),
    ("**file", "suffix", ""),
    ("**/file*txt", "regexp", "^(.*/)?file[^/]*txt$"),
    ("**/**/*.txt", "regexp", "^(.*/)?(.*/)?[^/]*\\.txt$"),
    ("a[b-d]e", "regexp", "^a[b-d]e$"),
    (".*", "regexp", "^\\.[^/]*$"),
    ("abc.def", "exact", ""),
    ("abc?def", "regexp", "^abc[^/]def$"),
    ("**/foo/bar", "suffix", ""),
    ("a(b)c/def", "exact", ""),
    ("a.|)$(}+{bc", "exact", ""),
    ("dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", "exact", ""),
]


@pytest.mark.parametrize(("pattern", "kind", "docker_regex"), COMPILE_CASES)
def test_translation_matches_patternmatcher(pattern: str, kind: str, docker_regex: str) -> None:
    compiled = Pattern(pattern, False, 1)
    assert (compiled.kind, compiled.docker_regex) == (kind, docker_regex)


# ------------------------------------------------------------ documentation and semantics

SEMANTIC_CASES = [
    # Docker documentation examples.
    (["*/temp*"], "somedir/temporary.txt", True),
    (["*/temp*"], "somedir/temp", True),
    (["*/temp*"], "temporary.txt", False),
    (["*/*/temp*"], "somedir/subdir/temporary.txt", True),
    (["*/*/temp*"], "somedir/temporary.txt", False),
    (["temp?"], "tempa", True),
    (["temp?"], "tempab", False),
    (["temp?"], "dir/tempa", False),
    (["**/*.go"], "a.go", True),
    (["**/*.go"], "x/y/a.go", True),
    (["**/*.go"], "x/y/a.goo", False),
    (["*.md", "!README.md"], "README.md", False),
    (["*.md", "!README.md"], "CHANGES.md", True),
    (["*.md", "!README*.md", "README-secret.md"], "README-secret.md", True),
    (["*.md", "!README*.md", "README-secret.md"], "README-public.md", False),
    (["*.md", "README-secret.md", "!README*.md"], "README-secret.md", False),
    (["/foo/bar"], "foo/bar", True),
    (["foo/bar"], "x/foo/bar", False),
    (["bar"], "foo/bar", False),
    (["*", "!src"], "src/main.py", False),
    (["*", "!src"], "docs/index.md", True),
    # `*` and `?` stay inside one component; `**` crosses any number, including none.
    (["*"], "dir/file", True),  # through the parent "dir"
    (["*.txt"], "dir/file.txt", False),
    (["a/**/b"], "a/b", True),
    (["a/**/b"], "a/x/y/b", True),
    (["a/**/b"], "a/x/y/c", False),
    (["a/**"], "a", False),
    (["**/node_modules"], "web/app/node_modules/pkg/index.js", True),
    # Parent matching and exceptions below an excluded directory.
    (["dir"], "dir/sub/file", True),
    (["dir", "!dir/keep"], "dir/keep", False),
    (["dir", "!dir/keep"], "dir/keep/inner.txt", False),
    (["dir", "!dir/keep"], "dir/other", True),
    (["dir/", "!dir/keep", "dir/keep/secret"], "dir/keep/secret", True),
    (["!dir/keep", "dir"], "dir/keep", True),
    # The last matching pattern decides, whether it matches the path or a parent of it.
    (["a/b", "!a"], "a/b", False),
    (["a", "!a/b", "a"], "a/b/c", True),
    # Character classes and escapes.
    (["file[0-9].txt"], "file7.txt", True),
    (["file[0-9].txt"], "fileA.txt", False),
    (["file[^0-9].txt"], "fileA.txt", True),
    (["file[!0-9].txt"], "file!.txt", True),  # "!" does not negate a class in Go
    (["file[!0-9].txt"], "fileA.txt", False),
    (["a[/]b"], "a/b", True),  # a class can match "/"
    (["\\[x\\]"], "[x]", True),
    (["\\[x\\]"], "x", False),
    (["what\\?"], "what?", True),
    (["what\\?"], "whatX", False),
    (["a\\ b"], "a b", True),
    (["[[:digit:]]*"], "7up", True),
    (["[[:digit:]]*"], "up", False),
    (["[[:^digit:]]*"], "up", True),
    # Regex metacharacters are literal.
    (["v1.0+(rc)"], "v1.0+(rc)", True),
    (["v1.0+(rc)"], "v1x0+(rc)", False),
    (["*.tar.gz"], "x.tar.gz", True),
    (["*.tar.gz"], "x.tarxgz", False),
    # Quirks kept from patternmatcher.
    (["**foo"], "barfoo", True),  # a plain suffix test, not "any directories then foo"
    (["foo**"], "foobar/baz", True),  # a plain prefix test
    (["[*]"], "*", False),  # "*" inside [...] is mistranslated by patternmatcher
    (["[*]"], "]", True),
    (["a^b"], "a^b", True),  # compared literally: no wildcard in the pattern
    (["a^b*"], "a^b", False),  # inside an expression "^" anchors, so it never matches
    (["/!important"], "!important", False),  # cleaning turns it into an exception
    (["a/./b/../c"], "a/c", True),
    (["../outside"], "../outside", True),
    # Paths are cleaned like filepath.Clean.
    (["dir"], "dir/", True),
    (["dir/file"], "./dir//file", True),
    (["*"], "", False),
    (["*"], ".", False),
    (["**"], "a\nb", True),
    (["**/x"], "a\nb/x", True),
    (["*/x"], "a\nb/x", True),
    (["a/**/x"], "a/b\nc/x", False),  # Go's "." does not match a newline either
    ([], "anything", False),
]


@pytest.mark.parametrize(("patterns", "path", "expected"), SEMANTIC_CASES)
def test_semantics(patterns: list[str], path: str, expected: bool) -> None:
    assert DockerIgnore.parse("\n".join(patterns)).excluded(path) is expected


# -------------------------------------------------------------------------- reading


def summary(ignore: DockerIgnore) -> list[tuple[str, bool, int]]:
    return [(p.text, p.exclusion, p.line) for p in ignore.patterns]


PARSE_CASES = [
    # BuildKit's TestReadAll, without its two bare "!" lines (tested as errors below).
    (
        "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n",
        [
            ("test1", False, 1),
            ("test2", False, 2),
            ("a/file/here", False, 3),
            ("lastfile", False, 5),
            ("inverted/abs/path", True, 7),
        ],
    ),
    ("", []),
    ("\n\n   \n\t\n", []),
    ("# only\n#comments\n", []),
    ("  # not a comment\n", [("# not a comment", False, 1)]),
    ("a\r\nb\r\n!c\r\n", [("a", False, 1), ("b", False, 2), ("c", True, 3)]),
    ("a\rb\n", [("a\rb", False, 1)]),  # only "\n" ends a line
    ("\ufeff# comment\nx\n", [("x", False, 2)]),
    ("x\n\ufeffy", [("x", False, 1), ("\ufeffy", False, 2)]),  # only the first line's BOM
    ("  spaced  \t\n", [("spaced", False, 1)]),
    ("\u00a0nbsp\u3000\n", [("nbsp", False, 1)]),  # Go trims Unicode spaces
    ("\x1cfs\x1f\n", [("\x1cfs\x1f", False, 1)]),  # ... but not these, unlike str.strip
    ("last-no-newline", [("last-no-newline", False, 1)]),
    (
        "dir/\n./dir2/\n/dir3//x/./y/../z\n",
        [
            ("dir", False, 1),
            ("dir2", False, 2),
            ("dir3/x/z", False, 3),
        ],
    ),
    ("/\n", [("/", False, 1)]),
    ("!  spaced/../name  \n", [("name", True, 1)]),
    ("!.\n", [(".", True, 1)]),
    ("a/..\n", [(".", False, 1)]),
    ("**/\n", [("**", False, 1)]),
]


@pytest.mark.parametrize(("text", "expected"), PARSE_CASES)
def test_parse(text: str, expected: list[tuple[str, bool, int]]) -> None:
    assert summary(DockerIgnore.parse(text)) == expected


BAD_PATTERN_CASES = [
    ("ok\n!\n", 2, "line 2: bad pattern '!': an exception needs a pattern after '!'"),
    ("!  \n", 1, "line 1: bad pattern '!': an exception needs a pattern after '!'"),
    ("!/\n", 1, "line 1: bad pattern '!/': an exception needs a pattern after '!'"),
    ("x\n\n[\n", 3, "line 3: bad pattern '[': character class is missing its closing ']'"),
    ("a[\n", 1, "line 1: bad pattern 'a[': character class is missing its closing ']'"),
    ("[^\n", 1, "line 1: bad pattern '[^': character class is missing its closing ']'"),
    ("[^bc\n", 1, "line 1: bad pattern '[^bc': character class is missing its closing ']'"),
    ("[]a]\n", 1, "line 1: bad pattern '[]a]': unescaped ']' in a character class"),
    ("[-]\n", 1, "line 1: bad pattern '[-]': unescaped '-' in a character class"),
    ("[x-]\n", 1, "line 1: bad pattern '[x-]': unescaped ']' in a character class"),
    ("[-x]\n", 1, "line 1: bad pattern '[-x]': unescaped '-' in a character class"),
    ("[a-b-c]\n", 1, "line 1: bad pattern '[a-b-c]': unescaped '-' in a character class"),
    ("\\\n", 1, "line 1: bad pattern '\\\\': trailing backslash escapes nothing"),
    ("[\\\n", 1, "line 1: bad pattern '[\\\\': character class is missing its closing ']'"),
    # filepath.Match accepts this, but Go's regexp reads "[:alpha:]" as a named class and then
    # finds the outer class unterminated, so Docker fails the build.
    (
        "[[:alpha:]\n",
        1,
        "line 1: bad pattern '[[:alpha:]': character class is missing its closing ']'",
    ),
    ("  !x[\n", 1, "line 1: bad pattern '!x[': character class is missing its closing ']'"),
    (
        "[Local-Only]/\n",
        1,
        (
            "line 1: bad pattern '[Local-Only]/': character range 'l'-'O' runs backwards"
            " (Docker fails the build on it)"
        ),
    ),
    (
        "[[:word:]][[:nope:]]\n",
        1,
        "line 1: bad pattern '[[:word:]][[:nope:]]': invalid character class '[:nope:]'",
    ),
    (
        "\\d\n",
        1,
        (
            "line 1: bad pattern '\\\\d': escape '\\d' means something else to Docker's"
            " regular-expression matcher; drop the backslash"
        ),
    ),
    (
        "\\é\n",
        1,
        (
            "line 1: bad pattern '\\\\é': escape '\\é' is rejected by Docker's"
            " regular-expression matcher"
        ),
    ),
]


@pytest.mark.parametrize(("text", "line", "message"), BAD_PATTERN_CASES)
def test_bad_patterns(text: str, line: int, message: str) -> None:
    with pytest.raises(IgnoreError) as caught:
        DockerIgnore.parse(text)
    assert caught.value.line == line
    assert caught.value.source is None
    assert str(caught.value) == message


def test_pattern_constructor_compiles_and_validates() -> None:
    pattern = Pattern("src/*.py", True, 4)
    assert (pattern.kind, pattern.matches("src/a.py"), pattern.matches("src/a/b.py")) == (
        "regexp",
        True,
        False,
    )
    assert pattern == Pattern("src/*.py", True, 4)
    with pytest.raises(IgnoreError) as caught:
        Pattern("src/[", True, 4)
    assert str(caught.value) == (
        "line 4: bad pattern '!src/[': character class is missing its closing ']'"
    )


def test_empty() -> None:
    assert DockerIgnore().empty is True
    assert DockerIgnore.parse("# nothing\n\n").empty is True
    assert DockerIgnore.parse("x").empty is False


# --------------------------------------------------------------------- may_include_under

MAY_INCLUDE_CASES = [
    (["node_modules"], "node_modules", False),
    (["node_modules"], "node_modules/a/b", False),
    (["node_modules"], "src", True),  # not excluded at all
    (["node_modules", "!node_modules/keep"], "node_modules", True),
    (["node_modules", "!node_modules/keep"], "node_modules/keep", True),  # not excluded
    (["node_modules", "!node_modules/keep"], "node_modules/other", False),
    (["node_modules", "!node_modules/keep/x"], "node_modules/keep", True),
    (["node_modules", "!node_modules/keep/x"], "node_modules/keep/x/y", True),  # included
    (["*", "!src"], "docs", False),
    (["*", "!src"], "src", True),
    (["*", "!*.go"], "vendor", False),  # "*.go" only matches top-level names
    (["*", "!**/*.go"], "vendor", True),
    (["*", "!*/*.go"], "vendor", True),
    (["*", "!*/*.go"], "vendor/sub", False),
    (["*", "!a?c/keep"], "abc", True),
    (["*", "!a?c/keep"], "abd", False),
    (["*", "![a-c]*/keep"], "bin", True),
    (["*", "![a-c]*/keep"], "dist", False),
    (["*", "!a[/]b"], "a", True),  # a class that can match "/" stops the analysis
    (["build", "!build/**/keep.txt"], "build/x/y", True),
    (["build", "!build/**/keep.txt"], "other", True),  # not excluded
    (["build", "!other/**/keep.txt"], "build", False),
    (["*", "!keep**"], "keepers", True),
    (["*", "!keep**"], "other", False),
    (["*", "!dir/**"], "dir", True),
    (["*", "!dir/**"], "dirt", False),
    (["*", "!**keep"], "anything", True),
    (["!dir/keep", "dir"], "dir", False),  # the exception comes before the exclusion
    (["dir", "!dir/sub", "dir/sub/x"], "dir", True),
    (["dir", "!dir/sub", "dir/sub/x"], "dir/sub/x", False),
    (["a", "!a"], "a", True),  # not excluded
    ([], "anything", True),
    (["*"], ".", True),
    (["*"], "", True),
]


@pytest.mark.parametrize(("patterns", "directory", "expected"), MAY_INCLUDE_CASES)
def test_may_include_under(patterns: list[str], directory: str, expected: bool) -> None:
    assert DockerIgnore.parse("\n".join(patterns)).may_include_under(directory) is expected


SOUNDNESS_FILES = [
    ["*", "!src"],
    ["*", "!*.go"],
    ["*", "!**/*.go"],
    ["a", "!a/b/c"],
    ["a/*", "!a/?/k"],
    ["**/b", "!**/b/k"],
    ["a", "!a[b-k]*", "!k/**"],
    ["b**", "!b/a"],
]


@pytest.mark.parametrize("patterns", SOUNDNESS_FILES)
def test_may_include_under_never_hides_an_included_path(patterns: list[str]) -> None:
    ignore = DockerIgnore.parse("\n".join(patterns))
    names = ["a", "b", "k", "src", "x.go"]
    paths = [
        "/".join(parts)
        for depth in (1, 2, 3, 4)
        for parts in itertools.product(names, repeat=depth)
    ]
    wrongly_skipped = [
        (directory, path)
        for directory in paths
        if not ignore.may_include_under(directory)
        for path in paths
        if path.startswith(directory + "/") and not ignore.excluded(path)
    ]
    assert wrongly_skipped == []


# ---------------------------------------------------------------------------------- load


def test_load_without_a_file(tmp_path: Path) -> None:
    assert load(str(tmp_path)) == DockerIgnore()
    assert load(str(tmp_path)).empty is True


def test_load_reads_the_file(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_bytes(
        b"\xef\xbb\xbf# built files\r\n\r\nbuild/\r\n  *.log  \r\n!build/keep\r\n"
    )
    ignore = load(str(tmp_path))
    assert summary(ignore) == [
        ("build", False, 3),
        ("*.log", False, 4),
        ("build/keep", True, 5),
    ]
    assert [ignore.excluded(p) for p in ("build/x", "build/keep/y", "a.log", "a/b.log")] == [
        True,
        False,
        True,
        False,
    ]


def test_load_keeps_undecodable_bytes(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_bytes(b"caf\xe9*\n")
    ignore = load(str(tmp_path))
    assert summary(ignore) == [("caf\udce9*", False, 1)]
    assert ignore.excluded("caf\udce9.txt") is True


def test_load_reports_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / ".dockerignore"
    path.write_text("# header\nok\n\n  bad[  \n", encoding="utf-8")
    with pytest.raises(IgnoreError) as caught:
        load(str(tmp_path))
    assert (caught.value.source, caught.value.line, caught.value.pattern) == (
        str(path),
        4,
        "bad[",
    )
    assert str(caught.value) == (
        f"{path}:4: bad pattern 'bad[': character class is missing its closing ']'"
    )
