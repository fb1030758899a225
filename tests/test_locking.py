"""Pinned bases against real registries on loopback: bases.lock (doit lock, --check, a tag
moved with skopeo), --locked, --offline with the registry stopped, --architectures all on
an index with an attestation entry, and a mirror (a second registry) that lacks a blob or
serves wrong bytes. What was asked is read from the registries' own access logs."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from registries import AccessEntry, RunningRegistry, open_registry
from support import Pushed, Run, doit, index_of, push_base, snapshot

DODO = Path(__file__).resolve().parent.parent / "dodo.py"
PLAN = "images:\n- name: app\n  dockerfile: Dockerfile\n  files: [note.txt]\n"


def workspace(root: Path, base: str, plan: str = PLAN) -> Path:
    (root / "plans").mkdir(parents=True)
    (root / "dodo.py").write_text(DODO.read_text())
    (root / "note.txt").write_text("a note\n")
    (root / "Dockerfile").write_text(f"FROM {base}\nCOPY note.txt /srv/note.txt\n")
    (root / "plans/images.yaml").write_text(plan)
    return root


def ok(run: Run) -> Run:
    assert run.code == 0, run.text
    assert "Traceback" not in run.text
    return run


def errors(run: Run) -> list[str]:
    assert run.code == 1 and "Traceback" not in run.text, run.text
    return [line for line in run.err.splitlines() if line.startswith("error:")]


def settled(registry: RunningRegistry) -> list[AccessEntry]:
    """Every request logged so far: a marker request is sent and waited for, so that what
    a finished run asked is in the log."""
    marker = secrets.token_hex(4)
    httpx.get(f"http://{registry.host}/v2/?marker={marker}")
    registry.wait_for("GET", "/v2/")
    log = registry.access_log()
    while not any(marker in e.query for e in log):
        log = registry.access_log()
    return [e for e in log if "marker=" not in e.query]


def requests(registry: RunningRegistry, since: int) -> list[tuple[str, str]]:
    return [(e.method, e.path) for e in settled(registry)[since:]]


def skopeo_copy(source: str, destination: str) -> None:
    flags = ["--all", "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false"]
    subprocess.run(
        ["skopeo", "copy", *flags, f"docker://{source}", f"docker://{destination}"],
        capture_output=True,
        check=True,
    )


def config_of(root: Path, name: str = "app:latest") -> dict[str, object]:
    result = subprocess.run(
        ["skopeo", "inspect", "--config", f"oci:{root}/out/oci:{name}"],
        capture_output=True,
        text=True,
        check=True,
    )
    config = json.loads(result.stdout)
    assert isinstance(config, dict)
    return config


def test_a_lock_pins_the_base_and_a_moved_tag_is_a_reviewed_change(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    host = registry.host
    one = push_base(host, "library/base", "1.0", ("linux/amd64", "linux/arm64"), "one")
    root = workspace(tmp_path / "ws", one.reference)
    before = len(settled(registry))
    locked = ok(doit(root, "lock"))
    assert f"lock: {one.reference}  (new) -> {one.top[:19]}" in locked.out
    lock = root / "plans/bases.lock"
    assert lock.read_text().endswith(
        "version: 1\nbases:\n"
        f"- reference: {one.reference}\n  index: {one.top}\n  platforms:\n"
        f"    linux/amd64: {one.manifests['linux/amd64']}\n"
        f"    linux/arm64: {one.manifests['linux/arm64']}\n"
    )
    # one HEAD for the tag, the index by its digest
    assert requests(registry, before) == [
        ("HEAD", "/v2/library/base/manifests/1.0"),
        ("GET", f"/v2/library/base/manifests/{one.top}"),
    ]
    before = len(settled(registry))
    ok(doit(root, "build_images", "--locked"))
    asked = requests(registry, before)
    assert asked and not [path for _, path in asked if path.endswith("/manifests/1.0")]
    built = index_of(root)["app:latest"]
    # the tag moves upstream; a build from the lock makes no request and does not follow
    two = push_base(host, "library/base", "2.0", ("linux/amd64", "linux/arm64"), "two")
    skopeo_copy(two.reference, one.reference)
    before = len(settled(registry))
    for args in (("build_images",), ("build_images", "--locked")):
        assert ok(doit(root, *args)).executed == []
    assert requests(registry, before) == []
    assert index_of(root)["app:latest"] == built
    # the scheduled check: one HEAD, nothing written, a failure naming what moved
    pinned = lock.read_bytes()
    check = doit(root, "lock", "--check")
    assert errors(check) == [
        "error: lock --check: plans/bases.lock is not current; run doit lock, review what"
        " moved and commit it"
    ]
    assert f"lock: {one.reference}  {one.top[:19]} -> {two.top[:19]}" in check.out
    assert requests(registry, before) == [("HEAD", "/v2/library/base/manifests/1.0")]
    assert lock.read_bytes() == pinned
    # doit lock records the move, then leaves the file alone
    moved = ok(doit(root, "lock"))
    assert f"lock: {one.reference}  {one.top[:19]} -> {two.top[:19]}" in moved.out
    assert f"index: {two.top}" in lock.read_text()
    mtime = lock.stat().st_mtime_ns
    assert "lock: plans/bases.lock is up to date (1 bases)" in ok(doit(root, "lock")).out
    assert lock.stat().st_mtime_ns == mtime
    assert "is current" in ok(doit(root, "lock", "--check")).out
    # and the next build follows the lock, never asking for the tag
    before = len(settled(registry))
    after = ok(doit(root, "build_images"))
    assert after.executed[0] == f"base:{one.reference}"
    assert not [p for _, p in requests(registry, before) if p.endswith("/manifests/1.0")]
    assert index_of(root)["app:latest"] != built
    assert "BASE_NOTE=two" in config_of(root)["config"]["Env"]  # type: ignore[index]


def test_locked_stops_at_once_for_bases_the_lock_does_not_pin(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    host = registry.host
    base = push_base(host, "library/base", "1.0")
    other = push_base(host, "library/other", "1.0", note="other")
    third = push_base(host, "library/third", "1.0", note="third")
    plan = PLAN + "- name: second\n  dockerfile: second.Dockerfile\n  files: [note.txt]\n"
    root = workspace(tmp_path / "ws", base.reference, plan)
    (root / "second.Dockerfile").write_text(f"FROM {base.reference}\n")
    ok(doit(root, "lock"))
    (root / "Dockerfile").write_text(f"FROM {other.reference}\nCOPY note.txt /srv/note.txt\n")
    (root / "second.Dockerfile").write_text(f"# the second\nFROM {third.reference}\n")
    before, files = len(settled(registry)), snapshot(root / "out")
    for run in (doit(root, "build_images", "--locked"), doit(root, env={"LOCKED": "true"})):
        assert errors(run) == [
            f"error: Dockerfile:1: --locked: {other.reference} is not pinned in"
            " plans/bases.lock; run doit lock and commit the lock (or build without --locked)",
            f"error: second.Dockerfile:2: --locked: {third.reference} is not pinned in"
            " plans/bases.lock; run doit lock and commit the lock (or build without --locked)",
        ]
        assert run.out == ""
    assert requests(registry, before) == [] and snapshot(root / "out") == files
    # a plain build follows the tags, and says so; doit lock then pins them
    plain = ok(doit(root, "build_images"))
    assert f"warning: {other.reference} is not pinned in plans/bases.lock" in plain.err
    assert ("HEAD", "/v2/library/other/manifests/1.0") not in requests(registry, before)
    assert ("GET", "/v2/library/other/manifests/1.0") in requests(registry, before)
    relocked = ok(doit(root, "lock"))
    assert f"lock: {base.reference}  {base.top[:19]} -> (gone)" in relocked.out
    assert f"lock: {other.reference}  (new) -> {other.top[:19]}" in relocked.out
    # a lone manifest is pinned by its digest, under its one platform
    assert (
        f"- reference: {other.reference}\n  platforms:\n    linux/amd64: {other.top}\n"
        in (root / "plans/bases.lock").read_text()
    )
    before = len(settled(registry))
    assert ok(doit(root, "build_images", "--locked")).executed == []
    assert requests(registry, before) == []


def test_offline_builds_from_the_lock_and_the_store_and_names_what_is_missing(
    tmp_path: Path,
) -> None:
    plan = PLAN + "- name: late\n  dockerfile: late.Dockerfile\n"
    with open_registry(tmp_path / "registry") as registry:
        base = push_base(registry.host, "library/base", "1.0", ("linux/amd64", "linux/arm64"))
        never = push_base(registry.host, "library/never", "1.0", note="never fetched")
        root = workspace(tmp_path / "ws", base.reference, plan)
        (root / "late.Dockerfile").write_text(f"FROM {never.reference}\n")
        ok(doit(root, "lock"))
        ok(doit(root, "build_images", "--targets", "app"))
        built = index_of(root)["app:latest"]
    # the registry is gone: a fresh state (no records, no doit database) builds the same
    shutil.rmtree(root / "out/build")
    (root / ".doit.db").unlink()
    slow = {"REGISTRY_DEADLINE": "1"}
    offline = ok(doit(root, "build_images", "--offline", "--targets", "app", env=slow))
    assert offline.executed[0] == f"base:{base.reference}"
    assert index_of(root)["app:latest"] == built
    # a base whose layer the store never got, and one that only a tag names: a line each
    (root / "Dockerfile").write_text("FROM 127.0.0.1:9/library/unpinned:2\n")
    files = snapshot(root / "out")
    missing = doit(root, "build_images", env={**slow, "OFFLINE": "true"})
    layer = json.loads((root / "out/oci/blobs/sha256" / never.top[7:]).read_bytes())["layers"][0]
    store = "out/oci"
    assert errors(missing) == [
        "error: Dockerfile:1: --offline: 127.0.0.1:9/library/unpinned:2 is named by a tag and"
        " not pinned in plans/bases.lock; run doit lock, then doit build_images, without"
        " --offline",
        f"error: late.Dockerfile:1: --offline: {registry.host}/library/never@{layer['digest']}"
        f" is not in {store} (of {never.reference} for linux/amd64); run doit build_images"
        " once without --offline to fetch it",
    ]
    assert snapshot(root / "out") == files
    for flags in (["--push", "--hub", "127.0.0.1:9/x"], ["--cache-repo", "127.0.0.1:9/cache"]):
        refused = doit(root, "build_images", "--offline", *flags)
        assert errors(refused) == [
            f"error: options: --offline makes no request: it cannot go with {flags[0]}; give"
            f" --offline or {flags[0]} (and OFFLINE, PUSH, CACHE_REPO), not both"
        ]


def test_architectures_all_builds_the_platforms_of_the_base_not_its_attestations(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    base = push_base(
        registry.host, "library/base", "1.0", ("linux/amd64", "linux/arm64"), attestation=True
    )
    root = workspace(tmp_path / "ws", base.reference)
    run = ok(doit(root, "build_images", "--architectures", "all"))
    assert f"--architectures all: linux/amd64, linux/arm64 (offered by {base.reference})" in (
        run.err
    )
    index = json.loads(
        (root / "out/oci/blobs/sha256" / index_of(root)["app:latest"][7:]).read_text()
    )
    assert [m["platform"] for m in index["manifests"]] == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm64", "os": "linux"},
    ]
    for entry in index["manifests"]:
        manifest = json.loads((root / "out/oci/blobs/sha256" / entry["digest"][7:]).read_text())
        config = json.loads(
            (root / "out/oci/blobs/sha256" / manifest["config"]["digest"][7:]).read_text()
        )
        assert config["architecture"] == entry["platform"]["architecture"]
    # the plan's platforms: still narrow it
    (root / "plans/images.yaml").write_text(PLAN + "  platforms: [linux/arm64]\n")
    narrowed = ok(doit(root, "build_images", "--architectures", "all"))
    assert "--architectures all: linux/arm64 (offered by" in narrowed.err
    assert config_of(root)["architecture"] == "arm64"


@pytest.fixture
def mirrored(tmp_path: Path) -> Iterator[tuple[RunningRegistry, RunningRegistry, Pushed]]:
    """An origin registry with a base, and a mirror (another registry) holding a copy."""
    with open_registry(tmp_path / "origin") as origin, open_registry(tmp_path / "mirror") as mirror:
        base = push_base(origin.host, "library/base", "1.0", note="mirrored")
        skopeo_copy(base.reference, f"{mirror.host}/library/base:1.0")
        yield origin, mirror, base


def layer_of(registry: RunningRegistry, pushed: Pushed) -> str:
    answer = httpx.get(
        f"http://{registry.host}/v2/library/base/manifests/{pushed.top}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    return str(answer.json()["layers"][0]["digest"])


def test_a_mirror_is_read_first_and_a_blob_it_lacks_comes_from_the_registry(
    mirrored: tuple[RunningRegistry, RunningRegistry, Pushed], tmp_path: Path
) -> None:
    origin, mirror, base = mirrored
    layer = layer_of(origin, base)
    gone = httpx.delete(f"http://{mirror.host}/v2/library/base/blobs/{layer}")
    assert gone.status_code == 202
    plain = workspace(tmp_path / "plain", base.reference)
    ok(doit(plain, "build_images"))
    root = workspace(tmp_path / "ws", base.reference)
    start, mirror_start = len(settled(origin)), len(settled(mirror))
    # the first mirror does not answer: left out after one try; the second lacks a blob
    mirrors = f"{origin.host}=127.0.0.1:9,{origin.host}={mirror.host}"
    run = ok(doit(root, "build_images", "--sbom", env={"REGISTRY_MIRRORS": mirrors}))
    warnings = [line for line in run.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2, run.err
    assert warnings[0].startswith(f"warning: mirror 127.0.0.1:9 of {origin.host} skipped: ")
    assert warnings[0].endswith("(not asked again in this run)")
    assert warnings[1].startswith(
        f"warning: mirror {mirror.host} of {origin.host} skipped: download blob {layer[:19]}:"
        " HTTP 404 BLOB_UNKNOWN"
    )
    assert requests(origin, start) == [("GET", f"/v2/library/base/blobs/{layer}")]
    assert ("GET", "/v2/library/base/manifests/1.0") in requests(mirror, mirror_start)
    # the same image as without the mirror: it names the registry, not the mirror
    assert index_of(root) == index_of(plain)
    record = (
        root
        / "out/build/linux_amd64/_bases"
        / (base.reference.replace(":", "_").replace("/", "_") + ".json")
    )
    assert json.loads(record.read_text())["reference"] == base.reference
    # its annotations and its SBOM name the base's registry, never the mirror
    blobs = root / "out/oci/blobs/sha256"
    manifest = json.loads((blobs / index_of(root)["app:latest"][7:]).read_text())
    assert manifest["annotations"]["org.opencontainers.image.base.name"] == base.reference
    assert manifest["annotations"]["org.opencontainers.image.base.digest"] == base.top
    (sbom,) = (root / "out/sbom").rglob("*.json")
    text = sbom.read_text()
    origin_url = f"{origin.host}/library/base".replace(":", "%3A")  # a purl's quoting
    assert f"repository_url={origin_url}" in text, text
    mirror_port = mirror.host.rsplit(":", 1)[1]
    assert mirror.host not in text and f"%3A{mirror_port}/" not in text


def test_a_mirror_that_serves_other_bytes_is_refused(
    mirrored: tuple[RunningRegistry, RunningRegistry, Pushed], tmp_path: Path
) -> None:
    origin, mirror, base = mirrored
    layer = layer_of(origin, base)
    data = mirror.root / "storage/docker/registry/v2/blobs/sha256" / layer[7:9] / layer[7:] / "data"
    data.write_bytes(data.read_bytes()[::-1])  # as long, other bytes
    plan = PLAN + f"mirrors:\n  {origin.host}: {mirror.host}\n"
    root = workspace(tmp_path / "ws", base.reference, plan)
    start = len(settled(origin))
    run = doit(root, "build_images")
    (error,) = errors(run)
    assert error.startswith(
        f"error: {mirror.host}/library/base: download blob {layer[:19]} failed: its content has"
        " digest sha256:"
    )
    assert error.endswith(
        f"; {mirror.host} served other bytes than the digest names and nothing of them is"
        " used: ask who runs it, or leave that mirror out"
    )
    assert not [p for _, p in requests(origin, start) if "/blobs/" in p]  # no fallback
    assert not (root / "out/oci/blobs/sha256" / layer[7:]).exists()
    assert not list((root / "out/cache/trees").glob("*/tree.json"))


def test_a_push_to_a_protected_hub_on_a_tag_alone_warns_once(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    base = push_base(registry.host, "library/base", "1.0")
    hub = f"{registry.host}/release"
    plan = (
        PLAN
        + f"- name: two\n  dockerfile: Dockerfile\n  files: [note.txt]\nprotectedHubs: [{hub}]\n"
    )
    root = workspace(tmp_path / "ws", base.reference, plan)
    push = ("build_images", "--push", "--hub", hub)
    run = ok(doit(root, *push, env={"CI": "true"}))
    warnings = [line for line in run.err.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: pushing to {hub} on bases named by a tag and not pinned in plans/bases.lock:"
        f" {base.reference}; run doit lock and commit it, so that the same commit gives the"
        " same image"
    ]
    ok(doit(root, "lock"))
    again = ok(doit(root, *push, "--tag", "2", env={"CI": "true"}))
    assert "warning:" not in again.err
