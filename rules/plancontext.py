"""The seed's virtual build context: an image's Dockerfile, files and make targets.

Each listed path is at its base name, and those under ``out/<os>_<arch>/`` are at
``<arch>/<base name>`` too, as Istio's docker-copy.sh lays them out. A source that is not
found there is looked for as the seed's ``translate()`` does: by base name, then by a
directory of the plan at any depth; ambiguous or missing sources list the candidates.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from doit_oci.rules.context import Node, check_name, display, read_node
from doit_oci.rules.errors import UserError
from doit_oci.rules.tree import DIR, FILE, SYMLINK


class PlanContext:
    """The seed's context: the Dockerfile, files and targets of an image, by base name.

    Modes are those docker-copy.sh gives the seed's context (``cp -rp``, then ``chmod``
    by type, "as they may differ on the host due to umask"): a listed file with any
    execute bit becomes 0755, any other listed file gets a+r, and a listed directory gets
    ``chmod -R a+r`` (every file and directory below it gains a+r, nothing more).
    """

    def __init__(
        self, dependencies: Sequence[Path], workspace: Path, arch_out: Path, arch: str
    ) -> None:
        self.workspace = workspace
        self.arch = arch
        self.entries: dict[str, Path] = {}
        self.arch_entries: dict[str, Path] = {}
        self.candidates = tuple(dependencies)
        # base name -> every distinct listed path of that name (two make it ambiguous)
        self._named: dict[str, list[Path]] = {}
        self._arch_named: dict[str, list[Path]] = {}
        for dep in dependencies:
            name = dep.name
            if arch_out in dep.parents:
                self.arch_entries.setdefault(name, dep)
                _add_distinct(self._arch_named, name, dep)
            self.entries.setdefault(name, dep)
            _add_distinct(self._named, name, dep)

    def describe(self) -> str:
        return "the image's files and targets"

    def missing_fix(self) -> str:
        names = ", ".join(sorted(self.entries)) or "none"
        return f"list it under 'files' or 'targets' in the plan (the image has: {names})"

    def shown(self, vpath: str) -> str:
        return vpath or "."

    def _arch_dir(self) -> bool:
        """Whether ``<arch>/`` is a virtual directory of the arch's targets."""
        return bool(self.arch_entries) and self.arch not in self.entries

    def _split(self, vpath: str) -> tuple[dict[str, list[Path]], str, str]:
        """(the table a path is looked up in, the listed name, the rest below it)."""
        first, _, rest = vpath.partition("/")
        if first == self.arch and self._arch_dir():
            first, _, rest = rest.partition("/")
            return self._arch_named, first, rest
        return self._named, first, rest

    def _real(self, vpath: str, where: str = "") -> Path | str | None:
        """The real path, or "" for a virtual directory, or None when missing."""
        if vpath == "" or (vpath == self.arch and self._arch_dir()):
            return ""
        table, first, rest = self._split(vpath)
        deps = table.get(first)
        if not deps:
            return None
        if len(deps) > 1:
            raise self._ambiguous(vpath, first, deps, where)
        return deps[0] / rest if rest else deps[0]

    def _ambiguous(self, source: str, name: str, deps: Sequence[Path], where: str) -> UserError:
        return _ambiguous(source, name, [display(d, self.workspace) for d in deps], where)

    def _listed(self, vpath: str) -> bool:
        """Whether ``vpath`` is a listed file or directory itself, not something below."""
        return not self._split(vpath)[2]

    def node(self, vpath: str, where: str) -> Node | None:
        real = self._real(vpath, where)
        if real is None:
            return None
        if real == "":
            return Node(DIR, 0o755, None)
        assert isinstance(real, Path)
        node = read_node(real, str(real), where)
        if node is None and self._listed(vpath):
            raise UserError(
                f"source {vpath!r} is {display(real, self.workspace)} of the plan, which"
                " does not exist",
                where,
                "build it first (run make, or leave SKIP_MAKE unset), or fix the plan's"
                " 'files' and 'targets'",
            )
        if node is not None and node.kind == SYMLINK and self._listed(vpath):
            # a listed file that is a symlink stands for what it points at
            target = Path(os.path.realpath(real))
            if target.exists():
                node = read_node(target, str(target), where)
        return _docker_copy_mode(node, self._listed(vpath))

    def listdir(self, vpath: str, where: str) -> list[str]:
        real = self._real(vpath, where)
        if real == "":
            if vpath == "":
                virtual = set(self.entries)
                if self._arch_dir():
                    virtual.add(self.arch)
            else:
                virtual = set(self.arch_entries)
            return sorted(virtual)
        assert isinstance(real, Path)
        names = sorted(os.listdir(real))
        for name in names:
            check_name(name, where)
        return names

    def follow(self, vpath: str, where: str) -> str:
        real = self._real(vpath, where)
        assert isinstance(real, Path)
        target = Path(os.path.realpath(real))
        if not target.exists():
            raise UserError(f"source {vpath!r} is a dangling symlink", where, "fix the link")
        for name, dep in self.entries.items():
            dep_real = Path(os.path.realpath(dep))
            if target == dep_real:
                return name
            if dep_real in target.parents:
                return f"{name}/{target.relative_to(dep_real).as_posix()}"
        raise UserError(
            f"source {vpath!r} is a symlink to {target}, outside the image's files and targets",
            where,
            "list the target under 'files' in the plan",
        )

    def fallback(self, pattern: str, where: str) -> list[str]:
        """The seed's lenient search: by base name, then a plan directory at any depth."""
        parts = pattern.split("/")
        by_name = self._named.get(parts[-1], [])
        if len(by_name) > 1:
            raise self._ambiguous(pattern, parts[-1], by_name, where)
        found = [parts[-1]] if by_name else _in_listed_dirs(parts, self._named)
        if len(found) > 1:
            listed = ", ".join(display(d, self.workspace) for d in self.candidates)
            raise UserError(
                f"source {pattern!r} is ambiguous: it matches {', '.join(found)}",
                where,
                f"rename one of them or use a 'context:' directory (candidates: {listed})",
            )
        return found


