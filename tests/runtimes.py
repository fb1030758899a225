"""Real runtimes for the tests of --load, each on a private socket and data folder under
``root``, started by a context manager and stopped after (as tests/registries.py does for
registries):

    with docker_daemon(root) as docker: ...        # Debian's dockerd (docker.io), --debug
    with podman_service(root) as podman: ...       # podman system service, its API socket
    with containerd_daemon(root) as containerd: ...  # the containerd docker.io brings

dockerd runs as root with ``--iptables=false --bridge=none``, overlay2 where the kernel
takes it, else vfs. Each logs the API calls it answers, which the tests count: a load that
sends nothing shows no ``POST /images/load``. ``root`` should be short: unix socket paths
are at most 107 bytes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT = 30.0


def _wait_for_socket(
    path: Path, process: subprocess.Popen[bytes], log: Path, ping: bool = True
) -> None:
    """Until ``path`` exists (and, with ``ping``, answers ``GET /_ping``)."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited: {log.read_text()[-2000:]}")
        if path.exists():
            if not ping:
                return
            probe = subprocess.run(
                ["curl", "-sf", "--unix-socket", str(path), "http://d/_ping"],
                capture_output=True,
                check=False,
            )
            if probe.returncode == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{path} did not answer within {START_TIMEOUT}s: {log.read_text()[-2000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass(frozen=True)
class RunningDocker:
    socket: Path
    log: Path
    root: Path

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def env(self) -> dict[str, str]:
        return {"DOCKER_HOST": self.host}

    def calls(self, method: str, path_part: str) -> list[str]:
        """The API calls of its log: ``Calling POST /v1.41/images/load``..."""
        return [
            line
            for line in self.log.read_text(errors="replace").splitlines()
            if f"Calling {method} " in line and path_part in line
        ]

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", *args],
            capture_output=True,
            text=True,
            env={**os.environ, **self.env},
            check=check,
        )


def _storage_driver() -> str:
    with open("/proc/filesystems") as known:
        return "overlay2" if "overlay" in known.read() else "vfs"


@contextlib.contextmanager
def docker_daemon(root: Path) -> Iterator[RunningDocker]:
    root.mkdir(parents=True, exist_ok=True)
    log = root / "dockerd.log"
    socket = root / "docker.sock"
    command = [
        "dockerd",
        "--debug",
        f"--data-root={root / 'data'}",
        f"--exec-root={root / 'x'}",
        f"--host=unix://{socket}",
        f"--pidfile={root / 'dockerd.pid'}",
        f"--storage-driver={_storage_driver()}",
        "--iptables=false",
        "--ip-masq=false",
        "--bridge=none",
    ]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for_socket(socket, process, log)
        yield RunningDocker(socket, log, root)
    finally:
        _stop(process)
        shutil.rmtree(root / "data", ignore_errors=True)


@dataclass(frozen=True)
class RunningPodman:
    socket: Path
    log: Path
    root: Path

    @property
    def global_options(self) -> list[str]:
        return [
            f"--root={self.root / 'storage'}",
            f"--runroot={self.root / 'run'}",
            f"--tmpdir={self.root / 'tmp'}",
            "--storage-driver=overlay"
            if _storage_driver() == "overlay2"
            else "--storage-driver=vfs",
            "--cgroup-manager=cgroupfs",
            "--events-backend=file",
        ]

    @property
    def env(self) -> dict[str, str]:
        """For the podman command (no socket): the same storage through its config files."""
        return {
            "CONTAINERS_STORAGE_CONF": str(self.root / "storage.conf"),
            "CONTAINERS_CONF": str(self.root / "containers.conf"),
        }

    def calls(self, method: str, path_part: str) -> list[str]:
        """The API calls of its access log: ``"POST /images/load?quiet=1 HTTP/1.1" 200``."""
        return [
            line
            for line in self.log.read_text(errors="replace").splitlines()
            if f'"{method} ' in line and path_part in line and " HTTP/1.1" in line
        ]

    def podman(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["podman", *self.global_options, *args], capture_output=True, text=True, check=True
        )


@contextlib.contextmanager
def podman_service(root: Path) -> Iterator[RunningPodman]:
    root.mkdir(parents=True, exist_ok=True)
    (root / "tmp").mkdir(exist_ok=True)
    driver = "overlay" if _storage_driver() == "overlay2" else "vfs"
    (root / "storage.conf").write_text(
        f'[storage]\ndriver = "{driver}"\n'
        f'graphroot = "{root / "storage"}"\nrunroot = "{root / "run"}"\n'
    )
    (root / "containers.conf").write_text(
        '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
        f'tmp_dir = "{root / "tmp"}"\nimage_copy_tmp_dir = "{root / "tmp"}"\n'
    )
    socket = root / "podman.sock"
    log = root / "podman.log"
    running = RunningPodman(socket, log, root)
    command = [
        "podman",
        *running.global_options,
        "--log-level=debug",
        "system",
        "service",
        "--time=0",
        f"unix://{socket}",
    ]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **running.env}
        )
    try:
        _wait_for_socket(socket, process, log)
        yield running
    finally:
        _stop(process)
        subprocess.run(["umount", "-R", str(root / "storage")], capture_output=True, check=False)


@dataclass(frozen=True)
class RunningContainerd:
    socket: Path
    log: Path

    @property
    def env(self) -> dict[str, str]:
        return {"CONTAINERD_ADDRESS": str(self.socket)}

    def ctr(self, *args: str, namespace: str = "k8s.io") -> str:
        done = subprocess.run(
            ["ctr", "--address", str(self.socket), "-n", namespace, *args],
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout

    def images(self, namespace: str = "k8s.io") -> dict[str, str]:
        """Each image name and the manifest digest it points at."""
        lines = self.ctr("images", "ls", namespace=namespace).splitlines()[1:]
        return {line.split()[0]: line.split()[2] for line in lines if line.strip()}


@contextlib.contextmanager
def containerd_daemon(root: Path) -> Iterator[RunningContainerd]:
    root.mkdir(parents=True, exist_ok=True)
    socket = root / "containerd.sock"
    config = root / "config.toml"
    config.write_text(
        "version = 2\n"
        f'root = "{root / "root"}"\nstate = "{root / "state"}"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        f'[grpc]\n  address = "{socket}"\n'
        f'[ttrpc]\n  address = "{socket}.ttrpc"\n'
        f'[debug]\n  address = "{root / "debug.sock"}"\n'
    )
    log = root / "containerd.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            ["containerd", "--config", str(config)], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        _wait_for_socket(socket, process, log, ping=False)
        yield RunningContainerd(socket, log)
    finally:
        _stop(process)
        subprocess.run(["umount", "-R", str(root / "root")], capture_output=True, check=False)


def files_image(docker: RunningDocker, name: str, files: Sequence[Path], work: Path) -> None:
    """An image of ``files`` at their own paths (``docker import``), for a fake kind node."""
    rootfs = work / "rootfs"
    for source in files:
        target = rootfs / str(source).lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    archive = work / "rootfs.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(archive), "."], check=True)
    docker.docker("import", str(archive), name)
