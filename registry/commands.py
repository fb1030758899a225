"""Runtimes' command-line tools (``ctr``, ``podman``, ``docker exec``) run as subprocesses:
their output, or an archive fed to their standard input as it is made. A tool that fails
is one line: what it was asked, what it said. No plan, no doit.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from doit_oci.registry.errors import RegistryError


@dataclass(frozen=True)
class Tool:
    """A command (``("ctr", "-n", "k8s.io")``, ``("docker", "exec", "-i", node, "ctr")``)
    and the name it goes by in messages (``containerd``, ``kind node kind-control-plane``)."""

    argv: tuple[str, ...]
    where: str
    environ: Mapping[str, str] | None = None

    def _fail(self, operation: str, detail: str, fix: str) -> RegistryError:
        return RegistryError(self.where, "", operation, detail, fix=fix)

    def _missing(self, operation: str) -> RegistryError:
        return self._fail(
            operation, f"{self.argv[0]} is not installed", f"install {self.argv[0]} or its runtime"
        )

    def output(self, args: Sequence[str], operation: str) -> str:
        """What ``argv + args`` prints; a failure is one line with what it said."""
        if shutil.which(self.argv[0], path=self._path) is None:
            raise self._missing(operation)
        done = subprocess.run(
            [*self.argv, *args],
            capture_output=True,
            env=None if self.environ is None else dict(self.environ),
            check=False,
        )
        if done.returncode != 0:
            raise self._fail(operation, _said(done.stderr or done.stdout), _fix(self))
        return done.stdout.decode("utf-8", "replace")

    def feed(self, args: Sequence[str], chunks: Iterable[bytes], operation: str) -> str:
        """Run ``argv + args`` with ``chunks`` on its standard input, written as they come."""
        if shutil.which(self.argv[0], path=self._path) is None:
            raise self._missing(operation)
        with tempfile.TemporaryFile() as errors:
            process = subprocess.Popen(
                [*self.argv, *args],
                stdin=subprocess.PIPE,
                stdout=errors,
                stderr=subprocess.STDOUT,
                env=None if self.environ is None else dict(self.environ),
            )
            assert process.stdin is not None
            broken = False
            try:
                for chunk in chunks:
                    try:
                        process.stdin.write(chunk)
                    except BrokenPipeError:
                        broken = True  # it stopped reading: its own message says why
                        break
            finally:
                try:
                    process.stdin.close()
                except BrokenPipeError:
                    broken = True
                code = process.wait()
            errors.seek(0)
            said = errors.read()
        if code != 0 or broken:
            raise self._fail(operation, _said(said), _fix(self))
        return said.decode("utf-8", "replace")

    @property
    def _path(self) -> str | None:
        return None if self.environ is None else self.environ.get("PATH")


def _said(data: bytes) -> str:
    """A tool's message: its last lines that say something, on one line."""
    lines = [line.strip() for line in data.decode("utf-8", "replace").splitlines()]
    text = " ".join(line for line in lines[-3:] if line)
    return text[-500:] or "it failed without a message"


def _fix(tool: Tool) -> str:
    return f"see {tool.argv[0]}'s message; check that {tool.where} runs"
