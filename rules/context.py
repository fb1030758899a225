"""The build context a Dockerfile's COPY sources are named in, and finding them there.

``Context`` is what COPY needs of a context: a node per path, directory listings,
symlinks followed, a fallback search and how to name it in messages. ``ContextDir`` is a
real directory (the plan's ``context:``), filtered by its ``.dockerignore``, exactly as
``docker build`` sends it; the seed's virtual context is ``rules.plancontext``.
``find_sources`` gives the context paths one source names, wildcards expanded (Go's
``filepath.Match``), as BuildKit does.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from doit_oci.rules.dockerignore import IgnoreError, load
from doit_oci.rules.errors import UserError
from doit_oci.rules.golang import BadPattern, match_regex
from doit_oci.rules.tree import DIR, FILE, SYMLINK

_WILDCARD = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Node:
    """What a source path is: a real file, directory or symlink, or a virtual directory."""

    kind: str
    mode: int
    real: Path | None
    st: os.stat_result | None = None


def read_node(real: Path, shown: str, where: str) -> Node | None:
    """What ``real`` is (None when missing); ``shown`` names it in messages."""
    try:
        st = real.lstat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UserError(
            f"cannot read {shown}: {exc.strerror}", where, "check its permissions"
        ) from None
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISDIR(st.st_mode):
        return Node(DIR, mode, real, st)
    if stat.S_ISREG(st.st_mode):
        return Node(FILE, mode, real, st)
    if stat.S_ISLNK(st.st_mode):
        return Node(SYMLINK, 0o777, real, st)
    raise UserError(
        f"{shown} is a special file (device, FIFO or socket), which a layer cannot hold",
        where,
        "remove it from the sources or exclude it",
    )


class Context(Protocol):
    def describe(self) -> str: ...
    def node(self, vpath: str, where: str) -> Node | None: ...
    def listdir(self, vpath: str, where: str) -> list[str]: ...
    def follow(self, vpath: str, where: str) -> str: ...
    def fallback(self, pattern: str, where: str) -> list[str]: ...
    def shown(self, vpath: str) -> str: ...
    def missing_fix(self) -> str: ...


def check_name(name: str, where: str) -> None:
    """A file name a layer can hold: valid UTF-8."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise UserError(
            f"file name {name.encode('utf-8', 'surrogateescape')!r} is not valid UTF-8",
            where,
            "rename the file",
        ) from None


def display(path: Path, workspace: Path) -> str:
    """``path`` as messages show it: relative to the workspace when inside it."""
    try:
        return str(path.relative_to(workspace))
    except ValueError:
        return str(path)


