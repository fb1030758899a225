"""`doit build_images --push` against real registries (Debian's docker-registry), checked
with skopeo, umoci and the registries' own access logs."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from faults import Fault, fault_proxy
from registries import (
    AccessEntry,
    RunningRegistry,
    basic_registry,
    open_registry,
    token_registry,
)
from support import Run, copy_example, doit, index_of

from doit_oci.rules.tasks import doit_config

IMAGES = ("hello", "showconfig", "whoami")


def push(workspace: Path, hub: str, *args: str, env: dict[str, str] | None = None) -> Run:
    return doit(workspace, "build_images", "--push", "--hub", hub, "--tag", "1.0", *args, env=env)


def uploads(log: list[AccessEntry], repository: str = "") -> list[AccessEntry]:
    """Blob uploads started (POST without a mount) and finished (PUT of an upload)."""
    return [
        e
        for e in log
        if "/blobs/uploads/" in e.path
        and e.path.startswith(f"/v2/{repository}")
        and ((e.method == "POST" and "mount=" not in e.query) or e.method in ("PUT", "PATCH"))
    ]


def manifest_puts(log: list[AccessEntry]) -> list[AccessEntry]:
    return [e for e in log if e.method == "PUT" and "/manifests/" in e.path]


def skopeo_digest(reference: str, *creds: str) -> str:
    result = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", *creds, f"docker://{reference}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return str(json.loads(result.stdout)["Digest"])


def docker_config(folder: Path, registry: RunningRegistry) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    secret = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    config = folder / "config.json"
    config.write_text(json.dumps({"auths": {registry.host: {"auth": secret}}}))
    config.chmod(0o600)
    return {"DOCKER_CONFIG": str(folder)}


def test_push_and_pull_back_the_example(
    example: Path, registry: RunningRegistry, tmp_path: Path
) -> None:
    run = push(example, f"{registry.host}/example")
    assert run.code == 0, run.text
    digests = index_of(example)
    for name in IMAGES:
        reference = f"{registry.host}/example/{name}:1.0"
        assert f"pushed {reference}@{digests[f'{name}:1.0']}" in run.err
        assert skopeo_digest(reference) == digests[f"{name}:1.0"]
    pulled = tmp_path / "pulled"
    subprocess.run(
        [
            "skopeo",
            "copy",
            "--src-tls-verify=false",
            "--preserve-digests",
            f"docker://{registry.host}/example/showconfig:1.0",
            f"oci:{pulled}:showconfig",
        ],
        capture_output=True,
        check=True,
    )
    command = ["umoci", "unpack", "--image", f"{pulled}:showconfig", str(tmp_path / "bundle")]
    if os.geteuid() != 0:
        command.insert(2, "--rootless")
    subprocess.run(command, capture_output=True, check=True)
    rootfs = tmp_path / "bundle" / "rootfs"
    assert (rootfs / "etc/showconfig/config.json").read_bytes() == (
        example / "example/showconfig/config.json"
    ).read_bytes()
    assert (rootfs / "usr/local/bin/showconfig").read_bytes() == (
        example / "out/linux_amd64/showconfig"
    ).read_bytes()
    index = json.loads((pulled / "index.json").read_text())
    assert index["manifests"][0]["digest"] == digests["showconfig:1.0"]


def test_a_second_push_sends_no_blob_and_no_manifest(
    example: Path, registry: RunningRegistry, tmp_path: Path
) -> None:
    assert push(example, f"{registry.host}/example").code == 0
    registry.wait_for("PUT", "/v2/example/whoami/manifests/1.0")
    first = len(registry.access_log())
    # nothing changed: doit runs no push task, the registry sees nothing at all
    again = push(example, f"{registry.host}/example")
    assert again.code == 0 and again.executed == []
    assert len(registry.access_log()) == first
    # a fresh checkout with no doit state (CI with an empty cache): HEADs only
    fresh = copy_example(tmp_path / "fresh")
    run = push(fresh, f"{registry.host}/example")
    assert run.code == 0, run.text
    registry.wait_for("HEAD", "/v2/example/whoami/manifests/1.0")
    later = registry.access_log()[first:]
    assert later and uploads(later) == [] and manifest_puts(later) == []
    # and the one GET /v2/ that checks the registry answers before the first push
    assert {e.method for e in later if e.path != "/v2/"} == {"HEAD"}
    assert [e.method for e in later if e.path == "/v2/"] == ["GET"]
    assert "0 blobs uploaded" in run.err


def test_a_base_in_another_repository_is_mounted(example: Path, registry: RunningRegistry) -> None:
    run = push(example, f"{registry.host}/team", "--targets", "base,hello")
    assert run.code == 0, run.text
    assert run.executed.index("push:base") < run.executed.index("push:hello")
    registry.wait_for("PUT", "/v2/team/hello/manifests/1.0")
    log = registry.access_log()
    base_manifest = json.loads(
        (example / "out/oci/blobs/sha256" / index_of(example)["base:1.0"][7:]).read_text()
    )
    mounts = [e for e in log if e.method == "POST" and "mount=" in e.query]
    mounted = {
        e.query.split("mount=")[1].split("&")[0].replace("%3A", ":")
        for e in mounts
        if e.status == 201 and e.path.startswith("/v2/team/hello/")
    }
    assert mounted == {layer["digest"] for layer in base_manifest["layers"]}
    assert all("from=team%2Fbase" in e.query for e in mounts)
    # only repositories that hold the blob already are asked: every mount succeeds
    assert mounts and all(e.status == 201 for e in mounts)
    hello_uploads = [e for e in uploads(log, "team/hello") if e.method == "PUT"]
    assert len(hello_uploads) == 3  # its own two layers and its config


def test_basic_auth_with_docker_credentials(example: Path, tmp_path: Path) -> None:
    with basic_registry(tmp_path / "basic") as registry:
        env = docker_config(tmp_path / "docker", registry)
        run = push(example, f"{registry.host}/example", env=env)
        assert run.code == 0, run.text
        creds = f"--creds={registry.username}:{registry.password}"
        assert (
            skopeo_digest(f"{registry.host}/example/hello:1.0", creds)
            == index_of(example)["hello:1.0"]
        )
        assert registry.password and registry.password not in run.text
        for path in (example / "out").rglob("*"):
            if path.is_file():
                assert registry.password.encode() not in path.read_bytes(), path
        assert registry.password.encode() not in (example / ".doit.db").read_bytes()


def test_basic_auth_refused(example: Path, tmp_path: Path) -> None:
    with basic_registry(tmp_path / "basic") as registry:
        registry.password = "wrong password"
        env = docker_config(tmp_path / "docker", registry)
        run = push(example, f"{registry.host}/example", env=env)
    assert run.code != 0
    assert "Traceback" not in run.text and "wrong password" not in run.text
    errors = [line for line in run.err.splitlines() if line.startswith("error:")]
    # one line: the login is checked once, before the first push to the registry
    assert len(errors) == 1, run.err
    assert errors[0].startswith(f"error: {registry.host}: log in failed: HTTP 401"), errors
    assert not [e for e in registry.access_log() if e.method in ("POST", "PUT", "PATCH")]


def test_token_auth_scopes_and_mounts(example: Path, tmp_path: Path) -> None:
    with token_registry(tmp_path / "token") as registry:
        env = docker_config(tmp_path / "docker", registry)
        run = push(example, f"{registry.host}/team", "--targets", "base,hello", env=env)
        assert run.code == 0, run.text
        requests = list(registry.token_requests)
        assert all(r.credentials and r.status == 200 for r in requests)
        scopes = [set(r.scopes) for r in requests]
        assert {"repository:team/base:pull,push"} in scopes
        assert any(
            {"repository:team/hello:pull,push", "repository:team/base:pull"} <= s for s in scopes
        ), scopes
        # one token per scope set and doit worker (layers upload in workers of their own),
        # not one per request
        sets = {frozenset(s) for s in scopes}
        workers = doit_config()["num_process"]
        assert all(scopes.count(set(s)) <= workers for s in sets), scopes
        assert len(requests) < len(
            [e for e in registry.access_log() if e.path.startswith("/v2/team")]
        )
        log = registry.access_log()
        assert [e for e in log if "mount=" in e.query and e.status == 201]
        token = registry.tokens.issue(registry.username, ["repository:team/hello:pull"])[0]
        assert registry.password and registry.password not in run.text
        assert token.split(".")[0] not in run.text


@pytest.mark.parametrize("n", [5])
def test_retries_get_a_push_through_faults(example: Path, tmp_path: Path, n: int) -> None:
    with open_registry(tmp_path / "clean") as clean:
        assert push(copy_example(tmp_path / "clean-ws"), f"{clean.host}/example").code == 0
        expected = {name: skopeo_digest(f"{clean.host}/example/{name}:1.0") for name in IMAGES}
    with open_registry(tmp_path / "faulty") as registry, fault_proxy(registry.host) as proxy:
        proxy.every_nth(
            n,
            [
                Fault("status", status=500),
                Fault("reset"),
                Fault("status", status=429, retry_after="1"),
                Fault("status", status=502),
                Fault("truncate"),
                Fault("status", status=503),
            ],
        )
        run = push(example, f"{proxy.host}/example", env={"INSECURE_REGISTRIES": proxy.host})
        assert run.code == 0, run.text
        faulted = [s for s in proxy.seen if s[2] != "forward"]
        assert len(faulted) >= 5
        assert "retrying" in run.err
        for name in IMAGES:
            assert skopeo_digest(f"{registry.host}/example/{name}:1.0") == expected[name]


def test_faults_that_never_stop_fail_the_run_with_the_last_status(
    example: Path, tmp_path: Path
) -> None:
    with open_registry(tmp_path / "reg") as registry, fault_proxy(registry.host) as proxy:
        proxy.add(Fault("status", status=503, times=10_000))
        run = push(
            example,
            f"{proxy.host}/example",
            env={"INSECURE_REGISTRIES": proxy.host, "REGISTRY_DEADLINE": "3"},
        )
    assert run.code != 0 and "Traceback" not in run.text
    errors = [line for line in run.err.splitlines() if line.startswith("error:")]
    # one line: the registry is asked once before the first push to it
    assert len(errors) == 1, run.err
    assert errors[0].startswith(f"error: {proxy.host}: log in failed: HTTP 503")
    assert "tries" in errors[0]


def test_an_unreachable_registry_fails_within_the_deadline(example: Path) -> None:
    import time

    started = time.monotonic()
    run = push(example, "127.0.0.1:1/example", env={"REGISTRY_DEADLINE": "4"})
    assert run.code != 0 and "Traceback" not in run.text
    assert "cannot reach http://127.0.0.1:1" in run.err
    assert time.monotonic() - started < 40


def test_a_multi_platform_image_is_pushed_as_an_index(
    example: Path, registry: RunningRegistry
) -> None:
    run = push(
        example,
        f"{registry.host}/multi",
        "--targets",
        "hello",
        env={"DOCKER_ARCHITECTURES": "linux/amd64,linux/arm64"},
    )
    assert run.code == 0, run.text
    result = subprocess.run(
        [
            "skopeo",
            "inspect",
            "--raw",
            "--tls-verify=false",
            f"docker://{registry.host}/multi/hello:1.0",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    index = json.loads(result.stdout)
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [(m["platform"]["os"], m["platform"]["architecture"]) for m in index["manifests"]] == [
        ("linux", "amd64"),
        ("linux", "arm64"),
    ]
    assert skopeo_digest(f"{registry.host}/multi/hello:1.0") == index_of(example)["hello:1.0"]


def test_every_hub_and_tag(example: Path, registry: RunningRegistry, tmp_path: Path) -> None:
    with open_registry(tmp_path / "second") as second:
        run = doit(
            example,
            "build_images",
            "--push",
            "--targets",
            "hello",
            "--hub",
            f"{registry.host}/a,{second.host}/b",
            "--tag",
            "1.0,latest",
        )
        assert run.code == 0, run.text
        digest = index_of(example)["hello:1.0"]
        for reference in (
            f"{registry.host}/a/hello:1.0",
            f"{registry.host}/a/hello:latest",
            f"{second.host}/b/hello:1.0",
            f"{second.host}/b/hello:latest",
        ):
            assert skopeo_digest(reference) == digest
        second.wait_for("PUT", "/v2/b/hello/manifests/latest")
        # the manifest goes by digest once, then each tag
        puts = [e.path for e in manifest_puts(second.access_log())]
        assert puts == [
            f"/v2/b/hello/manifests/{digest}",
            "/v2/b/hello/manifests/1.0",
            "/v2/b/hello/manifests/latest",
        ]


@pytest.mark.skipif(
    shutil.which("aarch64-linux-gnu-gcc") is None and shutil.which("x86_64-linux-gnu-gcc") is None,
    reason="no cross compiler: .ci/install --test installs one",
)
def test_one_machine_per_platform_then_push_index(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    hub = f"{registry.host}/multi"
    for arch in ("amd64", "arm64"):  # two runners, one platform each
        runner = copy_example(tmp_path / f"runner-{arch}")
        run = doit(
            runner,
            "build_images",
            "--push",
            "--platform-tags",
            "--hub",
            hub,
            "--tag",
            "1.0",
            "--targets",
            "hello",
            env={"DOCKER_ARCHITECTURES": f"linux/{arch}"},
        )
        assert run.code == 0, run.text
        assert f"pushed {hub}/hello:1.0-{arch}@" in run.err
    registry.wait_for("PUT", "/v2/multi/hello/manifests/1.0-arm64")
    before = len(registry.access_log())
    joiner = copy_example(tmp_path / "joiner")
    run = doit(
        joiner,
        "push_index",
        "--hub",
        hub,
        "--tag",
        "1.0",
        "--targets",
        "hello",
        env={"DOCKER_ARCHITECTURES": "linux/amd64,linux/arm64"},
    )
    assert run.code == 0, run.text
    assert run.executed == ["index:hello"]  # nothing is built
    assert not (joiner / "out").exists()
    registry.wait_for("PUT", "/v2/multi/hello/manifests/1.0")
    log = registry.access_log()[before:]
    layer_gets = [e for e in log if e.method == "GET" and "/blobs/" in e.path]
    assert len(layer_gets) == 2  # the two configs, no layer
    assert not [e for e in log if "/blobs/uploads/" in e.path]
    raw = json.loads(
        subprocess.run(
            ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{hub}/hello:1.0"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert [m["platform"]["architecture"] for m in raw["manifests"]] == ["amd64", "arm64"]
    for entry, arch in zip(raw["manifests"], ("amd64", "arm64"), strict=True):
        assert entry["digest"] == skopeo_digest(f"{hub}/hello:1.0-{arch}")
