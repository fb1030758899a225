"""registry.transport: which failures are retried, how long it waits, when it gives up."""

from __future__ import annotations

import email.utils

import httpx
import pytest

from doit_oci.registry.transport import Exhausted, RetryPolicy, retry_after, send_with_retries

REQUEST = httpx.Request("GET", "http://127.0.0.1:5000/v2/")


class Script:
    """Answers from a list: an int is a status, an exception is raised."""

    def __init__(self, *steps: int | Exception, headers: dict[str, str] | None = None) -> None:
        self.steps = list(steps)
        self.calls = 0
        self.headers = headers or {}

    def __call__(self) -> httpx.Response:
        self.calls += 1
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        return httpx.Response(step, headers=self.headers, request=REQUEST)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def run(script: Script, policy: RetryPolicy | None = None) -> tuple[httpx.Response, Clock]:
    clock = Clock()
    response = send_with_retries(script, policy or RetryPolicy(), sleep=clock.sleep, clock=clock)
    return response, clock


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
def test_retryable_statuses_are_retried(status: int) -> None:
    response, clock = run(Script(status, status, 201))
    assert response.status_code == 201
    assert len(clock.sleeps) == 2


@pytest.mark.parametrize("status", [200, 201, 202, 204, 400, 401, 403, 404, 409, 416, 501, 505])
def test_other_statuses_come_back_at_once(status: int) -> None:
    script = Script(status)
    response, clock = run(script)
    assert response.status_code == status and script.calls == 1 and clock.sleeps == []


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("refused"),
        httpx.ReadError("reset by peer"),
        httpx.WriteError("broken pipe"),
        httpx.RemoteProtocolError("server disconnected without sending a response"),
        httpx.ReadTimeout("timed out"),
        httpx.ConnectTimeout("timed out"),
    ],
)
def test_dropped_connections_are_retried(error: Exception) -> None:
    response, clock = run(Script(error, 200))
    assert response.status_code == 200 and len(clock.sleeps) == 1


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(attempts=20, base_delay=1.0, max_delay=8.0, deadline=1000)
    waits = [policy.delay(attempt) for attempt in range(1, 8)]
    for attempt, wait in enumerate(waits, start=1):
        ceiling = min(8.0, 2 ** (attempt - 1))
        assert ceiling / 2 <= wait <= ceiling


def test_retry_after_seconds_are_honoured() -> None:
    response, clock = run(Script(429, 200, headers={"Retry-After": "3"}))
    assert response.status_code == 200
    assert clock.sleeps[0] >= 3


def test_retry_after_as_a_date() -> None:
    later = email.utils.formatdate(1_000_010, usegmt=True)
    response = httpx.Response(503, headers={"Retry-After": later})
    assert retry_after(response, now=1_000_000) == pytest.approx(10, abs=1)
    assert retry_after(httpx.Response(503, headers={"Retry-After": "soon"})) is None
    assert retry_after(httpx.Response(503)) is None


def test_attempts_are_bounded() -> None:
    script = Script(*([500] * 10))
    with pytest.raises(Exhausted) as caught:
        run(script, RetryPolicy(attempts=4, deadline=1000))
    assert caught.value.tries == 4 and script.calls == 4
    assert isinstance(caught.value.last, httpx.Response)
    assert caught.value.last.status_code == 500


def test_the_deadline_bounds_the_time() -> None:
    script = Script(*([httpx.ConnectError("refused")] * 100))
    clock = Clock()
    with pytest.raises(Exhausted) as caught:
        send_with_retries(
            script,
            RetryPolicy(attempts=100, base_delay=1, max_delay=4, deadline=20),
            sleep=clock.sleep,
            clock=clock,
        )
    assert clock.now <= 20
    assert isinstance(caught.value.last, httpx.ConnectError)


def test_a_retry_after_longer_than_the_deadline_gives_up_at_once() -> None:
    script = Script(503, 200, headers={"Retry-After": "3600"})
    with pytest.raises(Exhausted):
        run(script, RetryPolicy(deadline=60))
    assert script.calls == 1


def test_retries_are_reported() -> None:
    seen: list[tuple[int, str]] = []
    send_with_retries(
        Script(503, httpx.ReadError("reset"), 200),
        RetryPolicy(),
        on_retry=lambda n, why: seen.append((n, why)),
        sleep=lambda s: None,
    )
    assert seen == [(1, "HTTP 503"), (2, "ReadError: reset")]
