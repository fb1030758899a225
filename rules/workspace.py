"""The workspace of a run: one run at a time (the lock), SIGTERM ending a run the way
doit's own finish does, and the leftovers of runs that were killed.
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import threading
from collections.abc import Sequence
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
        sys.stderr.write(f"waiting: another run ({other}) is building in {build.workspace}\n")
        fcntl.flock(handle, fcntl.LOCK_EX)
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}\n")
    handle.flush()
    PROCESS.lock = handle


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
