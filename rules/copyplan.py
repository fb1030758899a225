"""A COPY step -> the entries of its layer: which real file lands where, with what owner
and mode.

``plan_copy`` does what Docker's COPY does with the sources a ``rules.context`` Context
gives: a directory copies its contents, a file lands in a destination directory
(trailing ``/`` or an existing one) or at the destination path, destinations are resolved
through the image's symlinks, symlinks inside directories stay symlinks, hard links are
kept as such, ``--chown`` (``rules.chown``) and ``--chmod`` apply, missing parent
directories are created while existing ones are left alone, and the directories inside a
copied directory take their source's mode and owner, existing or not.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from doit_oci.rules.chown import Owner, parse_chown
from doit_oci.rules.context import Context, Node, display, find_sources
from doit_oci.rules.dockerfile.model import CopyStep
from doit_oci.rules.errors import UserError
from doit_oci.rules.tree import (
    DIR,
    FILE,
    HARDLINK,
    SYMLINK,
    Entry,
    LinkLoop,
    Tree,
    image_path,
    parents,
)

DigestFn = Callable[[Path, os.stat_result], str]


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
    """The entries of the layer that ``step`` adds on top of ``lower`` (see _plan_copy);
    a destination through a symlink loop of the image is refused, as buildah refuses it."""
    try:
        return _plan_copy(step, context, lower, workspace, digest)
    except LinkLoop as loop:
        raise UserError(
            f"{step.keyword} goes through /{loop.path}, which runs into a symlink loop of the"
            " image (a link to itself, or links that point at each other)",
            step.where,
            "copy to a path of the image that resolves",
        ) from None


def _plan_copy(
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
            source=display(node.real, workspace),
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
                context.missing_fix(),
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
