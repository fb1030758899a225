"""Shared fixtures: workspaces holding the bundled example, doit runs, a real registry."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_FILES = ("dodo.py", "Makefile", "example", "plans")


def copy_example(target: Path) -> Path:
    """A workspace holding the bundled example, as a user's checkout would."""
    target.mkdir(parents=True, exist_ok=True)
    for name in EXAMPLE_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, target / name)
        else:
            shutil.copy2(source, target / name)
    return target


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    @property
    def executed(self) -> list[str]:
        """The tasks doit ran, in order (doit prints ".  <task>" for each)."""
        return [line[3:].strip() for line in self.out.splitlines() if line.startswith(".  ")]

    @property
    def text(self) -> str:
        return self.out + self.err


def doit(
    workspace: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    dodo: Path | None = None,
    timeout: float = 300,
) -> Run:
    """Run ``doit -f <dodo> -d <workspace> args...`` as a user would, in a subprocess."""
    full_env = dict(os.environ)
    for name in (
        "PLAN",
        "HUB",
        "HUBS",
        "TAG",
        "TAGS",
        "DOCKER_TARGETS",
        "DOCKER_ARCHITECTURES",
        "SKIP_MAKE",
        "SOURCE_DATE_EPOCH",
        "COMPRESSION",
        "DEBUG_IMAGE",
    ):
        full_env.pop(name, None)
    full_env["PYTHONPATH"] = str(REPO)
    full_env.update(env or {})
    command = [
        sys.executable,
        "-m",
        "doit",
        "-f",
        str(dodo or workspace / "dodo.py"),
        "-d",
        str(workspace),
        *args,
    ]
    result = subprocess.run(
        command,
        cwd=cwd or workspace,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Run(result.returncode, result.stdout, result.stderr)


def index_of(workspace: Path) -> dict[str, str]:
    """ref name -> digest of out/oci/index.json."""
    index = json.loads((workspace / "out" / "oci" / "index.json").read_text())
    return {
        m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
        for m in index["manifests"]
    }


def snapshot(root: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file under ``root``: (mtime_ns, size, content) by relative path."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            st = path.stat()
            out[str(path.relative_to(root))] = (st.st_mtime_ns, st.st_size, path.read_bytes())
    return out


@pytest.fixture(scope="session")
def built_example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example built once, for tests that only read the result."""
    workspace = copy_example(tmp_path_factory.mktemp("built") / "ws")
    run = doit(workspace, "build_images")
    assert run.code == 0, run.text
    return workspace


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """A fresh copy of the example, not built yet."""
    return copy_example(tmp_path / "ws")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Registry:
    """A real CNCF distribution registry (Debian's docker-registry) on a loopback port."""

    host: str
    root: Path
    log: Path

    def access_log(self) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if "HTTP/" in line]


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.fail("docker-registry is not installed: run .ci/run, which installs it")
    port = _free_port()
    root = tmp_path / "registry"
    config = root / "config.yml"
    (root / "storage").mkdir(parents=True)
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: info\n  accesslog:\n    disabled: false\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'storage'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    log = root / "registry.log"
    with open(log, "wb") as sink:
        process = subprocess.Popen([binary, "serve", str(config)], stdout=sink, stderr=sink)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"docker-registry did not start: {log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield Registry(f"127.0.0.1:{port}", root, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
