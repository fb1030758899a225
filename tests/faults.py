"""A fault-injecting HTTP/1.1 proxy for tests, in front of a real registry on loopback.

::

    with fault_proxy(registry.host) as proxy:
        proxy.add(Fault("status", status=503, retry_after="1", method="PATCH"))
        proxy.add(Fault("reset", path_contains="/manifests/"))
        proxy.every_nth(5, [Fault("truncate"), Fault("delay", delay=0.5)])
        ... talk to proxy.host instead of registry.host ...
        assert ("PATCH", ..., "status 503") in proxy.seen

``proxy.seen`` lists every request in the order it came: (method, request target with its
query, outcome), the outcome being ``"forward"``, ``"status NNN"``, ``"reset"``,
``"truncate"``, ``"delay"`` or ``"stall"``.

The proxy speaks HTTP/1.1 to both sides and streams every body both ways, so uploads of
any size never sit in memory. It changes nothing but what a fault does, and absolute URLs
that point at the upstream (``Location``, ``Content-Location``, ``Link``), which it points
at itself so that a client keeps talking through it. The ``Host`` header goes upstream as
the client sent it, so distribution already builds its upload URLs on the proxy's address.

Faults (each applied to the next ``times`` requests that match ``method`` and
``path_contains``, in the order they were added; :meth:`FaultProxy.every_nth` adds a
periodic schedule besides):

``status``
    answer ``status`` (with ``Retry-After: retry_after`` when given) without forwarding,
    after reading the request body. A 416 on an upload URL (``/blobs/uploads/``) also
    carries the upload's real ``Range``, ``Location`` and ``Docker-Upload-UUID``, asked of
    the upstream by a GET on the same URL with the client's ``Authorization``, so that a
    client can resume from there.
``reset``
    read the request, forward nothing and close the connection with a TCP reset
    (SO_LINGER 0): the client sees a connection reset while waiting for its answer.
``truncate``
    forward, relay the answer's head and half of its body, then close the connection.
``delay``
    sleep ``delay`` seconds, then forward.
``stall``
    forward, but stop reading the request body for ``delay`` seconds once half of it has
    passed; for a request without a body, stop ``delay`` seconds between the answer's
    head and its body instead (a read timeout on the client's side).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Literal

CHUNK = 64 * 1024
MAX_LINE = 64 * 1024
UPSTREAM_TIMEOUT = 300.0

Framing = int | Literal["chunked", "close"]
_REQUEST_LINE = re.compile(r"^[A-Z]+ [\x21-\x7e]+ HTTP/1\.[01]$")


@dataclass
class Fault:
    action: Literal["status", "reset", "truncate", "delay", "stall"]
    status: int = 500
    retry_after: str | None = None
    delay: float = 0
    method: str | None = None
    path_contains: str | None = None
    times: int = 1  # apply to the next `times` matching requests

    def matches(self, method: str, target: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path_contains is None or self.path_contains in target

    @property
    def outcome(self) -> str:
        return f"status {self.status}" if self.action == "status" else self.action


@dataclass
class _Rule:
    fault: Fault
    remaining: int


class _Broken(Exception):
    """The peer closed the connection or sent something that is not HTTP/1.1."""


class _NotHttp(_Broken):
    """A request line that is not HTTP/1.x (a TLS hello to a plain port, say)."""


class _Cut(Exception):
    """A truncate fault has sent all it will send."""


@dataclass
class _Head:
    start: str  # request line or status line
    headers: list[tuple[str, str]]

    def get(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def tokens(self, name: str) -> list[str]:
        """The comma-separated tokens of every header called ``name``, lowercased."""
        return [
            token.strip().lower()
            for key, value in self.headers
            if key.lower() == name.lower()
            for token in value.split(",")
            if token.strip()
        ]

    def encode(self) -> bytes:
        lines = [self.start, *(f"{key}: {value}" for key, value in self.headers)]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _read_head(rfile: BinaryIO, request: bool = False) -> _Head | None:
    """One message head; None when the peer closed the connection before sending any.

    A ``request`` start line is checked before anything else is read: a client that
    speaks something else (TLS, as skopeo tries first) gets no chance to hang us.
    """
    line = rfile.readline(MAX_LINE)
    while line in (b"\r\n", b"\n"):  # stray CRLFs between messages are allowed
        line = rfile.readline(MAX_LINE)
    if not line:
        return None
    if not line.endswith(b"\n"):
        raise _Broken("start line too long or cut")
    start = line.decode("latin-1").rstrip("\r\n")
    if request and _REQUEST_LINE.match(start) is None:
        raise _NotHttp(start)
    headers: list[tuple[str, str]] = []
    while True:
        line = rfile.readline(MAX_LINE)
        if not line.endswith(b"\n"):
            raise _Broken("header cut")
        if line in (b"\r\n", b"\n"):
            return _Head(start, headers)
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise _Broken(f"bad header line {line!r}")
        headers.append((name.strip(), value.strip()))


def _request_framing(head: _Head) -> Framing:
    if head.tokens("Transfer-Encoding"):
        return "chunked"
    length = head.get("Content-Length")
    return int(length) if length else 0


def _response_framing(head: _Head, method: str, status: int) -> Framing:
    if method == "HEAD" or 100 <= status < 200 or status in (204, 304):
        return 0
    if head.tokens("Transfer-Encoding"):
        return "chunked" if head.tokens("Transfer-Encoding")[-1] == "chunked" else "close"
    length = head.get("Content-Length")
    return int(length) if length is not None else "close"


def _copy(src: BinaryIO, send: Callable[[bytes], object], count: int) -> None:
    while count > 0:
        data = src.read1(min(count, CHUNK))  # type: ignore[attr-defined]
        if not data:
            raise _Broken("body cut short")
        send(data)
        count -= len(data)


def _pump(
    src: BinaryIO,
    dst: socket.socket | None,
    framing: Framing,
    *,
    half: bool = False,
    pause: float = 0.0,
) -> None:
    """Copy one body from ``src`` to ``dst`` (None: read and drop it), as it comes.

    ``half`` sends half of it (half of the first chunk when chunked) and raises _Cut;
    ``pause`` sleeps that long once half of it (of the first chunk) has gone.
    """

    def drop(_: bytes) -> None:
        pass

    send: Callable[[bytes], object] = dst.sendall if dst is not None else drop
    if framing == "chunked":
        first = True
        while True:
            line = src.readline(MAX_LINE)
            if not line.endswith(b"\n"):
                raise _Broken("chunk header cut")
            size = int(line.split(b";")[0].strip() or b"x", 16)
            send(line)
            if size == 0:
                while True:  # trailers, up to the empty line
                    trailer = src.readline(MAX_LINE)
                    if not trailer.endswith(b"\n"):
                        raise _Broken("trailer cut")
                    send(trailer)
                    if trailer in (b"\r\n", b"\n"):
                        return
            if first and (half or pause):
                _copy(src, send, size // 2)
                if half:
                    raise _Cut
                time.sleep(pause)
                _copy(src, send, size - size // 2)
            else:
                _copy(src, send, size)
            end = src.readline(MAX_LINE)
            if end not in (b"\r\n", b"\n"):
                raise _Broken("chunk not followed by CRLF")
            send(end)
            first = False
    elif framing == "close":
        first = True
        while True:
            data = src.read1(CHUNK)  # type: ignore[attr-defined]
            if not data:
                return
            if first and half:
                send(data[: len(data) // 2])
                raise _Cut
            send(data)
            if first and pause:
                time.sleep(pause)
            first = False
    else:
        middle = framing // 2 if (half or pause) else framing
        _copy(src, send, middle)
        if half:
            raise _Cut
        if pause:
            time.sleep(pause)
        _copy(src, send, framing - middle)


def _abort(sock: socket.socket) -> None:
    """Close with a TCP reset rather than a FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class FaultProxy:
    """See the module's docstring."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        up_host, _, up_port = upstream.rpartition(":")
        self._upstream_address = (up_host, int(up_port))
        self.seen: list[tuple[str, str, str]] = []  # (method, request target, outcome)
        self._rules: list[_Rule] = []
        self._nth: tuple[int, list[Fault]] | None = None
        self._nth_index = 0
        self._nth_count = 0
        self._lock = threading.Lock()
        self._closed = False
        self._clients: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.1)
        self.host = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._acceptor = threading.Thread(target=self._accept, name="fault-proxy", daemon=True)
        self._acceptor.start()

    # -- what tests call --

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._rules.append(_Rule(fault, fault.times))

    def every_nth(self, n: int, faults: Sequence[Fault]) -> None:
        """Fault one request in ``n``, cycling through ``faults`` (n <= 0 or none: stop).

        Only requests that the fault due next matches count towards its turn, and its
        ``times`` does not matter. Faults given to :meth:`add` come first.
        """
        with self._lock:
            self._nth = (n, list(faults)) if n > 0 and faults else None
            self._nth_index = 0
            self._nth_count = 0

    def clear(self) -> None:
        """Forget every pending fault and the periodic schedule."""
        with self._lock:
            self._rules.clear()
            self._nth = None

    def outcomes(self, outcome: str) -> list[tuple[str, str, str]]:
        return [entry for entry in self.seen if entry[2] == outcome]

    def close(self) -> None:
        self._closed = True
        self._acceptor.join(timeout=5)
        self._listener.close()
        with self._lock:
            clients = list(self._clients)
        for sock in clients:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in list(self._threads):
            thread.join(timeout=5)

    # -- machinery --

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._clients.add(client)
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
            thread.start()

    def _pick(self, method: str, target: str) -> Fault | None:
        with self._lock:
            for rule in self._rules:
                if rule.fault.matches(method, target):
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._rules.remove(rule)
                    return rule.fault
            if self._nth is not None:
                n, faults = self._nth
                fault = faults[self._nth_index % len(faults)]
                if fault.matches(method, target):
                    self._nth_count += 1
                    if self._nth_count >= n:
                        self._nth_count = 0
                        self._nth_index += 1
                        return fault
        return None

    def _serve(self, client: socket.socket) -> None:
        rfile = client.makefile("rb")
        try:
            while not self._closed:
                try:
                    head = _read_head(rfile, request=True)
                except _NotHttp:
                    client.sendall(_BAD_REQUEST)
                    return
                if head is None:
                    return
                method, target, version = [*head.start.split(" ", 2), "", ""][:3]
                framing = _request_framing(head)
                fault = self._pick(method, target)
                self.seen.append((method, target, "forward" if fault is None else fault.outcome))
                keep = self._handle(client, rfile, head, method, target, framing, fault)
                if not keep or "close" in head.tokens("Connection") or version == "HTTP/1.0":
                    return
        except (OSError, _Broken, ValueError):
            return
        finally:
            with contextlib.suppress(OSError):
                rfile.close()
            with contextlib.suppress(OSError):
                client.close()
            with self._lock:
                self._clients.discard(client)

    def _handle(
        self,
        client: socket.socket,
        rfile: BinaryIO,
        head: _Head,
        method: str,
        target: str,
        framing: Framing,
        fault: Fault | None,
    ) -> bool:
        """Answer one request; whether the client connection can serve another."""
        expects = "100-continue" in head.tokens("Expect")
        if fault is not None and fault.action in ("status", "reset"):
            if not expects:
                _pump(rfile, None, framing)
            if fault.action == "reset":
                _abort(client)
                return False
            self._answer(client, head, method, target, fault)
            return not expects
        if fault is not None and fault.action == "delay":
            time.sleep(fault.delay)
        stall = fault.delay if fault is not None and fault.action == "stall" else 0.0
        return self._forward(
            client,
            rfile,
            head,
            method,
            framing,
            request_pause=stall if framing != 0 else 0.0,
            response_pause=stall if framing == 0 else 0.0,
            cut=fault is not None and fault.action == "truncate",
        )

    def _rewrite(self, head: _Head) -> None:
        ours, theirs = f"://{self.host}", f"://{self.upstream}"
        head.headers = [
            (key, value.replace(theirs, ours))
            if key.lower() in ("location", "content-location", "link")
            else (key, value)
            for key, value in head.headers
        ]

    def _answer(
        self, client: socket.socket, head: _Head, method: str, target: str, fault: Fault
    ) -> None:
        body = json.dumps(
            {"errors": [{"code": "UNAVAILABLE", "message": f"fault proxy: {fault.outcome}"}]}
        ).encode()
        headers = [
            ("Content-Type", "application/json; charset=utf-8"),
            ("Docker-Distribution-Api-Version", "registry/2.0"),
            ("Content-Length", str(len(body))),
        ]
        if fault.retry_after is not None:
            headers.append(("Retry-After", fault.retry_after))
        if fault.status == 416 and "/blobs/uploads/" in target:
            headers += self._upload_status(head, target)
        reason = _REASONS.get(fault.status, "Injected Fault")
        answer = _Head(f"HTTP/1.1 {fault.status} {reason}", headers)
        client.sendall(answer.encode() + (b"" if method == "HEAD" else body))

    def _upload_status(self, head: _Head, target: str) -> list[tuple[str, str]]:
        """Range, Location and Docker-Upload-UUID of the upload ``target`` names, upstream."""
        lines = [f"GET {target} HTTP/1.1", f"Host: {head.get('Host') or self.host}"]
        authorization = head.get("Authorization")
        if authorization:
            lines.append(f"Authorization: {authorization}")
        lines += ["Connection: close", "", ""]
        try:
            with socket.create_connection(self._upstream_address, timeout=30) as up:
                up.sendall("\r\n".join(lines).encode("latin-1"))
                with up.makefile("rb") as urfile:
                    status = _read_head(urfile)
        except (OSError, _Broken, ValueError):
            return []
        if status is None:
            return []
        self._rewrite(status)
        return [
            (key, value)
            for key, value in status.headers
            if key.lower() in ("range", "location", "docker-upload-uuid")
        ]

    def _forward(
        self,
        client: socket.socket,
        rfile: BinaryIO,
        head: _Head,
        method: str,
        framing: Framing,
        *,
        request_pause: float,
        response_pause: float,
        cut: bool,
    ) -> bool:
        try:
            up = socket.create_connection(self._upstream_address, timeout=UPSTREAM_TIMEOUT)
        except OSError:
            _abort(client)
            return False
        up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        urfile = up.makefile("rb")
        failed: list[BaseException] = []

        def send_body() -> None:
            try:
                _pump(rfile, up, framing, pause=request_pause)
            except (OSError, _Broken, ValueError) as error:
                failed.append(error)

        pump: threading.Thread | None = None
        try:
            up.sendall(head.encode())
            if framing != 0:
                # The body goes up while the answer comes down: an upstream may answer
                # (100 Continue, or an early error) before it has read the whole body.
                pump = threading.Thread(target=send_body, daemon=True)
                pump.start()
            while True:
                answer = _read_head(urfile)
                if answer is None:
                    raise _Broken("upstream closed without answering")
                status = int(answer.start.split(" ", 2)[1])
                if 100 <= status < 200 and status != 101:
                    client.sendall(answer.encode())  # interim: the real answer follows
                    continue
                break
            self._rewrite(answer)
            client.sendall(answer.encode())
            response_framing = _response_framing(answer, method, status)
            if response_pause:
                time.sleep(response_pause)
            try:
                _pump(urfile, client, response_framing, half=cut)
            except _Cut:
                return False
            if pump is not None:
                pump.join(timeout=1.0)
                if pump.is_alive() or failed:
                    return False  # the request body did not all go: the stream is lost
            return response_framing != "close" and "close" not in answer.tokens("Connection")
        except (OSError, _Broken, ValueError):
            _abort(client)
            return False
        finally:
            with contextlib.suppress(OSError):
                up.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                urfile.close()
            with contextlib.suppress(OSError):
                up.close()
            if pump is not None and pump.is_alive():
                with contextlib.suppress(OSError):
                    client.shutdown(socket.SHUT_RDWR)
                pump.join(timeout=5)


_BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"

_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    416: "Requested Range Not Satisfiable",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@contextlib.contextmanager
def fault_proxy(upstream: str) -> Iterator[FaultProxy]:
    """A :class:`FaultProxy` in front of ``upstream`` ("host:port"), closed afterwards."""
    proxy = FaultProxy(upstream)
    try:
        yield proxy
    finally:
        proxy.close()
