"""The import rules of DESIGN.md, checked on the source: a change that breaks them fails."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOIT_IMPORTERS = {"rules/tasks.py", "rules/plugin.py", "dodo.py"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def sources() -> list[Path]:
    return sorted([*REPO.glob("rules/**/*.py"), *REPO.glob("registry/*.py"), REPO / "dodo.py"])


def private_imports(path: Path) -> set[tuple[str, str]]:
    """(module, name) for every underscore name imported from one of our modules."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return {
        (node.module, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("doit_oci")
        for alias in node.names
        if alias.name.startswith("_") and not alias.name.startswith("__")
    }


# api.py's use of tasks.py's helpers, left to the rewrite of those two modules
KNOWN_PRIVATE_IMPORTS = {
    "rules/api.py": {("doit_oci.rules.tasks", "_made"), ("doit_oci.rules.tasks", "_action")},
}
# the front end, cut to size (DESIGN.md): the engine modules join as they are cut
FRONT_END = [
    "rules/argsplit.py",
    "rules/chown.py",
    "rules/context.py",
    "rules/copyplan.py",
    *sorted(str(p.relative_to(REPO)) for p in REPO.glob("rules/dockerfile/*.py")),
    "rules/dockerignore.py",
    "rules/golang.py",
    "rules/plancontext.py",
    "rules/shellwords.py",
]
MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 150


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(REPO)))
def test_only_the_task_module_and_dodo_import_doit(path: Path) -> None:
    uses_doit = any(m == "doit" or m.startswith("doit.") for m in imported_modules(path))
    if str(path.relative_to(REPO)) not in DOIT_IMPORTERS:
        assert not uses_doit


def test_the_task_module_is_where_doit_is_used() -> None:
    assert "doit.reporter" in imported_modules(REPO / "rules" / "tasks.py")


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(REPO)))
def test_our_modules_are_imported_by_their_unique_name(path: Path) -> None:
    # a user's own "rules" or "registry" module must never be taken for ours
    modules = imported_modules(path)
    assert not [m for m in modules if m.split(".")[0] in ("rules", "registry")]


@pytest.mark.parametrize("path", sorted(REPO.glob("registry/*.py")), ids=lambda p: p.name)
def test_registry_never_imports_rules(path: Path) -> None:
    modules = imported_modules(path)
    assert not [m for m in modules if m.startswith(("rules", "doit_oci.rules"))]


def test_the_checks_can_see_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import doit.tools\nfrom rules.plan import load_plan\n")
    assert imported_modules(sample) == {"doit.tools", "rules.plan"}


def test_the_sources_include_subpackages() -> None:
    assert REPO / "rules" / "dockerfile" / "evaluate.py" in sources()


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_module_imports_another_modules_private_names(path: Path) -> None:
    allowed = KNOWN_PRIVATE_IMPORTS.get(str(path.relative_to(REPO)), set())
    assert private_imports(path) - allowed == set()


def test_the_private_import_check_sees_them(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("from doit_oci.rules.x import _y, z, __version__\nfrom os import _exit\n")
    assert private_imports(sample) == {("doit_oci.rules.x", "_y")}


@pytest.mark.parametrize("name", FRONT_END)
def test_front_end_modules_and_classes_are_small(name: str) -> None:
    text = (REPO / name).read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES
    classes = [n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.ClassDef)]
    sizes = {c.name: (c.end_lineno or c.lineno) - c.lineno + 1 for c in classes}
    assert {name: size for name, size in sizes.items() if size > MAX_CLASS_LINES} == {}
