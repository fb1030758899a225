"""The runtimes' pure parts: how each spells a name, which layers Docker can be sent
without, how a runtime is found, and the archive a load streams."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from doit_oci.registry import runtimes
from doit_oci.registry.errors import RegistryError
from doit_oci.registry.oci import REF_NAME
from doit_oci.registry.runtimes import (
    Containerd,
    EngineRuntime,
    Image,
    PodmanTool,
    chained,
    familiar,
    find_runtimes,
    full_name,
    podman_name,
)


@pytest.mark.parametrize(
    ("reference", "docker", "podman", "containerd"),
    [
        ("hello:1", "hello:1", "localhost/hello:1", "docker.io/library/hello:1"),
        ("istio/pilot:1", "istio/pilot:1", "localhost/istio/pilot:1", "docker.io/istio/pilot:1"),
        ("gcr.io/x/p:2", "gcr.io/x/p:2", "gcr.io/x/p:2", "gcr.io/x/p:2"),
        ("localhost:5000/p:3", "localhost:5000/p:3", "localhost:5000/p:3", "localhost:5000/p:3"),
        ("docker.io/library/a:4", "a:4", "docker.io/library/a:4", "docker.io/library/a:4"),
    ],
)
def test_each_runtime_spells_a_name_its_way(
    reference: str, docker: str, podman: str, containerd: str
) -> None:
    assert (familiar(reference), podman_name(reference), full_name(reference)) == (
        docker,
        podman,
        containerd,
    )


def test_docker_is_sent_without_the_layers_of_a_chain_it_has() -> None:
    image = Image("c", "m", ("d1", "d2", "d3", "d4"), ("b1", "b2", "b3", "b4"))
    assert chained(image, [("d1", "d2", "dX")]) == {"b1", "b2"}
    assert chained(image, [("d2", "d3")]) == frozenset()  # not a chain from the bottom
    assert chained(image, [("d1", "d2", "d3", "d4", "d5")]) == {"b1", "b2", "b3", "b4"}
    twice = Image("c", "m", ("d1", "d2", "d1"), ("b1", "b2", "b1"))
    assert chained(twice, [("d1", "d9")]) == frozenset()  # b1 is needed again on top


def test_a_runtime_is_found_by_its_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DOCKER_SOCKET", "PODMAN_SOCKET", "CONTAINERD_SOCKET"):
        monkeypatch.setattr(runtimes, name, tmp_path / name)
    nothing = {"PATH": str(tmp_path)}  # no podman command either
    with pytest.raises(RegistryError) as none:
        find_runtimes("", nothing)
    message = str(none.value)
    assert message.startswith("--load: finding a runtime failed: no runtime answers (tried ")
    assert str(tmp_path / "DOCKER_SOCKET") in message and "CONTAINERD_ADDRESS" in message
    (tmp_path / "CONTAINERD_SOCKET").touch()
    (found,) = find_runtimes("", nothing)
    assert isinstance(found, Containerd) and found.tool.argv == ("ctr", "-n", "k8s.io")
    (other,) = find_runtimes("containerd:builds", nothing)
    assert isinstance(other, Containerd) and other.tool.argv == ("ctr", "-n", "builds")
    (tmp_path / "PODMAN_SOCKET").touch()
    (podman,) = find_runtimes("", nothing)
    assert isinstance(podman, EngineRuntime) and podman.engine.product == "podman"
    (tmp_path / "DOCKER_SOCKET").touch()
    (docker,) = find_runtimes("", nothing)
    assert isinstance(docker, EngineRuntime) and docker.where.startswith("docker at unix://")
    (given,) = find_runtimes("", {**nothing, "DOCKER_HOST": "unix:///x/d.sock"})
    assert given.where == "docker at unix:///x/d.sock"
    fake = tmp_path / "podman"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    (tmp_path / "PODMAN_SOCKET").unlink()
    (tool,) = find_runtimes("podman", nothing)
    assert isinstance(tool, PodmanTool)


def test_the_load_archive_is_an_oci_layout_and_a_docker_archive(built_example: Path) -> None:
    from doit_oci.registry.layout import Layout
    from doit_oci.registry.oci import Descriptor
    from doit_oci.rules.loadarchive import load_archive, read_stored
    from doit_oci.rules.tar import tar_chunks

    index = json.loads((built_example / "out" / "oci" / "index.json").read_text())
    entry = next(m for m in index["manifests"] if m["annotations"][REF_NAME] == "hello:latest")
    layout = Layout(built_example / "out" / "oci", built_example / "out" / "tmp")
    stored = read_stored(layout, Descriptor.from_json(entry))
    bottom = stored.image.blobs[0]
    names = ["hello:latest", "gcr.io/x/hello:1"]
    with load_archive(layout, stored, names, frozenset({bottom})) as archive:
        data = b"".join(tar_chunks(archive.members))
    assert (archive.layers, archive.sent) == (len(stored.image.blobs), len(stored.image.blobs) - 1)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        files = set(tar.getnames())
        docker = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        oci = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
    assert f"blobs/sha256/{bottom[7:]}" not in files
    assert {f"blobs/sha256/{b[7:]}" for b in stored.image.blobs[1:]} <= files
    assert docker[0]["RepoTags"] == ["hello:latest", "gcr.io/x/hello:1"]
    assert docker[0]["Layers"] == [f"blobs/sha256/{b[7:]}" for b in stored.image.blobs]
    assert [m["digest"] for m in oci["manifests"]] == [entry["digest"]] * 2
    assert [m["annotations"]["io.containerd.image.name"] for m in oci["manifests"]] == [
        "docker.io/library/hello:latest",
        "gcr.io/x/hello:1",
    ]
