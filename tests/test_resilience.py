"""Faults, killed runs, two runs at once, a full disk, TLS, layer safety and secrets: doit-oci
keeps working, loses nothing, trusts nothing half-made and leaks nothing."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from faults import Fault, fault_proxy
from registries import (
    SERVICE,
    TokenRegistry,
    basic_registry,
    open_registry,
    tls_registry,
    token_registry,
)
from support import REPO, copy_example, doit, index_of


def big_workspace(root: Path, megabytes: int) -> Path:
    """A plan of one image holding one large file (random: it does not compress)."""
    (root / "plans").mkdir(parents=True)
    (root / "dodo.py").write_text((REPO / "dodo.py").read_text())
    with open(root / "big.bin", "wb") as out:
        for _ in range(megabytes):
            out.write(os.urandom(1 << 20))
    (root / "small.txt").write_text("small\n")
    (root / "Dockerfile").write_text("FROM scratch\nCOPY small.txt /small.txt\nCOPY big.bin /big\n")
    (root / "plans/images.yaml").write_text(
        "images:\n- name: big\n  dockerfile: Dockerfile\n  files: [big.bin, small.txt]\n"
    )
    return root


def start(workspace: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    full = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "doit", *args],
        cwd=workspace,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def kill(process: subprocess.Popen[str]) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)


def wait_for(predicate: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def assert_whole_layout(workspace: Path) -> None:
    """Every blob of out/oci matches its name, and every image's blobs are there."""
    run = doit(workspace, "verify")
    assert run.code == 0, run.text
    assert "every blob of" in run.out
    for name in index_of(workspace):
        subprocess.run(
            ["skopeo", "inspect", f"oci:{workspace}/out/oci:{name}"],
            capture_output=True,
            check=True,
        )


def assert_whole_in_registry(reference: str, tmp_path: Path) -> None:
    """skopeo copies the image out of the registry, checking every blob's digest."""
    target = tmp_path / f"pulled-{time.monotonic_ns()}"
    subprocess.run(
        [
            "skopeo",
            "copy",
            "--src-tls-verify=false",
            "--preserve-digests",
            f"docker://{reference}",
            f"oci:{target}:x",
        ],
        capture_output=True,
        check=True,
    )


