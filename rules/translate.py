"""COPY sources -> the entries of a layer: which real file lands where, with what owner and mode.

A Dockerfile names its sources in a Docker build context. doit-oci has two kinds:

- ``ContextDir``: a real directory (the plan's ``context:``), filtered by its
  ``.dockerignore``, exactly as ``docker build`` sends it;
- ``PlanContext``: the seed's virtual context, made of the image's Dockerfile, files and
  make targets, each at its base name, and those under ``out/<os>_<arch>/`` at
  ``<arch>/<base name>`` too, as Istio's docker-copy.sh lays them out. A source that is
  not found there is looked for as the seed's ``translate()`` does: by base name, then by
  a directory of the plan at any depth; ambiguous or missing sources list the candidates.

``plan_copy`` then does what Docker's COPY does with them: a directory copies its
contents, a file lands in a destination directory (trailing ``/`` or an existing one) or
at the destination path, wildcards expand, symlinks inside directories stay symlinks,
hard links are kept as such, ``--chown``/``--chmod`` apply, and missing parent
directories are created while existing ones are left alone.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from rules.dockerfile import CopyStep
from rules.dockerignore import IgnoreError, load
from rules.errors import UserError
from rules.tree import DIR, FILE, HARDLINK, SYMLINK, Entry, Tree, image_path, parents

_WILDCARD = re.compile(r"[*?\[]")

DigestFn = Callable[[Path, os.stat_result], str]


@dataclass(frozen=True)
class Node:
    """What a source path is: a real file, directory or symlink, or a virtual directory."""

    kind: str
    mode: int
    real: Path | None
    st: os.stat_result | None = None


def _node(real: Path, shown: str, where: str) -> Node | None:
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


def _check_name(name: str, where: str) -> None:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise UserError(
            f"file name {name.encode('utf-8', 'surrogateescape')!r} is not valid UTF-8",
            where,
            "rename the file",
        ) from None


class ContextDir:
    def __init__(self, root: Path, workspace: Path) -> None:
        self.root = root.resolve()
        self.workspace = workspace
        try:
            self.ignore = load(str(self.root))
        except IgnoreError as exc:
            raise UserError(str(exc), "", "fix the pattern") from None

    def describe(self) -> str:
        return f"the context {_display(self.root, self.workspace)}"

    def shown(self, vpath: str) -> str:
        return vpath or "."

    def node(self, vpath: str, where: str) -> Node | None:
        if vpath and self.ignore.excluded(vpath):
            return None
        return _node(self.root / vpath, vpath, where)

    def listdir(self, vpath: str, where: str) -> list[str]:
        names = []
        for name in sorted(os.listdir(self.root / vpath)):
            _check_name(name, where)
            child = f"{vpath}/{name}" if vpath else name
            if self.ignore.excluded(child):
                is_dir = (self.root / child).is_dir() and not (self.root / child).is_symlink()
                if not (is_dir and self.ignore.may_include_under(child)):
                    continue
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
        return str(real.relative_to(self.root)) if real != self.root else ""

    def fallback(self, pattern: str, where: str) -> list[str]:
        return []


class PlanContext:
    """The seed's context: the Dockerfile, files and targets of an image, by base name."""

    def __init__(
        self, dependencies: Sequence[Path], workspace: Path, arch_out: Path, arch: str
    ) -> None:
        self.workspace = workspace
        self.arch = arch
        self.entries: dict[str, Path] = {}
        self.arch_entries: dict[str, Path] = {}
        self.candidates = tuple(dependencies)
        for dep in dependencies:
            name = dep.name
            if arch_out in dep.parents:
                self.arch_entries.setdefault(name, dep)
            self.entries.setdefault(name, dep)

    def describe(self) -> str:
        return "the image's files and targets"

    def shown(self, vpath: str) -> str:
        return vpath or "."

    def _real(self, vpath: str) -> Path | str | None:
        """The real path, or "" for a virtual directory, or None when missing."""
        if vpath == "" or vpath == self.arch:
            return ""
        first, _, rest = vpath.partition("/")
        table = self.entries
        if first == self.arch and first not in self.entries:
            first, _, rest = rest.partition("/")
            table = self.arch_entries
        dep = table.get(first)
        if dep is None:
            return None
        return dep / rest if rest else dep

    def node(self, vpath: str, where: str) -> Node | None:
        real = self._real(vpath)
        if real is None:
            return None
        if real == "":
            return Node(DIR, 0o755, None)
        assert isinstance(real, Path)
        node = _node(real, str(real), where)
        if node is not None and node.kind == SYMLINK and "/" not in vpath:
            # a listed file that is a symlink stands for what it points at
            target = Path(os.path.realpath(real))
            return _node(target, str(target), where) if target.exists() else node
        return node

    def listdir(self, vpath: str, where: str) -> list[str]:
        real = self._real(vpath)
        if real == "":
            virtual = set(self.entries)
            if vpath == "" and self.arch_entries:
                virtual.add(self.arch)
            if vpath == self.arch and self.arch not in self.entries:
                virtual = set(self.arch_entries)
            return sorted(virtual)
        assert isinstance(real, Path)
        names = sorted(os.listdir(real))
        for name in names:
            _check_name(name, where)
        return names

    def follow(self, vpath: str, where: str) -> str:
        real = self._real(vpath)
        assert isinstance(real, Path)
        target = Path(os.path.realpath(real))
        if not target.exists():
            raise UserError(f"source {vpath!r} is a dangling symlink", where, "fix the link")
        for name, dep in self.entries.items():
            dep_real = Path(os.path.realpath(dep))
            if target == dep_real:
                return name
            if dep_real in target.parents:
                return f"{name}/{target.relative_to(dep_real)}"
        raise UserError(
            f"source {vpath!r} is a symlink to {target}, outside the image's files and targets",
            where,
            "list the target under 'files' in the plan",
        )

    def fallback(self, pattern: str, where: str) -> list[str]:
        """The seed's lenient search: by base name, then a plan directory at any depth."""
        parts = pattern.split("/")
        by_name = [n for n, dep in self.entries.items() if n == parts[-1]]
        if not by_name:
            for i, part in enumerate(parts[:-1]):
                dep = self.entries.get(part)
                if dep is not None and dep.is_dir():
                    rest = "/".join(parts[i + 1 :])
                    if (dep / rest).exists() or (dep / rest).is_symlink():
                        by_name.append(f"{part}/{rest}")
        if len(by_name) > 1:
            listed = ", ".join(_display(d, self.workspace) for d in self.candidates)
            raise UserError(
                f"source {pattern!r} is ambiguous: it matches {', '.join(by_name)}",
                where,
                f"rename one of them or use a 'context:' directory (candidates: {listed})",
            )
        return by_name


