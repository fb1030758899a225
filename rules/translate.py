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
at the destination path, destinations are resolved through the image's symlinks,
wildcards expand (Go's ``filepath.Match``), symlinks inside directories stay symlinks,
hard links are kept as such, ``--chown``/``--chmod`` apply, missing parent directories
are created while existing ones are left alone, and the directories inside a copied
directory take their source's mode and owner, existing or not.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from doit_oci.rules.dockerfile.model import CopyStep
from doit_oci.rules.dockerignore import IgnoreError, load
from doit_oci.rules.errors import UserError
from doit_oci.rules.golang import BadPattern, match_regex
from doit_oci.rules.tree import DIR, FILE, HARDLINK, SYMLINK, Entry, Tree, image_path, parents

_WILDCARD = re.compile(r"[*?\[]")
_NUMBER = re.compile(r"[0-9]+")

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
        self._real_dirs: dict[str, str] = {"": ""}
        self._holds: dict[str, bool] = {}

    def describe(self) -> str:
        return f"the context {_display(self.root, self.workspace)}"

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
        return _node(self.root / rel, vpath, where)

    def listdir(self, vpath: str, where: str) -> list[str]:
        rel = self._real_dir(vpath, where)
        names = []
        for name in sorted(os.listdir(self.root / rel)):
            _check_name(name, where)
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
        listed = ", ".join(_display(d, self.workspace) for d in deps)
        return UserError(
            f"source {source!r} is ambiguous: the image lists several files named {name!r}"
            f" ({listed})",
            where,
            "rename one of them or use a 'context:' directory",
        )

    def _listed(self, vpath: str) -> bool:
        """Whether ``vpath`` is a listed file or directory itself, not something below."""
        return not self._split(vpath)[2]

    def _normalised(self, vpath: str, node: Node | None) -> Node | None:
        if node is None or node.real is None or node.kind == SYMLINK:
            return node
        if node.kind == FILE and self._listed(vpath):
            mode = 0o755 if node.mode & 0o111 else node.mode | 0o444
        else:
            mode = node.mode | 0o444
        return replace(node, mode=mode)

    def node(self, vpath: str, where: str) -> Node | None:
        real = self._real(vpath, where)
        if real is None:
            return None
        if real == "":
            return Node(DIR, 0o755, None)
        assert isinstance(real, Path)
        node = _node(real, str(real), where)
        if node is None and self._listed(vpath):
            raise UserError(
                f"source {vpath!r} is {_display(real, self.workspace)} of the plan, which"
                " does not exist",
                where,
                "build it first (run make, or leave SKIP_MAKE unset), or fix the plan's"
                " 'files' and 'targets'",
            )
        if node is not None and node.kind == SYMLINK and self._listed(vpath):
            # a listed file that is a symlink stands for what it points at
            target = Path(os.path.realpath(real))
            if target.exists():
                node = _node(target, str(target), where)
        return self._normalised(vpath, node)

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
            _check_name(name, where)
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
        found = [parts[-1]] if by_name else []
        if not found:
            for i, part in enumerate(parts[:-1]):
                rest = "/".join(parts[i + 1 :])
                vpath = f"{part}/{rest}"
                for dep in self._named.get(part, []):
                    inside = dep.is_dir() and ((dep / rest).exists() or (dep / rest).is_symlink())
                    if inside and vpath not in found:
                        found.append(vpath)
        if len(found) > 1:
            listed = ", ".join(_display(d, self.workspace) for d in self.candidates)
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


def _display(path: Path, workspace: Path) -> str:
    try:
        return str(path.relative_to(workspace))
    except ValueError:
        return str(path)


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
            _missing_fix(context),
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


def _missing_fix(context: Context) -> str:
    if isinstance(context, PlanContext):
        names = ", ".join(sorted(context.entries)) or "none"
        return f"list it under 'files' or 'targets' in the plan (the image has: {names})"
    return "check the path, and that .dockerignore does not exclude it"


@dataclass(frozen=True)
class Owner:
    uid: int
    gid: int


def parse_chown(
    text: str, tree: Tree, read: Callable[[Entry], bytes], where: str, flag: str = "--chown"
) -> Owner:
    """``--chown=user[:group]`` by id or by name from the image's /etc/passwd and /etc/group.

    As in BuildKit, a user given alone by name gets its primary group from /etc/passwd,
    and one given alone by id gets the same id as its group. BuildKit resolves the USER
    a WORKDIR creates its directories for the same way; ``flag`` names what is resolved
    in messages.
    """
    user, has_group, group = text.partition(":")
    if not user or (has_group and not group):
        usage = "--chown=user[:group]" if flag == "--chown" else "USER user[:group]"
        raise UserError(f"invalid {flag} {text!r}", where, f"write {usage}")

    def lookup(name: str, file: str) -> tuple[int, int]:
        """The id of ``name`` in ``file``, and the primary group id its line gives."""
        if _NUMBER.fullmatch(name):
            return int(name), int(name)
        entry = tree.get(tree.realpath(file))
        if entry is not None and entry.kind == HARDLINK:
            entry = tree.get(entry.link)
        if (entry is None or entry.kind != FILE) and not tree.complete:
            raise UserError(
                f"{flag} names {name!r}, which would be looked up in /{file} of a registry"
                " base image, whose layers doit-oci does not read",
                where,
                "use numeric ids (--chown=1337:1337)",
            )
        if entry is None or entry.kind != FILE:
            raise UserError(
                f"{flag} names {name!r} but the image has no /{file} to look it up in",
                where,
                "use numeric ids, or COPY an /etc/passwd and /etc/group first",
            )
        for line in read(entry).decode("utf-8", "replace").splitlines():
            fields = line.split(":")
            if len(fields) >= 3 and fields[0] == name and _NUMBER.fullmatch(fields[2]):
                number = int(fields[2])
                primary = fields[3] if len(fields) >= 4 else ""
                return number, int(primary) if _NUMBER.fullmatch(primary) else number
        raise UserError(
            f"{flag}: no {'user' if file.endswith('passwd') else 'group'} {name!r} in /{file}",
            where,
            "add it to that file in the base image, or use a numeric id",
        )

    uid, primary_gid = lookup(user, "etc/passwd")
    gid = lookup(group, "etc/group")[0] if has_group else primary_gid
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
    """The entries of the layer that ``step`` adds on top of ``lower``, sorted.

    Destinations are resolved as BuildKit resolves them, through the image's symlinks
    (the last component too). A directory source copies its contents; the directories
    inside it are written with their own mode and owner even where the image already has
    them, while the destination and its parents are only created when missing (0755,
    owned by the --chown user, as BuildKit creates them). A file or
    symlink cannot replace a directory, nor a directory a file or symlink.
    """
    owner = (
        parse_chown(step.chown, lower, _read_entry(workspace), step.where)
        if step.chown
        else Owner(0, 0)
    )
    out: dict[str, Entry] = {}
    # path -> (source index, device, inode) of copied files that have several links
    inodes: dict[str, tuple[int, int, int]] = {}

    def existing(path: str) -> Entry | None:
        entry = out.get(path)
        return entry if entry is not None else lower.get(path)

    def have_dir(path: str) -> bool:
        entry = out.get(path)
        return entry.kind == DIR if entry is not None else lower.is_dir(path)

    def make_dirs(path: str, uid: int = 0, gid: int = 0) -> None:
        """Create what is missing of ``path`` and its parents: 0755, owned as given."""
        for parent in [*parents(path), path] if path else []:
            found = existing(parent)
            if found is None and not lower.complete:
                # the base may have it, with metadata we do not know: leave it to the base
                # (a missing parent is made by whoever unpacks the layer)
                continue
            if found is None:
                out[parent] = Entry(parent, DIR, 0o755, uid, gid)
            elif found.kind not in (DIR, SYMLINK):
                raise UserError(
                    f"cannot create directory /{parent}: the image has a file there",
                    step.where,
                    "choose another destination",
                )

    users = step.workdir_users or ("",) * len(step.workdirs)
    for workdir, user in zip(step.workdirs, users, strict=True):
        target = lower.realpath(image_path(workdir))
        made = [p for p in [*parents(target), target] if target and existing(p) is None]
        # BuildKit creates a WORKDIR's missing directories owned by the USER of that point
        workdir_owner = (
            parse_chown(
                user, lower, _read_entry(workspace), step.where, f"USER (for WORKDIR {workdir})"
            )
            if user and made and lower.complete
            else Owner(0, 0)
        )
        make_dirs(target, workdir_owner.uid, workdir_owner.gid)
    if context is None:
        return _with_parents(out, lower)

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
    dest = lower.realpath(image_path(step.dest))

    def refuse(vpath: str, target: str, found: Entry, is_dir: bool) -> UserError:
        shown = context.shown(vpath) if context is not None else vpath
        what = "directory" if is_dir else "file"
        if found.kind == DIR:
            there, fix = "a directory", "choose another destination"
        elif found.kind == SYMLINK:
            there = "a symlink"
            fix = f"copy into /{lower.realpath(target)}, where the symlink points, instead"
        else:
            there, fix = "a file", "choose another destination"
        return UserError(
            f"cannot copy {what} {shown} onto /{target}, which is {there} in the image",
            step.where,
            fix,
        )

    def emit(vpath: str, node: Node, target: str, index: int, top: bool = False) -> None:
        if node.kind == DIR:
            found = existing(target) if target else None
            if found is not None and found.kind != DIR:
                raise refuse(vpath, target, found, True)
            if target and top:
                # the destination is not the source directory: BuildKit creates it when
                # missing, 0755 and owned by --chown, and leaves an existing one alone
                make_dirs(target, owner.uid, owner.gid)
            elif target:
                make_dirs(posixpath.dirname(target), owner.uid, owner.gid)
                mode = step.chmod if step.chmod is not None else node.mode
                out[target] = Entry(target, DIR, mode, owner.uid, owner.gid)
            for name in context.listdir(vpath, step.where):
                child = f"{vpath}/{name}" if vpath else name
                child_node = context.node(child, step.where)
                if child_node is None:
                    continue
                emit(child, child_node, f"{target}/{name}" if target else name, index)
            return
        found = existing(target)
        if found is not None and found.kind == DIR:
            raise refuse(vpath, target, found, False)
        make_dirs(posixpath.dirname(target), owner.uid, owner.gid)
        inodes.pop(target, None)
        if node.kind == SYMLINK:
            assert node.real is not None
            out[target] = Entry(
                target, SYMLINK, 0o777, owner.uid, owner.gid, link=os.readlink(node.real)
            )
            return
        assert node.real is not None and node.st is not None
        mode = step.chmod if step.chmod is not None else node.mode
        if node.st.st_nlink > 1:
            inodes[target] = (index, node.st.st_dev, node.st.st_ino)
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

    for index, vpath in enumerate(sources):
        name = posixpath.basename(vpath)  # the name written (or matched), not followed
        node = context.node(vpath, step.where)
        if node is not None and node.kind == SYMLINK:
            vpath = context.follow(vpath, step.where)
            node = context.node(vpath, step.where)
        if node is None:
            raise UserError(
                f"{step.keyword} source {vpath!r} not found in {context.describe()}",
                step.where,
                _missing_fix(context),
            )
        if step.keyword == "ADD" and node.kind == FILE and node.real and is_archive(node.real):
            raise UserError(
                f"ADD of the local archive {context.shown(vpath)!r}: Docker would extract it,"
                " which doit-oci does not do",
                step.where,
                "extract it in make and COPY the directory, or COPY the archive as a file",
            )
        if node.kind == DIR:
            emit(vpath, node, dest, index, top=True)
        elif step.dest_is_dir or have_dir(dest):
            emit(vpath, node, f"{dest}/{name}" if dest else name, index)
        else:
            emit(vpath, node, dest, index)
    _link_hard_links(out, inodes)
    return _with_parents(out, lower)


_ARCHIVE_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")


def is_archive(path: Path) -> bool:
    """Whether ADD would unpack the file: a tar, or a gzip, bzip2, xz or zstd stream
    (Docker decides by the content, not by the name)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError:
        return False
    if head.startswith(_ARCHIVE_MAGIC):
        return True
    return len(head) >= 262 and head[257:262] == b"ustar"


def _link_hard_links(out: dict[str, Entry], inodes: dict[str, tuple[int, int, int]]) -> None:
    """Store a file that one source holds under several names once: the first name in
    layer order as a file, the others as hard links to it (as BuildKit's copier does,
    with one hard-link map per source)."""
    first: dict[tuple[int, int, int], str] = {}
    for path in sorted(inodes, key=lambda p: tuple(p.split("/"))):
        entry = out[path]
        key = inodes[path]
        if entry.kind != FILE:
            continue
        if key in first:
            out[path] = Entry(path, HARDLINK, entry.mode, entry.uid, entry.gid, link=first[key])
        else:
            first[key] = path


def _with_parents(out: dict[str, Entry], lower: Tree) -> list[Entry]:
    """The layer's entries, sorted, with every directory of the image below that holds
    one of them, as it is there: Docker's and buildah's layers declare the parents of
    what changed with their current metadata (for a registry base they are unknown)."""
    for path in list(out):
        for parent in parents(path):
            if parent not in out:
                found = lower.get(parent)
                if found is not None and found.kind == DIR:
                    out[parent] = found
    return _sorted(out)


def _sorted(entries: dict[str, Entry]) -> list[Entry]:
    return sorted(entries.values(), key=lambda e: e.sort_key)


def walk_order(entries: Sequence[Entry]) -> Iterator[Entry]:
    yield from sorted(entries, key=lambda e: e.sort_key)
