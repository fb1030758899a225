"""Fixtures: workspaces holding the bundled example, a real registry, a real containerd.
The helpers they use are in support.py."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from registries import RunningRegistry, open_registry
from runtimes import RunningContainerd, containerd_daemon
from support import copy_example, doit


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


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RunningRegistry]:
    """A real, open registry (Debian's docker-registry) on a free loopback port."""
    with open_registry(tmp_path / "registry") as running:
        yield running


# Tests that run doit, a registry, skopeo, umoci or buildah: `pytest -m "not e2e"` runs the
# rest (the unit tests) in seconds. A module is e2e as a whole, or a test is because it
# takes one of the fixtures that start something.
@pytest.fixture(scope="session")
def containerd() -> Iterator[RunningContainerd]:
    """The containerd that docker.io brings, on a private socket (its path kept short)."""
    if not shutil.which("containerd"):
        pytest.skip("needs containerd (.ci/install --test brings docker.io)")
    root = Path(tempfile.mkdtemp(prefix="ctd-", dir="/tmp"))
    try:
        with containerd_daemon(root) as running:
            yield running
    finally:
        shutil.rmtree(root, ignore_errors=True)


E2E_MODULES = {
    "test_bad_inputs.py",
    "test_buildah.py",
    "test_errors.py",
    "test_example.py",
    "test_incremental.py",
    "test_incremental_push.py",
    "test_layer_cache_runs.py",
    "test_push.py",
    "test_registries.py",
    "test_registry_bases.py",
    "test_resilience.py",
    "test_same_digests.py",
    "test_seed.py",
    "test_state.py",
    "test_three_ways.py",
    "test_ways.py",
    "test_rules.py",
    "test_package.py",
    "test_load.py",
    "test_locking.py",
    "test_telemetry.py",
    "test_progress_modes.py",
    "test_release.py",
}
E2E_FIXTURES = {"registry", "example", "built_example", "containerd"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = item.path.name
        fixtures = set(getattr(item, "fixturenames", ()))
        if module in E2E_MODULES or fixtures & E2E_FIXTURES:
            item.add_marker(pytest.mark.e2e)
