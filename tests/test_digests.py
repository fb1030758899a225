"""Tests of rules.digests: the stat-keyed SQLite cache of file digests."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from doit_oci.rules.digests import DigestCache, file_digest

OLD_NS = 1_600_000_000 * 10**9  # a time well in the past, as files are between builds


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _write(path: Path, data: bytes, mtime_ns: int = OLD_NS) -> None:
    path.write_bytes(data)
    os.utime(path, ns=(mtime_ns, mtime_ns))


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[DigestCache]:
    digests = DigestCache(tmp_path / "cache" / "digests.sqlite")
    yield digests
    digests.close()


@pytest.mark.parametrize("data", [b"", b"hello", b"x" * (3 << 20) + b"tail"])
def test_file_digest(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "f"
    path.write_bytes(data)
    assert file_digest(path) == _sha(data)
    assert file_digest(str(path)) == _sha(data)


def test_hashes_once(tmp_path: Path, cache: DigestCache) -> None:
    path = tmp_path / "f"
    _write(path, b"hello")
    assert cache.digest(path) == _sha(b"hello")
    assert cache.hashed == 1
    for _ in range(3):
        assert cache.digest(path) == _sha(b"hello")
    assert cache.digest(str(path)) == _sha(b"hello")  # str and Path are the same key
    assert cache.hashed == 1
    assert (tmp_path / "cache" / "digests.sqlite").is_file()


def test_given_stat_is_used(tmp_path: Path, cache: DigestCache) -> None:
    path = tmp_path / "f"
    _write(path, b"hello")
    st = os.stat(path)
    assert cache.digest(path, st) == _sha(b"hello")
    assert cache.digest(path, st) == _sha(b"hello")
    assert cache.hashed == 1


@pytest.mark.parametrize(
    ("second", "mtime_ns"),
    [
        (b"hello, world", OLD_NS),  # new size, same mtime
        (b"jello", OLD_NS + 1),  # same size, new mtime
    ],
)
def test_rehashes_after_a_content_change(
    tmp_path: Path, cache: DigestCache, second: bytes, mtime_ns: int
) -> None:
    path = tmp_path / "f"
    _write(path, b"hello")
    assert cache.digest(path) == _sha(b"hello")
    _write(path, second, mtime_ns)
    assert cache.digest(path) == _sha(second)
    assert cache.digest(path) == _sha(second)
    assert cache.hashed == 2


def test_rehashes_a_replaced_file(tmp_path: Path, cache: DigestCache) -> None:
    # same size and mtime, but a new inode: a file renamed into place
    path = tmp_path / "f"
    _write(path, b"hello")
    assert cache.digest(path) == _sha(b"hello")
    keep = tmp_path / "keep"
    path.rename(keep)  # keeps the inode in use, so the new file gets another
    _write(path, b"jello")
    assert os.stat(path).st_ino != os.stat(keep).st_ino
    assert cache.digest(path) == _sha(b"jello")
    assert cache.hashed == 2


def test_a_touch_rehashes_once(tmp_path: Path, cache: DigestCache) -> None:
    path = tmp_path / "f"
    _write(path, b"hello")
    assert cache.digest(path) == _sha(b"hello")
    os.utime(path, ns=(OLD_NS + 10**9, OLD_NS + 10**9))  # touch: same content
    assert cache.digest(path) == _sha(b"hello")
    assert cache.hashed == 2
    assert cache.digest(path) == _sha(b"hello")
    assert cache.digest(path) == _sha(b"hello")
    assert cache.hashed == 2


def test_a_real_touch_rehashes_once(tmp_path: Path, cache: DigestCache) -> None:
    path = tmp_path / "f"
    _write(path, b"hello")
    assert cache.digest(path) == _sha(b"hello")
    os.utime(path)  # now
    assert cache.digest(path) == _sha(b"hello")
    assert cache.digest(path) == _sha(b"hello")
    assert cache.hashed == 2


def test_each_file_has_its_entry(tmp_path: Path, cache: DigestCache) -> None:
    paths = [tmp_path / name for name in ("a", "b", "c")]
    for path in paths:
        _write(path, path.name.encode())
    for _ in range(2):
        assert [cache.digest(p) for p in paths] == [_sha(b"a"), _sha(b"b"), _sha(b"c")]
    assert cache.hashed == 3


def test_survives_a_reopen(tmp_path: Path) -> None:
    db = tmp_path / "digests.sqlite"
    path = tmp_path / "f"
    _write(path, b"hello")
    first = DigestCache(db)
    assert first.digest(path) == _sha(b"hello")
    first.close()
    second = DigestCache(db)
    assert second.digest(path) == _sha(b"hello")
    assert second.hashed == 0
    _write(path, b"hello!")
    assert second.digest(path) == _sha(b"hello!")
    assert second.hashed == 1
    second.close()
    third = DigestCache(db)
    assert third.digest(path) == _sha(b"hello!")
    assert third.hashed == 0
    third.close()


def test_two_caches_share_the_db(tmp_path: Path) -> None:
    db = tmp_path / "digests.sqlite"
    path = tmp_path / "f"
    _write(path, b"hello")
    one, two = DigestCache(db), DigestCache(db)
    assert one.digest(path) == two.digest(path) == _sha(b"hello")
    assert (one.hashed, two.hashed) == (1, 0)
    one.close()
    two.close()


def test_close_then_use_reconnects(tmp_path: Path, cache: DigestCache) -> None:
    path = tmp_path / "f"
    _write(path, b"hello")
    cache.digest(path)
    cache.close()
    cache.close()  # twice is harmless
    assert cache.digest(path) == _sha(b"hello")
    assert cache.hashed == 1


def test_rows_hold_the_stat(tmp_path: Path, cache: DigestCache) -> None:
    path = tmp_path / "f"
    _write(path, b"hello")
    cache.digest(path)
    st = os.stat(path)
    with sqlite3.connect(tmp_path / "cache" / "digests.sqlite") as db:
        rows = db.execute(
            "SELECT path, size, mtime_ns, ctime_ns, ino, digest FROM digests"
        ).fetchall()
    assert rows == [(str(path), 5, OLD_NS, st.st_ctime_ns, st.st_ino, _sha(b"hello"))]


def test_missing_file(tmp_path: Path, cache: DigestCache) -> None:
    with pytest.raises(FileNotFoundError):
        cache.digest(tmp_path / "absent")
    assert cache.hashed == 0


def _in_child(work: Path, cache: DigestCache) -> tuple[int, str, str]:
    """Run cache.digest in a forked child; its exit code, the digests and hashed count."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into pytest
        code = 0
        try:
            old = cache.digest(work / "old")
            new = cache.digest(work / "new")
            again = cache.digest(work / "new")
            os.write(
                write_end, f"{old} {new if new == again else 'differs'} {cache.hashed}".encode()
            )
        except BaseException as exc:
            os.write(write_end, repr(exc).encode())
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        report = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    parts = report.split(" ")
    assert len(parts) == 3, report
    return os.waitstatus_to_exitcode(status), parts[0], parts[1] + " " + parts[2]


