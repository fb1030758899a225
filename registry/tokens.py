"""Bearer tokens of one registry (the distribution token protocol), for ``RegistryAuth``.

A token is fetched from the realm the registry named, for its service and a set of
scopes: by ``GET realm?service=..&scope=..&scope=..`` (with Basic credentials when we
have them, anonymous otherwise), or by an OAuth2 ``POST grant_type=refresh_token`` when
the login is an identity token, as docker does. Fetches are generators that yield their
request and get its response, so that they go through the same client and transport as
every other request (retries, timeouts, proxies).

Tokens are cached per (realm, service, scope set) until shortly before they expire; a
lock per scope set makes concurrent requests share one fetch. Messages and ``repr``
never hold a password, identity token or token.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from doit_oci.registry.credentials import Credentials
from doit_oci.registry.errors import AuthError
from doit_oci.registry.transport import TRIES, WHAT, retryable, tries

CLIENT_ID = "doit-oci"
DEFAULT_EXPIRES_IN = 60.0  # the token spec's lifetime when the server names none
EXPIRY_MARGIN = 10.0  # seconds before expiry that a cached token is dropped

Key = tuple[str, str, frozenset[str]]  # (realm, service, scopes)
Fetch = Generator[httpx.Request, httpx.Response, str]


@dataclass(frozen=True)
class Token:
    value: str = field(repr=False)
    expires_at: float


def basic_header(credentials: Credentials | None) -> str | None:
    """``Basic <base64 user:password>``, or None without a username and password."""
    if credentials is None or not credentials.has_password:
        return None
    pair = f"{credentials.username}:{credentials.password}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


def realm_text(realm: str) -> str:
    """The realm for a message: scheme, host, port and path, no query or user info."""
    url = httpx.URL(realm)
    port = f":{url.port}" if url.port is not None else ""
    return f"{url.scheme}://{url.host}{port}{url.path}"


def error_message(response: httpx.Response, secrets: Iterable[str]) -> str:
    """The server's own error text from a JSON body, one line, secrets blanked, or ""."""
    try:
        body: Any = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return ""
    text = ""
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            text = str(errors[0].get("message") or errors[0].get("code") or "")
        for key in ("error_description", "details", "message", "error"):
            if not text and isinstance(body.get(key), str):
                text = body[key]
    text = " ".join(text.split())
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    return text[:200]


class Tokens:
    """The tokens of ``registry``, fetched with ``credentials`` (None: anonymously)."""

    def __init__(
        self, registry: str, credentials: Credentials | None, clock: Callable[[], float]
    ) -> None:
        self.registry = registry
        self._credentials = credentials
        self._refresh_token = credentials.identity_token if credentials else ""
        self._clock = clock
        self._guard = threading.Lock()
        self._locks: dict[Key, threading.Lock] = {}
        self._tokens: dict[Key, Token] = {}

    def __repr__(self) -> str:
        return f"Tokens({self.registry!r}, {len(self._tokens)} cached)"

    def cached(self, key: Key) -> str | None:
        """The token for ``key`` unless it is missing or (nearly) expired."""
        with self._guard:
            token = self._tokens.get(key)
        if token is None or token.expires_at <= self._clock():
            return None
        return token.value

    def get(
        self,
        realm: str,
        service: str,
        scopes: tuple[str, ...],
        *,
        stale: str | None,
        also: tuple[str, ...],
        what: str,
    ) -> Fetch:
        """A token for ``scopes``: the cached one unless it is ``stale``, else a fresh one.

        Fetched under a lock per (realm, service, scope set): requests that need the same
        token wait for the first one's fetch and use its result. The token is also cached
        under the request's own scope set ``also`` (a subset), for the next such request.
        ``what`` names the request it is for, in retry warnings.
        """
        key = (realm, service, frozenset(scopes))
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            cached = self.cached(key)
            if cached is not None and cached != stale:
                return cached
            token = yield from self._fetch(realm, service, scopes, what)
            with self._guard:
                self._tokens[key] = token
                if also and frozenset(also) != key[2]:
                    self._tokens[(realm, service, frozenset(also))] = token
            return token.value

    def _fetch(
        self, realm: str, service: str, scopes: tuple[str, ...], what: str
    ) -> Generator[httpx.Request, httpx.Response, Token]:
        started = self._clock()
        extensions = {WHAT: f"{what}: token server {realm_text(realm)}"}
        headers = {"Accept": "application/json"}
        with self._guard:
            refresh_token = self._refresh_token
        if refresh_token:
            form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
            form["client_id"] = CLIENT_ID
            if service:
                form["service"] = service
            if scopes:
                form["scope"] = " ".join(scopes)
            response = yield httpx.Request(
                "POST", realm, data=form, headers=headers, extensions=extensions
            )
            response.read()
            # Not every token server speaks OAuth2; the spec says to fall back to GET on 404.
            if response.status_code != 404:
                return self._parse(response, realm, started)
        params: list[tuple[str, str]] = [("scope", scope) for scope in scopes]
        if service:
            params.append(("service", service))
        basic = basic_header(self._credentials)
        if basic is not None and self._credentials is not None:
            params.append(("account", self._credentials.username))
            headers["Authorization"] = basic
        url = httpx.URL(realm).copy_merge_params(tuple(params))
        response = yield httpx.Request("GET", url, headers=headers, extensions=extensions)
        response.read()
        return self._parse(response, realm, started)

    def _parse(self, response: httpx.Response, realm: str, started: float) -> Token:
        where = realm_text(realm)
        if not response.is_success:
            detail = error_message(response, self._secrets())
            answered = (
                f"token server {where} for registry {self.registry} answered"
                f" {response.status_code} {response.reason_phrase}"
                + (f" ({detail})" if detail else "")
            )
            if retryable(response) and TRIES in response.extensions:
                # it failed on every try of RetryTransport: not a matter of logging in
                count = tries(response)
                raise AuthError(f"{answered} after {count} tries", response.status_code)
            hint = (
                f"check the login for {self.registry} (`docker login {self.registry}`)"
                if self._credentials is not None
                else f"log in with `docker login {self.registry}` if it is private"
            )
            raise AuthError(f"{answered}: {hint}")
        try:
            body: Any = json.loads(response.content)
        except (ValueError, UnicodeDecodeError):
            body = None
        value = ""
        if isinstance(body, dict):
            value = body.get("token") or body.get("access_token") or ""
        if not isinstance(value, str) or not value:
            raise AuthError(
                f"token server {where} for registry {self.registry} answered without a token:"
                " the realm is not a distribution token server"
            )
        assert isinstance(body, dict)
        expires_in = body.get("expires_in")
        lifetime = (
            float(expires_in)
            if isinstance(expires_in, int | float) and not isinstance(expires_in, bool)
            else 0.0
        )
        if lifetime <= 0:
            lifetime = DEFAULT_EXPIRES_IN
        refresh_token = body.get("refresh_token")
        if isinstance(refresh_token, str) and refresh_token and self._refresh_token:
            with self._guard:
                self._refresh_token = refresh_token
        lifetime = max(lifetime - EXPIRY_MARGIN, lifetime / 2)
        return Token(value=value, expires_at=started + lifetime)

    def _secrets(self) -> tuple[str, ...]:
        credentials = self._credentials
        if credentials is None:
            return (self._refresh_token,)
        return (credentials.password, credentials.identity_token, self._refresh_token)
