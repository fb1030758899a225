"""Retries for registry requests: backoff with jitter, Retry-After, and a time budget.

httpx retries only connections that fail to open. A registry also drops connections,
answers 408, 429 or 5xx under load, and stalls: those are retried here, a bounded number
of times and within a deadline, so that a registry that cannot be reached fails the run
in about a minute instead of hanging it.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


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


class Exhausted(Exception):
    """Every try failed; ``last`` is the final response or the transport error."""

    def __init__(self, last: httpx.Response | httpx.TransportError, tries: int) -> None:
        super().__init__(str(last))
        self.last = last
        self.tries = tries


def refused_certificate(exc: Exception) -> bool:
    """The TLS handshake failed because the registry's certificate does not verify."""
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


def retryable(response: httpx.Response) -> bool:
    return response.status_code in RETRY_STATUSES


def send_with_retries(
    send: Callable[[], httpx.Response],
    policy: RetryPolicy,
    *,
    on_retry: Callable[[int, str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> httpx.Response:
    """Call ``send`` (which builds and sends a fresh request each time) until it gives a
    response that is not worth retrying. A retryable response or error that outlives the
    policy raises ``Exhausted``; the response of the last try is closed first."""
    started = clock()
    attempt = 0
    while True:
        attempt += 1
        wait_hint: float | None = None
        try:
            response = send()
        except httpx.TransportError as exc:
            if refused_certificate(exc):
                raise  # trying again cannot make a certificate verify
            last: httpx.Response | httpx.TransportError = exc
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        else:
            if not retryable(response):
                return response
            wait_hint = retry_after(response)
            response.close()
            last = response
            reason = f"HTTP {response.status_code}"
        wait = policy.delay(attempt, wait_hint)
        if attempt >= policy.attempts or clock() - started + wait > policy.deadline:
            raise Exhausted(last, attempt)
        if on_retry is not None:
            on_retry(attempt, reason)
        sleep(wait)