def test_faults_of_every_kind_one_request_in_five(example: Path, tmp_path: Path) -> None:
    with open_registry(tmp_path / "clean") as clean:
        assert (
            doit(
                copy_example(tmp_path / "c"), "build_images", "--push", "--hub", f"{clean.host}/e"
            ).code
            == 0
        )
        expected = index_of(tmp_path / "c")
    with open_registry(tmp_path / "faulty") as registry, fault_proxy(registry.host) as proxy:
        proxy.every_nth(
            5,
            [
                Fault("status", status=500),
                Fault("reset"),
                Fault("status", status=429, retry_after="1"),
                Fault("status", status=502),
                Fault("truncate"),
                Fault("status", status=503),
                Fault("delay", delay=0.5),
                Fault("stall", delay=0.5),
            ],
        )
        run = doit(
            example,
            "build_images",
            "--push",
            "--hub",
            f"{proxy.host}/e",
            env={"INSECURE_REGISTRIES": proxy.host},
        )
        assert run.code == 0, run.text
        outcomes = {outcome for _, _, outcome in proxy.seen}
        assert {"status 500", "reset", "status 429"} <= outcomes
        assert index_of(example) == expected
        for name in ("hello", "showconfig", "whoami"):
            digest = json.loads(
                subprocess.run(
                    [
                        "skopeo",
                        "inspect",
                        "--tls-verify=false",
                        f"docker://{registry.host}/e/{name}:latest",
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )["Digest"]
            assert digest == expected[f"{name}:latest"]


def test_faults_that_never_stop_fail_within_a_minute_by_default(
    example: Path, tmp_path: Path
) -> None:
    with open_registry(tmp_path / "r") as registry, fault_proxy(registry.host) as proxy:
        proxy.add(Fault("status", status=503, times=100_000))
        started = time.monotonic()
        run = doit(
            example,
            "build_images",
            "--push",
            "--hub",
            f"{proxy.host}/e",
            "--targets",
            "hello",
            env={"INSECURE_REGISTRIES": proxy.host},
        )
        took = time.monotonic() - started
    assert run.code != 0 and took < 60, took
    (line,) = [x for x in run.err.splitlines() if x.startswith("error:")]
    # found by the request that checks the registry before the first push to it
    assert line.startswith(f"error: {proxy.host}: log in failed:") and "HTTP 503" in line


def test_a_token_server_failing_twice_is_retried_and_the_push_succeeds(
    example: Path, tmp_path: Path
) -> None:
    with token_registry(tmp_path / "token", token_faults=True) as registry:
        proxy = registry.token_faults
        assert proxy is not None
        proxy.add(Fault("status", status=503, path_contains="/token", times=2))
        config = tmp_path / "docker" / "config.json"
        config.parent.mkdir()
        secret = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
        config.write_text(json.dumps({"auths": {registry.host: {"auth": secret}}}))
        config.chmod(0o600)
        run = doit(
            example,
            "build_images",
            "--push",
            "--hub",
            f"{registry.host}/t",
            "--targets",
            "hello",
            env={"DOCKER_CONFIG": str(config.parent)},
        )
        assert run.code == 0, run.text
        outcomes = [outcome for _, target, outcome in proxy.seen if target.startswith("/token")]
        assert outcomes[:3] == ["status 503", "status 503", "forward"]
        assert registry.token_requests and all(r.status == 200 for r in registry.token_requests)
        retried = [line for line in run.err.splitlines() if "HTTP 503, retrying" in line]
        assert len(retried) == 2, run.err
        assert all(f"token server http://{proxy.host}/token" in line for line in retried)
        pushed = registry.wait_for("PUT", "/v2/t/hello/manifests/latest", status=201)
        assert pushed.status == 201
        token = httpx.get(
            registry.tokens.realm,  # the token server itself, not through the proxy
            params={"service": SERVICE, "scope": "repository:t/hello:pull"},
            auth=(registry.username or "", registry.password or ""),
        ).json()["token"]
        answer = httpx.head(
            f"http://{registry.host}/v2/t/hello/manifests/latest",
            headers={
                "Accept": "application/vnd.oci.image.manifest.v1+json",
                "Authorization": f"Bearer {token}",
            },
        )
        assert answer.headers["Docker-Content-Digest"] == index_of(example)["hello:latest"]


def test_a_push_killed_in_a_large_upload(tmp_path: Path) -> None:
    workspace = big_workspace(tmp_path / "ws", 96)
    with open_registry(tmp_path / "r") as registry, fault_proxy(registry.host) as proxy:
        # the big blob's upload stalls halfway long enough to be killed there
        proxy.add(Fault("stall", method="PUT", path_contains="/blobs/uploads/", delay=30))
        hub = f"{proxy.host}/kill"
        process = start(
            workspace,
            "build_images",
            "--push",
            "--hub",
            hub,
            env={"INSECURE_REGISTRIES": proxy.host},
        )
        wait_for(lambda: any(o == "stall" for _, _, o in proxy.seen))
        time.sleep(0.5)
        kill(process)
        proxy.clear()
        again = doit(
            workspace,
            "build_images",
            "--push",
            "--hub",
            hub,
            env={"INSECURE_REGISTRIES": proxy.host},
        )
        assert again.code == 0, again.text
        assert_whole_in_registry(f"{registry.host}/kill/big:latest", tmp_path)
        assert_whole_layout(workspace)


def test_a_build_killed_while_writing_a_layer(tmp_path: Path) -> None:
    workspace = big_workspace(tmp_path / "ws", 400)
    process = start(workspace, "build_images")
    tmp = workspace / "out" / "tmp"
    wait_for(lambda: tmp.is_dir() and any(p.name.startswith("blob-") for p in tmp.iterdir()))
    kill(process)
    leftovers = [p.name for p in tmp.iterdir()]
    assert leftovers  # a half-written blob, which nothing trusts
    again = doit(workspace, "build_images")
    assert again.code == 0, again.text
    assert "layer:big.1" in again.executed
    assert_whole_layout(workspace)
    gc = doit(workspace, "gc")
    assert gc.code == 0 and not list(tmp.iterdir())


def test_verify_finds_and_removes_damage_that_the_next_build_repairs(example: Path) -> None:
    assert doit(example, "build_images").code == 0
    digest = index_of(example)["hello:latest"]
    manifest = json.loads((example / "out/oci/blobs/sha256" / digest[7:]).read_text())
    layer = example / "out/oci/blobs/sha256" / manifest["layers"][-2]["digest"][7:]
    layer.write_bytes(layer.read_bytes()[:-10] + b"0123456789")  # bit rot
    run = doit(example, "verify")
    assert run.code != 0 and "Traceback" not in run.text
    assert f"blob sha256:{layer.name} held other bytes: removed" in run.out
    assert "error: verify: " in run.err and "run the build again" in run.err
    assert not layer.exists()
    again = doit(example, "build_images")
    assert again.code == 0 and any(t.startswith("layer:hello") for t in again.executed)
    assert index_of(example)["hello:latest"] == digest
    assert_whole_layout(example)


def test_two_runs_at_once_in_one_workspace(example: Path) -> None:
    makefile = example / "Makefile"
    makefile.write_text(
        makefile.read_text().replace("\t@mkdir -p $(@D)\n", "\t@mkdir -p $(@D)\n\tsleep 1\n")
    )
    first = start(example, "build_images")
    time.sleep(0.5)
    second = start(example, "build_images")
    _, err1 = first.communicate(timeout=120)
    _, err2 = second.communicate(timeout=120)
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    assert "waiting: another run (pid " in err2
    assert "Traceback" not in err1 + err2
    third = doit(example, "build_images")
    assert third.code == 0 and third.executed == []  # doit's state is whole
    assert_whole_layout(example)


def test_a_full_disk_under_the_whole_workspace_is_one_line_per_cause(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        workspace = big_workspace(disk / "ws", 1)  # the sources fit, their layers do not
        run = doit(workspace, "build_images")
        assert run.code != 0 and "Traceback" not in run.text, run.text
        errors = [x for x in run.err.splitlines() if x.startswith("error:")]
        assert errors and len(errors) == len(set(errors)), run.err  # each cause once
        assert all(" No space left on device" in x or "could not be saved" in x for x in errors)
        assert all(x.startswith(f"error: {disk}") or "doit.db" in x for x in errors), errors
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_a_full_disk_while_writing_a_layer(tmp_path: Path) -> None:
    workspace = big_workspace(tmp_path / "ws", 6)
    cache = tmp_path / "small-disk"
    cache.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(cache)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        run = doit(workspace, "build_images", "--cache-dir", str(cache))
        assert run.code != 0 and "Traceback" not in run.text
        # one line per cause; layer tasks running side by side may each meet the full disk
        # where they write (the store, their record), each named
        lines = [x for x in run.err.splitlines() if x.startswith("error:")]
        assert lines and any(x.startswith(f"error: {cache}/oci: ") for x in lines), lines
        for line in lines:
            assert line.startswith(f"error: {cache}/") and "No space left on device" in line
            assert "free some space there, or put the state elsewhere with --cache-dir" in line
        leftovers = [p for p in (cache / "tmp").rglob("*")] if (cache / "tmp").exists() else []
        assert leftovers == []  # the half-written blob is gone
        blobs = cache / "oci" / "blobs" / "sha256"
        for blob in blobs.iterdir() if blobs.exists() else ():
            import hashlib

            assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name
    finally:
        subprocess.run(["umount", str(cache)], check=False)


def _loopback_name() -> str | None:
    name = socket.gethostname()
    try:
        address = socket.gethostbyname(name)
    except OSError:
        return None
    return name if address.startswith("127.") and name != "localhost" else None


@pytest.mark.skipif(_loopback_name() is None, reason="this machine's name is not loopback")
def test_a_tls_certificate_that_does_not_verify(example: Path, tmp_path: Path) -> None:
    name = _loopback_name()
    assert name is not None
    with tls_registry(tmp_path / "tls", name) as registry:
        started = time.monotonic()
        run = doit(
            example, "build_images", "--push", "--hub", f"{registry.host}/t", "--targets", "hello"
        )
        assert run.code != 0 and "Traceback" not in run.text
        assert time.monotonic() - started < 30  # not retried: it cannot get better
        (line,) = [x for x in run.err.splitlines() if x.startswith("error:")]
        assert f"the TLS certificate of https://{registry.host} does not verify" in line
        assert "SSL_CERT_FILE" in line
        trusted = doit(
            example,
            "build_images",
            "--push",
            "--hub",
            f"{registry.host}/t",
            "--targets",
            "hello",
            env={"SSL_CERT_FILE": str(tmp_path / "tls" / "ca.pem")},
        )
        assert trusted.code == 0, trusted.text


def test_layers_never_leave_the_root_nor_the_context(tmp_path: Path) -> None:
    import tarfile

    workspace = tmp_path / "ws"
    context = workspace / "ctx"
    (context / "sub").mkdir(parents=True)
    (workspace / "plans").mkdir()
    (workspace / "dodo.py").write_text((REPO / "dodo.py").read_text())
    (context / "sub" / "tool").write_text("#!/bin/sh\n")
    os.chmod(context / "sub" / "tool", 0o4755)  # setuid, kept since the source has it
    (context / "sub" / "plain").write_text("plain\n")
    os.chmod(context / "sub" / "plain", 0o644)
    os.symlink("/etc/shadow", context / "sub" / "escape")  # kept as a link, not followed
    os.symlink("../../../../etc", context / "sub" / "up")
    os.link(context / "sub" / "plain", context / "sub" / "again")  # stored once
    (context / "Dockerfile").write_text("FROM scratch\nWORKDIR /app\nCOPY sub ../../../srv/\n")
    (workspace / "plans/images.yaml").write_text("images:\n- name: safe\n  context: ctx\n")
    run = doit(workspace, "build_images")
    assert run.code == 0, run.text
    digest = index_of(workspace)["safe:latest"]
    blobs = workspace / "out/oci/blobs/sha256"
    manifest = json.loads((blobs / digest[7:]).read_text())
    members = {}
    for layer in manifest["layers"]:
        with tarfile.open(blobs / layer["digest"][7:]) as tar:
            for member in tar.getmembers():
                assert not member.name.startswith("/") and ".." not in member.name.split("/")
                members[member.name.rstrip("/")] = member
    assert members["srv/escape"].issym() and members["srv/escape"].linkname == "/etc/shadow"
    assert members["srv/up"].issym()
    assert members["srv/tool"].mode & 0o4000 and not members["srv/plain"].mode & 0o6000
    links = [m for m in (members["srv/again"], members["srv/plain"]) if m.islnk()]
    assert len(links) == 1 and links[0].size == 0  # the bytes once, a hard link for the other
    assert "etc/shadow" not in members


@pytest.mark.parametrize("scheme", ["basic", "bearer"])
def test_secrets_are_never_printed_nor_written(example: Path, tmp_path: Path, scheme: str) -> None:
    serve = basic_registry if scheme == "basic" else token_registry
    with serve(tmp_path / scheme) as registry:
        config = tmp_path / "docker" / "config.json"
        config.parent.mkdir()
        secret = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
        config.write_text(json.dumps({"auths": {registry.host: {"auth": secret}}}))
        config.chmod(0o644)  # readable by others: a warning
        run = doit(
            example,
            "build_images",
            "--push",
            "--hub",
            f"{registry.host}/s",
            env={"DOCKER_CONFIG": str(config.parent)},
        )
        assert run.code == 0, run.text
        assert "readable by other users" in run.err
        tokens = list(registry.tokens.issued) if isinstance(registry, TokenRegistry) else []
        assert bool(tokens) == (scheme == "bearer")
        pushed = [
            e
            for e in registry.access_log()
            if e.method == "PUT" and "/manifests/" in e.path and e.status == 201
        ]
        assert pushed  # the credentials were really used
    assert registry.password
    secrets = [registry.password.encode(), secret.encode(), *(t.encode() for t in tokens)]
    written = [p for p in (example / "out").rglob("*") if p.is_file()]
    written += [p for p in example.glob(".doit.db*") if p.is_file()]
    assert written
    for path in written:
        data = path.read_bytes()
        for value in secrets:
            assert value not in data, path
    for value in secrets:
        assert value.decode() not in run.text


def test_a_token_server_that_cannot_be_reached_is_named(example: Path, tmp_path: Path) -> None:
    with token_registry(tmp_path / "token", token_faults=True) as registry:
        proxy = registry.token_faults
        assert proxy is not None
        proxy.add(Fault("reset", path_contains="/token", times=1000))
        run = doit(
            example,
            "build_images",
            "--push",
            "--hub",
            f"{registry.host}/t",
            "--targets",
            "hello",
            env={"REGISTRY_DEADLINE": "3"},
        )
        assert run.code == 1 and "Traceback" not in run.text
        (line,) = [x for x in run.err.splitlines() if x.startswith("error:")]
        # the registry answered every GET /v2/: the realm is the host that is down
        assert f"cannot reach http://{proxy.host}" in line, line
        assert f"check that http://{proxy.host}, the token server {registry.host} names" in line


def test_a_blob_acknowledged_but_not_kept_fails_the_push(example: Path, tmp_path: Path) -> None:
    with open_registry(tmp_path / "reg") as registry, fault_proxy(registry.host) as proxy:
        # the registry's answer to the last PUT of an upload, without the blob behind it
        proxy.add(Fault("status", status=201, method="PUT", path_contains="/blobs/uploads/"))
        run = doit(
            example, "build_images", "--push", "--hub", f"{proxy.host}/t", "--targets", "base"
        )
        assert run.code == 1 and "Traceback" not in run.text
        (line,) = [x for x in run.err.splitlines() if x.startswith("error:")]
        assert "the registry acknowledged the blob but does not have it" in line
        again = doit(
            example, "build_images", "--push", "--hub", f"{proxy.host}/t", "--targets", "base"
        )
        assert again.code == 0, again.text  # nothing was recorded as pushed: sent again


def test_verify_remote_finds_what_a_registry_lost_and_the_next_push_repairs_it(
    example: Path, tmp_path: Path
) -> None:
    with open_registry(tmp_path / "reg") as registry:
        hub = f"{registry.host}/t"
        assert doit(example, "build_images", "--push", "--hub", hub, "--targets", "hello").code == 0
        assert "every pushed image is whole" in doit(example, "verify", "--remote").out
        manifest = json.loads(
            (example / "out/oci/blobs/sha256" / index_of(example)["hello:latest"][7:]).read_text()
        )
        lost = manifest["layers"][-1]["digest"]
        link = registry.root / "storage/docker/registry/v2/repositories/t/hello/_layers"
        (link / "sha256" / lost[7:] / "link").unlink()  # the registry loses it
        nothing = doit(example, "build_images", "--push", "--hub", hub, "--targets", "hello")
        assert nothing.executed == []  # doit's state says pushed: no request
        found = doit(example, "verify", "--remote")
        assert found.code == 1 and "Traceback" not in found.text
        assert f"verify: blob {lost} of {hub}/hello:latest is missing from {hub}/hello" in found.out
        assert "push again: what is missing is sent again" in found.err
        before = len(registry.access_log())
        repaired = doit(example, "build_images", "--push", "--hub", hub, "--targets", "hello")
        assert repaired.code == 0 and "push:hello" in repaired.executed
        log = registry.access_log()[before:]
        sent = [e.query for e in log if e.method == "PUT" and "digest=" in e.query]
        assert len(sent) == 1 and sent[0].endswith(f"digest={lost.replace(':', '%3A')}"), sent
        assert "every pushed image is whole" in doit(example, "verify", "--remote").out


def test_kill_9_of_doit_alone_frees_the_workspace_for_the_next_run(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    (workspace / "plans").mkdir(parents=True)
    (workspace / "dodo.py").write_text((REPO / "dodo.py").read_text())
    (workspace / "Makefile").write_text("$(TARGET_OUT)/slow:\n\tsleep 30\n")
    (workspace / "slow.Dockerfile").write_text("FROM scratch\nCOPY slow /slow\n")
    (workspace / "plans/images.yaml").write_text(
        "images:\n- name: slow\n  dockerfile: slow.Dockerfile\n  targets: ['${TARGET_OUT}/slow']\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "doit", "build_images"],
        cwd=workspace,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while (
        time.monotonic() < deadline
        and not subprocess.run(["pgrep", "-f", "sleep 30"], capture_output=True, check=False).stdout
    ):
        time.sleep(0.1)  # make runs in a worker: the run is under way
    process.kill()  # SIGKILL to the main process alone
    process.wait()
    time.sleep(0.5)
    (workspace / "Makefile").write_text("$(TARGET_OUT)/slow:\n\tmkdir -p $(@D) && touch $@\n")
    started = time.monotonic()
    run = doit(workspace, "build_images", timeout=60)
    assert run.code == 0, run.text
    assert "waiting: another run" not in run.err  # its workers died with it
    assert time.monotonic() - started < 20
    subprocess.run(["pkill", "-f", "sleep 30"], check=False)


def test_a_lock_held_for_a_run_that_is_gone_is_taken_over(tmp_path: Path) -> None:
    workspace = copy_example(tmp_path / "ws")
    lock = workspace / ".doit.db.lock"
    dead = subprocess.Popen(["true"])
    dead.wait()
    lock.write_text(f"pid {dead.pid}\n")
    # what an older run's orphaned worker did: it holds the lock for nobody
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time; f = open(sys.argv[1], 'a+');"
            " fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
            str(lock),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    run = doit(workspace, "build_images", timeout=60)
    assert run.code == 0, run.text
    assert f"taking over the lock of a run (pid {dead.pid}) that is gone" in run.err
    assert holder.wait(timeout=10) != 0  # stopped
