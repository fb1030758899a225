"""A cache of file content digests keyed by what ``stat`` says, kept in SQLite.

A file is hashed when its size, mtime, ctime or inode differ from the cached ones, and
then the new digest is kept, so a file whose mtime changed but whose content did not is
hashed once, not on every run (ctime is in the key because no tool sets it back: a file
replaced by ``cp -p`` or ``touch -r`` with the same size and mtime is still noticed).
Safe across processes (SQLite locking) and forks (one connection per process). The
default rollback journal is kept on purpose: a run that only reads the cache writes
nothing, where WAL would touch its side files. Writes are not synced: a crash may lose
some (those files are hashed again) or damage the file, which is then set aside and the
cache starts again empty.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import sqlite3
import time
from pathlib import Path
from typing import cast

from doit_oci.rules.globals import PROCESS

CHUNK = 1 << 20
# a row is trusted without hashing by ``known`` only when the file last changed this long
# before it was hashed, as a change within the same timestamp tick keeps mtime and ctime:
# two seconds where timestamps are whole seconds (FAT, ext3, some network file systems),
# else a tenth of a second (the kernel's coarse clock ticks every 1 to 10 ms)
RACY_NS = 2_000_000_000
RACY_FINE_NS = 100_000_000
TABLE = "digests"  # (an older cache's table "files" is dropped)


def stat_key(st: os.stat_result) -> tuple[int, int, int, int]:
    """What says a file is still the one hashed: size, mtime, ctime and inode."""
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino


def file_digest(path: Path | str) -> str:
    with open(path, "rb") as handle:
        return "sha256:" + hashlib.file_digest(handle, "sha256").hexdigest()


class DigestCache:
    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self._pid = -1
        self._db: sqlite3.Connection | None = None
        self._ino = 0  # the inode of the database file this connection opened
        self._recreated = False
        self.hashed = 0  # files hashed by this process, for tests and reports

    def _connect(self) -> sqlite3.Connection:
        if self._db is None or self._pid != os.getpid():
            self._forget_inherited()
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
            try:
                db = self._open()
            except sqlite3.OperationalError:  # locked for a minute, unreadable: say so
                raise
            except sqlite3.DatabaseError:  # not a database any more
                self._set_aside()
                db = self._open()
            self._db, self._pid = db, os.getpid()
        return self._db

    def _open(self) -> sqlite3.Connection:
        try:
            self._ino = os.stat(self.db_path).st_ino
        except FileNotFoundError:
            self._ino = 0
        db = sqlite3.connect(self.db_path, timeout=60, isolation_level=None)
        try:
            # a cache: a write lost in a crash only means hashing that file again, so no
            # fsync per write (which cost about 25 ms for each file hashed)
            db.execute("PRAGMA synchronous = OFF")
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
            if TABLE not in tables:
                db.execute(
                    f"CREATE TABLE IF NOT EXISTS {TABLE} (path TEXT PRIMARY KEY, size INTEGER,"
                    " mtime_ns INTEGER, ctime_ns INTEGER, ino INTEGER, digest TEXT,"
                    " hashed_ns INTEGER)"
                )
            if "files" in tables:
                db.execute("DROP TABLE IF EXISTS files")
            self._ino = os.stat(self.db_path).st_ino
        except BaseException:
            db.close()
            raise
        return db

    def _set_aside(self) -> None:
        """Move a damaged database aside (once), so that the cache starts again empty; a
        process that finds it already replaced by another one's new database keeps that."""
        lock = self.db_path.with_name(self.db_path.name + ".lock")
        with open(lock, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                current = os.stat(self.db_path).st_ino
            except FileNotFoundError:
                return
            if current == self._ino:
                os.replace(self.db_path, self.db_path.with_name(self.db_path.name + ".damaged"))
                Path(f"{self.db_path}-journal").unlink(missing_ok=True)

    def _damaged(self) -> bool:
        """After a query found the database damaged: start again empty, once per process.
        False when that was done already (the cache is then not used)."""
        if self._recreated:
            return False
        self._recreated = True
        self._set_aside()
        self.close()
        return True

    def _one(self, sql: str, parameters: tuple[object, ...]) -> tuple[object, ...] | None:
        """Run ``sql``, and its first row; None also when the database is locked, full
        or damaged (damage found the first time sets it aside, and ``sql`` runs again on
        a new one)."""
        for _ in range(2):
            try:
                row = self._connect().execute(sql, parameters).fetchone()
                return None if row is None else tuple(row)
            except (sqlite3.OperationalError, OverflowError):
                # locked, full, or a time past what SQLite stores (a file dated after
                # 2262 or before 1678: real file systems keep such times): not cached
                return None
            except sqlite3.DatabaseError:
                if not self._damaged():
                    return None
        return None

    def _row(self, key: str) -> tuple[int, int, int, int, str, int] | None:
        row = self._one(
            f"SELECT size, mtime_ns, ctime_ns, ino, digest, hashed_ns FROM {TABLE} WHERE path = ?",
            (key,),
        )
        return cast("tuple[int, int, int, int, str, int] | None", row)

    def known(self, path: Path | str, st: os.stat_result) -> str:
        """The digest cached for the file at ``path`` as ``st`` describes it, or "" (never
        hashes). Only a file that had not changed for a while when it was hashed is
        known: one changed within the same timestamp tick may keep its stat."""
        row = self._row(os.path.abspath(path))
        if row is None or tuple(row[:4]) != stat_key(st):
            return ""
        window = RACY_NS if st.st_ctime_ns % 1_000_000_000 == 0 else RACY_FINE_NS
        if st.st_ctime_ns > row[5] - window:
            return ""
        return str(row[4])

    def digest(self, path: Path | str, st: os.stat_result | None = None) -> str:
        """The sha256 of the file at ``path``, hashing it only when its stat changed."""
        key = os.path.abspath(path)
        st = st or os.stat(key)
        row = self._row(key)
        if row is not None and tuple(row[:4]) == stat_key(st):
            return str(row[4])
        started = time.time_ns()
        digest = file_digest(key)
        self.hashed += 1
        PROCESS.hashed[key] = PROCESS.hashed.get(key, 0) + 1
        self._store(key, st, digest, started)
        return digest

    def _store(self, key: str, st: os.stat_result, digest: str, hashed_ns: int) -> None:
        """Remember a digest; on a full disk, a locked or a damaged database it is only
        not remembered, and the next run hashes the file again."""
        self._one(
            f"INSERT OR REPLACE INTO {TABLE} VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key, *stat_key(st), digest, hashed_ns),
        )

    def _forget_inherited(self) -> None:
        if self._db is not None and self._pid != os.getpid():
            # SQLite forbids using, even closing, a connection inherited across a fork:
            # it is kept, never touched, where the garbage collector will not close it
            PROCESS.inherited.append(self._db)
            self._db = None

    def close(self) -> None:
        self._forget_inherited()
        if self._db is not None:
            self._db.close()
        self._db = None