def _display(path: Path, workspace: Path) -> str:
    try:
        return str(path.relative_to(workspace))
    except ValueError:
        return str(path)


def _glob_regex(component: str) -> re.Pattern[str]:
    """Go's filepath.Match for one path component: * ? [...] [^...] and \\ escapes."""
    out = []
    i = 0
    while i < len(component):
        ch = component[i]
        if ch == "\\" and i + 1 < len(component):
            out.append(re.escape(component[i + 1]))
            i += 2
            continue
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = component.find("]", i + 2)
            if end < 0:
                raise ValueError(f"unterminated '[' in {component!r}")
            body = component[i + 1 : end]
            negate = body.startswith(("^", "!"))
            if negate:
                body = body[1:]
            body = body.replace("\\", "\\\\")
            out.append(f"[{'^' if negate else ''}{body}]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out) + r"\Z")


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
    """The context paths one COPY source names (several for a wildcard; maybe none)."""
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
            _missing_fix(context),
        )
    matches = [""]
    for component in clean.split("/"):
        if not _WILDCARD.search(component):
            matches = [f"{m}/{component}" if m else component for m in matches]
            matches = [m for m in matches if context.node(m, where) is not None]
            continue
        try:
            regex = _glob_regex(component)
        except ValueError as exc:
            raise UserError(
                f"bad wildcard in {source!r}: {exc}", where, "fix the pattern"
            ) from None
        grown = []
        for match in matches:
            node = context.node(match, where)
            if node is None or node.kind != DIR:
                continue
            for name in context.listdir(match, where):
                if regex.match(name):
                    grown.append(f"{match}/{name}" if match else name)
        matches = grown
    return sorted(matches)


def _missing_fix(context: Context) -> str:
    if isinstance(context, PlanContext):
        names = ", ".join(sorted(context.entries)) or "none"
        return f"list it under 'files' or 'targets' in the plan (the image has: {names})"
    return "check the path, and that .dockerignore does not exclude it"


@dataclass(frozen=True)
class Owner:
    uid: int
    gid: int


def parse_chown(text: str, tree: Tree, read: Callable[[Entry], bytes], where: str) -> Owner:
    """``--chown=user[:group]`` by id or by name from the image's /etc/passwd and /etc/group."""
    user, has_group, group = text.partition(":")
    if not user or (has_group and not group):
        raise UserError(f"invalid --chown {text!r}", where, "write --chown=user[:group]")

    def lookup(name: str, file: str) -> int:
        if name.isdigit():
            return int(name)
        entry = tree.get(tree.resolve(file))
        if entry is None or entry.kind != FILE:
            raise UserError(
                f"--chown names {name!r} but the image has no /{file} to look it up in",
                where,
                "use numeric ids, or COPY an /etc/passwd and /etc/group first",
            )
        for line in read(entry).decode("utf-8", "replace").splitlines():
            fields = line.split(":")
            if len(fields) >= 3 and fields[0] == name and fields[2].isdigit():
                return int(fields[2])
        raise UserError(
            f"--chown: no {'user' if file.endswith('passwd') else 'group'} {name!r} in /{file}",
            where,
            "add it to that file in the base image, or use a numeric id",
        )

    uid = lookup(user, "etc/passwd")
    gid = lookup(group, "etc/group") if has_group else uid
    return Owner(uid, gid)


