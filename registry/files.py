"""Writing files so that a reader never sees half of one: a temp file, then a rename.

Every temp file and temp folder made here is locked (``flock``) by its writer for as long
as it is being written, so that whoever cleans a temp folder (``Layout.gc``) can tell a
live writer's file from what a killed run left behind: ``remove_unless_locked`` removes
only what nobody holds.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def _still_named(path: Path, fd: int) -> bool:
    """Whether ``path`` is still the file (or folder) open as ``fd``."""
    try:
        named, held = os.stat(path, follow_symlinks=False), os.fstat(fd)
    except FileNotFoundError:
        return False
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


class TempFile:
    """A new file in ``folder``, open for writing as ``file`` and locked until it is kept
    under its real name (``keep``) or removed (``discard``)."""

    def __init__(self, folder: Path, prefix: str = ".tmp-", suffix: str = ".tmp") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        while True:
            fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                if _still_named(Path(name), fd):
                    break
            except BaseException:
                os.close(fd)
                Path(name).unlink(missing_ok=True)
                raise
            os.close(fd)  # a cleaner took it between its making and our lock: make another
        self.path = Path(name)
        self.file: IO[bytes] = os.fdopen(fd, "wb")
        self._done = False

    def keep(self, target: Path) -> None:
        """Rename the file to ``target`` (mode 0644), replacing what is there; the lock is
        let go only once it has its real name. On a failure the temp file is removed."""
        try:
            self.file.flush()
            os.fchmod(self.file.fileno(), 0o644)
            os.replace(self.path, target)
        except BaseException:
            self.discard()
            raise
        self._done = True
        self.file.close()

    def discard(self) -> None:
        """Remove the temp file (while still holding it); nothing once kept or discarded."""
        if self._done:
            return
        self._done = True
        try:
            self.path.unlink(missing_ok=True)
        finally:
            with contextlib.suppress(OSError):  # a write that could not be flushed: gone anyway
                self.file.close()


@contextlib.contextmanager
def atomic_file(path: Path, tmp_dir: Path | None = None) -> Iterator[IO[bytes]]:
    """A binary file to write ``path`` through: a temp file in ``tmp_dir`` (default: beside
    ``path``), renamed to ``path`` (mode 0644) when the block ends, removed if it raises."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = TempFile(tmp_dir or path.parent, prefix=f".{path.name}.")
    try:
        yield temp.file
        temp.file.flush()
    except OSError as exc:
        temp.discard()
        raise named(exc, path) from None
    except BaseException:
        temp.discard()
        raise
    try:
        temp.keep(path)
    except OSError as exc:
        raise named(exc, path) from None


def named(exc: OSError, path: Path) -> OSError:
    """``exc`` naming ``path`` when it names no file (a write's error names none)."""
    if exc.filename:
        return exc
    return OSError(exc.errno, exc.strerror or str(exc), str(path))


def write_atomic(path: Path, data: bytes, tmp_dir: Path | None = None) -> None:
    """Write ``data`` to ``path`` through a temp file in ``tmp_dir`` (default: beside it)."""
    with atomic_file(path, tmp_dir) as out:
        out.write(data)


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write ``data`` unless ``path`` already holds exactly it; True when written.

    Leaving an unchanged file alone keeps its mtime, so whatever depends on it stays
    up to date.
    """
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    write_atomic(path, data)
    return True


def link_or_copy(source: Path, target: Path) -> None:
    """Make ``target`` hold what ``source`` holds, replacing it in one rename: a hard link
    when the file system allows one, else a copy (mode 0644)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    link = target.with_name(f".{target.name}.{secrets.token_hex(8)}.link")
    try:
        os.link(source, link)
    except OSError:  # another file system, or one without hard links
        with atomic_file(target) as out, open(source, "rb") as data:
            shutil.copyfileobj(data, out)
        return
    try:
        os.replace(link, target)
    finally:
        link.unlink(missing_ok=True)


@contextlib.contextmanager
def temp_folder(parent: Path, prefix: str) -> Iterator[Path]:
    """A new folder in ``parent``, locked while the block runs, then removed whole."""
    parent.mkdir(parents=True, exist_ok=True)
    while True:
        folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if _still_named(folder, fd):
                break
        except BaseException:
            os.close(fd)
            shutil.rmtree(folder, ignore_errors=True)
            raise
        os.close(fd)
    try:
        yield folder
    finally:
        try:
            shutil.rmtree(folder, ignore_errors=True)
        finally:
            os.close(fd)


def remove_unless_locked(path: Path) -> bool:
    """Remove the temp file or folder ``path`` unless its writer still holds it (see
    ``TempFile``, ``temp_folder``); True when removed. A symbolic link is removed."""
    if path.is_symlink():
        path.unlink(missing_ok=True)
        return True
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:  # gone already, or not ours to open: left alone
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a live writer's
        if not _still_named(path, fd):
            return False  # renamed into place (or removed) since we opened it
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        return True
    finally:
        os.close(fd)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (made if need be) while the block runs: one
    writer at a time of what several processes write whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
