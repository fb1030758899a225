"""Base images from registries, and the client's chunked uploads, against real registries."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

from faults import Fault, fault_proxy
from registries import RunningRegistry, open_registry
from support import doit, index_of

from doit_oci.registry.client import RegistryClient
from doit_oci.registry.transport import RetryPolicy
from doit_oci.registry.upload import BlobSource


def publish_base(workspace: Path, registry: RunningRegistry, tag: str = "1.0") -> str:
    """Push the example's base image as <registry>/library/base:<tag>; its digest."""
    run = doit(
        workspace,
        "build_images",
        "--push",
        "--hub",
        f"{registry.host}/library",
        "--tag",
        tag,
        "--targets",
        "base",
    )
    assert run.code == 0, run.text
    return index_of(workspace)[f"base:{tag}"]


def app_workspace(tmp_path: Path, base: str, name: str = "app") -> Path:
    workspace = tmp_path / name
    (workspace / "plans").mkdir(parents=True)
    dodo = Path(__file__).resolve().parent.parent / "dodo.py"
    (workspace / "dodo.py").write_text(dodo.read_text())
    (workspace / "note.txt").write_text("a note\n")
    (workspace / "Dockerfile").write_text(
        f"FROM {base}\nCOPY note.txt /tmp/note.txt\nENV NOTE=/tmp/note.txt\n"
    )
    (workspace / "plans" / "images.yaml").write_text(
        "images:\n- name: app\n  dockerfile: Dockerfile\n  files: [note.txt]\n"
    )
    return workspace


def base_layers(workspace: Path, digest: str) -> list[str]:
    manifest = json.loads((workspace / "out/oci/blobs/sha256" / digest[7:]).read_text())
    return [layer["digest"] for layer in manifest["layers"]]