class ContextDir:
    def __init__(self, root: Path, workspace: Path) -> None:
        self.root = root.resolve()
        self.workspace = workspace
        try:
            self.ignore = load(str(self.root))
        except IgnoreError as exc:
            raise UserError(str(exc), "", "fix the pattern") from None
        self._real_dirs: dict[str, str] = {"": ""}
        self._holds: dict[str, bool] = {}

    def describe(self) -> str:
        return f"the context {display(self.root, self.workspace)}"

    def shown(self, vpath: str) -> str:
        return vpath or "."

    def _real_dir(self, vpath: str, where: str) -> str:
        """The context path of directory ``vpath`` with its symlinks followed; a symlink
        out of the context is an error, as the context sent to Docker has no outside."""
        known = self._real_dirs.get(vpath)
        if known is not None:
            return known
        real = Path(os.path.realpath(self.root / vpath))
        if real != self.root and self.root not in real.parents:
            raise UserError(
                f"source path {vpath!r} goes through a symlink to {real}, outside the context",
                where,
                "copy files from inside the context only",
            )
        rel = "" if real == self.root else real.relative_to(self.root).as_posix()
        self._real_dirs[vpath] = rel
        return rel

    def _real(self, vpath: str, where: str) -> str:
        """The context path of ``vpath``, symlinks followed in its parents only."""
        parent, _, name = vpath.rpartition("/")
        if not parent:
            return vpath
        real_parent = self._real_dir(parent, where)
        return f"{real_parent}/{name}" if real_parent else name

    def _present(self, rel: str) -> bool:
        """Whether ``rel`` is in the context Docker would send: not excluded, or an
        excluded directory that holds something an exception brings back (BuildKit sends
        such a directory, as the parent of what it holds)."""
        if not rel or not self.ignore.excluded(rel):
            return True
        known = self._holds.get(rel)
        if known is None:
            path = self.root / rel
            known = False
            if path.is_dir() and not path.is_symlink() and self.ignore.may_include_under(rel):
                known = any(self._present(f"{rel}/{name}") for name in os.listdir(path))
            self._holds[rel] = known
        return known

    def node(self, vpath: str, where: str) -> Node | None:
        rel = self._real(vpath, where)
        if not self._present(rel):
            return None
        return read_node(self.root / rel, vpath, where)

    def listdir(self, vpath: str, where: str) -> list[str]:
        rel = self._real_dir(vpath, where)
        names = []
        for name in sorted(os.listdir(self.root / rel)):
            check_name(name, where)
            if self._present(f"{rel}/{name}" if rel else name):
                names.append(name)
        return names

    def follow(self, vpath: str, where: str) -> str:
        real = Path(os.path.realpath(self.root / vpath))
        if real != self.root and self.root not in real.parents:
            raise UserError(
                f"source {vpath!r} is a symlink to {real}, outside the context",
                where,
                "copy files from inside the context only",
            )
        if not real.exists():
            raise UserError(f"source {vpath!r} is a dangling symlink", where, "fix the link")
        return real.relative_to(self.root).as_posix() if real != self.root else ""

    def fallback(self, pattern: str, where: str) -> list[str]:
        return []

    def missing_fix(self) -> str:
        return "check the path, and that .dockerignore does not exclude it"


def _clean_source(source: str, where: str, keyword: str) -> str:
    if source.startswith("/"):
        raise UserError(
            f"{keyword} source {source!r} is an absolute path",
            where,
            "name sources relative to the build context",
        )
    clean = posixpath.normpath(source)
    if clean == ".." or clean.startswith("../"):
        raise UserError(
            f"{keyword} source {source!r} is outside the build context",
            where,
            "copy only files inside the context",
        )
    return "" if clean == "." else clean


def find_sources(context: Context, source: str, where: str, keyword: str) -> list[str]:
    """The context paths one COPY source names (several for a wildcard; maybe none).

    As in BuildKit, symlinks are followed in the part of a wildcard source before its
    first wildcard, and not below it: a match must be a real directory to be entered.
    """
    clean = _clean_source(source, where, keyword)
    if not _WILDCARD.search(clean):
        if context.node(clean, where) is not None:
            return [clean]
        found = context.fallback(clean, where)
        if found:
            return found
        raise UserError(
            f"{keyword} source {source!r} not found in {context.describe()}",
            where,
            context.missing_fix(),
        )
    matches = [""]
    wild = False
    for component in clean.split("/"):
        if not _WILDCARD.search(component):
            if wild:
                matches = [m for m in matches if _is_dir(context, m, where)]
            matches = [f"{m}/{component}" if m else component for m in matches]
            matches = [m for m in matches if context.node(m, where) is not None]
            continue
        try:
            regex = match_regex(component)
        except BadPattern as exc:
            raise UserError(
                f"bad wildcard in {source!r}: {exc}", where, "fix the pattern"
            ) from None
        grown = []
        for match in matches:
            listed = match
            node = context.node(match, where)
            if node is not None and node.kind == SYMLINK and not wild:
                listed = context.follow(match, where)
                node = context.node(listed, where)
            if node is None or node.kind != DIR:
                continue
            for name in context.listdir(listed, where):
                if regex.match(name):
                    grown.append(f"{match}/{name}" if match else name)
        matches = grown
        wild = True
    return sorted(m for m in matches if context.node(m, where) is not None)


def _is_dir(context: Context, vpath: str, where: str) -> bool:
    node = context.node(vpath, where)
    return node is not None and node.kind == DIR
