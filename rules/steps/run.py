"""The Run: one build and everything its steps share (options, the content store, the
digest cache, the registry clients), made once when doit creates the tasks and passed to
every step. Nothing of a run lives in a module global.

doit's workers are forked from the process that made the Run, so each worker holds a copy:
the digest cache and the clients notice the fork and open their own connections.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from doit_oci.registry.layout import Layout
from doit_oci.rules import progress, telemetry
from doit_oci.rules.digests import DigestCache
from doit_oci.rules.options import Options
from doit_oci.rules.units import Build, Output, Unit

if TYPE_CHECKING:  # httpx and the client are imported only when a registry is used
    from doit_oci.registry.client import Clients
    from doit_oci.registry.runtimes import Runtime


def warn(message: str) -> None:
    progress.warn(message)


@dataclass(frozen=True, eq=False)
class Run:
    build: Build
    environ: Mapping[str, str]

    @property
    def options(self) -> Options:
        return self.build.options

    @property
    def workspace(self) -> Path:
        return self.build.workspace

    @cached_property
    def layout(self) -> Layout:
        return Layout(self.build.layout_dir, self.build.state / "tmp")

    @cached_property
    def digests(self) -> DigestCache:
        return DigestCache(self.build.state / "cache" / "digests.sqlite")

    @cached_property
    def clients(self) -> Clients:
        from doit_oci.registry.client import Clients
        from doit_oci.registry.transport import RetryPolicy

        policy = RetryPolicy(deadline=self.options.registry_deadline)
        return Clients(
            self.environ,
            self.options.insecure,
            policy,
            on_retry=warn,
            watch=telemetry.request_watch(),
        )

    @cached_property
    def runtimes(self) -> list[Runtime]:
        """Where --load loads (one per node of a kind cluster), found when first asked."""
        from doit_oci.registry.runtimes import find_runtimes

        return find_runtimes(self.options.load_runtime, self.environ)

    def unit(self, key: str) -> Unit:
        return self.build.unit(key)

    def units_of(self, output: Output) -> tuple[Unit, ...]:
        return self.build.units_of(output)

    @property
    def records(self) -> Path:
        """Where the records of every plan and scope of this state folder live."""
        return self.build.state / "build"
