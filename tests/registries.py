"""Real registries for tests: Debian's ``docker-registry`` (CNCF distribution 2.8) on loopback.

Three flavours, each a context manager usable from a fixture::

    with open_registry(tmp_path / "open") as reg: ...     # no auth
    with basic_registry(tmp_path / "basic") as reg: ...   # htpasswd (Basic) auth
    with token_registry(tmp_path / "token") as reg: ...   # Bearer tokens from our token server

Each one writes its config, storage and log under ``root``, starts ``docker-registry serve``
on a free 127.0.0.1 port, waits until ``/v2/`` answers and stops the process afterwards.

The token server follows the distribution token spec: ``GET /token?service=..&scope=..``
with optional Basic credentials, and ``POST /token`` with an OAuth2 form
(``grant_type=password`` or ``refresh_token``). Its JWTs are ES256, signed by a key whose
self-signed certificate is the registry's ``rootcertbundle`` and which travels in the
token's ``x5c`` header; distribution 2.8 checks ``iss``, ``aud`` (= service), ``exp`` and
``nbf`` (each with 60 s of leeway), the signature and then the ``access`` claim.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from faults import FaultProxy, fault_proxy

SERVICE = "doit-oci-test-registry"
ISSUER = "doit-oci-test-token-issuer"
HTTP_SECRET = "doit-oci-test-http-secret"
# distribution accepts a token up to 60 s after its ``exp`` (and before its ``nbf``).
TOKEN_LEEWAY = 60
DEFAULT_PASSWORD = "correct horse battery staple"
START_TIMEOUT = 20.0

# 127.0.0.1 - - [28/Nov/2026:14:28:22 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "agent"
_ACCESS_LINE = re.compile(
    r'^\S+ \S+ (?P<user>\S+) \[[^\]]*\] "(?P<method>[A-Z]+) (?P<target>\S+) HTTP/[0-9.]+" '
    r'(?P<status>\d{3}) (?P<size>\d+|-)(?: "(?:[^"\\]|\\.)*" "(?P<agent>(?:[^"\\]|\\.)*)")?'
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class AccessEntry:
    """One line of the registry's own (Apache combined) access log."""

    method: str
    path: str  # the request path, without the query string
    status: int
    size: int  # bytes of the response body the registry wrote
    query: str = ""
    user_agent: str = ""


@dataclass
class RunningRegistry:
    host: str  # "127.0.0.1:PORT"
    root: Path
    log: Path
    username: str | None
    password: str | None

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def access_log(self) -> list[AccessEntry]:
        """Every request the registry has logged so far, in order.

        The registry writes a line after it has sent the response, so a client may see the
        response a moment before its line is there: use :meth:`wait_for` when that matters.
        """
        entries = []
        for line in self.log.read_text(errors="replace").splitlines():
            match = _ACCESS_LINE.match(line)
            if match is None:
                continue
            path, _, query = match["target"].partition("?")
            size = match["size"]
            entries.append(
                AccessEntry(
                    method=match["method"],
                    path=path,
                    status=int(match["status"]),
                    size=0 if size == "-" else int(size),
                    query=query,
                    user_agent=(match["agent"] or "").replace('\\"', '"'),
                )
            )
        return entries

    def requests(self, method: str, path_prefix: str) -> list[AccessEntry]:
        """The logged requests with this method whose path starts with ``path_prefix``."""
        return [
            e for e in self.access_log() if e.method == method and e.path.startswith(path_prefix)
        ]

    def wait_for(
        self, method: str, path_prefix: str, status: int | None = None, timeout: float = 5.0
    ) -> AccessEntry:
        """The last logged request matching, waiting for its line to be written."""
        deadline = time.monotonic() + timeout
        while True:
            found = [
                e
                for e in self.requests(method, path_prefix)
                if status is None or e.status == status
            ]
            if found:
                return found[-1]
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no {method} {path_prefix}* (status {status}) in the access log: "
                    f"{self.access_log()}"
                )
            time.sleep(0.02)


# --- the registry process -------------------------------------------------------------


def _config(root: Path, port: int, auth: str) -> str:
    return (
        "version: 0.1\n"
        "log:\n  level: info\n  accesslog:\n    disabled: false\n"
        "storage:\n"
        f"  filesystem:\n    rootdirectory: {root / 'storage'}\n"
        "  delete:\n    enabled: true\n"
        "  maintenance:\n    uploadpurging:\n      enabled: false\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: {HTTP_SECRET}\n" + auth
    )


