"""What a run tells while it works, as events: a task started or finished, a blob
uploaded, mounted or skipped, an image pushed, progress of long work, a warning, an error,
a line of output, and the summary at the end. Each ``--progress`` mode shows the same
events its own way (rules.display, rules.live); ``json`` writes each as one JSON object
per line, documented in docs/events.md. Pure: each event also gives the one line that
``plain`` prints of it (``text``), so that every mode says the same.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from doit_oci.registry.sizes import size


def _now() -> float:
    return round(time.time(), 3)


@dataclass(frozen=True)
class TaskStarted:
    """A task's action starts (``step``: its kind; ``image``, ``platform``: "" for a task
    of no one image, such as make or layout)."""

    kind: ClassVar[str] = "task-started"
    task: str
    step: str
    image: str = ""
    platform: str = ""
    time: float = field(default_factory=_now)

    def text(self) -> str:
        return f".  {self.task}"


@dataclass(frozen=True)
class TaskFinished:
    """A task is done: it ran (``ok`` or not), or doit found it up to date (``uptodate``).
    ``cached``: nothing was made, the result was there (up to date) or came from the layer
    cache repository; ``bytes``: what it wrote (a layer's blob) or uploaded (a push)."""

    kind: ClassVar[str] = "task-finished"
    task: str
    step: str
    image: str = ""
    platform: str = ""
    seconds: float = 0.0
    bytes: int = 0
    cached: bool = False
    uptodate: bool = False
    ok: bool = True
    time: float = field(default_factory=_now)

    def text(self) -> str:
        return ""


@dataclass(frozen=True)
class BlobEvent:
    """A blob of a push: ``uploaded``, ``mounted`` from another repository of the registry,
    or ``skipped`` (the repository had it)."""

    kind: ClassVar[str] = "blob"
    action: str
    digest: str
    size: int
    repository: str  # registry/repository
    seconds: float = 0.0
    task: str = ""  # the task that sent it: push:<image>, or upload:<image>.<K> for a layer
    time: float = field(default_factory=_now)

    def text(self) -> str:
        # a line only for work of a second or more: a log shows where the time went
        if self.action == "skipped" or self.seconds < 1.0:
            return ""
        return (
            f"{self.action} {self.digest[:19]} ({size(self.size)}) to {self.repository}"
            f" in {self.seconds:.1f}s"
        )


@dataclass(frozen=True)
class ImagePushed:
    """An image (manifest or index) is in a repository under its tags."""

    kind: ClassVar[str] = "image-pushed"
    reference: str  # the first one pushed: registry/repository:tag
    digest: str
    tags: tuple[str, ...] = ()  # every tag it got there
    size: int = 0  # bytes of its blobs and manifests
    uploaded: int = 0  # blobs uploaded
    mounted: int = 0
    skipped: int = 0
    bytes_uploaded: int = 0
    seconds: float = 0.0
    time: float = field(default_factory=_now)

    def text(self) -> str:
        also = "".join(f", :{tag}" for tag in self.tags[1:])
        return (
            f"pushed {self.reference}@{self.digest}{also} ({size(self.size)}): "
            f"{self.uploaded} blobs uploaded ({size(self.bytes_uploaded)}), {self.mounted} "
            f"mounted, {self.skipped} already there; {self.seconds:.1f}s"
        )


@dataclass(frozen=True)
class ProgressEvent:
    """Long work going on (``doing``: uploading, writing or fetching): ``done`` bytes of
    ``total`` so far, ``rate`` bytes a second. Only for work that has taken a second."""

    kind: ClassVar[str] = "progress"
    task: str
    doing: str
    done: int
    total: int
    rate: float
    image: str = ""
    time: float = field(default_factory=_now)

    def text(self) -> str:
        what = f"{self.task}: " if self.task else ""
        return (
            f"{what}{self.doing} {size(self.done)} of {size(self.total)}, {size(int(self.rate))}/s"
        )


@dataclass(frozen=True)
class WarningEvent:
    kind: ClassVar[str] = "warning"
    message: str
    time: float = field(default_factory=_now)

    def text(self) -> str:
        return f"warning: {self.message}"


@dataclass(frozen=True)
class ErrorEvent:
    """What failed, in the one line of the other modes (``task``: "" before tasks run)."""

    kind: ClassVar[str] = "error"
    message: str
    task: str = ""
    time: float = field(default_factory=_now)

    def text(self) -> str:
        return f"error: {self.message}"


@dataclass(frozen=True)
class LogEvent:
    """Any other line: make's time and output, what status and gc say, doit's own report.
    ``stream``: where the other modes print it."""

    kind: ClassVar[str] = "log"
    message: str
    stream: str = "stderr"  # or "stdout"
    task: str = ""
    time: float = field(default_factory=_now)

    def text(self) -> str:
        return self.message


@dataclass(frozen=True)
class ImageRow:
    """One line of the summary table."""

    image: str
    built: int  # layers made by this run
    cached: int  # layers taken from the cache repository
    reused: int  # layers up to date
    uploaded: int  # bytes
    digest: str  # "" when not built
    seconds: float
    failed: str = ""  # the task of this image that failed, or ""
    plan: str = ""  # the plan's task prefix ("" for none)
    blocked_by: str = ""  # not built: the first task of the run that failed, or ""

    def cells(self) -> tuple[str, str, str, str, str]:
        layers = f"{self.built}/{self.cached}/{self.reused}"
        if self.failed:
            digest = f"failed ({self.failed})"
        elif self.digest:
            digest = self.digest
        else:
            digest = f"not built ({self.blocked_by} failed)" if self.blocked_by else "(not built)"
            layers = "-"
        return (self.image, layers, size(self.uploaded), digest, f"{self.seconds:.2f}s")


HEADER = ("image", "layers built/cached/reused", "uploaded", "digest", "time")


def table(rows: tuple[ImageRow, ...]) -> str:
    """The summary table of one plan's images, one line per image under a header."""
    lines = [HEADER, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(5)]
    return "".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        + "\n"
        for line in lines
    )


