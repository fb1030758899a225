"""The workspace of a run: one run at a time (the lock), SIGTERM ending a run the way
doit's own finish does, and the leftovers of runs that were killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import signal
import sys
import threading
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from types import FrameType

from doit_oci.rules.globals import PROCESS
from doit_oci.rules.units import Build

# doit commands that only read: they take no lock
COMMANDS_THAT_CHANGE_NOTHING = ("list", "info", "help", "dumpdb", "strace", "tabcompletion")


def database(build: Build) -> Path:
    """doit's database of this workspace: in it, or in the --cache-dir."""
    if build.options.cache_dir:
        return build.state / "doit.db"
    return build.workspace / ".doit.db"


PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """In a forked worker: die when the parent does (a ``kill -9`` of doit, the OOM
    killer), and do not hold the workspace lock (only the parent holds it)."""
    if PROCESS.lock is not None:
        with contextlib.suppress(OSError):
            PROCESS.lock.close()  # this copy only: the parent's lock stays
        PROCESS.lock = None
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the line above: follow it
        os._exit(1)


def _owner_gone(text: str) -> int:
    """The pid the lock file names, when that process no longer exists (else 0)."""
    words = text.split()
    if len(words) != 2 or words[0] != "pid" or not words[1].isdigit():
        return 0
    pid = int(words[1])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return pid
    except PermissionError:
        return 0
    return 0


def _holders(path: Path) -> list[int]:
    """The processes that have ``path`` open (from /proc), this one left out."""
    target = os.stat(path)
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        if int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    st = fd.stat()
                    if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
                        found.append(int(entry.name))
                        break
    return found


def lock_workspace(build: Build, argv: Sequence[str]) -> None:
    """One run at a time in a workspace: a second one waits for the first, saying so (its
    out/ and doit's database are not made for two writers). The lock is beside doit's
    database (.doit.db.lock), not in out/, which a no-op run leaves alone."""
    words = [w for w in argv if not w.startswith("-")]
    if words and words[0] in COMMANDS_THAT_CHANGE_NOTHING:
        return
    if PROCESS.lock is not None:
        return
    path = database(build)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(f"{path}.lock", "a+")  # noqa: SIM115 - held for the whole run
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        other = handle.read().strip() or "another doit"
        gone = _owner_gone(other)
        if gone:
            # its workers outlived it (a run of an older doit-oci, killed with -9): they
            # hold the lock for nobody; they are stopped, and the lock taken over
            left = _holders(Path(f"{path}.lock"))
            for pid in left:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            sys.stderr.write(
                f"taking over the lock of a run (pid {gone}) that is gone"
                f" (stopped what it left: {', '.join(map(str, left)) or 'nothing'})\n"
            )
        else:
            sys.stderr.write(f"waiting: another run ({other}) is building in {build.workspace}\n")
        fcntl.flock(handle, fcntl.LOCK_EX)
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}\n")
    handle.flush()
    PROCESS.lock = handle
    os.register_at_fork(after_in_child=partial(_die_with_parent, os.getpid()))


def stop_on_sigterm() -> None:
    """Make SIGTERM end a run the way doit's own finish does, so that it saves the state of
    what finished (the default handler would end the process with the whole run's state
    unsaved), and exit 143 without a traceback. Forked workers keep the default: their
    parent decides."""
    parent = os.getpid()

    def handler(signum: int, frame: FrameType | None) -> None:
        if os.getpid() != parent:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        sys.stderr.write("stopped by SIGTERM: what finished is kept, the next run does the rest\n")
        raise SystemExit(128 + signum)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
