"""What a run shows while it works, on stderr: progress (uploads, big layers) as one line
rewritten in place on a terminal, plain lines now and then otherwise (CI logs), never more
than a few times a second; and every other line it prints, which on a terminal first
clears whatever progress line another worker drew there."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from doit_oci.registry.sizes import size

CLEAR = "\r\033[K"
SMALL = 1_000_000  # less than this much to upload: no progress shown at all
BIG_LAYER = 64_000_000  # a layer of more file content than this shows its progress


def say(text: str, stream: TextIO | None = None) -> None:
    """One line on stderr; on a terminal, the line is cleared first."""
    out = sys.stderr if stream is None else stream
    out.write((CLEAR if out.isatty() else "") + text + "\n")
    out.flush()


def progress_display(
    stream: TextIO, interval: float | None = None, doing: str = "uploading", least: int = SMALL
) -> Callable[[int, int, float], None]:
    """A callback for ``Progress``: (bytes done, bytes expected, seconds); done -1: finished.
    Nothing is shown of work smaller than ``least`` bytes."""
    terminal = stream.isatty()
    every = interval if interval is not None else (0.1 if terminal else 5.0)
    last = [time.monotonic()]
    drawn = [False]

    def show(done: int, total: int, elapsed: float) -> None:
        if total < least:
            return
        now = time.monotonic()
        finished = done < 0
        if not finished and now - last[0] < every and done < total:
            return
        last[0] = now
        if finished:
            if terminal and drawn[0]:
                stream.write(CLEAR)
                stream.flush()
            return
        rate = done / elapsed if elapsed > 0 else 0.0
        text = f"{doing} {size(done)} of {size(total)}, {size(int(rate))}/s"
        drawn[0] = True
        if terminal:
            stream.write(CLEAR + text)
        else:
            stream.write(text + "\n")
        stream.flush()

    return show
