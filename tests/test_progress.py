"""Upload progress: rewritten in place on a terminal, plain lines otherwise; summaries."""

from __future__ import annotations

import io

import pytest

from doit_oci.registry.push import Progress, PushReport
from doit_oci.rules.progress import progress_display


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
        "\r\033[Kuploading 1.0 MB of 4.0 MB, 0.5 MB/s"
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
        show(done, 10, 1.0)
    show(10, 10, 1.0)
    assert stream.getvalue().splitlines() == ["uploading 0.0 MB of 0.0 MB, 0.0 MB/s"]


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
    ],
)
def test_one_summary_line_per_pushed_image(report: PushReport, line: str) -> None:
    assert report.line() == line
