"""Authentication to an OCI distribution registry: an ``httpx.Auth`` for the challenge flow.

A registry answers an unauthorised request with ``401`` and a ``WWW-Authenticate`` header:

- ``Basic realm="..."``: the request is sent again, once, with the user's credentials;
  later requests to the registry carry them from the start.
- ``Bearer realm="...",service="...",scope="..."`` (the distribution token protocol): a
  token is fetched from the realm for the service and every scope the request needs, by
  ``GET realm?...`` or an OAuth2 ``POST`` (registry.tokens). The request is sent again,
  once, with the token.

A request names the scopes it needs in ``request.extensions["registry_scopes"]``, e.g.
``("repository:team/app:pull,push", "repository:team/base:pull")`` for a cross-repository
mount; they are merged per repository with the challenge's scope. Tokens are cached per
(realm, service, scope set) until shortly before they expire, and once the registry has
shown its realm, a request whose scopes have no token yet gets one before it is sent, so a
blob upload is not sent twice. Token requests are yielded from the flow itself, so they go
through the same client and transport (retries, timeouts, proxies); they are named in
retry warnings after the request they are for.

``Authorization`` only ever goes to the registry's host (and Basic credentials to the
realm when fetching a token): a request to any other host, such as a blob download
redirected to storage, passes through untouched. Request bodies are never read here; a
request replayed after a ``401`` must carry a re-iterable body.

Messages (``AuthError``, ``repr``) never hold a password, identity token or token.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator, Iterable
from types import MappingProxyType

import httpx

from doit_oci.registry.challenge import Challenge, parse_challenge
from doit_oci.registry.credentials import DOCKER_HUB_ALIASES, Credentials, is_docker_hub
from doit_oci.registry.errors import AuthError
from doit_oci.registry.tokens import Tokens, basic_header, realm_text
from doit_oci.registry.transport import what

SCOPES_EXTENSION = "registry_scopes"
_DEFAULT_PORTS = MappingProxyType({"http": 80, "https": 443})


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
        self._tokens = Tokens(registry, credentials, clock)
        self._guard = threading.Lock()
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
        scopes = merge_scopes(request_scopes(request))
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
            realm = token_realm(self.registry, bearer, request.url)
            service = bearer.get("service")
            with self._guard:
                self._bearer = (realm, service)
            wanted = merge_scopes(bearer.get("scope").split(), scopes)
            if fresh and frozenset(wanted) == frozenset(scopes):
                return  # a token fetched just now for exactly these scopes was refused
            token = yield from self._tokens.get(
                realm, service, wanted, stale=sent, also=scopes, what=what(request)
            )
            request.headers["Authorization"] = f"Bearer {token}"
            yield request
            return
        basic = next((c for c in challenges if c.scheme == "basic"), None)
        if basic is None or (sent is not None and sent.startswith("Basic ")):
            return  # no challenge we know, or our credentials were refused: the caller reports
        header = basic_header(self._credentials)
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
            header = basic_header(self._credentials)
            if header is not None:
                request.headers["Authorization"] = header
            return header, False
        if bearer is None:
            return None, False
        realm, service = bearer
        token = self._tokens.cached((realm, service, frozenset(scopes)))
        fresh = False
        if token is None and scopes:
            token = yield from self._tokens.get(
                realm, service, scopes, stale=None, also=(), what=what(request)
            )
            fresh = True
        if token is not None:
            request.headers["Authorization"] = f"Bearer {token}"
        return token, fresh

    # -- helpers --------------------------------------------------------------------------

    def _is_registry(self, url: httpx.URL) -> bool:
        if url.host.lower() not in self._hosts:
            return False
        if self._port is None:
            return url.port is None
        return _effective_port(url) == self._port


def request_scopes(request: httpx.Request) -> tuple[str, ...]:
    """The scopes ``request`` names in its ``registry_scopes`` extension."""
    value = request.extensions.get(SCOPES_EXTENSION, ())
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, tuple | list) or not all(isinstance(s, str) for s in value):
        raise TypeError(f'request.extensions["{SCOPES_EXTENSION}"] must be a tuple of str')
    return tuple(value)


def token_realm(registry: str, challenge: Challenge, url: httpx.URL) -> str:
    """The realm of a Bearer ``challenge`` to ``url``, resolved, or AuthError when it is
    missing, not http(s), or plain http for an https registry."""
    realm = challenge.get("realm")
    if not realm:
        raise AuthError(
            f"registry {registry} asked for a Bearer token but named no realm to"
            " get it from: the registry's token auth is misconfigured"
        )
    try:
        resolved = url.join(realm)
    except httpx.InvalidURL:
        resolved = None
    if resolved is None or resolved.scheme not in _DEFAULT_PORTS or not resolved.host:
        raise AuthError(
            f"registry {registry} named a token realm {realm!r} that is not an"
            " http(s) URL: the registry's token auth is misconfigured"
        )
    if resolved.scheme == "http" and url.scheme == "https":
        raise AuthError(
            f"registry {registry} named a plain-http token realm"
            f" {realm_text(str(resolved))} for an https registry: refused, as it"
            " would send credentials in clear"
        )
    return str(resolved)