def _read_entry(workspace: Path) -> Callable[[Entry], bytes]:
    def read(entry: Entry) -> bytes:
        return (workspace / entry.source).read_bytes()

    return read


def plan_copy(
    step: CopyStep,
    context: Context | None,
    lower: Tree,
    workspace: Path,
    digest: DigestFn,
) -> list[Entry]:
    """The entries of the layer that ``step`` adds on top of ``lower``, sorted."""
    owner = (
        parse_chown(step.chown, lower, _read_entry(workspace), step.where)
        if step.chown
        else Owner(0, 0)
    )
    out: dict[str, Entry] = {}
    seen_inodes: dict[tuple[int, int], str] = {}

    def have_dir(path: str) -> bool:
        entry = out.get(path)
        return (entry is not None and entry.kind == DIR) or lower.is_dir(path)

    def make_dirs(path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> None:
        for parent in [*parents(path), path] if path else []:
            if parent in out or lower.get(lower.resolve(parent)) is not None:
                existing = out.get(parent) or lower.get(lower.resolve(parent))
                if existing is not None and existing.kind not in (DIR, SYMLINK):
                    raise UserError(
                        f"cannot create directory /{parent}: the image has a file there",
                        step.where,
                        "choose another destination",
                    )
                continue
            out[parent] = Entry(
                parent,
                DIR,
                mode if parent == path else 0o755,
                uid if parent == path else 0,
                gid if parent == path else 0,
            )

    for workdir in step.workdirs:
        make_dirs(lower.resolve(image_path(workdir)))
    if context is None:
        return _sorted(out)

    sources: list[str] = []
    for source in step.sources:
        sources.extend(find_sources(context, source, step.where, step.keyword))
    if not sources:
        raise UserError(
            f"{step.keyword} sources {' '.join(step.sources)} match no file in"
            f" {context.describe()}",
            step.where,
            "check the wildcard, and that .dockerignore does not exclude the files",
        )
    if len(sources) > 1 and not step.dest_is_dir:
        raise UserError(
            f"{step.keyword} of several sources needs a directory destination ending with '/'",
            step.where,
            f"write the destination as {step.dest.rstrip('/')}/",
        )
    dest = lower.resolve(image_path(step.dest))

    def emit(vpath: str, node: Node, target: str) -> None:
        if node.kind == DIR:
            mode = step.chmod if step.chmod is not None else node.mode
            existing = out.get(target) or (lower.get(target) if target else None)
            if target and (existing is None or existing.kind != DIR):
                if existing is not None and existing.kind != SYMLINK and target not in out:
                    raise UserError(
                        f"cannot copy directory {context.shown(vpath)} onto /{target}, which is a"
                        " file in the image",
                        step.where,
                        "choose another destination",
                    )
                make_dirs(posixpath.dirname(target))
                out[target] = Entry(target, DIR, mode, owner.uid, owner.gid)
            for name in context.listdir(vpath, step.where):
                child = f"{vpath}/{name}" if vpath else name
                child_node = context.node(child, step.where)
                if child_node is None:
                    continue
                emit(child, child_node, f"{target}/{name}" if target else name)
            return
        make_dirs(posixpath.dirname(target))
        if node.kind == SYMLINK:
            assert node.real is not None
            out[target] = Entry(
                target, SYMLINK, 0o777, owner.uid, owner.gid, link=os.readlink(node.real)
            )
            return
        assert node.real is not None and node.st is not None
        mode = step.chmod if step.chmod is not None else node.mode
        key = (node.st.st_dev, node.st.st_ino)
        if node.st.st_nlink > 1 and key in seen_inodes and seen_inodes[key] != target:
            out[target] = Entry(target, HARDLINK, mode, owner.uid, owner.gid, link=seen_inodes[key])
            return
        seen_inodes.setdefault(key, target)
        out[target] = Entry(
            target,
            FILE,
            mode,
            owner.uid,
            owner.gid,
            size=node.st.st_size,
            digest=digest(node.real, node.st),
            source=_display(node.real, workspace),
        )

    for vpath in sources:
        node = context.node(vpath, step.where)
        if node is not None and node.kind == SYMLINK:
            vpath = context.follow(vpath, step.where)
            node = context.node(vpath, step.where)
        assert node is not None
        if node.kind == DIR:
            emit(vpath, node, dest)
        elif step.dest_is_dir or have_dir(dest):
            emit(
                vpath,
                node,
                f"{dest}/{posixpath.basename(vpath)}" if dest else posixpath.basename(vpath),
            )
        else:
            if not dest:
                raise UserError(
                    "cannot copy a file onto /", step.where, "write the destination as /"
                )
            emit(vpath, node, dest)
    return _sorted(out)


def _sorted(entries: dict[str, Entry]) -> list[Entry]:
    return sorted(entries.values(), key=lambda e: e.sort_key)


def walk_order(entries: Sequence[Entry]) -> Iterator[Entry]:
    yield from sorted(entries, key=lambda e: e.sort_key)
