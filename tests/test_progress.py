"""Progress of long work: events now and then, once the work has taken a second; shown as
plain lines in a log, in the live block on a terminal; summaries of pushes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from doit_oci.registry.push import Progress, PushReport
from doit_oci.registry.sizes import size
from doit_oci.rules.display import PlainDisplay
from doit_oci.rules.events import Event, ImagePushed, LogEvent, ProgressEvent, TaskStarted
from doit_oci.rules.globals import PROCESS
from doit_oci.rules.live import LiveDisplay
from doit_oci.rules.progress import progress_events, say


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Catch:
    """A hub that keeps what it is sent."""

    def __init__(self) -> None:
        self.sent: list[object] = []

    def send(self, message: object) -> bool:
        self.sent.append(message)
        return True


@pytest.fixture
def hub() -> Iterator[Catch]:
    catch = Catch()
    PROCESS.hub, PROCESS.task, PROCESS.image = catch, "push:app", "app"
    try:
        yield catch
    finally:
        PROCESS.hub, PROCESS.task, PROCESS.image = None, "", ""


def written() -> tuple[list[bytes], list[bytes], PlainDisplay]:
    out: list[bytes] = []
    err: list[bytes] = []
    return out, err, PlainDisplay(out.append, err.append)


def test_nothing_shows_of_work_under_a_second_then_events_come_now_and_then(hub: Catch) -> None:
    clock = Clock()
    show = progress_events("uploading", interval=0.5, clock=clock)
    clock.now += 0.9
    show(1_000_000, 4_000_000, 0.9)
    assert hub.sent == []  # under a second: nothing
    clock.now += 0.2
    show(2_000_000, 4_000_000, 1.1)
    clock.now += 0.1
    show(3_000_000, 4_000_000, 1.2)  # within the interval: throttled
    clock.now += 0.5
    show(4_000_000, 4_000_000, 2.0)
    show(-1, 4_000_000, 2.0)  # finished: the task's end says so
    assert all(isinstance(e, ProgressEvent) for e in hub.sent)
    assert [(e.task, e.image, e.doing, e.done, e.total, e.rate) for e in hub.sent] == [  # type: ignore[attr-defined]
        ("push:app", "app", "uploading", 2_000_000, 4_000_000, 1818181.8),
        ("push:app", "app", "uploading", 4_000_000, 4_000_000, 2000000.0),
    ]


def test_tiny_uploads_show_no_progress(hub: Catch) -> None:
    clock = Clock()
    show = progress_events(interval=0, clock=clock)
    clock.now += 5
    show(100, 200, 5.0)
    assert hub.sent == []  # not "uploading 100 B of 200 B"


def test_a_log_gets_plain_lines_and_no_escape_codes() -> None:
    out, err, plain = written()
    plain.show(ProgressEvent("push:app", "uploading", 2_500_000, 5_000_000, 2_500_000.0))
    plain.show(TaskStarted("push:app", "push", "app"))
    assert err == [b"push:app: uploading 2.5 MB of 5.0 MB, 2.5 MB/s\n"]
    assert out == [b".  push:app\n"]


def test_every_stderr_line_clears_a_progress_line_first_on_a_terminal() -> None:
    terminal: list[bytes] = []
    PlainDisplay(terminal.append, terminal.append, terminal=True).show(LogEvent("pushed x"))
    log: list[bytes] = []
    PlainDisplay(log.append, log.append).show(LogEvent("pushed x"))
    assert terminal == [b"\r\033[Kpushed x\n"] and log == [b"pushed x\n"]


def test_say_without_a_hub_writes_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    say("make for linux/amd64: 0.1s")
    assert capsys.readouterr().err == "make for linux/amd64: 0.1s\n"


def live() -> tuple[list[bytes], Clock, LiveDisplay]:
    screen: list[bytes] = []
    clock = Clock()
    return screen, clock, LiveDisplay(screen.append, screen.append, lambda: 41, clock)


def test_the_live_block_shows_work_of_a_second_and_is_cleared_before_a_line() -> None:
    screen, clock, block = live()
    block.show(TaskStarted("layer:app.0", "layer", "app", "linux/amd64"))
    block.show(TaskStarted("image:tiny", "image", "tiny", "linux/amd64"))
    assert b"".join(screen) == b".  layer:app.0\n.  image:tiny\n"  # no block yet
    screen.clear()
    clock.now += 1.5
    block.show(ProgressEvent("layer:app.0", "writing", 60_000_000, 80_000_000, 40_000_000.0))
    assert b"".join(screen).decode() == (
        "app  layer 0  60.0 MB of 80.0 MB, 40.0 M\n"  # cut to the width less one
        "tiny  image  2s\n"
    )
    screen.clear()
    block.show(LogEvent("make for linux/amd64: 1.0s"))
    # one write: the two rows cleared, the line, the rows again
    assert screen == [
        b"\r\033[2A\033[J"
        b"make for linux/amd64: 1.0s\n"
        b"app  layer 0  60.0 MB of 80.0 MB, 40.0 M\n"
        b"tiny  image  2s\n"
    ]
    screen.clear()
    block.close()
    assert screen == [b"\r\033[2A\033[J"]


def test_one_size_formatter() -> None:
    assert [size(n) for n in (0, 512, 22_260, 812_000, 2_500_000, 3 * 10**9)] == [
        "0 B",
        "512 B",
        "22.3 kB",
        "812.0 kB",
        "2.5 MB",
        "3.0 GB",
    ]


def test_progress_counts_from_threads_and_reports_to_the_display() -> None:
    seen: list[tuple[int, int]] = []
    progress = Progress(lambda done, total, _: seen.append((done, total)))
    progress.expect(300)
    for _ in range(3):
        progress.advance(100)
    progress.finish()
    assert seen == [(100, 300), (200, 300), (300, 300), (-1, 300)]


@pytest.mark.parametrize(
    ("report", "line"),
    [
        (
            PushReport("r.io/a:1", "sha256:ab", 2_500_000, 2, 1, 4, 1_200_000, 1, 1, 1.25),
            "pushed r.io/a:1@sha256:ab (2.5 MB): 2 blobs uploaded (1.2 MB), 1 mounted,"
            " 4 already there; 1.2s",
        ),
        (
            PushReport("r.io/a:1", "sha256:ab", 512, 0, 0, 3, 0, 0, 0, 0.04),
            "pushed r.io/a:1@sha256:ab (512 B): 0 blobs uploaded (0 B), 0 mounted,"
            " 3 already there; 0.0s",
        ),
        (
            PushReport("r.io/a:1", "sha256:ab", 512, 0, 0, 3, 0, 0, 0, 0.04, ("2", "latest")),
            "pushed r.io/a:1@sha256:ab, :2, :latest (512 B): 0 blobs uploaded (0 B), 0 mounted,"
            " 3 already there; 0.0s",
        ),
    ],
)
def test_one_summary_line_per_pushed_image(report: PushReport, line: str) -> None:
    assert report.line() == line
    # the event of a push says the same in the other modes
    event: Event = ImagePushed(
        report.reference,
        report.digest,
        ("1", *report.also),
        report.size,
        report.uploaded,
        report.mounted,
        report.present,
        report.bytes_uploaded,
        report.seconds,
    )
    assert event.text() == line


def test_a_big_layer_shows_its_progress_and_a_small_one_does_not(
    tmp_path: Path, hub: Catch
) -> None:
    from doit_oci.registry.layout import Layout
    from doit_oci.rules.layer import write_layer
    from doit_oci.rules.tree import FILE, Entry

    data = tmp_path / "big"
    data.write_bytes(b"x" * 3_000_000)
    digest = "sha256:" + hashlib.sha256(data.read_bytes()).hexdigest()
    entry = Entry("big", FILE, 0o644, size=3_000_000, digest=digest, source="big")
    seen: list[int] = []
    write_layer([entry], tmp_path, Layout(tmp_path / "oci"), "none", 0, progress=seen.append)
    assert sum(seen) == 3_000_000 and len(seen) == 3  # a chunk at a time, as it is written
    clock = Clock()
    show = progress_events("writing", least=2_000_000, interval=0, clock=clock)
    quiet = progress_events("writing", least=5_000_000, interval=0, clock=clock)
    clock.now += 2
    show(1_000_000, 3_000_000, 2.0)
    quiet(1_000_000, 3_000_000, 2.0)
    assert [e.text() for e in hub.sent] == [  # type: ignore[attr-defined]
        "push:app: writing 1.0 MB of 3.0 MB, 500.0 kB/s"
    ]
