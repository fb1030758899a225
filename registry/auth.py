"""Authentication to an OCI distribution registry: an ``httpx.Auth`` for the challenge flow.

A registry answers an unauthorised request with ``401`` and a ``WWW-Authenticate`` header:

- ``Basic realm="..."``: the request is sent again, once, with the user's credentials;
  later requests to the registry carry them from the start.
- ``Bearer realm="...",service="...",scope="..."`` (the distribution token protocol): a
  token is fetched from the realm for the service and every scope the request needs, by
  ``GET realm?service=..&scope=..&scope=..`` (with Basic credentials when we have them,
  anonymous otherwise), or by an OAuth2 ``POST grant_type=refresh_token`` when the login
  is an identity token, as docker does. The request is sent again, once, with the token.

A request names the scopes it needs in ``request.extensions["registry_scopes"]``, e.g.
``("repository:team/app:pull,push", "repository:team/base:pull")`` for a cross-repository
mount; they are merged per repository with the challenge's scope. Tokens are cached per
(realm, service, scope set) until shortly before they expire, and once the registry has
shown its realm, a request whose scopes have no token yet gets one before it is sent, so a
blob upload is not sent twice. Token requests are yielded from the flow itself, so they go
through the same client and transport (retries, timeouts, proxies); a lock per scope set
makes concurrent requests share one token fetch.

``Authorization`` only ever goes to the registry's host (and Basic credentials to the
realm when fetching a token): a request to any other host, such as a blob download
redirected to storage, passes through untouched. Request bodies are never read here; a
request replayed after a ``401`` must carry a re-iterable body.

Messages (``AuthError``, ``repr``) never hold a password, identity token or token.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from doit_oci.registry.challenge import Challenge, parse_challenge
from doit_oci.registry.credentials import DOCKER_HUB_ALIASES, Credentials, is_docker_hub

SCOPES_EXTENSION = "registry_scopes"
CLIENT_ID = "doit-oci"
DEFAULT_EXPIRES_IN = 60.0  # the token spec's lifetime when the server names none
EXPIRY_MARGIN = 10.0  # seconds before expiry that a cached token is dropped
_DEFAULT_PORTS = {"http": 80, "https": 443}


class AuthError(Exception):
    """The registry could not be authenticated to; the message names the registry and realm."""


def merge_scopes(*groups: Iterable[str]) -> tuple[str, ...]:
    """Scopes merged per resource, in first-seen order, actions sorted.

    ``repository:a:pull`` and ``repository:a:push`` become ``repository:a:pull,push``.
    A scope that is not ``type:name:actions`` is kept as it is.
    """
    merged: dict[tuple[str, str], set[str]] = {}
    opaque: dict[tuple[str, str], None] = {}
    for group in groups:
        for scope in group:
            kind, sep, rest = scope.partition(":")
            name, sep2, actions = rest.rpartition(":")
            if not (sep and sep2 and kind and name):
                key = (scope, "")
                opaque[key] = None
                merged.setdefault(key, set())
                continue
            wanted = {action for action in actions.split(",") if action}
            merged.setdefault((kind, name), set()).update(wanted)
    return tuple(
        key[0] if key in opaque else f"{key[0]}:{key[1]}:{','.join(sorted(actions))}"
        for key, actions in merged.items()
    )


@dataclass(frozen=True)
class _Token:
    value: str = field(repr=False)
    expires_at: float


_Key = tuple[str, str, frozenset[str]]


def _split_registry(registry: str) -> tuple[str, int | None]:
    """``host[:port]`` (or ``[v6]:port``) -> lowercase host and port (None when absent)."""
    text = registry.strip().lower()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    return host, int(port) if port.isdigit() else None


def _effective_port(url: httpx.URL) -> int | None:
    return url.port if url.port is not None else _DEFAULT_PORTS.get(url.scheme)


def _error_message(response: httpx.Response, secrets: Iterable[str]) -> str:
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


class RegistryAuth(httpx.Auth):
    """Basic and Bearer (token) authentication to one registry, for a sync ``httpx.Client``."""

    requires_request_body = False
    requires_response_body = False

    def __init__(
        self,
        registry: str,
        credentials: Credentials | None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self._host, self._port = _split_registry(registry)
        self._hosts = DOCKER_HUB_ALIASES if is_docker_hub(registry) else frozenset({self._host})
        self._credentials = credentials
        self._refresh_token = credentials.identity_token if credentials else ""
        self._clock = clock
        self._guard = threading.Lock()
        self._locks: dict[_Key, threading.Lock] = {}
        self._tokens: dict[_Key, _Token] = {}
        self._bearer: tuple[str, str] | None = None  # (realm, service) the registry named
        self._basic = False

    def __repr__(self) -> str:
        login = "<set>" if self._credentials is not None else "None"
        return f"RegistryAuth({self.registry!r}, credentials={login})"

    __str__ = __repr__

    # -- the flow -------------------------------------------------------------------------

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        """``auth_flow``, closed promptly when the client stops it (releasing any lock)."""
        flow = self.auth_flow(request)
        try:
            outgoing = next(flow)
            while True:
                response = yield outgoing
                try:
                    outgoing = flow.send(response)
                except StopIteration:
                    return
        finally:
            flow.close()

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Refused: token fetches are serialised with thread locks, which would block a loop."""
        raise NotImplementedError("RegistryAuth works with httpx.Client, not httpx.AsyncClient")
        yield request  # pragma: no cover - makes this an async generator

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if not self._is_registry(request.url):
            yield request
            return
        scopes = merge_scopes(self._request_scopes(request))
        sent, fresh = yield from self._authorize(request, scopes)
        response = yield request
        if response.status_code != 401 or not self._is_registry(response.url):
            return
        challenges = [
            challenge
            for value in response.headers.get_list("www-authenticate")
            for challenge in parse_challenge(value)
        ]
        bearer = next((c for c in challenges if c.scheme == "bearer"), None)
        if bearer is not None:
            realm = self._realm(bearer, request.url)
            service = bearer.get("service")
            with self._guard:
                self._bearer = (realm, service)
            wanted = merge_scopes(bearer.get("scope").split(), scopes)
            if fresh and frozenset(wanted) == frozenset(scopes):
                return  # a token fetched just now for exactly these scopes was refused
            token = yield from self._token(realm, service, wanted, stale=sent, also=scopes)
            request.headers["Authorization"] = f"Bearer {token}"
            yield request
            return
        basic = next((c for c in challenges if c.scheme == "basic"), None)
        if basic is None or (sent is not None and sent.startswith("Basic ")):
            return  # no challenge we know, or our credentials were refused: the caller reports
        header = self._basic_header()
        if header is None:
            realm = basic.get("realm")
            raise AuthError(
                f"registry {self.registry} requires a login (Basic realm {realm!r}):"
                f" run `docker login {self.registry}` or give its credentials"
            )
        with self._guard:
            self._basic = True
        request.headers["Authorization"] = header
        yield request

    def _authorize(
        self, request: httpx.Request, scopes: tuple[str, ...]
    ) -> Generator[httpx.Request, httpx.Response, tuple[str | None, bool]]:
        """Attach what we already know works.

        Returns the token or Basic header sent (None if nothing), and whether it is a token
        fetched for this very request.
        """
        with self._guard:
            basic, bearer = self._basic, self._bearer
        if basic:
            header = self._basic_header()
            if header is not None:
                request.headers["Authorization"] = header
            return header, False
        if bearer is None:
            return None, False
        realm, service = bearer
        token = self._cached((realm, service, frozenset(scopes)))
        fresh = False
        if token is None and scopes:
            token = yield from self._token(realm, service, scopes, stale=None, also=())
            fresh = True
        if token is not None:
            request.headers["Authorization"] = f"Bearer {token}"
        return token, fresh

    # -- tokens ---------------------------------------------------------------------------

    def _cached(self, key: _Key) -> str | None:
        with self._guard:
            token = self._tokens.get(key)
        if token is None or token.expires_at <= self._clock():
            return None
        return token.value

    def _token(
        self,
        realm: str,
        service: str,
        scopes: tuple[str, ...],
        *,
        stale: str | None,
        also: tuple[str, ...],
    ) -> Generator[httpx.Request, httpx.Response, str]:
        """A token for ``scopes``: the cached one unless it is ``stale``, else a fresh one.

        Fetched under a lock per (realm, service, scope set): requests that need the same
        token wait for the first one's fetch and use its result. The token is also cached
        under the request's own scope set ``also`` (a subset), for the next such request.
        """
        key = (realm, service, frozenset(scopes))
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            cached = self._cached(key)
            if cached is not None and cached != stale:
                return cached
            token = yield from self._fetch(realm, service, scopes)
            with self._guard:
                self._tokens[key] = token
                if also and frozenset(also) != key[2]:
                    self._tokens[(realm, service, frozenset(also))] = token
            return token.value

    def _fetch(
        self, realm: str, service: str, scopes: tuple[str, ...]
    ) -> Generator[httpx.Request, httpx.Response, _Token]:
        started = self._clock()
        with self._guard:
            refresh_token = self._refresh_token
        if refresh_token:
            form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
            form["client_id"] = CLIENT_ID
            if service:
                form["service"] = service
            if scopes:
                form["scope"] = " ".join(scopes)
            response = yield httpx.Request("POST", realm, data=form, headers=self._headers)
            response.read()
            # Not every token server speaks OAuth2; the spec says to fall back to GET on 404.
            if response.status_code != 404:
                return self._parse_token(response, realm, started)
        params: list[tuple[str, str]] = [("scope", scope) for scope in scopes]
        if service:
            params.append(("service", service))
        headers = dict(self._headers)
        basic = self._basic_header()
        if basic is not None and self._credentials is not None:
            params.append(("account", self._credentials.username))
            headers["Authorization"] = basic
        url = httpx.URL(realm).copy_merge_params(tuple(params))
        response = yield httpx.Request("GET", url, headers=headers)
        response.read()
        return self._parse_token(response, realm, started)

    @property
    def _headers(self) -> dict[str, str]:
        return {"Accept": "application/json"}

    def _parse_token(self, response: httpx.Response, realm: str, started: float) -> _Token:
        where = self._realm_text(realm)
        if not response.is_success:
            detail = _error_message(response, self._secrets())
            hint = (
                f"check the login for {self.registry} (`docker login {self.registry}`)"
                if self._credentials is not None
                else f"log in with `docker login {self.registry}` if it is private"
            )
            raise AuthError(
                f"token server {where} for registry {self.registry} answered"
                f" {response.status_code} {response.reason_phrase}"
                + (f" ({detail})" if detail else "")
                + f": {hint}"
            )
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
        return _Token(value=value, expires_at=started + lifetime)

    # -- helpers --------------------------------------------------------------------------

    def _is_registry(self, url: httpx.URL) -> bool:
        if url.host.lower() not in self._hosts:
            return False
        if self._port is None:
            return url.port is None
        return _effective_port(url) == self._port

    @staticmethod
    def _request_scopes(request: httpx.Request) -> tuple[str, ...]:
        value = request.extensions.get(SCOPES_EXTENSION, ())
        if isinstance(value, str):
            return (value,)
        if not isinstance(value, tuple | list) or not all(isinstance(s, str) for s in value):
            raise TypeError(f'request.extensions["{SCOPES_EXTENSION}"] must be a tuple of str')
        return tuple(value)

    def _realm(self, challenge: Challenge, url: httpx.URL) -> str:
        realm = challenge.get("realm")
        if not realm:
            raise AuthError(
                f"registry {self.registry} asked for a Bearer token but named no realm to"
                " get it from: the registry's token auth is misconfigured"
            )
        try:
            resolved = url.join(realm)
        except httpx.InvalidURL:
            resolved = None
        if resolved is None or resolved.scheme not in _DEFAULT_PORTS or not resolved.host:
            raise AuthError(
                f"registry {self.registry} named a token realm {realm!r} that is not an"
                " http(s) URL: the registry's token auth is misconfigured"
            )
        if resolved.scheme == "http" and url.scheme == "https":
            raise AuthError(
                f"registry {self.registry} named a plain-http token realm"
                f" {self._realm_text(str(resolved))} for an https registry: refused, as it"
                " would send credentials in clear"
            )
        return str(resolved)

    @staticmethod
    def _realm_text(realm: str) -> str:
        """The realm for a message: scheme, host, port and path, no query or user info."""
        url = httpx.URL(realm)
        port = f":{url.port}" if url.port is not None else ""
        return f"{url.scheme}://{url.host}{port}{url.path}"

    def _basic_header(self) -> str | None:
        credentials = self._credentials
        if credentials is None or not credentials.has_password:
            return None
        pair = f"{credentials.username}:{credentials.password}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")

    def _secrets(self) -> tuple[str, ...]:
        credentials = self._credentials
        if credentials is None:
            return (self._refresh_token,)
        return (credentials.password, credentials.identity_token, self._refresh_token)