def _add_distinct(table: dict[str, list[Path]], name: str, dep: Path) -> None:
    known = table.setdefault(name, [])
    real = os.path.realpath(dep)
    if all(os.path.realpath(other) != real for other in known):
        known.append(dep)


def _ambiguous(source: str, name: str, listed: Sequence[str], where: str) -> UserError:
    return UserError(
        f"source {source!r} is ambiguous: the image lists several files named {name!r}"
        f" ({', '.join(listed)})",
        where,
        "rename one of them or use a 'context:' directory",
    )


def _docker_copy_mode(node: Node | None, listed: bool) -> Node | None:
    """``node`` with the mode docker-copy.sh gives it (``listed``: named in the plan)."""
    if node is None or node.real is None or node.kind == SYMLINK:
        return node
    if node.kind == FILE and listed:
        mode = 0o755 if node.mode & 0o111 else node.mode | 0o444
    else:
        mode = node.mode | 0o444
    return replace(node, mode=mode)


def _in_listed_dirs(parts: Sequence[str], named: Mapping[str, Sequence[Path]]) -> list[str]:
    """The seed's search at any depth: ``a/b/c`` is ``b/c`` inside a listed directory ``a``,
    or ``c`` inside a listed ``b``; every match, in that order."""
    found: list[str] = []
    for i, part in enumerate(parts[:-1]):
        rest = "/".join(parts[i + 1 :])
        vpath = f"{part}/{rest}"
        for dep in named.get(part, []):
            inside = dep.is_dir() and ((dep / rest).exists() or (dep / rest).is_symlink())
            if inside and vpath not in found:
                found.append(vpath)
    return found
