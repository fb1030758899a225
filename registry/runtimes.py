"""The runtimes ``--load`` loads into, behind one interface, and how one is found. No plan,
no doit.

    docker             the Engine API on DOCKER_HOST or /var/run/docker.sock
    podman             its API socket (CONTAINER_HOST, /run/podman/podman.sock,
                       $XDG_RUNTIME_DIR/podman/podman.sock), else ``podman`` itself
    containerd[:ns]    ``ctr -n <ns> images import -`` (CONTAINERD_ADDRESS or
                       /run/containerd/containerd.sock; namespace k8s.io, kubelet's)
    kind[:cluster]     that import in each node of a kind cluster (``docker exec <node> ctr``)

Each runtime says how it spells a name, what it holds of an image (one cheap query),
which of its layers it can be sent without, and takes a retag or an archive.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from doit_oci.registry.commands import Tool
from doit_oci.registry.engine import Engine, EngineImage, socket_of
from doit_oci.registry.errors import RegistryError
from doit_oci.registry.reference import DEFAULT_REGISTRY, parse

DOCKER_SOCKET = Path("/var/run/docker.sock")
PODMAN_SOCKET = Path("/run/podman/podman.sock")
CONTAINERD_SOCKET = Path("/run/containerd/containerd.sock")
KUBERNETES_NAMESPACE = "k8s.io"
KIND_LABEL = "io.x-k8s.kind.cluster"
KINDS = ("docker", "podman", "containerd", "kind")


@dataclass(frozen=True)
class Image:
    """One platform's image of the layout, as a runtime sees it."""

    config: str  # its config digest: the image id of Docker and Podman
    manifest: str  # its manifest digest: what containerd names point at
    diff_ids: tuple[str, ...]
    blobs: tuple[str, ...]  # the layer blobs, bottom first


@dataclass(frozen=True)
class Held:
    """What a runtime holds of an image: the wanted names that point at it already, and a
    name or id to tag from ("" when it does not have the image at all)."""

    names: frozenset[str]
    source: str = ""


class Runtime(Protocol):
    @property
    def where(self) -> str: ...

    @property
    def archive(self) -> str:
        """What it reads: "docker" (manifest.json; gzip layers, no zstd) or "oci"."""
        ...

    def names(self, references: Sequence[str]) -> tuple[str, ...]: ...
    def held(self, image: Image, names: Sequence[str]) -> Held: ...
    def reusable(self, image: Image, names: Sequence[str]) -> frozenset[str]: ...
    def tag(self, source: str, name: str) -> None: ...
    def load(self, chunks: Iterable[bytes], what: str) -> None: ...
    def platform(self) -> str: ...


def familiar(reference: str) -> str:
    """Docker's spelling: ``hello:1``, ``istio/pilot:1``, ``gcr.io/istio/pilot:1``."""
    parsed = parse(reference)
    if parsed.registry != DEFAULT_REGISTRY:
        return str(parsed)
    return f"{parsed.path.removeprefix('library/')}:{parsed.tag or 'latest'}"


def full_name(reference: str) -> str:
    """containerd's: ``docker.io/library/hello:1``."""
    parsed = parse(reference)
    return f"{parsed.repository}:{parsed.tag or 'latest'}"


def podman_name(reference: str) -> str:
    """Podman's: a name without a registry is under ``localhost/``, as ``podman build``
    names it; one with a registry is kept."""
    first, slash, _ = reference.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return full_name(reference)
    return full_name(f"localhost/{reference}")


def chained(image: Image, chains: Iterable[Sequence[str]]) -> frozenset[str]:
    """Docker keeps layers by chain (a layer on the layers below it): a blob may be left out
    when every place it takes in the image is a chain the daemon has."""
    prefixes = {tuple(chain[:n]) for chain in chains for n in range(1, len(chain) + 1)}
    covered = {i for i in range(len(image.blobs)) if tuple(image.diff_ids[: i + 1]) in prefixes}
    return frozenset(
        blob
        for blob in image.blobs
        if all(i in covered for i, other in enumerate(image.blobs) if other == blob)
    )


