"""Reading the small files a build is described by (plans, Dockerfiles, .dockerignore),
whatever the path names: never blocking on a FIFO, never reading a device or a file
larger than a stated limit, never holding more than the limit in memory.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from doit_oci.rules.errors import UserError

PLAN_LIMIT = 4 << 20  # bytes; Istio's docker.yaml is 6 kB
DOCKERFILE_LIMIT = 1 << 20  # Istio's largest is 2 kB; a 1 MiB one of LABELs takes 4 s
IGNORE_LIMIT = 1 << 20

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def read_bytes(path: Path, what: str, shown: str, limit: int) -> bytes:
    """The bytes of the regular file ``path`` (``what`` and ``shown`` name it in
    messages), at most ``limit`` of them; FileNotFoundError when there is none."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.EISDIR:
            raise UserError(f"the {what} is a directory", shown, f"name the {what} file") from None
        raise UserError(
            f"cannot read the {what}: {exc.strerror}", shown, "check the file"
        ) from None
    mode = os.fstat(fd).st_mode
    for test, kind in _KINDS:
        if test(mode):
            os.close(fd)
            raise UserError(f"the {what} is {kind}, not a file", shown, f"name the {what} file")
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise UserError(
            f"the {what} is larger than {limit >> 20} MiB, the most doit-oci reads",
            shown,
            f"check that this is the {what}",
        )
    return data


def read_text(path: Path, what: str, shown: str, limit: int) -> str:
    """As ``read_bytes``, decoded as UTF-8."""
    data = read_bytes(path, what, shown, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"the {what} is not UTF-8 (byte {exc.start})", shown, "save it as UTF-8"
        ) from None
