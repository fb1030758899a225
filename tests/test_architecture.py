"""The rules of docs/design.md, checked on the source: a change that breaks one fails here.

- imports go one way: registry/ below everything; the front end and the file helpers of
  rules/ above it; the engine (rules/steps/) above them; the glue (the modules that make
  task dicts, talk to doit, print the report) on top. No import cycle.
- registry/ imports neither rules/ nor doit; only rules/tasks.py, rules/plugin.py and
  dodo.py import doit; no module imports another's private names.
- no module over 400 lines, no class over 150; no module-level mutable state outside
  rules/globals.py.
- doit_oci/rules and doit_oci/registry are links to the top-level folders.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOIT_IMPORTERS = {"rules/tasks.py", "rules/plugin.py", "dodo.py"}
GLUE = {
    "graph",
    "publish",
    "upkeep",
    "uploads",
    "report",
    "workspace",
    "tasks",
    "ruleset",
    "plugin",
}
GLOBALS = "rules/globals.py"
MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 150
MUTABLE_CALLS = {"dict", "list", "set", "defaultdict", "OrderedDict", "deque", "bytearray"}


def sources() -> list[Path]:
    found = [*REPO.glob("rules/**/*.py"), *REPO.glob("registry/**/*.py"), REPO / "dodo.py"]
    return sorted(p for p in found if "__pycache__" not in p.parts)


def module_name(path: Path) -> str:
    """``rules/steps/layer.py`` -> ``doit_oci.rules.steps.layer``."""
    relative = path.relative_to(REPO).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["doit_oci", *parts]) if parts[0] in ("rules", "registry") else parts[0]


def layer_of(module: str) -> int:
    """0 registry, 1 front end and files, 2 the engine, 3 the glue, 4 dodo.py."""
    parts = module.split(".")
    if parts[:2] == ["doit_oci", "registry"]:
        return 0
    if parts[:3] == ["doit_oci", "rules", "steps"]:
        return 2
    if parts[:2] == ["doit_oci", "rules"]:
        return 3 if len(parts) > 2 and parts[2] in GLUE else 1
    return 4


def _type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def imports(path: Path, module_level_only: bool = False) -> Iterator[ast.Import | ast.ImportFrom]:
    """The imports of a file (not those only for the type checker)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child
            elif not (
                module_level_only
                and isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            ):
                todo.append(child)


def imported_modules(path: Path, module_level_only: bool = False) -> set[str]:
    names: set[str] = set()
    for node in imports(path, module_level_only):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif node.module and node.level == 0:
            names.add(node.module)
            # ``from doit_oci.rules import api`` imports the module doit_oci.rules.api
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def ours(names: set[str]) -> set[str]:
    known = {module_name(p) for p in sources()}
    return {name for name in names if name in known}


IDS = {"ids": lambda p: str(p.relative_to(REPO))}


@pytest.mark.parametrize("path", sources(), **IDS)
def test_only_the_task_module_the_plugin_and_dodo_import_doit(path: Path) -> None:
    uses_doit = any(m == "doit" or m.startswith("doit.") for m in imported_modules(path))
    if str(path.relative_to(REPO)) not in DOIT_IMPORTERS:
        assert not uses_doit


def test_the_task_module_is_where_doit_is_used() -> None:
    assert "doit.reporter" in imported_modules(REPO / "rules" / "tasks.py")


@pytest.mark.parametrize("path", sources(), **IDS)
def test_our_modules_are_imported_by_their_unique_name(path: Path) -> None:
    # a user's own "rules" or "registry" module must never be taken for ours
    modules = imported_modules(path)
    assert not [m for m in modules if m.split(".")[0] in ("rules", "registry")]


@pytest.mark.parametrize("path", sources(), **IDS)
def test_imports_go_one_way(path: Path) -> None:
    here = layer_of(module_name(path))
    upward = sorted(m for m in ours(imported_modules(path)) if layer_of(m) > here)
    assert not upward, f"{path.relative_to(REPO)} (layer {here}) imports {upward}"


def test_there_is_no_import_cycle() -> None:
    graph = {module_name(p): ours(imported_modules(p, module_level_only=True)) for p in sources()}
    # a package imports its modules only when asked: the edges to a parent package are not
    # a cycle (``doit_oci.rules.steps.x`` -> ``doit_oci.rules.steps``)
    for name, edges in graph.items():
        edges.discard(name)
        edges.difference_update(n for n in list(edges) if name.startswith(n + "."))
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for edge in sorted(graph.get(node, ())):
            if state.get(edge) == 1:
                cycle = [*path[path.index(edge) :], edge]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if edge not in state:
                visit(edge)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


