"""One registry's plumbing: an httpx client (authentication flow over retries over the
connection pool), and requests whose every failure is one ``RegistryError`` line naming
the registry, repository and operation. Used by the reads (registry.client) and the
uploads (registry.upload).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
from collections.abc import Callable, Iterable, Iterator
from urllib.parse import urljoin
from urllib.request import getproxies

import httpx

from doit_oci.registry.auth import SCOPES_EXTENSION, RegistryAuth
from doit_oci.registry.credentials import Credentials
from doit_oci.registry.errors import AuthError, RegistryError, unreachable
from doit_oci.registry.reference import is_loopback
from doit_oci.registry.transport import (
    REPOSITORY,
    STREAM,
    WHAT,
    GaveUp,
    RetryPolicy,
    RetryTransport,
    Watcher,
    refused_certificate,
    retryable,
    tries,
)

USER_AGENT = "doit-oci/0.1"


def error_detail(response: httpx.Response) -> str:
    """``HTTP 404 MANIFEST_UNKNOWN: manifest unknown``: the status and the registry's errors."""
    text = f"HTTP {response.status_code}"
    try:
        body = json.loads(response.content or b"{}")
    except (ValueError, httpx.ResponseNotRead):
        return text
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list):
        parts = []
        for error in errors[:3]:
            if isinstance(error, dict):
                code, message = error.get("code", ""), error.get("message", "")
                parts.append(f"{code}: {message}" if code and message else str(code or message))
        if parts:
            text += " " + "; ".join(parts)
    return text


def scope(repository: str, actions: str) -> str:
    """``repository:team/app:pull,push``: what a request asks a token to allow."""
    return f"repository:{repository}:{actions}"


def proxy_mounts(
    make: Callable[[httpx.Proxy], httpx.BaseTransport],
) -> dict[str, httpx.BaseTransport | None]:
    """The proxies of the environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY) as
    httpx mounts, as httpx would mount them without a transport of ours: one transport
    made by ``make`` per proxy, None (no proxy) for the hosts NO_PROXY names."""
    found = getproxies()
    mounts: dict[str, httpx.BaseTransport | None] = {}
    for scheme in ("http", "https", "all"):
        if found.get(scheme):
            url = found[scheme] if "://" in found[scheme] else f"http://{found[scheme]}"
            mounts[f"{scheme}://"] = make(httpx.Proxy(url))
    for host in (h.strip() for h in found.get("no", "").split(",")):
        if host == "*":
            return {}
        if "://" in host:
            mounts[host] = None
        elif host:
            mounts[f"all://{_no_proxy_pattern(host)}"] = None
    return mounts


def _no_proxy_pattern(host: str) -> str:
    """A NO_PROXY entry as httpx matches it: an address or localhost exactly, a domain
    with its subdomains (``.example.com``: only them)."""
    try:
        address = ipaddress.ip_address(host.split("/")[0])
    except ValueError:
        return host if host.lower() == "localhost" else f"*{host}"
    return f"[{host}]" if address.version == 6 else host


