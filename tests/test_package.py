"""doit-oci as a user installs it: the wheel and the sdist this repository builds hold the
rules and the registry client as doit_oci.rules and doit_oci.registry, and a project
builds with doit-oci installed from the wheel into a fresh venv (no checkout on its path).

Offline: the build uses this venv's setuptools (--no-isolation), and the fresh venv takes
doit-oci's dependencies from this venv's site-packages (without its editable doit-oci).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest
from test_ways import WAYS, names, project

REPO = Path(__file__).resolve().parent.parent
MODULES = (
    "doit_oci/__init__.py",
    "doit_oci/rules/tasks.py",
    "doit_oci/rules/steps/run.py",
    "doit_oci/rules/dockerfile/read.py",
    "doit_oci/registry/oci.py",
    "doit_oci/registry/transport.py",
)


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(REPO)],
        capture_output=True,
        check=True,
        timeout=300,
    )
    return out


def test_the_wheel_and_the_sdist_hold_the_unique_import_path(dist: Path) -> None:
    (wheel,) = dist.glob("doit_oci-*.whl")
    listed = set(zipfile.ZipFile(wheel).namelist())
    assert set(MODULES) <= listed
    assert not [name for name in listed if name.startswith(("rules/", "registry/"))]
    entry_points = next(n for n in listed if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "doit_oci = doit_oci.rules.plugin:PlanLoader" in text
    (sdist,) = dist.glob("doit_oci-*.tar.gz")
    with tarfile.open(sdist) as archive:
        members = {m.name.split("/", 1)[1] for m in archive.getmembers() if "/" in m.name}
    assert {"pyproject.toml", "README.md", *MODULES} <= members


def fresh_venv(root: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, capture_output=True)
    python = root / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # the dependencies, as a plain path: the editable doit-oci of this venv is not taken
    # (its .pth hook is not run for a directory added this way)
    (Path(site) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def test_a_project_builds_with_doit_oci_from_the_wheel(dist: Path, tmp_path: Path) -> None:
    (wheel,) = dist.glob("doit_oci-*.whl")
    python = fresh_venv(tmp_path / "venv")
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = subprocess.run(
        [str(python), "-c", "import doit_oci.rules.tasks as t; print(t.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
        env=env,
    ).stdout
    assert where.startswith(str(tmp_path / "venv")), where
    for way in (w for w in WAYS if w.name in ("plan", "pyproject")):
        root = project(tmp_path / way.name, way)
        run = subprocess.run(
            [str(python), "-m", "doit", way.group],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert "app:latest" in names(root)
        index = json.loads((root / "out/oci/index.json").read_text())
        assert index["schemaVersion"] == 2