def test_works_after_fork(tmp_path: Path, cache: DigestCache) -> None:
    _write(tmp_path / "old", b"hello")
    _write(tmp_path / "new", b"world")
    assert cache.digest(tmp_path / "old") == _sha(b"hello")
    assert cache.hashed == 1
    code, old, rest = _in_child(tmp_path, cache)
    assert code == 0
    # the child found the parent's entry and hashed only the new file (hashed 1 + 1)
    assert old == _sha(b"hello")
    assert rest == f"{_sha(b'world')} 2"
    # the parent's connection still works, and sees what the child stored
    assert cache.digest(tmp_path / "new") == _sha(b"world")
    assert cache.digest(tmp_path / "old") == _sha(b"hello")
    assert cache.hashed == 1


def test_a_damaged_cache_starts_again_empty(tmp_path: Path) -> None:
    # the cache writes without fsync: after a crash it may not be a database any more
    target = tmp_path / "f"
    target.write_bytes(b"data")
    db = tmp_path / "digests.sqlite"
    db.write_bytes(b"not a database, but not empty either" * 200)
    cache = DigestCache(db)
    assert cache.digest(target) == file_digest(target)
    assert cache.hashed == 1
    cache.close()
    again = DigestCache(db)
    assert again.digest(target) == file_digest(target)
    assert again.hashed == 0  # remembered in the new database
    again.close()


