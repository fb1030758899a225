"""Running commands and timing them: wall-clock seconds of whole commands, loopback
registries started fresh, hyperfine for commands that need no set-up between runs, and the
machine the numbers come from."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from workload import REPO

sys.path.insert(0, str(REPO / "tests"))

from registries import open_registry  # the tests' loopback registry

# doit-oci reads these from the environment: the benchmark says everything on the command line
DOIT_OCI_VARIABLES = (
    "PLAN",
    "TAG",
    "TAGS",
    "HUB",
    "HUBS",
    "DOCKER_TARGETS",
    "DOCKER_ARCHITECTURES",
    "DOCKER_BUILD_VARIANTS",
    "INCLUDE_UNTAGGED_DEFAULT",
    "COMPRESSION",
    "PUSH",
    "DOIT_OCI_CACHE",
    "PLATFORM_TAGS",
    "CACHE_REPO",
    "INSECURE_REGISTRIES",
    "SKIP_MAKE",
    "SOURCE_DATE_EPOCH",
    "ISTIO_DOCKER_QEMU",
    "REGISTRY_DEADLINE",
    "CI",
)


class CommandFailed(RuntimeError):
    pass


@dataclass
class Runner:
    """Runs commands, keeps their output in ``logs`` and says what failed."""

    logs: Path
    verbose: bool = False
    count: int = 0

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in DOIT_OCI_VARIABLES}
        path = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(REPO) + (os.pathsep + path if path else "")
        env.update(extra)
        return env

    def run(
        self,
        command: Sequence[str | Path],
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        name: str = "",
    ) -> tuple[float, str]:
        """Runs ``command`` to its end: (wall seconds, its output). Raises when it fails."""
        words = [str(word) for word in command]
        self.count += 1
        log = self.logs / f"{self.count:05d}-{name or Path(words[0]).name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        if self.verbose:
            print("  $", " ".join(words), file=sys.stderr)
        with open(log, "w+b") as sink:
            started = time.perf_counter()
            result = subprocess.run(
                words,
                cwd=cwd,
                env=env if env is not None else self.env(),
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                check=False,
            )
            elapsed = time.perf_counter() - started
            sink.seek(0)
            output = sink.read().decode(errors="replace")
        if result.returncode != 0:
            raise CommandFailed(
                f"{' '.join(words)} (in {cwd}) exited {result.returncode}; {log}:\n{output[-2000:]}"
            )
        return elapsed, output

    def hyperfine(
        self,
        command: Sequence[str | Path],
        runs: int,
        cwd: Path,
        env: dict[str, str] | None = None,
        name: str = "hyperfine",
    ) -> list[float]:
        """Times ``command`` ``runs`` times after one warm-up run, with hyperfine when it is
        installed (without a shell), else here."""
        words = [str(word) for word in command]
        if shutil.which("hyperfine") is None or any(" " in word for word in words):
            self.run(words, cwd, env, name)
            return [self.run(words, cwd, env, name)[0] for _ in range(runs)]
        with tempfile.NamedTemporaryFile(suffix=".json") as export:
            self.run(
                [
                    "hyperfine",
                    "--shell=none",
                    "--style=basic",
                    "--warmup=1",
                    f"--runs={max(runs, 2)}",
                    f"--export-json={export.name}",
                    " ".join(words),
                ],
                cwd,
                env,
                name,
            )
            data = json.loads(Path(export.name).read_text())
        return [float(t) for t in data["results"][0]["times"]]


@contextlib.contextmanager
def registry(scratch: Path) -> Iterator[str]:
    """A new, empty loopback registry (Debian's docker-registry): its ``host:port``."""
    scratch.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="registry-", dir=scratch))
    try:
        with open_registry(root) as running:
            yield running.host
    finally:
        shutil.rmtree(root, ignore_errors=True)


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# --- statistics -----------------------------------------------------------------------


def summary(times: Sequence[float]) -> dict[str, float]:
    return {
        "median": statistics.median(times),
        "min": min(times),
        "max": max(times),
    }


# --- the machine ----------------------------------------------------------------------


def _first(pattern: str, text: str) -> str:
    match = re.search(pattern, text, re.MULTILINE)
    return match.group(1).strip() if match else "?"


def _version(command: Sequence[str], pattern: str = r"(\S*\d+\.\d+\S*)") -> str:
    if shutil.which(command[0]) is None:
        return "not installed"
    try:
        result = subprocess.run(
            list(command), capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return _first(pattern, result.stdout + result.stderr)


def _python_version(module: str) -> str:
    try:
        from importlib import metadata

        return metadata.version(module)
    except Exception:
        return "?"


def _commit() -> str:
    """The checked-out commit, read from .git without running git."""
    git = REPO / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head[:12]
        ref = head[5:]
        loose = git / ref
        if loose.exists():
            return loose.read_text().strip()[:12]
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0][:12]
    except OSError:
        pass
    return "?"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: other work on the machine skews the times."""
    try:
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "?"


def _uncommitted() -> str:
    """ ", with uncommitted changes" when doit-oci's code differs from the commit."""
    if shutil.which("git") is None:
        return ""
    try:
        result = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "rules", "registry"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return ", with uncommitted changes" if result.returncode == 0 and result.stdout else ""


def machine() -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    release = Path("/etc/os-release").read_text() if Path("/etc/os-release").exists() else ""
    memory_kb = _first(r"^MemTotal:\s*(\d+)", meminfo)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 0
    return {
        "cpu": _first(r"^model name\s*:\s*(.*)$", cpuinfo),
        "cores": str(cores),
        "ram": f"{int(memory_kb) / (1 << 20):.1f} GiB" if memory_kb.isdigit() else "?",
        "kernel": platform.release(),
        "os": _first(r'^PRETTY_NAME="?([^"\n]*)', release),
        "python": platform.python_version(),
        "load average at the start": load_average(),
        "doit-oci": f"{_python_version('doit-oci')} at commit {_commit()}{_uncommitted()}",
        "doit": _python_version("doit"),
        "isal": _python_version("isal"),
        "buildah": _version(["buildah", "--version"]),
        "umoci": _version(["umoci", "--version"]),
        "skopeo": _version(["skopeo", "--version"]),
        "docker-registry": _version(["docker-registry", "--version"], r"(\d+\.\d+\S*)"),
        "hyperfine": _version(["hyperfine", "--version"]),
        "openssl": _version(["openssl", "version"]),
        "curl": _version(["curl", "--version"]),
    }
