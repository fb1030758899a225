"""A cache of file content digests keyed by what ``stat`` says, kept in SQLite.

A file is hashed when its size, mtime or inode differ from the cached ones, and then
the new digest is kept, so a file whose mtime changed but whose content did not is
hashed once, not on every run. Safe across processes (SQLite locking) and forks (one
connection per process). The default rollback journal is kept on purpose: a run that
only reads the cache writes nothing, where WAL would touch its side files.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
from pathlib import Path
from typing import ClassVar

CHUNK = 1 << 20

# Connections a forked child inherited from its parent. SQLite forbids using them, even
# to close them, in the child, so they are kept here, never touched, rather than left to
# the garbage collector (which would close them).
_INHERITED: list[sqlite3.Connection] = []


def file_digest(path: Path | str) -> str:
    with open(path, "rb") as handle:
        return "sha256:" + hashlib.file_digest(handle, "sha256").hexdigest()


class DigestCache:
    hashed_here: ClassVar[dict[str, int]] = {}  # path -> times hashed by this process

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self._pid = -1
        self._db: sqlite3.Connection | None = None
        self.hashed = 0  # files hashed by this process, for tests and reports

    def _connect(self) -> sqlite3.Connection:
        if self._db is None or self._pid != os.getpid():
            self._forget_inherited()
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
            try:
                db = self._open()
            except sqlite3.OperationalError:  # locked for a minute, unreadable: say so
                raise
            except sqlite3.DatabaseError:
                # not a database any more (a crash with writes not synced): it is only a
                # cache, so it starts again empty
                self.db_path.unlink(missing_ok=True)
                db = self._open()
            self._db, self._pid = db, os.getpid()
        return self._db

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.db_path, timeout=60, isolation_level=None)
        try:
            # a cache: a write lost in a crash only means hashing that file again, so no
            # fsync per write (which cost about 25 ms for each file hashed)
            db.execute("PRAGMA synchronous = OFF")
            known = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'files'").fetchone()
            if known is None:
                db.execute(
                    "CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER,"
                    " mtime_ns INTEGER, ino INTEGER, digest TEXT)"
                )
        except BaseException:
            db.close()
            raise
        return db

    def known(self, path: Path | str, st: os.stat_result) -> str:
        """The digest cached for the file at ``path`` as ``st`` describes it, or "" (never
        hashes)."""
        key = os.path.abspath(path)
        try:
            row = (
                self._connect()
                .execute("SELECT size, mtime_ns, ino, digest FROM files WHERE path = ?", (key,))
                .fetchone()
            )
        except sqlite3.Error:
            return ""
        if row is not None and tuple(row[:3]) == (st.st_size, st.st_mtime_ns, st.st_ino):
            return str(row[3])
        return ""

    def digest(self, path: Path | str, st: os.stat_result | None = None) -> str:
        """The sha256 of the file at ``path``, hashing it only when its stat changed."""
        key = os.path.abspath(path)
        st = st or os.stat(key)
        db = self._connect()
        try:
            row = db.execute(
                "SELECT size, mtime_ns, ino, digest FROM files WHERE path = ?", (key,)
            ).fetchone()
        except sqlite3.DatabaseError:  # damaged: hash the file
            row = None
        if row is not None and tuple(row[:3]) == (st.st_size, st.st_mtime_ns, st.st_ino):
            return str(row[3])
        digest = file_digest(key)
        self.hashed += 1
        DigestCache.hashed_here[key] = DigestCache.hashed_here.get(key, 0) + 1
        # on a full disk or a locked database the digest is right, only not remembered:
        # the next run hashes the file again
        with contextlib.suppress(sqlite3.DatabaseError):
            db.execute(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)",
                (key, st.st_size, st.st_mtime_ns, st.st_ino, digest),
            )
        return digest

    def _forget_inherited(self) -> None:
        if self._db is not None and self._pid != os.getpid():
            _INHERITED.append(self._db)
            self._db = None

    def close(self) -> None:
        self._forget_inherited()
        if self._db is not None:
            self._db.close()
        self._db = None
