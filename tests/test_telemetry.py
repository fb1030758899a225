"""Traces: with OTEL_EXPORTER_OTLP_ENDPOINT set, a run sends one trace to the collector (a
fake OTLP/HTTP receiver on loopback, tests/otlp.py): the run's span, the plan's, a span
per task that ran, made in doit's worker processes and in the same trace, registry
requests and token fetches below their tasks, make's span; never a credential or a token.
Without the variable no OpenTelemetry module is imported; with it but without the SDK,
one warning and no span."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

from otlp import Span, otlp_receiver
from registries import basic_registry, token_registry
from support import REPO, doit


def docker_config(path: Path, *registries: tuple[str, str, str]) -> Path:
    auths = {
        host: {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
        for host, user, password in registries
    }
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"auths": auths}))
    (path / "config.json").chmod(0o600)
    return path


def every_text(span: Span) -> list[str]:
    """Everything of a span a collector shows: name, attributes, events, status."""
    found = [span.name, span.message]
    for attributes in [span.attributes, span.resource, *(a for _, a in span.events)]:
        for key, value in attributes.items():
            found += [key, json.dumps(value)]
    return found


def test_a_push_is_one_trace_with_its_tasks_requests_and_no_secret(
    example: Path, tmp_path: Path
) -> None:
    with (
        basic_registry(tmp_path / "basic") as basic,
        token_registry(tmp_path / "token") as token,
        otlp_receiver() as receiver,
    ):
        config = docker_config(
            tmp_path / "docker",
            (basic.host, basic.username, basic.password),
            (token.host, token.username, token.password),
        )
        run = doit(
            example,
            "build_images",
            "--push",
            "--hub",
            f"{basic.host}/x,{token.host}/y",
            "--targets",
            "hello",
            env={"DOCKER_CONFIG": str(config), "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint},
        )
        assert run.code == 0, run.text
        secrets = [basic.password, token.password, *token.tokens.issued]
        secrets += list(token.tokens.refresh_tokens)
        secrets += [
            base64.b64encode(f"{r.username}:{r.password}".encode()).decode() for r in (basic, token)
        ]
        spans = list(receiver.spans)
    assert token.tokens.issued  # Bearer tokens were fetched and used
    assert len({span.trace_id for span in spans}) == 1  # one trace
    by_id = {span.span_id: span for span in spans}
    roots = [span for span in spans if not span.parent_id]
    assert [root.name for root in roots] == ["doit-oci run"]
    root = roots[0]
    assert root.attributes["doit_oci.tasks"] == ["build_images"]
    assert all(span.parent_id in by_id for span in spans if span is not root)

    def parent(span: Span) -> Span:
        return by_id[span.parent_id]

    assert parent(next(s for s in spans if s.name == "plan")) is root
    tasks = {span.name: span for span in spans if "doit_oci.task" in span.attributes}
    assert sorted(tasks) == sorted(run.executed)  # a span per task that ran, none else
    assert all(parent(span) is root for span in tasks.values())
    # made in doit's workers, other processes than the run's, in the same trace
    pids = {span.attributes["process.pid"] for span in tasks.values()}
    assert root.attributes["process.pid"] not in pids and len(pids) >= 2
    layer = tasks["layer:hello.0"].attributes
    assert layer["doit_oci.step"] == "layer" and layer["doit_oci.image"] == "hello"
    assert layer["doit_oci.platform"] == "linux/amd64" and layer["doit_oci.bytes"] > 700_000
    assert layer["doit_oci.cached"] is False
    # the layer's blob goes up in its own task, the moment it is built; the push sends the
    # config and the manifest
    upload = tasks["upload:hello.0"].attributes
    assert upload["doit_oci.step"] == "upload" and upload["doit_oci.image"] == "hello"
    assert upload["doit_oci.bytes"] > 700_000
    assert 0 < tasks["push:hello"].attributes["doit_oci.bytes"] < 100_000
    make = next(s for s in spans if s.name == "make" and "doit_oci.goals" in s.attributes)
    assert parent(make) is tasks["make"]
    requests = [s for s in spans if "http.request.method" in s.attributes]
    assert requests and all(parent(s).name in tasks for s in requests)
    # hello's push and the uploads of its layers and of its base's
    sending = [tasks["push:hello"], *(t for n, t in tasks.items() if n.startswith("upload:"))]
    pushed = [s for s in requests if any(parent(s) is task for task in sending)]
    hosts = {f"{s.attributes['server.address']}:{s.attributes['server.port']}" for s in pushed}
    assert {basic.host, token.host, token.realm.split("/")[2]} <= hosts
    fetches = [s for s in pushed if "token server" in s.attributes["doit_oci.request"]]
    assert fetches and all(s.attributes["http.response.status_code"] == 200 for s in fetches)
    uploads = [s for s in pushed if s.attributes.get("doit_oci.repository") == "y/hello"]
    assert {s.attributes["http.request.method"] for s in uploads} >= {"HEAD", "POST", "PUT"}
    assert all(s.attributes["doit_oci.retries"] == 0 for s in requests)
    # blobs missing, uploads started and finished
    assert {s.attributes["http.response.status_code"] for s in uploads} >= {404, 202, 201}
    for span in spans:
        for text in every_text(span):
            assert not [secret for secret in secrets if secret in text], (span.name, text)


def test_with_the_variable_but_no_sdk_one_warning_and_no_span(
    example: Path, tmp_path: Path
) -> None:
    shadow = tmp_path / "shadow" / "opentelemetry"  # hides the installed SDK
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("")
    with otlp_receiver() as receiver:
        run = doit(
            example,
            "build_images",
            "--targets",
            "hello",
            env={
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                "PYTHONPATH": f"{shadow.parent}{os.pathsep}{REPO}",
            },
        )
        assert run.code == 0, run.text
        warnings = [line for line in run.err.splitlines() if "traces" in line]
        assert warnings == [
            "warning: no traces: OTEL_EXPORTER_OTLP_ENDPOINT is set, but the OpenTelemetry"
            " SDK is not installed: pip install 'doit-oci[otel]'"
        ]
        assert receiver.requests == 0


def imported(workspace: Path, env: dict[str, str]) -> list[str]:
    """The modules a no-op run imports (python -X importtime)."""
    full = {**os.environ, "PYTHONPATH": str(REPO), **env}
    for name in ("PROGRESS", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        if name not in env:
            full.pop(name, None)
    done = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "doit",
            "-f",
            str(workspace / "dodo.py"),
            "-d",
            str(workspace),
            "build_images",
        ],
        cwd=workspace,
        env=full,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("import time:")]
    return [line.rsplit("|", 1)[1].strip() for line in lines[1:]]


def test_a_run_without_the_variable_imports_no_opentelemetry(built_example: Path) -> None:
    without = imported(built_example, {})
    assert "doit_oci.rules.telemetry" in without  # the switch is there, and only it
    assert not [m for m in without if m.startswith("opentelemetry") or m == "doit_oci.rules.otel"]
    with otlp_receiver() as receiver:
        asked = imported(built_example, {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint})
        assert "opentelemetry.sdk.trace" in asked and "doit_oci.rules.otel" in asked
        assert [s.name for s in receiver.spans] == ["plan", "doit-oci run"]  # a no-op
