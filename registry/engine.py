"""The Docker Engine API (Docker's, and Podman's compatible one) over a unix socket: what
``--load`` asks of a daemon. No plan, no doit.

    version()           the daemon's os/arch
    image(ref)          an image by name or id: its id (the config digest), names, layers
    tag(id, name)       one more name for an image it has
    load(chunks)        POST /images/load, the archive streamed as it is made (chunked)
    containers(label)   the names of the containers with a label (kind's nodes)

The standard library's ``http.client`` speaks HTTP/1.1 over the socket, with a chunked
request body from an iterator: httpx would do the same, but importing it costs about
0.09 s, more than a whole no-op ``--load`` may (its up-to-date check asks the daemon on
every run). A connection per request: connecting to a unix socket costs microseconds,
and nothing is shared across doit's forked workers.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from doit_oci.registry.errors import RegistryError

TIMEOUT = 30.0  # seconds for the daemon to answer one read (a load may take longer: none)


@dataclass(frozen=True)
class EngineImage:
    """What a daemon says of one image."""

    id: str  # the config digest
    names: tuple[str, ...]  # RepoTags, as the daemon spells them
    layers: tuple[str, ...]  # RootFS.Layers: the diff_ids, bottom first
    platform: str  # os/arch

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EngineImage:
        rootfs = data.get("RootFS") or {}
        return cls(
            str(data.get("Id", "")),
            tuple(str(t) for t in data.get("RepoTags") or ()),
            tuple(str(d) for d in rootfs.get("Layers") or ()),
            f"{data.get('Os', '')}/{data.get('Architecture', '')}",
        )


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def socket_of(host: str) -> Path | None:
    """The socket of a ``unix://`` DOCKER_HOST or CONTAINER_HOST; None for another scheme."""
    if host.startswith("unix://"):
        return Path(host.removeprefix("unix://"))
    if "://" not in host and host.startswith("/"):
        return Path(host)
    return None


@dataclass(frozen=True)
class Engine:
    """A Docker or Podman daemon at ``socket`` (``product`` names it in messages)."""

    socket: Path
    product: str = "docker"

    @property
    def where(self) -> str:
        return f"{self.product} at unix://{self.socket}"

    def _fail(self, operation: str, detail: str, fix: str) -> RegistryError:
        return RegistryError(self.where, "", operation, detail, fix=fix)

    def _request(
        self,
        method: str,
        path: str,
        body: Iterable[bytes] | None = None,
        operation: str = "",
        timeout: float | None = TIMEOUT,
    ) -> tuple[int, bytes]:
        operation = operation or f"{method} {path.partition('?')[0]}"
        connection = _UnixConnection(str(self.socket), timeout)
        try:
            headers = {"Content-Type": "application/x-tar"} if body is not None else {}
            connection.request(method, path, body=body, headers=headers, encode_chunked=True)
            response = connection.getresponse()
            return response.status, response.read()
        except FileNotFoundError:
            raise self._fail(
                operation,
                "no such socket",
                f"start {self.product}, or point {_host_variable(self.product)} at its socket",
            ) from None
        except PermissionError:
            raise self._fail(
                operation,
                "permission denied on the socket",
                f"run as a user who may use it (the {self.product} group, or root)",
            ) from None
        except ConnectionRefusedError:
            raise self._fail(
                operation, "connection refused", f"start {self.product}: nothing listens there"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            raise self._fail(
                operation, f"{type(exc).__name__}: {exc}", f"check that {self.product} runs"
            ) from None
        finally:
            connection.close()

    def _json(self, path: str, operation: str) -> Any:
        status, data = self._request("GET", path, operation=operation)
        if status != 200:
            raise self._fail(operation, _message(status, data), "see the daemon's message")
        return _parse(data)

    def version(self) -> str:
        """The daemon's platform, os/arch."""
        found = self._json("/version", "ask its version")
        return f"{found.get('Os', '')}/{found.get('Arch', '')}"

    def image(self, reference: str) -> EngineImage | None:
        """The image named (or with the id) ``reference``, None when there is none."""
        operation = f"inspect {reference}"
        status, data = self._request("GET", f"/images/{_quote(reference)}/json", None, operation)
        if status == 404:
            return None
        if status != 200:
            raise self._fail(operation, _message(status, data), "see the daemon's message")
        return EngineImage.from_json(_parse(data))

    def tag(self, image_id: str, name: str) -> None:
        """Name the image ``image_id`` also ``name`` (``repository:tag``)."""
        repository, _, tag = name.rpartition(":")
        query = urllib.parse.urlencode({"repo": repository, "tag": tag})
        operation = f"tag {image_id} as {name}"
        status, data = self._request(
            "POST", f"/images/{_quote(image_id)}/tag?{query}", None, operation
        )
        if status not in (200, 201):
            raise self._fail(operation, _message(status, data), "see the daemon's message")

    def load(self, chunks: Iterable[bytes], what: str) -> None:
        """POST /images/load with the archive ``chunks`` make; a refusal is one line."""
        operation = f"load {what}"
        status, data = self._request(
            "POST", "/images/load?quiet=1", chunks, operation, timeout=None
        )
        if status != 200:
            raise self._fail(operation, _message(status, data), "see the daemon's message")
        for line in data.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("error"):
                detail = " ".join(str(event["error"]).split())
                raise self._fail(operation, detail, "see the daemon's message")

    def containers(self, label: str) -> list[str]:
        """The names of the running containers with ``label`` (``key=value``)."""
        filters = urllib.parse.quote(json.dumps({"label": [label]}))
        found = self._json(f"/containers/json?filters={filters}", f"list containers {label}")
        names = []
        for container in found if isinstance(found, list) else []:
            for name in container.get("Names") or ():
                names.append(str(name).lstrip("/"))
                break
        return sorted(names)


def _host_variable(product: str) -> str:
    return "CONTAINER_HOST" if product == "podman" else "DOCKER_HOST"


def _quote(reference: str) -> str:
    return urllib.parse.quote(reference, safe=":@/")


def _parse(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return {}


def _message(status: int, data: bytes) -> str:
    """The daemon's own message (``{"message": ...}``), on one line."""
    found = _parse(data)
    text = found.get("message") if isinstance(found, dict) else None
    text = str(text or data[:300].decode("utf-8", "replace") or "no message")
    return f"{status}: " + " ".join(text.split())
