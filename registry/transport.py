"""Retries for registry requests: backoff with jitter, Retry-After, and a time budget.

httpx retries only connections that fail to open. A registry (or its token server) also
drops connections, answers 408, 429 or 5xx under load, and stalls: those are retried
here, a bounded number of times and within a deadline, so that a registry that cannot be
reached fails the run in about a minute instead of hanging it.

``RetryTransport`` wraps the transport that sends the bytes, under the authentication
flow (``httpx.Client(auth=..., transport=RetryTransport(httpx.HTTPTransport()))``), as
go-containerregistry wraps its bearer transport around its retry transport: registry
requests, token fetches and blob downloads are all retried alike. A request's body is
sent again on each try, so it must be re-iterable (bytes, or an object whose
``__iter__`` starts over); a response that is not streamed is read inside the try, so
that a connection dropped halfway through an answer is retried too.

``watch``, when given, is told of each request as it starts (``watch(request)`` gives a
``Watch``), of each retry and of how it ended: rules.telemetry makes a trace span of it.

Request extensions it reads: ``WHAT`` (what the request is for, in retry warnings) and
``STREAM`` (the caller streams the answer: it is not read here). Once the tries are
spent, the last retryable response is returned with ``extensions[TRIES]`` (as every
response), or ``GaveUp`` is raised, carrying the last transport error and the count.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import httpx

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
WHAT = "doit_oci.what"  # request extension: "registry/repository: operation"
STREAM = "doit_oci.stream"  # request extension: True when the caller streams the answer
TRIES = "doit_oci.tries"  # response extension: how many tries the request took
REPOSITORY = "doit_oci.repository"  # request extension: the repository it is about, or ""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 8  # tries of one request, the first included
    base_delay: float = 0.2  # seconds before the first retry, doubled each time
    max_delay: float = 10.0
    deadline: float = 60.0  # seconds one request may take, all its tries included

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the ``attempt``-th failure (1-based), with jitter."""
        backoff = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        wait = random.uniform(backoff / 2, backoff)
        if retry_after is not None:
            wait = max(wait, retry_after)  # beyond the deadline: the caller gives up now
        return wait


def retry_after(response: httpx.Response, now: float | None = None) -> float | None:
    """The Retry-After header as seconds: a number, or an HTTP date."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def refused_certificate(exc: Exception) -> bool:
    """The TLS handshake failed because the registry's certificate does not verify."""
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


NAME_NOT_FOUND = (
    "Name or service not known",  # glibc's EAI_NONAME
    "nodename nor servname",  # BSD, macOS
    "No address associated with hostname",
)


def unresolved(exc: Exception) -> bool:
    """The host's name does not resolve: a typo or a host that is gone, which a second
    try does not mend (a resolver that is down says "Temporary failure": that is retried)."""
    return any(text in str(exc) for text in NAME_NOT_FOUND)


def retryable(response: httpx.Response) -> bool:
    return response.status_code in RETRY_STATUSES


def tries(response: httpx.Response) -> int:
    """How many tries ``response`` took (1 when it did not come through RetryTransport)."""
    count = response.extensions.get(TRIES, 1)
    return count if isinstance(count, int) else 1


def what(request: httpx.Request) -> str:
    """What ``request`` is for: its WHAT extension, else its method and URL (no query)."""
    text = request.extensions.get(WHAT)
    return (
        text
        if isinstance(text, str) and text
        else f"{request.method} {request.url.copy_with(query=None)}"
    )


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


MIN_RATE = 100_000  # bytes a second a streamed body must sustain, past the deadline


class Watched(httpx.SyncByteStream):
    """A body that must end by ``until`` (the clock's time): a registry that sends an
    answer a byte a second is abandoned, as one that does not answer is."""

    def __init__(self, inner: httpx.SyncByteStream, until: float, clock: Callable[[], float]):
        self._inner = inner
        self._until = until
        self._clock = clock

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            if self._clock() > self._until:
                raise httpx.ReadTimeout("the answer came too slowly: abandoned at the deadline")
            yield chunk

    def close(self) -> None:
        self._inner.close()


class GaveUp(httpx.TransportError):
    """Every try of a request failed in transit: ``last`` is the final error, ``tries`` how
    many there were."""

    def __init__(self, last: httpx.TransportError, tries: int, request: httpx.Request) -> None:
        super().__init__(str(last), request=request)
        self.last = last
        self.tries = tries


class Watch(Protocol):
    """What is told of one request: each retry, and how it ended (its status, or 0 and
    the error when no answer came), with the number of tries."""

    def retrying(self, reason: str) -> None: ...

    def ended(self, status: int, tries: int, error: str = "") -> None: ...


Watcher = Callable[[httpx.Request], Watch]


class RetryTransport(httpx.BaseTransport):
    """Sends each request through ``inner`` until it gets an answer not worth retrying,
    within ``policy``; ``on_retry`` gets one line per retry ("<what>: HTTP 503, retrying")."""

    def __init__(
        self,
        inner: httpx.BaseTransport,
        policy: RetryPolicy,
        on_retry: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        watch: Watcher | None = None,
    ) -> None:
        self.inner = inner
        self.policy = policy
        self.on_retry = on_retry
        self._sleep = sleep
        self._clock = clock
        self.watch = watch

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.watch is None:
            return self._send(request, None)
        watch = self.watch(request)
        try:
            response = self._send(request, watch)
        except GaveUp as exc:
            watch.ended(0, exc.tries, _reason(exc.last))
            raise
        except Exception as exc:
            watch.ended(0, 1, _reason(exc))
            raise
        watch.ended(response.status_code, tries(response))
        return response

    def _send(self, request: httpx.Request, watch: Watch | None) -> httpx.Response:
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._try(request, started + self.policy.deadline)
            except httpx.TransportError as exc:
                if refused_certificate(exc):
                    raise  # trying again cannot make a certificate verify
                if unresolved(exc) and attempt >= 2:
                    raise GaveUp(exc, attempt, request) from exc
                failed: httpx.Response | httpx.TransportError = exc
                wait = self.policy.delay(attempt)
                reason = _reason(exc)
            else:
                response.extensions[TRIES] = attempt
                if not retryable(response):
                    return response
                failed = response
                wait = self.policy.delay(attempt, retry_after(response))
                reason = f"HTTP {response.status_code}"
            if (
                attempt >= self.policy.attempts
                or self._clock() - started + wait > self.policy.deadline
            ):
                if isinstance(failed, httpx.Response):
                    return failed  # the caller reports the registry's own answer
                raise GaveUp(failed, attempt, request) from failed
            if isinstance(failed, httpx.Response):
                failed.close()
            if self.on_retry is not None:
                self.on_retry(f"{what(request)}: {reason}, retrying")
            if watch is not None:
                watch.retrying(reason)
            self._sleep(wait)

    def _try(self, request: httpx.Request, until: float) -> httpx.Response:
        """One try: the answer, its body read (within the deadline) unless the caller
        streams it (then the body must come at a sustained rate: see Watched)."""
        response = self.inner.handle_request(request)
        length = response.headers.get("content-length", "")
        budget = until + (int(length) if length.isdigit() else 0) / MIN_RATE
        assert isinstance(response.stream, httpx.SyncByteStream)
        response.stream = Watched(response.stream, budget, self._clock)
        if not request.extensions.get(STREAM):
            try:
                response.read()
            except BaseException:
                response.close()
                raise
        return response

    def close(self) -> None:
        self.inner.close()