def test_a_registry_base_for_the_layout_is_fetched_once(
    example: Path, registry: RunningRegistry, tmp_path: Path
) -> None:
    base_digest = publish_base(example, registry)
    workspace = app_workspace(tmp_path, f"{registry.host}/library/base:1.0")
    run = doit(workspace, "build_images")
    assert run.code == 0, run.text
    assert run.executed[0] == f"base:{registry.host}/library/base:1.0"
    config = json.loads(
        subprocess.run(
            ["skopeo", "inspect", "--config", f"oci:{workspace}/out/oci:app:latest"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert config["config"]["Env"][0] == "PATH=/usr/local/bin:/usr/bin:/bin"  # from the base
    assert config["config"]["Env"][-1] == "NOTE=/tmp/note.txt"
    bundle = tmp_path / "bundle"
    command = ["umoci", "unpack", "--image", f"{workspace}/out/oci:app:latest", str(bundle)]
    if os.geteuid() != 0:
        command.insert(2, "--rootless")
    subprocess.run(command, capture_output=True, check=True)
    assert (bundle / "rootfs/tmp/note.txt").read_text() == "a note\n"
    assert oct((bundle / "rootfs/tmp").stat().st_mode & 0o7777) == "0o1777"  # base's /tmp kept
    inputs = json.loads((workspace / "out/build/linux_amd64/app/layer-0.inputs.json").read_text())
    # the layer declares the directory above what it holds as the base has it (as Docker
    # does): the base's tree is read from its layers' headers
    (tmp,) = [e for e in inputs["entries"] if e["path"] == "tmp"]
    assert (tmp["kind"], tmp["mode"]) == ("dir", 0o1777)
    gets = [e for e in registry.access_log() if e.method == "GET" and "/blobs/" in e.path]
    assert len(gets) == len(base_layers(example, base_digest)) + 1  # layers and config, once
    # nothing changed: one HEAD to see that the tag did not move, and no task
    before = len(registry.access_log())
    again = doit(workspace, "build_images")
    assert again.code == 0 and again.executed == []
    registry.wait_for("HEAD", "/v2/library/base/manifests/1.0")
    assert [(e.method, e.path) for e in registry.access_log()[before:]] == [
        ("HEAD", "/v2/library/base/manifests/1.0")
    ]


def test_a_moved_base_tag_gives_a_new_image_on_the_same_layers(
    example: Path, registry: RunningRegistry, tmp_path: Path
) -> None:
    publish_base(example, registry)
    workspace = app_workspace(tmp_path, f"{registry.host}/library/base:1.0")
    assert doit(workspace, "build_images").code == 0
    before = index_of(workspace)["app:latest"]
    # the base changes upstream and the same tag moves to it
    passwd = example / "example/base/passwd"
    passwd.write_text(passwd.read_text() + "new:x:1000:1000::/:/sbin/nologin\n")
    publish_base(example, registry)
    run = doit(workspace, "build_images")
    assert run.code == 0, run.text
    assert run.executed[0].startswith("base:")
    # the base's tree moved (translate looks at it again), the app's layer did not
    assert not [t for t in run.executed if t.startswith("layer:")]
    assert index_of(workspace)["app:latest"] != before


def test_a_base_pinned_by_digest_is_never_asked_for_again(
    example: Path, registry: RunningRegistry, tmp_path: Path
) -> None:
    digest = publish_base(example, registry)
    workspace = app_workspace(tmp_path, f"{registry.host}/library/base@{digest}")
    assert doit(workspace, "build_images").code == 0
    before = len(registry.access_log())
    again = doit(workspace, "build_images")
    assert again.code == 0 and again.executed == []
    assert len(registry.access_log()) == before


def test_pushing_on_a_base_of_the_same_registry_mounts_and_never_downloads(
    example: Path, registry: RunningRegistry, tmp_path: Path
) -> None:
    base_digest = publish_base(example, registry)
    workspace = app_workspace(tmp_path, f"{registry.host}/library/base:1.0")
    before = len(registry.access_log())
    run = doit(workspace, "build_images", "--push", "--hub", f"{registry.host}/apps")
    assert run.code == 0, run.text
    registry.wait_for("PUT", "/v2/apps/app/manifests/latest")
    log = registry.access_log()[before:]
    layers = base_layers(example, base_digest)
    # each base layer is read once, streamed, for the base's tree (kept in out/cache/trees
    # by manifest digest), never stored, never uploaded: mounted
    gets = [e.path for e in log if e.method == "GET" and any(d in e.path for d in layers)]
    assert sorted(gets) == sorted(f"/v2/library/base/blobs/{d}" for d in layers)
    assert not list((workspace / "out/oci/blobs/sha256").glob(layers[0][7:]))
    mounted = [e for e in log if "mount=" in e.query and e.status == 201]
    assert len(mounted) == len(layers)
    assert all("from=library%2Fbase" in e.query for e in mounted)
    assert not (workspace / "out/oci/blobs/sha256" / layers[0][7:]).exists()


def test_pushing_to_another_registry_streams_the_base_layers(
    example: Path, registry: RunningRegistry, tmp_path: Path
) -> None:
    base_digest = publish_base(example, registry)
    workspace = app_workspace(tmp_path, f"{registry.host}/library/base:1.0")
    with open_registry(tmp_path / "other") as other:
        run = doit(workspace, "build_images", "--push", "--hub", f"{other.host}/apps")
        assert run.code == 0, run.text
        other.wait_for("PUT", "/v2/apps/app/manifests/latest")
        layers = base_layers(example, base_digest)
        received = {
            e.query.split("digest=")[1].replace("%3A", ":")
            for e in other.access_log()
            if e.method == "PUT" and "digest=" in e.query
        }
        assert set(layers) <= received
        result = subprocess.run(
            ["skopeo", "inspect", "--tls-verify=false", f"docker://{other.host}/apps/app:latest"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(result.stdout)["Digest"] == index_of(workspace)["app:latest"]
    gets = {e.path for e in registry.access_log() if e.method == "GET" and "/blobs/" in e.path}
    assert {f"/v2/library/base/blobs/{d}" for d in layers} <= gets
    assert not (workspace / "out/oci/blobs/sha256" / layers[0][7:]).exists()  # not stored


def test_a_registry_base_for_another_platform_is_refused_clearly(
    example: Path, registry: RunningRegistry, tmp_path: Path
) -> None:
    publish_base(example, registry)
    workspace = app_workspace(tmp_path, f"{registry.host}/library/base:1.0")
    run = doit(workspace, "build_images", env={"DOCKER_ARCHITECTURES": "linux/arm64"})
    assert run.code != 0 and "Traceback" not in run.text
    (error,) = [line for line in run.err.splitlines() if line.startswith("error:")]
    assert "it is an image for linux/amd64 only, not linux/arm64" in error
    assert error.endswith(
        "build linux/amd64 only on it, or build on a multi-platform image that has linux/arm64"
    )
    assert "the push can be run again" not in error  # nothing was pushed


def test_chunked_upload_recovers_from_a_416_with_a_real_registry(tmp_path: Path) -> None:
    data = bytes(range(256)) * (3 * 4096 + 7)  # a little over 3 MiB
    path = tmp_path / "blob"
    path.write_bytes(data)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with open_registry(tmp_path / "reg") as registry, fault_proxy(registry.host) as proxy:
        proxy.add(Fault("status", status=416, method="PATCH"))
        proxy.add(Fault("reset", method="PATCH"))
        with RegistryClient(
            proxy.host, chunk_size=1 << 20, policy=RetryPolicy(base_delay=0.01)
        ) as client:
            client.upload_blob("chunks/blob", BlobSource.from_file(path, digest))
            assert client.blob_exists("chunks/blob", digest)
        patches = [s for s in proxy.seen if s[0] == "PATCH"]
        assert ("status 416" in [s[2] for s in patches]) and "reset" in [s[2] for s in patches]
        assert any(s[0] == "GET" and "/blobs/uploads/" in s[1] for s in proxy.seen)
        with (
            RegistryClient(registry.host) as direct,
            direct.get_blob("chunks/blob", digest) as response,
        ):
            assert b"".join(response.iter_bytes()) == data


def test_a_moved_base_tag_pushes_a_new_config_and_manifest_only(
    example: Path, registry: RunningRegistry, tmp_path: Path
) -> None:
    publish_base(example, registry)
    workspace = app_workspace(tmp_path, f"{registry.host}/library/base:1.0")
    first = doit(workspace, "build_images", "--push", "--hub", f"{registry.host}/apps")
    assert first.code == 0, first.text
    own_layer = json.loads((workspace / "out/build/linux_amd64/app/layer-0.json").read_text())[
        "descriptor"
    ]
    registry.wait_for("PUT", "/v2/apps/app/manifests/latest")
    passwd = example / "example/base/passwd"
    passwd.write_text(passwd.read_text() + "moved:x:3:3::/:/sbin/nologin\n")
    publish_base(example, registry)  # the tag moves
    before = len(registry.access_log())
    run = doit(workspace, "build_images", "--push", "--hub", f"{registry.host}/apps")
    assert run.code == 0, run.text
    assert not [t for t in run.executed if t.startswith("layer:")]
    registry.wait_for("PUT", "/v2/apps/app/manifests/latest")
    log = registry.access_log()[before:]
    finished = [e.query for e in log if e.method == "PUT" and "digest=" in e.query]
    assert len(finished) == 1  # the new config; the app's own layer is not sent again
    assert own_layer["digest"].replace(":", "%3A") not in finished[0]
    assert [e.path for e in log if e.method == "PUT" and "/manifests/" in e.path][-1] == (
        "/v2/apps/app/manifests/latest"
    )


def test_workdir_and_chown_on_a_registry_base_as_buildkit(
    example: Path, registry: RunningRegistry, tmp_path: Path
) -> None:
    publish_base(example, registry)
    workspace = app_workspace(tmp_path, f"{registry.host}/library/base:1.0")
    (workspace / "Dockerfile").write_text(
        f"FROM {registry.host}/library/base:1.0\n"
        "COPY --chown=istio-proxy note.txt /srv/note.txt\n"  # a name of the base's passwd
        "USER 1337:1337\nWORKDIR /data/work\n"  # made at the end, owned by that USER
    )
    run = doit(workspace, "build_images")
    assert run.code == 0, run.text
    bundle = tmp_path / "bundle"
    subprocess.run(
        ["umoci", "unpack", "--image", f"{workspace}/out/oci:app:latest", str(bundle)],
        capture_output=True,
        check=True,
    )
    rootfs = bundle / "rootfs"
    note = (rootfs / "srv/note.txt").stat()
    assert (note.st_uid, note.st_gid) == (1337, 1337)  # istio-proxy in the base's passwd
    work = (rootfs / "data/work").stat()
    assert (work.st_uid, work.st_gid, oct(work.st_mode & 0o7777)) == (1337, 1337, "0o755")
    assert oct((rootfs / "tmp").stat().st_mode & 0o7777) == "0o1777"  # the base's, untouched
    # the tree was read once for this base digest: a second image on it reads no layer
    before = len(registry.access_log())
    (workspace / "Dockerfile").write_text(
        f"FROM {registry.host}/library/base:1.0\nWORKDIR /other\n"
    )
    assert doit(workspace, "build_images").code == 0
    assert not [e for e in registry.access_log()[before:] if "/blobs/" in e.path]
