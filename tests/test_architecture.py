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
    return sorted([*REPO.glob("rules/*.py"), *REPO.glob("registry/*.py"), REPO / "dodo.py"])


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
