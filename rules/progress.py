"""How upload progress is shown: one line rewritten in place on a terminal, plain lines
now and then otherwise (CI logs), never more than a few times a second."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO


def _megabytes(count: int) -> str:
    return f"{count / 1e6:.1f} MB"


def progress_display(
    stream: TextIO, interval: float | None = None
) -> Callable[[int, int, float], None]:
    """A callback for ``Progress``: (bytes done, bytes expected, seconds); done -1: finished."""
    terminal = stream.isatty()
    every = interval if interval is not None else (0.1 if terminal else 5.0)
    last = [time.monotonic()]

    def show(done: int, total: int, elapsed: float) -> None:
        now = time.monotonic()
        finished = done < 0
        if not finished and now - last[0] < every and done < total:
            return
        last[0] = now
        if finished:
            if terminal:
                stream.write("\r\033[K")
                stream.flush()
            return
        rate = done / elapsed if elapsed > 0 else 0.0
        text = f"uploading {_megabytes(done)} of {_megabytes(total)}, {_megabytes(int(rate))}/s"
        if terminal:
            stream.write(f"\r\033[K{text}")
        else:
            stream.write(text + "\n")
        stream.flush()

    return show
