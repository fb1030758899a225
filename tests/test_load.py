"""--load and ``doit load`` against real runtimes: Debian's dockerd, podman (its API socket
and the podman command), containerd through ctr, and a kind-like node (a container
labelled as kind labels its nodes, with ctr inside, talking to the containerd of the
tests). What each runtime holds is read back from it; what was sent from its own log of
API calls and from the lines the load prints.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from runtimes import (
    RunningContainerd,
    RunningDocker,
    RunningPodman,
    docker_daemon,
    files_image,
    podman_service,
)
from support import doit, index_of

pytestmark = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("dockerd", "podman", "containerd", "ctr", "docker")),
    reason="needs docker.io and podman (.ci/install --test)",
)


@pytest.fixture(scope="module")
def short_root() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="rt-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def docker(short_root: Path) -> Iterator[RunningDocker]:
    with docker_daemon(short_root / "d") as running:
        yield running


@pytest.fixture(scope="module")
def podman(short_root: Path) -> Iterator[RunningPodman]:
    with podman_service(short_root / "p") as running:
        yield running


def digests(workspace: Path, name: str) -> tuple[str, str]:
    """The manifest and config digests of ``name`` in out/oci."""
    manifest = index_of(workspace)[name]
    blob = workspace / "out" / "oci" / "blobs" / "sha256" / manifest.partition(":")[2]
    return manifest, json.loads(blob.read_text())["config"]["digest"]


def layer_count(workspace: Path, name: str) -> int:
    manifest = index_of(workspace)[name]
    blob = workspace / "out" / "oci" / "blobs" / "sha256" / manifest.partition(":")[2]
    return len(json.loads(blob.read_text())["layers"])


def loads(run_text: str) -> list[str]:
    return [line for line in run_text.splitlines() if "loaded into" in line]


def test_docker_load_runs_and_a_second_load_sends_nothing(
    example: Path, docker: RunningDocker
) -> None:
    first = doit(example, "build_images", "--load", env=docker.env)
    assert first.code == 0, first.text
    assert sorted(t for t in first.executed if t.startswith("load:")) == [
        "load:hello",
        "load:showconfig",
        "load:whoami",
    ]
    for name in ("hello", "whoami", "showconfig"):
        _, config = digests(example, f"{name}:latest")
        found = json.loads(docker.docker("image", "inspect", f"{name}:latest").stdout)[0]
        assert found["Id"] == config
        assert found["RepoTags"] == [f"{name}:latest"]
    ran = docker.docker("run", "--rm", "hello:latest")
    assert ran.stdout == "hello, doit-oci!\n"
    who = docker.docker("run", "--rm", "whoami:latest")
    assert who.stdout.startswith("uid=1337 gid=1337")
    assert len(docker.calls("POST", "/images/load")) == 3

    again = doit(example, "build_images", "--load", env=docker.env)
    assert again.code == 0, again.text
    assert again.executed == []
    assert len(docker.calls("POST", "/images/load")) == 3  # nothing sent
    assert not docker.calls("POST", "/tag")


def test_docker_retags_then_sends_only_changed_layers(example: Path, docker: RunningDocker) -> None:
    env = {**docker.env, "TAG": "r1"}
    assert doit(example, "build_images", "--load", env=env).code == 0
    sent = len(docker.calls("POST", "/images/load"))
    tags = len(docker.calls("POST", "/tag"))

    tagged = doit(example, "build_images", "--load", "--tag", "r1,r2", env=docker.env)
    assert tagged.code == 0, tagged.text
    assert "showconfig:r2: tagged in docker" in tagged.err
    assert len(docker.calls("POST", "/images/load")) == sent  # retagged, not resent
    assert len(docker.calls("POST", "/tag")) == tags + 3
    _, config = digests(example, "showconfig:r2")
    assert json.loads(docker.docker("image", "inspect", "showconfig:r2").stdout)[0]["Id"] == config

    (example / "example" / "showconfig" / "config.json").write_text('{"changed": true}\n')
    changed = doit(example, "build_images", "--load", "--tag", "r1,r2", env=docker.env)
    assert changed.code == 0, changed.text
    (line,) = loads(changed.err)
    assert line.startswith("showconfig:r1, showconfig:r2: loaded into docker")
    assert f"1 of {layer_count(example, 'showconfig:r1')} layers sent" in line
    _, config = digests(example, "showconfig:r1")
    for tag in ("r1", "r2"):
        found = json.loads(docker.docker("image", "inspect", f"showconfig:{tag}").stdout)[0]
        assert found["Id"] == config


def test_doit_load_loads_the_last_build_without_building(
    example: Path, docker: RunningDocker
) -> None:
    refused = doit(example, "load", "--tag", "solo", env=docker.env)
    assert refused.code == 1
    assert refused.err.count("error:") == 1 and "Traceback" not in refused.text
    assert "hello has not been built for linux/amd64" in refused.err
    assert "doit build_images" in refused.err

    assert doit(example, "build_images", "--tag", "solo").code == 0
    loaded = doit(example, "load", "--tag", "solo", env=docker.env)
    assert loaded.code == 0, loaded.text
    assert loaded.executed == ["load"]
    _, config = digests(example, "hello:solo")
    assert json.loads(docker.docker("image", "inspect", "hello:solo").stdout)[0]["Id"] == config
    quiet = doit(example, "load", "--tag", "solo", env=docker.env)
    assert "hello:solo: already in docker" in quiet.err


def test_podman_through_its_socket_and_partly(example: Path, podman: RunningPodman) -> None:
    env = {"CONTAINER_HOST": f"unix://{podman.socket}"}
    first = doit(example, "build_images", "--load-runtime=podman", "--hub", "reg.test/x", env=env)
    assert first.code == 0, first.text
    _, config = digests(example, "hello:latest")
    found = json.loads(podman.podman("image", "inspect", "reg.test/x/hello:latest").stdout)[0]
    assert found["Id"] == config.partition(":")[2]
    assert len(podman.calls("POST", "/images/load")) == 3

    again = doit(example, "build_images", "--load-runtime=podman", "--hub", "reg.test/x", env=env)
    assert again.executed == [] and len(podman.calls("POST", "/images/load")) == 3

    (example / "example" / "showconfig" / "config.json").write_text('{"podman": 1}\n')
    changed = doit(example, "build_images", "--load-runtime=podman", "--hub", "reg.test/x", env=env)
    assert changed.code == 0, changed.text
    (line,) = loads(changed.err)
    assert f"1 of {layer_count(example, 'showconfig:latest')} layers sent" in line
    _, config = digests(example, "showconfig:latest")
    found = json.loads(podman.podman("image", "inspect", "reg.test/x/showconfig:latest").stdout)[0]
    assert found["Id"] == config.partition(":")[2]


def test_podman_command_without_a_socket(example: Path, podman: RunningPodman) -> None:
    env = {**podman.env, "TAG": "cli", "SOURCE_DATE_EPOCH": "1"}  # images of its own
    run = doit(example, "build_images", "--load-runtime=podman", env=env)
    assert run.code == 0, run.text
    assert "localhost/hello:cli: loaded into podman," in run.err
    _, config = digests(example, "hello:cli")
    found = json.loads(podman.podman("image", "inspect", "localhost/hello:cli").stdout)[0]
    assert found["Id"] == config.partition(":")[2]
    assert found["RepoTags"] == ["localhost/hello:cli"]
    assert doit(example, "build_images", "--load-runtime=podman", env=env).executed == []


def test_containerd_import_keeps_the_manifest_and_sends_only_what_it_lacks(
    example: Path, containerd: RunningContainerd
) -> None:
    env = containerd.env
    run = doit(example, "build_images", "--load-runtime=containerd", env=env)
    assert run.code == 0, run.text
    held = containerd.images()
    for name in ("hello", "whoami", "showconfig"):
        manifest, _ = digests(example, f"{name}:latest")
        assert held[f"docker.io/library/{name}:latest"] == manifest
    ran = subprocess.run(
        [
            "ctr",
            "--address",
            str(containerd.socket),
            "-n",
            "k8s.io",
            "run",
            "--rm",
            "docker.io/library/hello:latest",
            "t-hello",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ran.stdout == "hello, doit-oci!\n", ran.stderr
    assert doit(example, "build_images", "--load-runtime=containerd", env=env).executed == []

    (example / "example" / "showconfig" / "config.json").write_text('{"containerd": 1}\n')
    changed = doit(example, "build_images", "--load-runtime=containerd", env=env)
    assert changed.code == 0, changed.text
    (line,) = loads(changed.err)
    assert line.startswith("docker.io/library/showconfig:latest: loaded into containerd")
    log = containerd.log.read_text(errors="replace")[-3000:]
    assert f"1 of {layer_count(example, 'showconfig:latest')} layers sent" in line, (
        changed.err,
        log,
    )
    manifest, _ = digests(example, "showconfig:latest")
    assert containerd.images()["docker.io/library/showconfig:latest"] == manifest


def test_kind_runs_ctr_in_each_node(
    example: Path, docker: RunningDocker, containerd: RunningContainerd, tmp_path: Path
) -> None:
    pause = tmp_path / "pause"
    source = tmp_path / "pause.c"
    source.write_text("#include <unistd.h>\nint main(void){for(;;)pause();}\n")
    subprocess.run(["gcc", "-static", "-O2", "-o", str(pause), str(source)], check=True)
    libs = [Path(p) for p in ("/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2")]
    if not all(p.exists() for p in libs):
        pytest.skip("the fake node copies the x86-64 ctr and its libc")
    files_image(docker, "fake-kind-node:1", [Path(shutil.which("ctr") or "ctr"), *libs], tmp_path)
    node = "t17-control-plane"
    docker.docker(
        "run",
        "-d",
        "--name",
        node,
        "--network",
        "none",
        "--label",
        "io.x-k8s.kind.cluster=t17",
        "-v",
        f"{containerd.socket}:/run/containerd/containerd.sock",
        "-v",
        f"{pause}:/pause",
        "--entrypoint",
        "/pause",
        "fake-kind-node:1",
    )
    try:
        run = doit(
            example, "build_images", "--load-runtime=kind:t17", "--tag", "kind", env=docker.env
        )
        assert run.code == 0, run.text
        assert "loaded into kind node t17-control-plane" in run.err
        manifest, _ = digests(example, "hello:kind")
        assert containerd.images()["docker.io/library/hello:kind"] == manifest
        missing = doit(
            example, "build_images", "--load-runtime=kind:nope", "--targets=hello", env=docker.env
        )
        assert missing.code == 1 and missing.err.count("error:") == 1
        assert "runs no node of a kind cluster 'nope'" in missing.err
    finally:
        docker.docker("rm", "-f", node, check=False)


def test_errors_are_one_line(example: Path, docker: RunningDocker, tmp_path: Path) -> None:
    one = ("--targets", "hello")
    gone = doit(
        example, "build_images", "--load", *one, env={"DOCKER_HOST": f"unix://{tmp_path}/no.sock"}
    )
    assert gone.code == 1 and gone.err.count("error:") == 1 and "Traceback" not in gone.text
    assert f"docker at unix://{tmp_path}/no.sock: inspect sha256:" in gone.err, gone.err
    assert "failed: no such socket; start docker, or point DOCKER_HOST at its socket" in gone.err

    tcp = doit(example, "build_images", "--load", *one, env={"DOCKER_HOST": "tcp://127.0.0.1:1"})
    assert tcp.code == 1 and tcp.err.count("error:") == 1
    assert "DOCKER_HOST=tcp://127.0.0.1:1 is not a unix socket" in tcp.err

    bad = doit(example, "build_images", "--load-runtime=dockerd")
    assert bad.code == 1 and bad.err.count("error:") == 1
    assert "unknown runtime 'dockerd' to load into" in bad.err

    other = doit(
        example,
        "build_images",
        "--architectures",
        "linux/amd64,linux/arm64",
        "--load-platform",
        "linux/arm64",
        "--targets",
        "hello",
        env=docker.env | {"LOAD": "docker"},
    )
    assert other.code == 1 and "Traceback" not in other.text
    assert "hello is a linux/arm64 image; docker at" in other.err
    assert "runs linux/amd64" in other.err

    none_built = doit(example, "build_images", "--load-platform", "linux/arm64", "--load")
    assert none_built.code == 1 and none_built.err.count("error:") == 1
    assert "hello is built for linux/amd64, not for linux/arm64" in none_built.err


def test_permission_denied_and_a_refused_archive(docker: RunningDocker, tmp_path: Path) -> None:
    from doit_oci.registry.engine import Engine
    from doit_oci.registry.errors import RegistryError

    with pytest.raises(RegistryError) as refused:
        Engine(docker.socket).load(iter([b"not a tar archive" * 100]), "junk")
    assert str(refused.value).startswith(f"docker at unix://{docker.socket}: load junk failed: ")
    assert "\n" not in str(refused.value)

    os.chmod(docker.socket, 0o600)
    probe = (
        "from doit_oci.registry.engine import Engine\n"
        "from doit_oci.registry.errors import RegistryError\n"
        f"try:\n    Engine({str(docker.socket)!r}).version()\n"
        "except RegistryError as e:\n    print(e)\n"
    )
    as_nobody = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            sys.executable,
            "-c",
            probe,
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd="/",
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )
    assert "permission denied on the socket" in as_nobody.stdout, as_nobody.stderr


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_docker_takes_compressed_layers(
    example: Path, docker: RunningDocker, compression: str
) -> None:
    # gzip layers go as they are stored; zstd ones, which Docker 20.10 cannot read, are
    # decompressed on the way. Docker knows an image by its config, the same whatever the
    # compression: an epoch of its own makes each a new image
    tag = f"c-{compression}"
    epoch = {"gzip": "11", "zstd": "12"}[compression]
    run = doit(
        example,
        "build_images",
        "--load",
        "--compression",
        compression,
        "--tag",
        tag,
        "--targets",
        "hello",
        env={**docker.env, "SOURCE_DATE_EPOCH": epoch},
    )
    assert run.code == 0, run.text
    (line,) = loads(run.err)
    assert line.startswith(f"hello:{tag}: loaded into docker")
    _, config = digests(example, f"hello:{tag}")
    assert json.loads(docker.docker("image", "inspect", f"hello:{tag}").stdout)[0]["Id"] == config
    assert docker.docker("run", "--rm", f"hello:{tag}").stdout == "hello, doit-oci!\n"