def test_writes_are_not_synced(tmp_path: Path, cache: DigestCache) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"data")
    cache.digest(target)
    assert cache._connect().execute("PRAGMA synchronous").fetchone() == (0,)


def _filled_cache(tmp_path: Path, count: int) -> tuple[Path, list[Path]]:
    """A cache database that knows ``count`` files, closed."""
    files = []
    cache = DigestCache(tmp_path / "digests.sqlite")
    for number in range(count):
        path = tmp_path / "files" / f"{number:04d}-{'x' * 60}"
        path.parent.mkdir(exist_ok=True)
        _write(path, f"file {number}".encode())
        cache.digest(path)
        files.append(path)
    cache.close()
    return tmp_path / "digests.sqlite", files


def test_damage_inside_the_cache_is_set_aside_once(tmp_path: Path) -> None:
    # a crash without synced writes can leave broken pages behind a good header: the first
    # query that meets them sets the database aside, and the cache starts again empty
    db, files = _filled_cache(tmp_path, 300)
    data = bytearray(db.read_bytes())
    page = 4096
    for start in range(page, len(data), page):
        data[start : start + page] = b"\xff" * min(page, len(data) - start)
    db.write_bytes(bytes(data))
    cache = DigestCache(db)
    assert cache.digest(files[0]) == _sha(b"file 0")
    assert cache.digest(files[1]) == _sha(b"file 1")
    assert cache.hashed == 2
    assert (tmp_path / "digests.sqlite.damaged").is_file()
    cache.close()
    again = DigestCache(db)
    assert again.digest(files[0]) == _sha(b"file 0") and again.digest(files[1])
    assert again.hashed == 0  # remembered in the new database
    again.close()


def test_a_database_set_aside_by_another_process_is_kept(tmp_path: Path) -> None:
    db, files = _filled_cache(tmp_path, 1)
    db.write_bytes(b"not a database, but not empty either" * 200)
    other = DigestCache(db)
    other._ino = os.stat(db).st_ino  # it opened the damaged file too, before ...
    first = DigestCache(db)
    first.digest(files[0])  # ... this one set it aside and made a new one
    other._set_aside()  # then it finds the damage: the new database stays
    again = DigestCache(db)
    assert again.digest(files[0]) == _sha(b"file 0") and again.hashed == 0
    for cache in (other, first, again):
        cache.close()


def test_an_older_cache_table_is_dropped(tmp_path: Path) -> None:
    db = tmp_path / "digests.sqlite"
    with sqlite3.connect(db) as old:
        old.execute("CREATE TABLE files (path TEXT PRIMARY KEY, size, mtime_ns, ino, digest)")
    old.close()
    cache = DigestCache(db)
    target = tmp_path / "f"
    _write(target, b"data")
    assert cache.digest(target) == _sha(b"data")
    tables = {row[0] for row in cache._connect().execute("SELECT name FROM sqlite_master")}
    assert "files" not in tables and "digests" in tables
    cache.close()


def test_known_trusts_a_file_only_a_while_after_its_last_change(
    tmp_path: Path, cache: DigestCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "f"
    _write(path, b"hello")
    cache.digest(path)
    st = os.stat(path)
    # the row says when it was hashed; the file's ctime is the time of its last change
    monkeypatch.setattr("doit_oci.rules.digests.RACY_FINE_NS", 10**12)
    monkeypatch.setattr("doit_oci.rules.digests.RACY_NS", 10**12)
    assert cache.known(path, st) == ""
    monkeypatch.setattr("doit_oci.rules.digests.RACY_FINE_NS", 0)
    monkeypatch.setattr("doit_oci.rules.digests.RACY_NS", 0)
    assert cache.known(path, st) == _sha(b"hello")
    assert cache.hashed == 1  # known never hashes
