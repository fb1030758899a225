"""The events a run tells (rules.events): each kind's JSON fields are those docs/events.md
lists; the hub shows what forked processes and threads send, whole and in each sender's
order; the trace switch says why it is off."""

from __future__ import annotations

import dataclasses
import os
import re
import threading
from pathlib import Path

import pytest

from doit_oci.rules import telemetry
from doit_oci.rules.events import (
    KINDS,
    Event,
    ImageRow,
    Summary,
    WarningEvent,
    json_line,
    to_json,
)
from doit_oci.rules.hub import Hub

DOCS = Path(__file__).resolve().parent.parent / "docs" / "events.md"


def documented() -> dict[str, list[str]]:
    """kind -> the fields docs/events.md lists for it, in order."""
    found: dict[str, list[str]] = {}
    kind = ""
    for line in DOCS.read_text().splitlines():
        heading = re.fullmatch(r"### `([a-z-]+)`", line)
        if heading:
            kind = heading.group(1)
            found[kind] = []
        elif kind and (cell := re.match(r"\| `([a-z_]+)` \|", line)):
            found[kind].append(cell.group(1))
        elif line.startswith("## "):
            kind = ""
    return found


def example_of(kind: type) -> Event:
    """An event of ``kind``, its required fields given."""
    values = {
        item.name: {"int": 1, "float": 1.0}.get(str(item.type), "x")
        for item in dataclasses.fields(kind)
        if item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING
    }
    event: Event = kind(**values)
    return event


def test_every_kind_is_documented_with_exactly_its_fields() -> None:
    docs = documented()
    assert sorted(docs) == sorted(kind.kind for kind in KINDS)
    for kind in KINDS:
        fields = list(to_json(example_of(kind)))
        assert fields[0] == "event"
        assert fields[1:] == docs[kind.kind], kind.kind


def test_a_json_line_is_one_line_of_compact_json() -> None:
    line = json_line(WarningEvent("a\nb", time=1.5))
    assert line == b'{"event":"warning","message":"a\\nb","time":1.5}\n'


def test_the_summary_says_in_json_what_the_table_says() -> None:
    rows = (
        ImageRow("hello", 2, 0, 0, 0, "sha256:ab", 0.021),
        ImageRow("whoami", 0, 1, 1, 1_200_000, "", 0.5, "layer:whoami.0"),
    )
    summary = Summary(rows, (("plan", 0.02), ("layer", 0.5)), 3, 4)
    assert summary.text().splitlines() == [
        "image   layers built/cached/reused  uploaded  digest                   time",
        "hello   2/0/0                       0 B       sha256:ab                0.02s",
        "whoami  0/1/1                       1.2 MB    failed (layer:whoami.0)  0.50s",
        "hashed 3 files whose stat changed (4 times)",
        "timing: plan 0.02s, layer 0.50s",
    ]
    assert to_json(summary)["timing"] == {"plan": 0.02, "layer": 0.5}
    assert to_json(summary)["images"][1]["failed"] == "layer:whoami.0"


class Keep:
    def __init__(self) -> None:
        self.shown: list[Event] = []
        self.closed = False

    def show(self, event: Event) -> None:
        self.shown.append(event)

    def tick(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def test_the_hub_shows_what_forked_workers_and_threads_send_whole_and_in_order() -> None:
    keep, others = Keep(), []
    hub = Hub(keep, others.append)
    big = "x" * 20_000  # far more than a pipe writes at once
    children = []
    for worker in range(3):
        pid = os.fork()
        if pid == 0:  # a worker, as doit forks them: it only sends
            try:

                def send(thread: int, worker: int = worker) -> None:
                    for i in range(50):
                        hub.send(WarningEvent(f"{worker}.{thread}.{i} {big}"))

                threads = [threading.Thread(target=send, args=(t,)) for t in range(2)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                hub.send(("span", worker))
            finally:
                os._exit(0)
        children.append(pid)
    for pid in children:
        assert os.waitpid(pid, 0)[1] == 0
    hub.send(WarningEvent("last"))
    hub.close()
    texts = [event.message for event in keep.shown]  # type: ignore[union-attr]
    assert len(texts) == 3 * 2 * 50 + 1 and texts[-1] == "last"
    assert all(text.endswith(big) for text in texts[:-1])  # none cut, none mixed
    for worker in range(3):
        for thread in range(2):
            mine = [t.split()[0] for t in texts if t.startswith(f"{worker}.{thread}.")]
            assert mine == [f"{worker}.{thread}.{i}" for i in range(50)]
    assert sorted(others) == [("span", 0), ("span", 1), ("span", 2)]


def test_a_message_too_big_for_the_hub_is_left_to_the_sender() -> None:
    keep = Keep()
    hub = Hub(keep, lambda message: None)
    assert not hub.send(WarningEvent("x" * 2_000_000))
    hub.close()
    assert keep.shown == []


@pytest.mark.parametrize(
    ("environ", "why"),
    [
        ({}, ""),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, None),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, ""),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, ""),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "OTEL_EXPORTER_OTLP_PROTOCOL=grpc: doit-oci sends traces over http/protobuf only",
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
            },
            None,
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "zipkin"},
            "OTEL_TRACES_EXPORTER=zipkin: doit-oci sends traces with otlp only",
        ),
    ],
)
def test_traces_are_on_only_when_asked_for_and_possible(
    environ: dict[str, str], why: str | None
) -> None:
    assert telemetry.why_not(environ) == why


def test_every_telemetry_call_is_a_no_op_while_traces_are_off() -> None:
    assert telemetry.request_watch() is None and telemetry.traceparent() == ""
    with telemetry.task_span("layer:a.0", {}) as span:
        span.set("doit_oci.bytes", 1)
        span.fail("no")
    telemetry.finish(True)
