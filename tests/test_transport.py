"""registry.transport: which failures are retried, how long it waits, when it gives up, and
that the retries sit under the authentication flow (token fetches are retried alike)."""

from __future__ import annotations

import email.utils
import json
from collections.abc import Callable, Iterator

import httpx
import pytest

from doit_oci.registry.auth import RegistryAuth
from doit_oci.registry.client import RegistryClient
from doit_oci.registry.credentials import Credentials
from doit_oci.registry.errors import AuthError, RegistryError
from doit_oci.registry.transport import (
    STREAM,
    TRIES,
    WHAT,
    GaveUp,
    RetryPolicy,
    RetryTransport,
    retry_after,
)

URL = "http://127.0.0.1:5000/v2/"


class Script:
    """Answers from a list: an int is a status, an exception is raised. Every response it
    made is kept, to check that the failed ones were closed."""

    def __init__(self, *steps: int | Exception, headers: dict[str, str] | None = None) -> None:
        self.steps = list(steps)
        self.calls = 0
        self.headers = headers or {}
        self.responses: list[httpx.Response] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        response = httpx.Response(step, headers=self.headers, content=b'{"step": %d}' % step)
        self.responses.append(response)
        return response


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def transport(
    script: Script | httpx.BaseTransport,
    policy: RetryPolicy | None = None,
    warnings: list[str] | None = None,
) -> tuple[RetryTransport, Clock]:
    clock = Clock()
    inner = script if isinstance(script, httpx.BaseTransport) else httpx.MockTransport(script)
    retrying = RetryTransport(
        inner,
        policy or RetryPolicy(),
        on_retry=None if warnings is None else warnings.append,
        sleep=clock.sleep,
        clock=clock,
    )
    return retrying, clock


def run(
    script: Script, policy: RetryPolicy | None = None, request: httpx.Request | None = None
) -> tuple[httpx.Response, Clock]:
    retrying, clock = transport(script, policy)
    return retrying.handle_request(request or httpx.Request("GET", URL)), clock


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
def test_retryable_statuses_are_retried_and_each_failed_answer_closed(status: int) -> None:
    script = Script(status, status, 201)
    response, clock = run(script)
    assert response.status_code == 201 and response.extensions[TRIES] == 3
    assert len(clock.sleeps) == 2
    assert [r.is_closed for r in script.responses] == [True, True, True]  # the last one: read
    assert response.content == b'{"step": 201}'


@pytest.mark.parametrize("status", [200, 201, 202, 204, 400, 401, 403, 404, 409, 416, 501, 505])
def test_other_statuses_come_back_at_once(status: int) -> None:
    script = Script(status)
    response, clock = run(script)
    assert response.status_code == status and script.calls == 1 and clock.sleeps == []
    assert response.extensions[TRIES] == 1


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


def test_a_certificate_that_does_not_verify_is_not_retried() -> None:
    script = Script(httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] self-signed"), 200)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        run(script)
    assert script.calls == 1


def test_a_name_that_does_not_resolve_is_tried_twice_not_until_the_deadline() -> None:
    gone = httpx.ConnectError("[Errno -2] Name or service not known")
    script = Script(gone, gone, gone, 200)
    with pytest.raises(GaveUp) as caught:
        run(script)
    assert script.calls == 2 and caught.value.tries == 2
    # a resolver that is down for a moment is another matter
    busy = httpx.ConnectError("[Errno -3] Temporary failure in name resolution")
    response, _ = run(Script(busy, busy, 200))
    assert response.status_code == 200


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


def test_attempts_are_bounded_and_the_last_answer_comes_back_with_the_count() -> None:
    script = Script(*([500] * 10))
    response, _ = run(script, RetryPolicy(attempts=4, deadline=1000))
    assert script.calls == 4
    assert response.status_code == 500 and response.extensions[TRIES] == 4
    assert response.content == b'{"step": 500}'  # the registry's own answer, to report


