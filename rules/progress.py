"""How the steps tell what they do: ``emit`` an event (rules.events), ``say`` a line,
``warn``, and ``progress_events`` for long work (uploads, big layers, base fetches).

An event goes to the run's hub when the reporter started one (the parent shows it, in
order, in the run's ``--progress`` mode); where there is none (before doit runs the
tasks, or under another reporter) it is shown at once, by this process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import MappingProxyType

from doit_oci.rules.display import direct
from doit_oci.rules.events import Event, LogEvent, ProgressEvent, WarningEvent
from doit_oci.rules.globals import PROCESS

SMALL = 1_000_000  # less than this much to upload: no progress shown at all
BIG_LAYER = 50_000_000  # a layer of more file content than this shows its progress
FIRST_AFTER = 1.0  # seconds of work before its progress shows: nothing for quicker work
# seconds between two progress events: a terminal redraws often, a log gets a few lines
INTERVALS = MappingProxyType({"tty": 0.2, "json": 1.0, "plain": 5.0})


def emit(event: Event) -> None:
    hub = PROCESS.hub
    if hub is not None and hub.send(event):
        return
    direct(PROCESS.mode).show(event)


def say(text: str) -> None:
    """One line on stderr (in json: a log event)."""
    emit(LogEvent(text, task=PROCESS.task))


def tell(text: str) -> None:
    """One line of a command's own output on stdout (status, gc; in json: a log event)."""
    emit(LogEvent(text, "stdout", PROCESS.task))


def current_task() -> str:
    """The name of the task this worker runs ("" outside a task)."""
    return PROCESS.task


def warn(message: str) -> None:
    emit(WarningEvent(message))


def progress_events(
    doing: str = "uploading",
    least: int = SMALL,
    interval: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Callable[[int, int, float], None]:
    """A callback for ``registry.push.Progress``: (bytes done, bytes expected, seconds;
    done -1: finished). It emits a progress event of the running task now and then, once
    the work has taken a second; nothing of work smaller than ``least`` bytes."""
    every = interval if interval is not None else INTERVALS.get(PROCESS.mode, 5.0)
    started = clock()
    last = [started]
    task, image = PROCESS.task, PROCESS.image

    def show(done: int, total: int, elapsed: float) -> None:
        if total < least or done < 0:
            return
        now = clock()
        if now - started < max(FIRST_AFTER, every) or now - last[0] < every:
            return
        last[0] = now
        rate = done / elapsed if elapsed > 0 else 0.0
        emit(ProgressEvent(task, doing, done, total, round(rate, 1), image))

    return show
