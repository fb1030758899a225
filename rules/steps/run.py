"""The Run: one build and everything its steps share (options, the content store, the
digest cache, the registry clients), made once when doit creates the tasks and passed to
every step. Nothing of a run lives in a module global.

doit's workers are forked from the process that made the Run, so each worker holds a copy:
the digest cache and the clients notice the fork and open their own connections.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from doit_oci.registry import oci
from doit_oci.registry.layout import Layout
from doit_oci.rules import progress, telemetry
from doit_oci.rules.digests import DigestCache
from doit_oci.rules.errors import UserError
from doit_oci.rules.lock import Lock, Pin, lock_path, read_lock
from doit_oci.rules.options import Options
from doit_oci.rules.units import Build, Output, Unit

if TYPE_CHECKING:  # httpx and the client are imported only when a registry is used
    from doit_oci.registry.client import Clients
    from doit_oci.registry.mirror import Readers
    from doit_oci.registry.pull import Body, Reads
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
        options = self.options
        return Clients(
            self.environ,
            options.insecure,
            policy,
            on_retry=warn,
            offline=options.offline,
            watch=telemetry.request_watch(),
        )

    @cached_property
    def readers(self) -> Readers:
        """The reads of bases: through the mirrors of REGISTRY_MIRRORS and the plan, each
        given ten seconds at most before its registry is read instead."""
        from doit_oci.registry.client import Clients
        from doit_oci.registry.mirror import Readers
        from doit_oci.registry.transport import RetryPolicy

        mirrors = (*self.options.mirrors, *self.build.plans[0].mirrors)
        policy = RetryPolicy(attempts=3, deadline=min(10.0, self.options.registry_deadline))
        quick = Clients(self.environ, self.options.insecure, policy, offline=self.options.offline)
        return Readers(mirrors, self.clients.get, quick.get, warn)

    def reader(self, registry: str) -> Reads:
        """How a base of ``registry`` is read: through its mirrors, or (offline) from
        nothing but the content store."""
        if self.options.offline:
            return Offline(registry, self.shown(self.layout.root))
        return self.readers.get(registry)

    @property
    def lock_file(self) -> Path:
        """bases.lock, beside the plan."""
        return lock_path(self.workspace, self.build.plans[0].path)

    def shown(self, path: Path) -> str:
        """``path`` as messages name it: relative to the workspace when it is inside."""
        try:
            return str(path.relative_to(self.workspace))
        except ValueError:
            return str(path)

    @property
    def lock_shown(self) -> str:
        return self.shown(self.lock_file)

    @cached_property
    def lock(self) -> Lock | None:
        """What bases.lock pins (None when there is none), read once, when tasks are made."""
        return read_lock(self.lock_file, self.lock_shown)

    def pin(self, reference: str) -> Pin | None:
        return self.lock.get(reference) if self.lock is not None else None

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


@dataclass(frozen=True)
class Offline:
    """The reads of an offline run: whatever is not in the content store is an error
    naming it (what is there is read from the store before any reader is asked)."""

    registry: str
    store: str  # the content store, as messages name it

    def missing(self, repository: str, identifier: str) -> UserError:
        at = "@" if identifier.startswith("sha256:") else ":"
        return UserError(
            f"--offline: {self.registry}/{repository}{at}{identifier} is not in {self.store}",
            "--offline",
            "build once without --offline (and OFFLINE) to fetch it, or pin the base with"
            " doit lock",
        )

    def head_manifest(self, repository: str, reference: str) -> oci.Descriptor | None:
        raise self.missing(repository, reference)

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str, str]:
        raise self.missing(repository, reference)

    @contextlib.contextmanager
    def get_blob(self, repository: str, digest: str) -> Iterator[Body]:
        raise self.missing(repository, digest)
        yield  # a generator, for contextmanager