@contextlib.contextmanager
def _serve(
    root: Path, auth: str, username: str | None, password: str | None
) -> Iterator[RunningRegistry]:
    binary = shutil.which("docker-registry")
    if binary is None:
        raise RuntimeError("docker-registry is not installed: run .ci/run, which installs it")
    root.mkdir(parents=True, exist_ok=True)
    (root / "storage").mkdir(exist_ok=True)
    port = free_port()
    config = root / "config.yml"
    config.write_text(_config(root, port, auth))
    log = root / "registry.log"
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            [binary, "serve", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                # Any answer will do: 200 without auth, 401 with it.
                httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1)
                break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"docker-registry did not start: {log.read_text()[-3000:]}")
            time.sleep(0.05)
        yield RunningRegistry(f"127.0.0.1:{port}", root, log, username, password)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def open_registry(root: Path) -> contextlib.AbstractContextManager[RunningRegistry]:
    """A registry without authentication."""
    return _serve(root, "", None, None)


def write_htpasswd(path: Path, users: dict[str, str]) -> None:
    """An htpasswd file of bcrypt hashes, the only kind distribution accepts."""
    import bcrypt  # a test dependency: only this flavour needs it

    lines = [
        f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()}\n"
        for user, password in users.items()
    ]
    path.write_text("".join(lines))


@contextlib.contextmanager
def basic_registry(
    root: Path, username: str = "alice", password: str = DEFAULT_PASSWORD
) -> Iterator[RunningRegistry]:
    """A registry that wants HTTP Basic credentials (htpasswd) on every request."""
    root.mkdir(parents=True, exist_ok=True)
    htpasswd = root / "htpasswd"
    write_htpasswd(htpasswd, {username: password})
    auth = f"auth:\n  htpasswd:\n    realm: doit-oci-test\n    path: {htpasswd}\n"
    with _serve(root, auth, username, password) as registry:
        yield registry


# --- the token server -----------------------------------------------------------------


@dataclass
class TokenRequest:
    """One request the token server answered."""

    method: str  # GET or POST
    grant_type: str | None  # None for GET; "password" or "refresh_token" for POST
    service: str | None
    scopes: list[str]  # as asked, one per scope ("repository:NAME:pull,push")
    credentials: bool  # whether the client sent any (Basic, password or refresh token)
    username: str | None  # the user the credentials named, right or wrong
    status: int  # what the server answered
    granted: list[str] = field(default_factory=list)  # scopes granted, same format
    offline: bool = False  # whether a refresh token was asked for (and so returned)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def parse_scope(scope: str) -> tuple[str, str, list[str]] | None:
    """``repository:name:pull,push`` -> (type, name, actions); None when malformed."""
    kind, sep, rest = scope.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not sep or not sep2 or not kind or not name:
        return None
    return kind, name, [a for a in actions.split(",") if a]