def test_the_deadline_bounds_the_time_and_gives_up_with_the_count() -> None:
    script = Script(*([httpx.ConnectError("refused")] * 100))
    retrying, clock = transport(
        script, RetryPolicy(attempts=100, base_delay=1, max_delay=4, deadline=20)
    )
    request = httpx.Request("GET", URL)
    with pytest.raises(GaveUp) as caught:
        retrying.handle_request(request)
    assert clock.now <= 20
    assert isinstance(caught.value, httpx.TransportError)
    assert isinstance(caught.value.last, httpx.ConnectError)
    assert caught.value.tries == script.calls > 1
    assert caught.value.request is request


def test_a_retry_after_longer_than_the_deadline_gives_up_at_once() -> None:
    script = Script(503, 200, headers={"Retry-After": "3600"})
    response, _ = run(script, RetryPolicy(deadline=60))
    assert script.calls == 1
    assert response.status_code == 503 and response.extensions[TRIES] == 1


def test_retries_are_reported_naming_what_the_request_is_for() -> None:
    warnings: list[str] = []
    retrying, _ = transport(Script(503, httpx.ReadError("reset"), 200), warnings=warnings)
    what = {WHAT: "127.0.0.1:5000/team/app: check blob sha256:0123456789ab"}
    retrying.handle_request(httpx.Request("HEAD", URL, extensions=what))
    assert warnings == [
        "127.0.0.1:5000/team/app: check blob sha256:0123456789ab: HTTP 503, retrying",
        "127.0.0.1:5000/team/app: check blob sha256:0123456789ab: ReadError: reset, retrying",
    ]
    warnings.clear()
    retrying, _ = transport(Script(502, 200), warnings=warnings)
    retrying.handle_request(httpx.Request("GET", URL + "?n=1"))
    assert warnings == [f"GET {URL}: HTTP 502, retrying"]


class Wire(httpx.BaseTransport):
    """Reads each request's body from its stream, as a real transport does on each try, and
    answers from a list: a status, or "cut" (the answer's body drops halfway)."""

    def __init__(self, *steps: int | str) -> None:
        self.steps = list(steps)
        self.bodies: list[bytes] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        self.bodies.append(b"".join(request.stream))
        step = self.steps.pop(0)
        if step == "cut":
            return httpx.Response(200, stream=Cut())
        assert isinstance(step, int)
        return httpx.Response(step, content=b"whole answer")


class Cut(httpx.SyncByteStream):
    def __iter__(self) -> Iterator[bytes]:
        yield b"half an ans"
        raise httpx.RemoteProtocolError("peer closed connection without sending complete body")


class Body:
    """A re-iterable body, as a FileSlice is: each iteration starts over."""

    def __iter__(self) -> Iterator[bytes]:
        yield b"chunk one, "
        yield b"chunk two"


def test_a_reiterable_body_is_sent_whole_on_every_try() -> None:
    wire = Wire(503, 500, 201)
    retrying, _ = transport(wire)
    request = httpx.Request("PUT", URL + "team/app/blobs/uploads/1", content=Body())
    assert retrying.handle_request(request).status_code == 201
    assert wire.bodies == [b"chunk one, chunk two"] * 3


def test_an_answer_cut_halfway_is_retried_unless_the_caller_streams_it() -> None:
    wire = Wire("cut", 200)
    retrying, _ = transport(wire)
    response = retrying.handle_request(httpx.Request("GET", URL))
    assert response.content == b"whole answer" and len(wire.bodies) == 2
    streamed = Wire("cut", 200)
    retrying, _ = transport(streamed)
    response = retrying.handle_request(httpx.Request("GET", URL, extensions={STREAM: True}))
    assert len(streamed.bodies) == 1  # not read here: the caller reads it as it comes
    with pytest.raises(httpx.RemoteProtocolError):
        response.read()


# -- under the authentication flow ---------------------------------------------------------

REALM = "http://127.0.0.1:6000/token"
LOGIN = Credentials("bob", "secret")


