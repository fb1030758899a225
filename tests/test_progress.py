"""Upload progress: rewritten in place on a terminal, plain lines otherwise; summaries."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from doit_oci.registry.push import Progress, PushReport
from doit_oci.registry.sizes import size
from doit_oci.rules.progress import progress_display, say


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_one_line_rewritten_and_cleared() -> None:
    stream = Terminal()
    show = progress_display(stream, interval=0)
    show(1_000_000, 4_000_000, 2.0)
    show(4_000_000, 4_000_000, 4.0)
    show(-1, 4_000_000, 4.0)
    assert stream.getvalue() == (
        "\r\033[Kuploading 1.0 MB of 4.0 MB, 500.0 kB/s"
        "\r\033[Kuploading 4.0 MB of 4.0 MB, 1.0 MB/s"
        "\r\033[K"
    )


def test_a_log_gets_plain_lines_and_no_escape_codes() -> None:
    stream = io.StringIO()
    show = progress_display(stream, interval=0)
    show(2_500_000, 5_000_000, 1.0)
    show(-1, 5_000_000, 2.0)
    assert stream.getvalue() == "uploading 2.5 MB of 5.0 MB, 2.5 MB/s\n"


def test_updates_are_throttled_but_the_last_one_shows() -> None:
    stream = io.StringIO()
    show = progress_display(stream, interval=3600)
    for done in range(1, 10):
        show(done * 1_000_000, 10_000_000, 1.0)
    show(10_000_000, 10_000_000, 1.0)
    assert stream.getvalue().splitlines() == ["uploading 10.0 MB of 10.0 MB, 10.0 MB/s"]


def test_tiny_uploads_show_no_progress() -> None:
    stream = Terminal()
    show = progress_display(stream, interval=0)
    show(100, 200, 1.0)
    show(-1, 200, 1.0)
    assert stream.getvalue() == ""  # not "uploading 0.0 MB of 0.0 MB", nor a clear


def test_every_other_line_clears_a_progress_line_first() -> None:
    terminal, log = Terminal(), io.StringIO()
    say("pushed x", terminal)
    say("pushed x", log)
    assert terminal.getvalue() == "\r\033[Kpushed x\n" and log.getvalue() == "pushed x\n"


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


def test_a_big_layer_shows_its_progress_and_a_small_one_does_not(tmp_path: Path) -> None:
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
    stream = io.StringIO()
    show = progress_display(stream, interval=0, doing="layer app.0:", least=2_000_000)
    show(1_000_000, 3_000_000, 1.0)
    assert stream.getvalue() == "layer app.0: 1.0 MB of 3.0 MB, 1.0 MB/s\n"
    quiet = io.StringIO()
    progress_display(quiet, interval=0, least=5_000_000)(1_000_000, 3_000_000, 1.0)
    assert quiet.getvalue() == ""