class TokenServer:
    """A distribution token server on its own loopback port (a thread).

    ``users`` maps user names to passwords. Authenticated users get every action they ask
    for among ``actions``; anonymous ones get pull access when ``anonymous_pull``, nothing
    otherwise; wrong credentials get 401. Tokens live ``expires_in`` seconds: ``exp`` is
    set ``TOKEN_LEEWAY`` seconds earlier so that the registry, which adds that leeway,
    really refuses the token once ``expires_in`` has passed.
    """

    def __init__(
        self,
        users: dict[str, str],
        *,
        service: str = SERVICE,
        issuer: str = ISSUER,
        expires_in: int = 300,
        anonymous_pull: bool = False,
        actions: frozenset[str] = frozenset({"pull", "push", "delete", "*"}),
    ) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.users = dict(users)
        self.service = service
        self.issuer = issuer
        self.expires_in = expires_in
        self.anonymous_pull = anonymous_pull
        self.actions = actions
        self.requests: list[TokenRequest] = []
        self.refresh_tokens: dict[str, str] = {}  # refresh token -> user
        self.issued: list[str] = []  # every access token handed out, in order
        self._lock = threading.Lock()

        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)])
        now = datetime.datetime.now(datetime.UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.certificate_pem = self._cert.public_bytes(serialization.Encoding.PEM)
        self._cert_der = self._cert.public_bytes(serialization.Encoding.DER)

        server = ThreadingHTTPServer(("127.0.0.1", 0), _TokenHandler)
        server.daemon_threads = True
        server.token_server = self  # type: ignore[attr-defined]
        self._server = server
        self.host = f"127.0.0.1:{server.server_address[1]}"
        self.realm = f"http://{self.host}/token"
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # -- tokens --

    def sign(self, claims: dict[str, Any]) -> str:
        """A compact ES256 JWS of ``claims`` whose x5c header carries our certificate."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(self._cert_der).decode()]}
        signing_input = (
            _b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        der = self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)  # JOSE wants r || s, 32 bytes each
        return signing_input + "." + _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    def grant(self, user: str | None, scopes: list[str]) -> list[dict[str, Any]]:
        access: list[dict[str, Any]] = []
        for scope in scopes:
            parsed = parse_scope(scope)
            if parsed is None:
                continue
            kind, name, asked = parsed
            if user is not None:
                allowed = [a for a in asked if a in self.actions]
            elif self.anonymous_pull and kind == "repository":
                allowed = [a for a in asked if a == "pull"]
            else:
                allowed = []
            if allowed:
                access.append({"type": kind, "name": name, "actions": allowed})
        return access

    def issue(self, user: str | None, scopes: list[str]) -> tuple[str, list[str]]:
        now = int(time.time())
        access = self.grant(user, scopes)
        claims = {
            "iss": self.issuer,
            "sub": user or "",
            "aud": self.service,
            "exp": now + self.expires_in - TOKEN_LEEWAY,
            "nbf": now,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": access,
        }
        granted = [f"{a['type']}:{a['name']}:{','.join(a['actions'])}" for a in access]
        token = self.sign(claims)
        with self._lock:
            self.issued.append(token)
        return token, granted

    def record(self, request: TokenRequest) -> None:
        with self._lock:
            self.requests.append(request)


class _TokenHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "doit-oci-test-token-server"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def tokens(self) -> TokenServer:
        return self.server.token_server  # type: ignore[attr-defined, no-any-return]

    def _answer(self, status: int, body: dict[str, Any], challenge: bool = False) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if challenge:
            self.send_header("WWW-Authenticate", 'Basic realm="doit-oci-test-token"')
        self.end_headers()
        self.wfile.write(data)

    @staticmethod
    def _scopes(values: list[str]) -> list[str]:
        # Repeated parameters, each of which may also hold several space-separated scopes.
        return [scope for value in values for scope in value.split() if scope]

    def _grant(
        self, user: str | None, scopes: list[str], offline: bool
    ) -> tuple[dict[str, Any], list[str]]:
        token, granted = self.tokens.issue(user, scopes)
        body: dict[str, Any] = {
            "token": token,
            "access_token": token,
            "expires_in": self.tokens.expires_in,
            "issued_at": datetime.datetime.now(datetime.UTC).isoformat(),
            "scope": " ".join(granted),
        }
        if offline and user is not None:
            refresh = secrets.token_urlsafe(24)
            self.tokens.refresh_tokens[refresh] = user
            body["refresh_token"] = refresh
        return body, granted

    def _finish(self, request: TokenRequest, body: dict[str, Any]) -> None:
        # Recorded before answering: a test that got the answer finds the record there.
        self.tokens.record(request)
        self._answer(request.status, body, challenge=request.status == 401)

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        if url.path != "/token":
            self._answer(404, {"error": "not_found"})
            return
        query = urllib.parse.parse_qs(url.query)
        scopes = self._scopes(query.get("scope", []))
        service = query.get("service", [None])[0]
        offline = query.get("offline_token", ["false"])[0].lower() == "true"
        header = self.headers.get("Authorization", "")
        request = TokenRequest("GET", None, service, scopes, bool(header), None, 200)
        request.offline = offline
        if header:
            kind, _, value = header.partition(" ")
            try:
                decoded = base64.b64decode(value, validate=True).decode()
            except ValueError:
                decoded = ""
            name, sep, password = decoded.partition(":")
            request.username = name or None
            if kind.lower() != "basic" or not sep or self.tokens.users.get(name) != password:
                request.status = 401
                self._finish(request, {"errors": [{"code": "UNAUTHORIZED"}]})
                return
        if service not in (None, self.tokens.service):
            request.status = 400
            self._finish(request, {"error": "invalid_request", "error_description": "service"})
            return
        body, request.granted = self._grant(request.username, scopes, offline)
        self._finish(request, body)

    def do_POST(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode(errors="replace"))
        if url.path != "/token":
            self._answer(404, {"error": "not_found"})
            return
        grant_type = form.get("grant_type", [None])[0]
        service = form.get("service", [None])[0]
        scopes = self._scopes(form.get("scope", []))
        # OAuth2: a refresh token comes back unless access_type says "online".
        offline = form.get("access_type", ["offline"])[0] == "offline"
        request = TokenRequest("POST", grant_type, service, scopes, False, None, 200)
        request.offline = offline
        if grant_type == "password":
            request.username = form.get("username", [None])[0]
            password = form.get("password", [None])[0]
            request.credentials = request.username is not None or password is not None
            if request.username is None or self.tokens.users.get(request.username) != password:
                request.status = 401
        elif grant_type == "refresh_token":
            refresh = form.get("refresh_token", [""])[0]
            request.credentials = bool(refresh)
            request.username = self.tokens.refresh_tokens.get(refresh)
            if request.username is None:
                request.status = 401
        else:
            request.status = 400
        if request.status == 200 and service != self.tokens.service:
            request.status = 400
        if request.status == 401:
            self._finish(request, {"error": "invalid_grant"})
        elif request.status == 400:
            self._finish(request, {"error": "invalid_request"})
        else:
            body, request.granted = self._grant(request.username, scopes, offline)
            self._finish(request, body)


@dataclass
class TokenRegistry(RunningRegistry):
    token_requests: list[TokenRequest] = field(default_factory=list)  # live: the server's own
    realm: str = ""
    token_server: TokenServer | None = None  # tune expires_in / anonymous_pull at run time
    token_faults: FaultProxy | None = None  # in front of the token server: its realm

    @property
    def tokens(self) -> TokenServer:
        assert self.token_server is not None
        return self.token_server


@contextlib.contextmanager
def token_registry(
    root: Path,
    username: str = "bob",
    password: str = DEFAULT_PASSWORD,
    *,
    expires_in: int = 300,
    anonymous_pull: bool = False,
    actions: frozenset[str] = frozenset({"pull", "push", "delete", "*"}),
    token_faults: bool = False,
) -> Iterator[TokenRegistry]:
    """A registry that wants Bearer tokens, and the token server that issues them.

    With ``token_faults``, the realm the registry names is a fault proxy in front of the
    token server (``registry.token_faults``), so that token requests can be made to fail.
    """
    root.mkdir(parents=True, exist_ok=True)
    server = TokenServer(
        {username: password},
        expires_in=expires_in,
        anonymous_pull=anonymous_pull,
        actions=actions,
    )
    stack = contextlib.ExitStack()
    try:
        faults = stack.enter_context(fault_proxy(server.host)) if token_faults else None
        realm = f"http://{faults.host}/token" if faults is not None else server.realm
        bundle = root / "token-root.pem"
        bundle.write_bytes(server.certificate_pem)
        auth = (
            "auth:\n  token:\n"
            f"    realm: {realm}\n"
            f"    service: {server.service}\n"
            f"    issuer: {server.issuer}\n"
            f"    rootcertbundle: {bundle}\n"
        )
        with _serve(root, auth, username, password) as registry:
            yield TokenRegistry(
                host=registry.host,
                root=registry.root,
                log=registry.log,
                username=username,
                password=password,
                token_requests=server.requests,
                realm=realm,
                token_server=server,
                token_faults=faults,
            )
    finally:
        stack.close()
        server.close()


def tls_registry(root: Path, hostname: str) -> contextlib.AbstractContextManager[RunningRegistry]:
    """An open registry that speaks TLS with a self-signed certificate for ``hostname`` (a
    name of this machine that resolves to loopback), listening on 127.0.0.1. Its CA (the
    certificate itself) is root/ca.pem."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    root.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.DNSName(hostname), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (root / "ca.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (root / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    tls = f"  tls:\n    certificate: {root / 'ca.pem'}\n    key: {root / 'key.pem'}\n"

    @contextlib.contextmanager
    def serve() -> Iterator[RunningRegistry]:
        with _serve(root, tls, None, None) as running:
            port = running.host.rsplit(":", 1)[1]
            yield RunningRegistry(f"{hostname}:{port}", running.root, running.log, None, None)

    return serve()