@pytest.mark.parametrize("path", sorted(REPO.glob("registry/*.py")), ids=lambda p: p.name)
def test_registry_never_imports_rules(path: Path) -> None:
    modules = imported_modules(path)
    wrong = [m for m in modules if m.startswith(("rules", "doit_oci.rules", "doit."))]
    assert not wrong and "doit" not in modules


@pytest.mark.parametrize("path", sources(), **IDS)
def test_no_module_imports_another_modules_private_names(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    modules = set()
    wrong = []
    for node in imports(path):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("doit_oci"):
            wrong += [a.name for a in node.names if a.name.startswith("_")]
            modules.update(a.asname or a.name for a in node.names)
        elif isinstance(node, ast.Import):
            modules.update(a.asname or a.name for a in node.names if a.name.startswith("doit_oci"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            private = node.attr.startswith("_") and not node.attr.startswith("__")
            if private and node.value.id in modules:
                wrong.append(f"{node.value.id}.{node.attr}")
    assert not wrong


@pytest.mark.parametrize("path", sources(), **IDS)
def test_modules_and_classes_are_small(path: Path) -> None:
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ClassDef):
            size = (node.end_lineno or node.lineno) - node.lineno + 1
            assert size <= MAX_CLASS_LINES, f"class {node.name} has {size} lines"


def _mutable(value: ast.expr | None) -> bool:
    if isinstance(value, ast.Dict | ast.List | ast.Set | ast.DictComp | ast.ListComp | ast.SetComp):
        return True
    if isinstance(value, ast.Call):
        function = value.func
        name = function.id if isinstance(function, ast.Name) else getattr(function, "attr", "")
        return name in MUTABLE_CALLS
    return False


def mutable_state(path: Path) -> list[str]:
    """Module-level and class-level names bound to mutable values, and ``global``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    bodies: list[list[ast.stmt]] = [tree.body]
    bodies += [n.body for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    for body in bodies:
        for statement in body:
            value = statement.value if isinstance(statement, ast.Assign | ast.AnnAssign) else None
            target = statement.targets[0] if isinstance(statement, ast.Assign) else None
            if isinstance(target, ast.Name) and target.id == "__all__":
                continue  # what ``import *`` takes: read by Python, never changed
            if _mutable(value):
                found.append(f"line {statement.lineno}")
    found += [f"global at line {n.lineno}" for n in ast.walk(tree) if isinstance(n, ast.Global)]
    return found


@pytest.mark.parametrize("path", sources(), **IDS)
def test_no_mutable_state_outside_the_one_place(path: Path) -> None:
    if str(path.relative_to(REPO)) != GLOBALS:
        assert not mutable_state(path)


def test_the_one_place_holds_state() -> None:
    assert mutable_state(REPO / GLOBALS) == []  # its state is a dataclass instance
    assert "PROCESS = Process()" in (REPO / GLOBALS).read_text()


def test_the_import_path_is_made_of_links() -> None:
    # doit_oci/rules and doit_oci/registry are the top-level folders themselves
    for name in ("rules", "registry"):
        link = REPO / "doit_oci" / name
        assert link.is_symlink(), link
        assert link.resolve() == (REPO / name).resolve()


def test_the_design_document_is_there() -> None:
    design = (REPO / "docs" / "design.md").read_text().lower()
    for rule in ("imports go one way", "rules/globals.py", "doit_oci/"):
        assert rule in design


def test_the_checks_can_see_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import doit.tools\nfrom rules.plan import load_plan\n"
        "if TYPE_CHECKING:\n    import httpx\n"
        "def f():\n    import json\n"
        "CACHE = {}\nclass A:\n    seen = []\n"
    )
    assert imported_modules(sample) == {"doit.tools", "rules.plan", "rules.plan.load_plan", "json"}
    assert imported_modules(sample, module_level_only=True) == {
        "doit.tools",
        "rules.plan",
        "rules.plan.load_plan",
    }
    assert mutable_state(sample) == ["line 7", "line 9"]
    assert layer_of("doit_oci.registry.oci") < layer_of("doit_oci.rules.plan")
    assert layer_of("doit_oci.rules.plan") < layer_of("doit_oci.rules.steps.layer")
    assert layer_of("doit_oci.rules.steps.layer") < layer_of("doit_oci.rules.tasks")
