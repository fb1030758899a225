"""The README and docs/: a short README with the Quick start's two commands, relative links
and anchors that resolve, every page linked from the README, and the options table of
docs/options.md matching the options of the code. No network."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from doit_oci.rules.flags import OPTIONS

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
DOCS = REPO / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
MAX_README_LINES = 160
QUICK_START = [".ci/install && .venv/bin/doit build_images", "bash .ci/run"]

FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def prose_lines(path: Path) -> list[str]:
    """The lines of a Markdown file outside fenced code blocks."""
    lines: list[str] = []
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def links(path: Path) -> list[str]:
    """Every link and image target of a Markdown file, but in code."""
    found: list[str] = []
    for line in prose_lines(path):
        found.extend(LINK.findall(CODE_SPAN.sub("", line)))
    return found


def relative_links(path: Path) -> list[str]:
    return [target for target in links(path) if not SCHEME.match(target)]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    result: set[str] = set()
    for line in prose_lines(path):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def section(path: Path, title: str) -> list[str]:
    """The lines of the section headed ``title``, code blocks included."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"^#+\s+{title}\s*$", line))
    level = len(lines[start]) - len(lines[start].lstrip("#"))
    end = len(lines)
    fenced = False
    for i in range(start + 1, len(lines)):
        if FENCE.match(lines[i]):
            fenced = not fenced
        heading = HEADING.match(lines[i])
        if not fenced and heading and len(heading.group(1)) <= level:
            end = i
            break
    return lines[start + 1 : end]


def first_code_block(lines: list[str]) -> list[str]:
    opened = [i for i, line in enumerate(lines) if FENCE.match(line)]
    assert len(opened) >= 2, "no code block"
    return lines[opened[0] + 1 : opened[1]]


def test_readme_is_short() -> None:
    count = len(README.read_text(encoding="utf-8").splitlines())
    assert count <= MAX_README_LINES, f"README.md has {count} lines, at most {MAX_README_LINES}"


def test_quick_start_holds_the_two_commands() -> None:
    block = first_code_block(section(README, "Quick start"))
    commands = [re.sub(r"\s+#.*$", "", line).strip() for line in block]
    assert [command for command in commands if command] == QUICK_START


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page: Path) -> None:
    broken: list[str] = []
    for target in relative_links(page):
        path_part, _, anchor = target.partition("#")
        destination = (page.parent / path_part).resolve() if path_part else page
        if not destination.exists():
            broken.append(f"{target}: no file {destination}")
            continue
        if anchor:
            if destination.suffix != ".md":
                broken.append(f"{target}: an anchor into a file that is not Markdown")
            elif anchor not in anchors(destination):
                broken.append(f"{target}: no heading #{anchor} in {destination.name}")
    assert not broken, "\n".join(broken)


def test_every_page_is_linked_from_the_readme() -> None:
    linked = {
        (README.parent / target.partition("#")[0]).resolve()
        for target in relative_links(README)
        if target.partition("#")[0]
    }
    missing = [str(page.relative_to(REPO)) for page in PAGES if page.resolve() not in linked]
    assert PAGES, "no pages under docs/"
    assert not missing, f"not linked from README.md: {missing}"


def options_table() -> list[list[str]]:
    """The rows of the first table under docs/options.md's "Options" heading, as cells."""
    rows: list[list[str]] = []
    for line in section(DOCS / "options.md", "Options"):
        if line.startswith("|"):
            cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            rows.append(cells)
        elif rows:
            break
    assert len(rows) > 2, "no options table under ## Options in docs/options.md"
    header, separator, *body = rows
    assert header[0] == "option", header
    assert all(set(cell) <= set("-: ") for cell in separator), separator
    return body


def test_options_table_matches_the_code() -> None:
    documented: list[str] = []
    for row in options_table():
        flags = re.findall(r"`--([a-z][a-z0-9-]*)", row[0])
        assert len(flags) == 1, f"one --option per row, not {row[0]!r}"
        documented.append(flags[0])
    assert len(documented) == len(set(documented)), f"listed twice: {documented}"
    code = {option.flag for option in OPTIONS}
    missing = sorted(code - set(documented))
    unknown = sorted(set(documented) - code)
    assert not missing, f"options of the code missing from docs/options.md: {missing}"
    assert not unknown, f"listed in docs/options.md, not options of the code: {unknown}"
    rows = {re.findall(r"`--([a-z][a-z0-9-]*)", row[0])[0]: row for row in options_table()}
    for option in OPTIONS:
        environment = rows[option.flag][1]
        for name in option.env:
            assert name in environment, f"--{option.flag}: {name} not in docs/options.md"
        if not option.env:
            assert not re.findall(r"[A-Z_]{3,}", environment), f"--{option.flag}: {environment}"
