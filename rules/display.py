"""How a ``--progress`` mode shows the events of a run: ``plain`` a line per event (for CI
logs: nothing is redrawn), ``json`` one JSON object per line on stdout (for tools); ``tty``
(rules.live) adds a live block to plain's lines. ``auto`` is tty on a terminal, plain
otherwise.

A display writes through two callables, one per stream, so that the process that shows
a run's events (rules.hub) writes with ``os.write`` (no lock of Python's own streams is
held while doit forks its workers) and the rare event shown with no hub goes to
``sys.stdout`` / ``sys.stderr``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from doit_oci.rules.events import Event, LogEvent, TaskFinished, TaskStarted, json_line
from doit_oci.rules.flags import PROGRESS_MODES, progress_from

CLEAR = "\r\033[K"

Write = Callable[[bytes], None]


class Display(Protocol):
    def show(self, event: Event) -> None: ...

    def tick(self) -> None:
        """Called a few times a second while nothing happens (tty redraws its block)."""
        ...

    def close(self) -> None: ...


def resolve(mode: str, stdout_tty: bool, stderr_tty: bool, term: str = "") -> str:
    """The mode a run uses: ``auto`` is tty when stdout and stderr are terminals (and the
    terminal can move its cursor), plain otherwise."""
    if mode != "auto" and mode in PROGRESS_MODES:
        return mode
    return "tty" if stdout_tty and stderr_tty and term != "dumb" else "plain"


def progress_mode(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> str:
    """The run's --progress mode (rules.flags.progress_from), resolved for the terminal,
    or not, that this process writes to."""
    env = os.environ if environ is None else environ
    asked = progress_from(sys.argv[1:] if argv is None else argv, env)
    return resolve(asked, _isatty(sys.stdout), _isatty(sys.stderr), env.get("TERM", ""))


def _isatty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError):
        return False


def fd_writer(fd: int) -> Write:
    """Writes all of ``data`` to ``fd``, each call its own ``write`` (one line, whole)."""

    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(fd, view) :]
            except BrokenPipeError:
                return  # the reader is gone (`doit ... | head`): nothing left to tell

    return write


def stream_writer(err: bool) -> Write:
    def write(data: bytes) -> None:
        stream = sys.stderr if err else sys.stdout
        stream.write(data.decode(errors="replace"))
        stream.flush()

    return write


def stream_of(event: Event) -> str:
    """Where plain and tty print an event: doit's own lines on stdout, ours on stderr."""
    if isinstance(event, TaskStarted):
        return "stdout"
    if isinstance(event, LogEvent):
        return event.stream
    return "stderr"


class PlainDisplay:
    """A line per event that has one; on a terminal each stderr line first clears
    whatever progress line was drawn there (progress in the plain mode of old)."""

    def __init__(self, out: Write, err: Write, terminal: bool = False) -> None:
        self.out, self.err = out, err
        self.terminal = terminal

    def show(self, event: Event) -> None:
        if isinstance(event, TaskFinished):
            return
        text = event.text()
        if not text:
            return
        if stream_of(event) == "stdout":
            self.out((text + "\n").encode())
        else:
            self.err(((CLEAR if self.terminal else "") + text + "\n").encode())

    def tick(self) -> None:
        pass

    def close(self) -> None:
        pass


class JsonDisplay:
    """Every event as one JSON line on stdout, written whole."""

    def __init__(self, out: Write) -> None:
        self.out = out

    def show(self, event: Event) -> None:
        self.out(json_line(event))

    def tick(self) -> None:
        pass

    def close(self) -> None:
        pass


def make_display(mode: str, out: Write, err: Write, width: Callable[[], int]) -> Display:
    """The display of a resolved mode (tty, plain or json)."""
    if mode == "json":
        return JsonDisplay(out)
    if mode == "tty":
        from doit_oci.rules.live import LiveDisplay

        return LiveDisplay(out, err, width)
    return PlainDisplay(out, err)


def direct(mode: str) -> Display:
    """A display for an event shown where no hub runs (before doit runs the tasks, or
    with another reporter): through Python's streams, a line at a time."""
    out, err = stream_writer(False), stream_writer(True)
    if mode == "json":
        return JsonDisplay(out)
    return PlainDisplay(out, err, terminal=mode == "tty" or (not mode and _isatty(sys.stderr)))


def terminal_width(fd: int = 2) -> int:
    try:
        return os.get_terminal_size(fd).columns
    except OSError:
        return 80
