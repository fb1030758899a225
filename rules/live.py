"""``--progress=tty``: plain's lines, and below them one live block redrawn in place, a
row per image at work (its running steps, bytes done of total, rate, seconds). A task
shows there once it has run for a second, so quick work never flickers; the block is
cleared before any other line is written, and drawn again after it, each row cut to the
terminal's width so that none wraps (a wrapped row would leave its tail behind).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from doit_oci.registry.sizes import size
from doit_oci.rules.display import PlainDisplay, Write, stream_of
from doit_oci.rules.events import Event, ProgressEvent, TaskFinished, TaskStarted

VISIBLE_AFTER = 1.0  # seconds a task runs before it shows in the block
MAX_ROWS = 12


@dataclass
class _Running:
    task: str
    label: str  # the step, "layer 0" for a layer
    image: str
    started: float
    done: int = 0
    total: int = 0
    rate: float = 0.0


def step_label(event: TaskStarted) -> str:
    if event.step == "layer" and "." in event.task:
        return f"layer {event.task.rsplit('.', 1)[1]}"
    return event.step


class LiveDisplay:
    def __init__(
        self,
        out: Write,
        err: Write,
        width: Callable[[], int],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.out, self.err = out, err
        self.width = width
        self.clock = clock
        self.lines = PlainDisplay(out, err)
        self.running: dict[str, _Running] = {}
        self.drawn = 0  # rows of the block on the screen now

    def show(self, event: Event) -> None:
        if isinstance(event, TaskStarted):
            key = event.image or event.task
            self.running[event.task] = _Running(event.task, step_label(event), key, self.clock())
        elif isinstance(event, ProgressEvent):
            running = self.running.get(event.task)
            if running is not None:
                running.done, running.total, running.rate = event.done, event.total, event.rate
            self.redraw()
            return
        elif isinstance(event, TaskFinished):
            self.running.pop(event.task, None)
            self.redraw()
            return
        text = event.text()
        if not text:
            return
        if stream_of(event) == "stdout":
            self.err(self._clear().encode())
            self.drawn = 0
            self.lines.show(event)
            self.err(self._block().encode())
        else:
            # one write: the block cleared, the line, the block again
            self.err((self._clear() + text + "\n" + self._block()).encode())

    def tick(self) -> None:
        if self.drawn or self._rows():
            self.redraw()

    def close(self) -> None:
        self.running.clear()
        if self.drawn:
            self.err(self._clear().encode())
            self.drawn = 0

    def redraw(self) -> None:
        self.err((self._clear() + self._block()).encode())

    def _clear(self) -> str:
        if not self.drawn:
            return ""
        text = f"\r\033[{self.drawn}A\033[J"
        self.drawn = 0
        return text

    def _rows(self) -> list[str]:
        now = self.clock()
        by_image: dict[str, list[_Running]] = {}
        for running in self.running.values():
            if now - running.started >= VISIBLE_AFTER:
                by_image.setdefault(running.image, []).append(running)
        rows = []
        for image, tasks in by_image.items():
            steps = ", ".join(task.label for task in tasks if task.task != image)
            total = sum(task.total for task in tasks)
            row = f"{image}  {steps}" if steps else image
            if total:
                done = sum(task.done for task in tasks)
                rate = sum(task.rate for task in tasks)
                row += f"  {size(done)} of {size(total)}, {size(int(rate))}/s"
            seconds = now - min(task.started for task in tasks)
            rows.append(f"{row}  {seconds:.0f}s")
        if len(rows) > MAX_ROWS:
            rows = [*rows[: MAX_ROWS - 1], f"... and {len(rows) - MAX_ROWS + 1} more"]
        return rows

    def _block(self) -> str:
        rows = self._rows()
        width = max(10, self.width() - 1)
        self.drawn = len(rows)
        return "".join(row[:width] + "\n" for row in rows)
