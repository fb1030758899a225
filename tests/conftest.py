"""Fixtures: workspaces holding the bundled example, a real registry. The helpers they
use are in support.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from registries import RunningRegistry, open_registry
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