@dataclass(frozen=True)
class EngineRuntime:
    """Docker, or Podman's compatible API, over a unix socket."""

    engine: Engine

    @property
    def where(self) -> str:
        return self.engine.where

    @property
    def archive(self) -> str:
        return "docker" if self.engine.product == "docker" else "oci"

    def names(self, references: Sequence[str]) -> tuple[str, ...]:
        spell = familiar if self.engine.product == "docker" else podman_name
        return tuple(dict.fromkeys(spell(r) for r in references))

    def held(self, image: Image, names: Sequence[str]) -> Held:
        found = self.engine.image(image.config)
        if found is None or found.id != image.config:
            return Held(frozenset())
        return Held(frozenset(names) & frozenset(found.names), found.id)

    def _images(self, names: Sequence[str]) -> list[EngineImage]:
        return [found for name in names if (found := self.engine.image(name)) is not None]

    def reusable(self, image: Image, names: Sequence[str]) -> frozenset[str]:
        chains = [found.layers for found in self._images(names)]
        if self.engine.product == "docker":
            return chained(image, chains)
        # Podman reuses a layer it has by its digest, wherever it is
        have = {layer for chain in chains for layer in chain}
        return frozenset(b for b, d in zip(image.blobs, image.diff_ids, strict=True) if d in have)

    def tag(self, source: str, name: str) -> None:
        self.engine.tag(source, name)

    def load(self, chunks: Iterable[bytes], what: str) -> None:
        self.engine.load(chunks, what)

    def platform(self) -> str:
        return self.engine.version()


@dataclass(frozen=True)
class PodmanTool:
    """Podman without its API socket: ``podman images``, ``podman tag``, ``podman load``."""

    tool: Tool

    @property
    def where(self) -> str:
        return self.tool.where

    @property
    def archive(self) -> str:
        return "oci"

    def names(self, references: Sequence[str]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(podman_name(r) for r in references))

    def _listing(self) -> list[dict[str, object]]:
        found = json.loads(self.tool.output(["images", "--format", "json"], "list images") or "[]")
        return [entry for entry in found if isinstance(entry, dict)]

    def held(self, image: Image, names: Sequence[str]) -> Held:
        hexdigest = image.config.removeprefix("sha256:")
        for entry in self._listing():
            if str(entry.get("Id", "")).removeprefix("sha256:") == hexdigest:
                listed = entry.get("Names")
                have = frozenset(str(n) for n in listed) if isinstance(listed, list) else set()
                return Held(frozenset(names) & have, image.config)
        return Held(frozenset())

    def reusable(self, image: Image, names: Sequence[str]) -> frozenset[str]:
        listed: set[str] = set()
        for entry in self._listing():
            found = entry.get("Names")
            if isinstance(found, list):
                listed.update(str(n) for n in found if n in names)
        have: set[str] = set()
        for name in sorted(listed):
            text = self.tool.output(["image", "inspect", "--format", "json", name], "inspect")
            for entry in json.loads(text or "[]"):
                have.update(EngineImage.from_json(entry).layers)
        return frozenset(b for b, d in zip(image.blobs, image.diff_ids, strict=True) if d in have)

    def tag(self, source: str, name: str) -> None:
        self.tool.output(["tag", source, name], f"tag {source} as {name}")

    def load(self, chunks: Iterable[bytes], what: str) -> None:
        self.tool.feed(["load"], chunks, f"load {what}")

    def platform(self) -> str:
        text = self.tool.output(["info", "--format", "{{.Host.OS}}/{{.Host.Arch}}"], "ask")
        return text.strip()


@dataclass(frozen=True)
class Containerd:
    """containerd through ``ctr -n <namespace>`` (in a kind node: through docker exec)."""

    tool: Tool

    @property
    def where(self) -> str:
        return self.tool.where

    @property
    def archive(self) -> str:
        return "oci"

    def names(self, references: Sequence[str]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(full_name(r) for r in references))

    def held(self, image: Image, names: Sequence[str]) -> Held:
        listing = self.tool.output(["images", "ls"], "list images").splitlines()[1:]
        digests = {line.split()[0]: line.split()[2] for line in listing if len(line.split()) > 2}
        ours = [name for name, digest in sorted(digests.items()) if digest == image.manifest]
        return Held(frozenset(names) & frozenset(ours), next(iter(ours), ""))

    def reusable(self, image: Image, names: Sequence[str]) -> frozenset[str]:
        have = set(self.tool.output(["content", "ls", "-q"], "list content").split())
        return frozenset(blob for blob in image.blobs if blob in have)

    def tag(self, source: str, name: str) -> None:
        self.tool.output(["images", "tag", "--force", source, name], f"tag {source} as {name}")

    def load(self, chunks: Iterable[bytes], what: str) -> None:
        self.tool.feed(["images", "import", "--all-platforms", "-"], chunks, f"import {what}")

    def platform(self) -> str:
        return ""  # the machine's own: ctr speaks to a containerd beside it