class Session:
    """Requests to one registry. Thread safe: they share a bounded connection pool."""

    def __init__(
        self,
        registry: str,
        *,
        credentials: Credentials | None = None,
        insecure: bool = False,
        policy: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        max_connections: int = 8,
        timeout: float = 30.0,
        on_retry: Callable[[str], None] | None = None,
        watch: Watcher | None = None,
    ) -> None:
        self.registry = registry
        scheme = "http" if insecure or is_loopback(registry) else "https"
        host = "registry-1.docker.io" if registry == "docker.io" else registry
        self.base_url = f"{scheme}://{host}"
        self.policy = policy or RetryPolicy()
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )

        def retried(inner: httpx.BaseTransport) -> httpx.BaseTransport:
            return RetryTransport(inner, self.policy, on_retry=on_retry, watch=watch)

        mounts = (
            proxy_mounts(lambda proxy: retried(httpx.HTTPTransport(limits=limits, proxy=proxy)))
            if transport is None
            else {}
        )
        self._client = httpx.Client(
            auth=RegistryAuth(host, credentials),
            transport=retried(transport or httpx.HTTPTransport(limits=limits)),
            mounts=mounts,
            follow_redirects=True,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            headers={"User-Agent": USER_AGENT},
        )

    def close(self) -> None:
        self._client.close()

    def url(self, path: str) -> str:
        """``path`` on the registry; an absolute URL (an upload's Location) as it is."""
        if path.startswith(("http://", "https://")):
            return path
        return urljoin(self.base_url + "/", path)

    def fail(
        self, repository: str, operation: str, detail: str, status: int = 0, fix: str = ""
    ) -> RegistryError:
        return RegistryError(self.registry, repository, operation, detail, status, fix)

    def send(
        self,
        method: str,
        url: str,
        repository: str,
        operation: str,
        *,
        scopes: tuple[str, ...] = (),
        headers: dict[str, str] | None = None,
        content: Iterable[bytes] | bytes | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        """Send (retried, authenticated) and return the answer, whatever its status; a
        request that got no answer raises RegistryError saying why."""
        where = f"{self.registry}/{repository}" if repository else self.registry
        extensions: dict[str, object] = {
            WHAT: f"{where}: {operation}",
            STREAM: stream,
            REPOSITORY: repository,
        }
        if scopes:
            extensions[SCOPES_EXTENSION] = scopes
        try:
            request = self._client.build_request(
                method, self.url(url), headers=headers, content=content, extensions=extensions
            )
            return self._client.send(request, stream=stream)
        except (AuthError, httpx.HTTPError) as exc:
            raise no_answer(self.registry, self.base_url, repository, operation, exc) from None

    def check(
        self,
        response: httpx.Response,
        repository: str,
        operation: str,
        ok: tuple[int, ...] = (200,),
    ) -> httpx.Response:
        """``response`` when its status is in ``ok``, else its RegistryError (read first)."""
        if response.status_code in ok:
            return response
        response.read()
        detail = error_detail(response)
        if retryable(response):  # the registry failed on every try
            detail += f" after {tries(response)} tries"
        raise self.fail(repository, operation, detail, response.status_code)

    def request(
        self,
        method: str,
        url: str,
        repository: str,
        operation: str,
        *,
        scopes: tuple[str, ...] = (),
        headers: dict[str, str] | None = None,
        content: Iterable[bytes] | bytes | None = None,
        ok: tuple[int, ...] = (200,),
        allow: tuple[int, ...] = (),
    ) -> httpx.Response:
        """A response whose status is in ``ok`` or ``allow``, else RegistryError naming the
        registry, repository and operation."""
        response = self.send(
            method, url, repository, operation, scopes=scopes, headers=headers, content=content
        )
        return self.check(response, repository, operation, ok + allow)

    @contextlib.contextmanager
    def stream(
        self, url: str, repository: str, operation: str, *, scopes: tuple[str, ...]
    ) -> Iterator[httpx.Response]:
        """A GET whose 200 answer is read as it comes, closed afterwards."""
        response = self.send("GET", url, repository, operation, scopes=scopes, stream=True)
        try:
            yield self.check(response, repository, operation)
        finally:
            response.close()

    def check_digest(
        self, response: httpx.Response, digest: str, repository: str, operation: str
    ) -> None:
        """The registry's Docker-Content-Digest, when it gives one, must be ``digest``."""
        header = response.headers.get("docker-content-digest")
        if header and header != digest:
            raise self.fail(
                repository, operation, f"the registry says the digest is {header}, ours is {digest}"
            )


def no_answer(
    registry: str, base_url: str, repository: str, operation: str, exc: Exception
) -> RegistryError:
    """The RegistryError of a request that got no answer to report: refused credentials, no
    connection after every try, a certificate that does not verify, or another failure."""
    if isinstance(exc, AuthError):
        return RegistryError(
            registry, repository, operation, f"HTTP {exc.status} {exc}", exc.status
        )
    if isinstance(exc, GaveUp):
        last = exc.last
        origin = _origin(exc.request.url)
        fix = unreachable(registry)
        if origin != base_url:  # the token server the registry names, not the registry
            fix = (
                f"check that {origin}, the token server {registry} names, runs and is"
                " reachable from here (REGISTRY_DEADLINE sets how long to retry)"
            )
        what = f"cannot reach {origin}"
        if "too slowly" in str(last):
            what = f"{origin} answered, but too slowly to finish"
        return RegistryError(
            registry,
            repository,
            operation,
            f"{what} ({type(last).__name__}: {last}) after {exc.tries} tries",
            fix=fix,
        )
    if refused_certificate(exc):
        return RegistryError(
            registry,
            repository,
            operation,
            f"the TLS certificate of {base_url} does not verify ({exc})",
            fix="give the CA that signed it in SSL_CERT_FILE, or name the registry"
            " with --insecure-registry to speak plain HTTP to it",
        )
    detail = f"{type(exc).__name__}: {exc}"
    return RegistryError(registry, repository, operation, detail, fix=unreachable(registry))


def _origin(url: httpx.URL) -> str:
    """``http://127.0.0.1:5000``: where a request went, for a message."""
    host = f"[{url.host}]" if ":" in url.host else url.host
    port = f":{url.port}" if url.port is not None else ""
    return f"{url.scheme}://{host}{port}"