@dataclass(frozen=True)
class Summary:
    """The end of a run: the table of each plan whose images were asked for, how many
    files were hashed, and the seconds per step (``plan``: making the tasks)."""

    kind: ClassVar[str] = "summary"
    images: tuple[ImageRow, ...] = ()
    timing: tuple[tuple[str, float], ...] = ()  # (step, seconds), "plan" first
    hashed_files: int = 0
    hashed_times: int = 0
    ok: bool = True
    problems: tuple[str, ...] = ()  # a table that could not be made, and why
    time: float = field(default_factory=_now)

    def text(self) -> str:
        out = ""
        plans = list(dict.fromkeys(row.plan for row in self.images))
        for plan in plans:
            out += table(tuple(row for row in self.images if row.plan == plan))
        out += "".join(f"warning: no summary: {problem}\n" for problem in self.problems)
        if self.hashed_files:
            out += (
                f"hashed {self.hashed_files} files whose stat changed ({self.hashed_times} times)\n"
            )
        if len(self.timing) > 1:
            out += "timing: " + ", ".join(f"{s} {t:.2f}s" for s, t in self.timing) + "\n"
        return out.removesuffix("\n")


Event = (
    TaskStarted
    | TaskFinished
    | BlobEvent
    | ImagePushed
    | ProgressEvent
    | WarningEvent
    | ErrorEvent
    | LogEvent
    | Summary
)
KINDS = (
    TaskStarted,
    TaskFinished,
    BlobEvent,
    ImagePushed,
    ProgressEvent,
    WarningEvent,
    ErrorEvent,
    LogEvent,
    Summary,
)


def _plain(value: Any) -> Any:
    if isinstance(value, ImageRow):
        return {f.name: getattr(value, f.name) for f in fields(value)}
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    return value


def to_json(event: Event) -> dict[str, Any]:
    """The event as the JSON object ``--progress=json`` prints: ``event`` (its kind) first,
    then its fields; the summary's timing as an object, step -> seconds."""
    out: dict[str, Any] = {"event": event.kind}
    for item in fields(event):
        value = getattr(event, item.name)
        if isinstance(event, Summary) and item.name == "timing":
            out["timing"] = {step: round(seconds, 3) for step, seconds in value}
        elif isinstance(value, float):
            out[item.name] = round(value, 3)
        else:
            out[item.name] = _plain(value)
    return out


def json_line(event: Event) -> bytes:
    """One line of ``--progress=json``: the event as compact JSON, then a newline."""
    return (json.dumps(to_json(event), separators=(",", ":")) + "\n").encode()