def _fail(detail: str, fix: str) -> RegistryError:
    return RegistryError("--load", "", "finding a runtime", detail, fix=fix)


def _docker(environ: Mapping[str, str]) -> Engine | None:
    host = environ.get("DOCKER_HOST") or ""
    if not host:
        return Engine(DOCKER_SOCKET) if DOCKER_SOCKET.exists() else None
    found = socket_of(host)
    if found is None:
        raise _fail(
            f"DOCKER_HOST={host} is not a unix socket",
            "load through the daemon's unix socket: DOCKER_HOST=unix:///path/to/docker.sock",
        )
    return Engine(found)


def _podman(environ: Mapping[str, str]) -> Runtime | None:
    host = environ.get("CONTAINER_HOST") or ""
    candidates = [socket_of(host)] if host else [PODMAN_SOCKET]
    if not host and environ.get("XDG_RUNTIME_DIR"):
        candidates.append(Path(environ["XDG_RUNTIME_DIR"]) / "podman" / "podman.sock")
    for candidate in candidates:
        if candidate is not None and (host or candidate.exists()):
            return EngineRuntime(Engine(candidate, "podman"))
    if shutil.which("podman", path=environ.get("PATH")):
        return PodmanTool(Tool(("podman",), "podman", environ))
    return None


def _containerd(environ: Mapping[str, str], namespace: str) -> Runtime | None:
    address = environ.get("CONTAINERD_ADDRESS") or str(CONTAINERD_SOCKET)
    if not Path(address).exists():
        return None
    tool = Tool(("ctr", "-n", namespace), f"containerd at {address} (namespace {namespace})")
    return Containerd(Tool(tool.argv, tool.where, {**environ, "CONTAINERD_ADDRESS": address}))


def _kind(environ: Mapping[str, str], cluster: str) -> list[Runtime]:
    engine = _docker(environ) or Engine(DOCKER_SOCKET)
    nodes = engine.containers(f"{KIND_LABEL}={cluster}")
    if not nodes:
        raise _fail(
            f"{engine.where} runs no node of a kind cluster {cluster!r}",
            f"create it (kind create cluster --name {cluster}) or name yours:"
            " --load-runtime=kind:NAME",
        )
    exec_env = dict(environ)
    if engine.socket != DOCKER_SOCKET:
        exec_env["DOCKER_HOST"] = f"unix://{engine.socket}"
    return [
        Containerd(
            Tool(
                ("docker", "exec", "-i", node, "ctr", "-n", KUBERNETES_NAMESPACE),
                f"kind node {node}",
                exec_env,
            )
        )
        for node in nodes
    ]


def find_runtimes(spec: str, environ: Mapping[str, str]) -> list[Runtime]:
    """The runtime(s) ``spec`` names (``docker``, ``podman``, ``containerd[:namespace]``,
    ``kind[:cluster]``; "" for the first found), one per node for kind."""
    kind, _, detail = spec.partition(":")
    tried = (
        f"DOCKER_HOST or {DOCKER_SOCKET}, CONTAINER_HOST or {PODMAN_SOCKET} or the podman"
        f" command, CONTAINERD_ADDRESS or {CONTAINERD_SOCKET}"
    )
    if kind == "kind":
        return _kind(environ, detail or "kind")
    if kind in ("", "docker"):
        engine = _docker(environ)
        if engine is not None:
            return [EngineRuntime(engine)]
        if kind:
            raise _fail(
                f"no docker socket at {DOCKER_SOCKET} and no DOCKER_HOST",
                "start docker, or set DOCKER_HOST=unix:///path/to/docker.sock",
            )
    if kind in ("", "podman"):
        podman = _podman(environ)
        if podman is not None:
            return [podman]
        if kind:
            raise _fail("no podman socket and no podman command", "install or start podman")
    containerd = _containerd(environ, detail or KUBERNETES_NAMESPACE)
    if containerd is not None:
        return [containerd]
    if kind:
        raise _fail(
            f"no containerd socket at {environ.get('CONTAINERD_ADDRESS') or CONTAINERD_SOCKET}",
            "start containerd, or set CONTAINERD_ADDRESS to its socket",
        )
    raise _fail(
        f"no runtime answers (tried {tried})",
        "start one, or say which and where: --load-runtime=docker|podman|containerd|kind",
    )