def token_registry(
    token_failures: list[int],
) -> tuple[Callable[[httpx.Request], httpx.Response], list[str]]:
    """A Bearer registry whose token server answers the statuses given, then tokens."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        if request.url.path == "/token":
            if token_failures:
                return httpx.Response(token_failures.pop(0), json={"errors": [{"code": "BUSY"}]})
            return httpx.Response(200, json={"token": "tok", "expires_in": 300})
        if request.headers.get("authorization") != "Bearer tok":
            challenge = f'Bearer realm="{REALM}",service="registry"'
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        return httpx.Response(200, json={})

    return handler, seen


def test_a_token_server_answering_503_twice_is_retried_under_the_auth_flow() -> None:
    handler, seen = token_registry([503, 503])
    warnings: list[str] = []
    retrying, clock = transport(httpx.MockTransport(handler), warnings=warnings)
    client = httpx.Client(auth=RegistryAuth("127.0.0.1:5000", LOGIN), transport=retrying)
    extensions = {WHAT: "127.0.0.1:5000: log in"}
    with client:
        response = client.send(client.build_request("GET", URL, extensions=extensions))
    assert response.status_code == 200
    assert seen == ["GET /v2/", "GET /token", "GET /token", "GET /token", "GET /v2/"]
    assert (
        warnings
        == ["127.0.0.1:5000: log in: token server http://127.0.0.1:6000/token: HTTP 503, retrying"]
        * 2
    )
    assert len(clock.sleeps) == 2


def test_a_token_server_that_keeps_failing_is_its_status_after_the_tries() -> None:
    handler, _ = token_registry([503] * 10)
    retrying, _ = transport(httpx.MockTransport(handler), RetryPolicy(attempts=3))
    client = httpx.Client(auth=RegistryAuth("127.0.0.1:5000", LOGIN), transport=retrying)
    with client, pytest.raises(AuthError) as caught:
        client.get(URL)
    assert caught.value.status == 503
    assert str(caught.value) == (
        "token server http://127.0.0.1:6000/token for registry 127.0.0.1:5000 answered 503"
        " Service Unavailable (BUSY) after 3 tries"
    )


def test_the_client_says_what_failed_after_how_many_tries() -> None:
    handler, _ = token_registry([503] * 10)
    policy = RetryPolicy(attempts=3, base_delay=0, deadline=5)
    with (
        RegistryClient(
            "127.0.0.1:5000",
            credentials=LOGIN,
            transport=httpx.MockTransport(handler),
            policy=policy,
        ) as client,
        pytest.raises(RegistryError) as caught,
    ):
        client.check_access()
    assert str(caught.value) == (
        "127.0.0.1:5000: log in failed: HTTP 503 token server http://127.0.0.1:6000/token for"
        " registry 127.0.0.1:5000 answered 503 Service Unavailable (BUSY) after 3 tries;"
        " the registry failed: try again later, or ask who runs it"
    )
    assert caught.value.status == 503

    def busy(request: httpx.Request) -> httpx.Response:
        body = {"errors": [{"code": "UNAVAILABLE", "message": "busy"}]}
        return httpx.Response(503, content=json.dumps(body).encode())

    warnings: list[str] = []
    with (
        RegistryClient(
            "127.0.0.1:5000",
            transport=httpx.MockTransport(busy),
            policy=policy,
            on_retry=warnings.append,
        ) as client,
        pytest.raises(RegistryError) as caught,
    ):
        client.check_access()
    assert str(caught.value) == (
        "127.0.0.1:5000: log in failed: HTTP 503 UNAVAILABLE: busy after 3 tries;"
        " the registry failed: try again later, or ask who runs it"
    )
    assert warnings == ["127.0.0.1:5000: log in: HTTP 503, retrying"] * 2  # no stray slash

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with (
        RegistryClient("127.0.0.1:1", transport=httpx.MockTransport(down), policy=policy) as client,
        pytest.raises(RegistryError) as caught,
    ):
        client.get_manifest("team/app", "1.0")
    assert str(caught.value) == (
        "127.0.0.1:1/team/app: get manifest 1.0 failed: cannot reach http://127.0.0.1:1"
        " (ConnectError: connection refused) after 3 tries; check that 127.0.0.1:1 runs and"
        " is reachable from here (REGISTRY_DEADLINE sets how long to retry)"
    )
