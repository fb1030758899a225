"""The remote layer cache (--cache-repo) between runners that start empty, against a real
registry: what they build, upload, mount and download."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from registries import RunningRegistry
from support import copy_example, doit, index_of


def layer_digests(workspace: Path) -> set[str]:
    """The digests of every layer of the images of a workspace, from its records."""
    digests = set()
    for record in (workspace / "out/build").rglob("layer-*.json"):
        if not record.name.endswith(".inputs.json"):
            data = json.loads(record.read_text())
            if "descriptor" in data:
                digests.add(data["descriptor"]["digest"])
    return digests


def table_rows(err: str) -> dict[str, list[str]]:
    return {
        line.split()[0]: line.split()
        for line in err.splitlines()
        if line.startswith(("hello ", "whoami ", "showconfig "))
    }


def test_a_fresh_runner_takes_layers_from_the_cache(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    cache = f"{registry.host}/team/cache"
    first = copy_example(tmp_path / "runner-a")
    run = doit(
        first, "build_images", "--push", "--hub", f"{registry.host}/a", "--cache-repo", cache
    )
    assert run.code == 0, run.text
    assert table_rows(run.err)["hello"][1] == "2/0/0"  # built, and put in the cache
    layers = layer_digests(first)
    registry.wait_for("PUT", "/v2/a/showconfig/manifests/latest")
    before = len(registry.access_log())

    second = copy_example(tmp_path / "runner-b")  # another machine: nothing local
    run = doit(
        second, "build_images", "--push", "--hub", f"{registry.host}/b", "--cache-repo", cache
    )
    assert run.code == 0, run.text
    assert table_rows(run.err)["hello"][1] == "0/2/0"  # nothing compressed: from the cache
    assert index_of(second) == index_of(first)
    registry.wait_for("PUT", "/v2/b/showconfig/manifests/latest")
    log = registry.access_log()[before:]
    uploaded = {
        e.query.split("digest=")[1].replace("%3A", ":")
        for e in log
        if e.method == "PUT" and "digest=" in e.query
    }
    assert not uploaded & layers  # no layer sent again: mounted from the cache repository
    mounted = [e for e in log if "mount=" in e.query and e.status == 201]
    assert any("from=team%2Fcache" in e.query for e in mounted)
    assert all("from=team%2Fcache" in e.query or "from=b%2F" in e.query for e in mounted)
    local = {f"sha256:{p.name}" for p in (second / "out/oci/blobs/sha256").iterdir()}
    assert not local & layers  # and never downloaded to be pushed

    # without the cache, a fresh runner compresses and uploads every layer
    third = copy_example(tmp_path / "runner-c")
    run = doit(third, "build_images", "--push", "--hub", f"{registry.host}/c")
    assert run.code == 0 and table_rows(run.err)["hello"][1] == "2/0/0"


def test_a_layout_from_the_cache_holds_whole_images(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    cache = f"{registry.host}/team/cache"
    first = copy_example(tmp_path / "runner-a")
    assert doit(first, "build_images", "--cache-repo", cache).code == 0
    second = copy_example(tmp_path / "runner-b")
    run = doit(second, "build_images", "--cache-repo", cache)
    assert run.code == 0, run.text
    assert table_rows(run.err)["whoami"][1] == "0/2/0"
    assert index_of(second) == index_of(first)
    for layer in layer_digests(second):  # fetched into the store, whole
        assert (second / "out/oci/blobs/sha256" / layer[7:]).is_file()
    subprocess.run(
        [
            "umoci",
            "unpack",
            "--rootless",
            "--image",
            f"{second}/out/oci:whoami:latest",
            str(tmp_path / "bundle"),
        ],
        capture_output=True,
        check=True,
    )
    assert (tmp_path / "bundle/rootfs/usr/local/bin/whoami").read_bytes() == (
        second / "out/linux_amd64/whoami"
    ).read_bytes()


def test_an_unreachable_cache_only_warns(example: Path) -> None:
    run = doit(
        example, "build_images", "--cache-repo", "127.0.0.1:1/cache", env={"REGISTRY_DEADLINE": "1"}
    )
    assert run.code == 0, run.text
    assert "warning: layer cache 127.0.0.1:1/cache" in run.err
    assert table_rows(run.err)["hello"][1] == "2/0/0"


def test_an_unreachable_cache_is_checked_once_and_the_build_goes_on(tmp_path: Path) -> None:
    import time

    workspace = copy_example(tmp_path / "ws")
    started = time.monotonic()
    run = doit(
        workspace,
        "build_images",
        "--cache-repo",
        "127.0.0.1:1/team/cache",  # nothing listens there
        env={"REGISTRY_DEADLINE": "60"},
    )
    spent = time.monotonic() - started
    assert run.code == 0, run.text
    warnings = [line for line in run.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, run.err
    assert warnings[0].startswith(
        "warning: layer cache 127.0.0.1:1/team/cache unreachable: building without it"
    )
    assert "cache-repo" in run.executed and spent < 30  # not a deadline per layer
    assert {"hello:latest", "whoami:latest", "showconfig:latest"} <= set(index_of(workspace))
