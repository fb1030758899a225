"""End to end: `doit build_images` on the bundled example, checked with skopeo and umoci."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from registries import RunningRegistry
from schemas import validate
from support import copy_example, doit, index_of

IMAGES = ("hello", "showconfig", "whoami")
BASE_FILES = {
    "etc/passwd": ("example/base/passwd", 0o644),
    "etc/group": ("example/base/group", 0o644),
    "etc/ssl/certs/ca-certificates.crt": ("example/base/ca-certificates.crt", 0o644),
}
PROGRAMS = {name: f"out/linux_amd64/{name}" for name in IMAGES}
ROOT = os.geteuid() == 0
CHROOT = shutil.which("chroot") or "/usr/sbin/chroot"
needs_root = pytest.mark.skipif(not ROOT, reason="unpacking with owners and chroot need root")


def skopeo_config(workspace: Path, name: str) -> dict[str, Any]:
    result = subprocess.run(
        ["skopeo", "inspect", "--config", f"oci:{workspace}/out/oci:{name}:latest"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def unpack(workspace: Path, name: str, target: Path) -> Path:
    command = ["umoci", "unpack", "--image", f"{workspace}/out/oci:{name}:latest", str(target)]
    if not ROOT:
        command.insert(2, "--rootless")
    subprocess.run(command, capture_output=True, check=True)
    return target / "rootfs"


def test_every_document_of_the_layout_is_valid(built_example: Path) -> None:
    layout = built_example / "out" / "oci"
    validate("layout", (layout / "oci-layout").read_text())
    index = json.loads((layout / "index.json").read_text())
    validate("index", index)
    assert sorted(index_of(built_example)) == [f"{name}:latest" for name in IMAGES]
    for descriptor in index["manifests"]:
        manifest = json.loads((layout / "blobs/sha256" / descriptor["digest"][7:]).read_text())
        validate("manifest", manifest)
        config = json.loads(
            (layout / "blobs/sha256" / manifest["config"]["digest"][7:]).read_text()
        )
        validate("config", config)
        assert len(manifest["layers"]) == len(config["rootfs"]["diff_ids"])
        assert sum(not h.get("empty_layer") for h in config["history"]) == len(manifest["layers"])


def test_configs_seen_by_skopeo(built_example: Path) -> None:
    hello = skopeo_config(built_example, "hello")["config"]
    assert hello["Entrypoint"] == ["/usr/local/bin/hello"]
    assert hello["Cmd"] == ["--greet", "doit-oci"]
    assert hello["Env"] == [
        "PATH=/usr/local/bin:/usr/bin:/bin",
        "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
        "GREETING=hello",
        "HELLO_HOME=/home/hello",
    ]
    assert hello["User"] == "1337:1337"
    assert hello["WorkingDir"] == "/home/hello"
    assert hello["Labels"] == {
        "org.opencontainers.image.title": "hello",
        "org.opencontainers.image.description": "greets from a static C binary",
        "org.opencontainers.image.vendor": "doit-oci example",
    }
    whoami = skopeo_config(built_example, "whoami")["config"]
    assert whoami["Entrypoint"] == ["/usr/local/bin/whoami"]
    assert "Cmd" not in whoami
    assert whoami["Env"][-1] == "APP_DIR=/var/lib/whoami"
    assert whoami["ExposedPorts"] == {"8080/tcp": {}, "9090/tcp": {}}
    assert whoami["Volumes"] == {"/var/lib/whoami": {}}
    assert whoami["StopSignal"] == "SIGTERM"
    assert whoami["WorkingDir"] == "/var/lib/whoami"
    assert whoami["Labels"]["app"] == "whoami" and whoami["Labels"]["version"] == "1.0"
    showconfig = skopeo_config(built_example, "showconfig")
    assert showconfig["config"]["User"] == "istio-proxy"
    assert showconfig["architecture"] == "amd64" and showconfig["os"] == "linux"
    assert showconfig["created"] == "1970-01-01T00:00:00Z"


def _listing(rootfs: Path) -> dict[str, tuple[str, int, int, int]]:
    out = {}
    for path in sorted(rootfs.rglob("*")):
        st = path.lstat()
        kind = "dir" if stat.S_ISDIR(st.st_mode) else "link" if path.is_symlink() else "file"
        out[str(path.relative_to(rootfs))] = (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
    return out


@needs_root
def test_rootfs_holds_the_sources_byte_for_byte(built_example: Path, tmp_path: Path) -> None:
    rootfs = unpack(built_example, "showconfig", tmp_path / "bundle")
    listing = _listing(rootfs)
    expected = {
        "etc": ("dir", 0o755, 0, 0),
        "etc/group": ("file", 0o644, 0, 0),
        "etc/passwd": ("file", 0o644, 0, 0),
        "etc/showconfig": ("dir", 0o755, 1337, 1337),  # made by COPY --chown
        "etc/showconfig/config.json": ("file", 0o644, 1337, 1337),
        "etc/ssl": ("dir", 0o755, 0, 0),
        "etc/ssl/certs": ("dir", 0o755, 0, 0),
        "etc/ssl/certs/ca-certificates.crt": ("file", 0o644, 0, 0),
        "tmp": ("dir", 0o1777, 0, 0),
        "usr": ("dir", 0o755, 0, 0),
        "usr/local": ("dir", 0o755, 0, 0),
        "usr/local/bin": ("dir", 0o755, 0, 0),
        "usr/local/bin/showconfig": ("file", 0o755, 0, 0),
    }
    assert listing == expected
    sources = {
        **{path: source for path, (source, _) in BASE_FILES.items()},
        "etc/showconfig/config.json": "example/showconfig/config.json",
        "usr/local/bin/showconfig": PROGRAMS["showconfig"],
    }
    for path, source in sources.items():
        assert (rootfs / path).read_bytes() == (built_example / source).read_bytes(), path


@needs_root
def test_static_binaries_run_from_the_unpacked_rootfs(built_example: Path, tmp_path: Path) -> None:
    rootfs = unpack(built_example, "hello", tmp_path / "hello")
    result = subprocess.run(
        [CHROOT, str(rootfs), "/usr/local/bin/hello", "--greet", "chroot"],
        capture_output=True,
        text=True,
        env={"GREETING": "hello"},
        check=True,
    )
    assert result.stdout == "hello, chroot!\n"
    rootfs = unpack(built_example, "whoami", tmp_path / "whoami")
    result = subprocess.run(
        [CHROOT, "--userspec=1337:1337", str(rootfs), "/usr/local/bin/whoami"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout == "uid=1337 gid=1337 cwd=/\n"
    rootfs = unpack(built_example, "showconfig", tmp_path / "showconfig")
    result = subprocess.run(
        [CHROOT, str(rootfs), "/usr/local/bin/showconfig"], capture_output=True, check=True
    )
    assert result.stdout == (built_example / "example/showconfig/config.json").read_bytes()


def test_two_workspaces_give_the_same_digests(built_example: Path, tmp_path: Path) -> None:
    other = copy_example(tmp_path / "elsewhere" / "checkout")
    run = doit(other, "build_images")
    assert run.code == 0, run.text
    assert index_of(other) == index_of(built_example)
    assert len(set(index_of(other).values())) == len(IMAGES)


def test_the_layout_can_be_pushed_to_a_real_registry(
    built_example: Path, registry: RunningRegistry
) -> None:
    digest = index_of(built_example)["hello:latest"]
    subprocess.run(
        [
            "skopeo",
            "copy",
            "--dest-tls-verify=false",
            "--preserve-digests",
            f"oci:{built_example}/out/oci:hello:latest",
            f"docker://{registry.host}/hello:latest",
        ],
        capture_output=True,
        check=True,
    )
    result = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", f"docker://{registry.host}/hello:latest"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(result.stdout)["Digest"] == digest
    assert registry.wait_for("PUT", "/v2/hello/manifests/latest", status=201)


def test_doit_list_shows_a_task_per_image_and_step(built_example: Path) -> None:
    run = doit(built_example, "list")
    assert run.code == 0, run.text
    names = {line.split()[0] for line in run.out.splitlines() if line.strip()}
    for image in ("base", *IMAGES):
        assert {
            f"parse:{image}",
            f"translate:{image}",
            f"image:{image}",
            f"layer:{image}.0",
        } <= names
    assert {"make", "layout", "build_images"} <= names
    assert "distroless" not in " ".join(names)  # a base nobody builds on gets no tasks


def test_a_workspace_elsewhere_with_another_plan(tmp_path: Path) -> None:
    workspace = copy_example(tmp_path / "ws")
    plan = workspace / "plans" / "small.yaml"
    plan.write_text(
        "images:\n"
        "- name: just-hello\n"
        "  dockerfile: example/hello/Dockerfile\n"
        "  targets: ['${TARGET_OUT}/hello']\n"
        "- name: base\n"
        "  dockerfile: example/base/Dockerfile.base\n"
        "  files: [example/base/passwd, example/base/group, example/base/ca-certificates.crt]\n"
        "  targets: ['${TARGET_OUT}/rootfs']\n"
        "  base: true\n"
        "- name: distroless\n"
        "  dockerfile: example/base/Dockerfile.distroless\n"
        "  base: true\n"
    )
    (workspace / "dodo.py").unlink()
    elsewhere = tmp_path / "somewhere"
    elsewhere.mkdir()
    run = doit(
        workspace,
        "build_images",
        "--plan",
        "plans/small.yaml",
        dodo=Path(__file__).parent.parent / "dodo.py",
        cwd=elsewhere,
    )
    assert run.code == 0, run.text
    assert list(index_of(workspace)) == ["just-hello:latest"]
    assert list(elsewhere.iterdir()) == []  # every piece of state is in the workspace
    assert (workspace / ".doit.db").is_file()
    listed = doit(
        workspace,
        "list",
        env={"PLAN": "plans/small.yaml"},
        dodo=Path(__file__).parent.parent / "dodo.py",
        cwd=elsewhere,
    )
    assert "image:just-hello" in listed.out and "image:whoami" not in listed.out


def test_tags_name_the_images_and_a_hub_names_plan_bases(example: Path) -> None:
    for name in IMAGES:
        dockerfile = example / "example" / name / "Dockerfile"
        dockerfile.write_text(
            dockerfile.read_text()
            .replace("FROM base AS debug", "FROM 127.0.0.1:1/base:${TAG} AS debug")
            .replace("ARG BASE_DISTRIBUTION=debug", "ARG BASE_DISTRIBUTION=debug\nARG TAG")
        )
    run = doit(
        example,
        "build_images",
        "--tag",
        "1.2",
        "--build-arg=TAG=1.2",
        env={"HUB": "127.0.0.1:1"},
    )
    assert run.code == 0, run.text
    assert sorted(index_of(example)) == [f"{name}:1.2" for name in IMAGES]
    wrong = doit(
        example,
        "build_images",
        "--tag",
        "1.3",
        "--build-arg=TAG=1.2",
        env={"HUB": "127.0.0.1:1", "REGISTRY_DEADLINE": "2"},
    )
    assert wrong.code != 0
    # not a tag of this build: a registry base, which nothing serves here
    assert "base:127.0.0.1:1/base:1.2" in wrong.executed
    assert "error: 127.0.0.1:1/base: get manifest 1.2 failed: cannot reach" in wrong.err
    assert "Traceback" not in wrong.text


def test_source_date_epoch_sets_created(example: Path) -> None:
    run = doit(example, "build_images", env={"SOURCE_DATE_EPOCH": "1700000000"})
    assert run.code == 0, run.text
    config = skopeo_config(example, "hello")
    assert config["created"] == "2023-11-14T22:13:20Z"
    assert {h["created"] for h in config["history"]} == {"2023-11-14T22:13:20Z"}


def test_skip_make_uses_what_is_there(example: Path) -> None:
    run = doit(example, "build_images", env={"SKIP_MAKE": "true"})
    assert run.code != 0
    assert "Traceback" not in run.text
    assert "out/linux_amd64" in run.err or "hello" in run.err
    assert shutil.which("make")
    subprocess.run(["make", "--no-print-directory"], cwd=example, check=True, capture_output=True)
    run = doit(example, "build_images", env={"SKIP_MAKE": "true"})
    assert run.code == 0, run.text
    assert "make" not in run.executed


def test_a_parallel_build_gives_the_same_digests(built_example: Path, tmp_path: Path) -> None:
    other = copy_example(tmp_path / "parallel")
    run = doit(other, "-n", "2", "build_images")
    assert run.code == 0, run.text
    assert index_of(other) == index_of(built_example)
    again = doit(other, "-n", "2", "build_images")
    assert again.code == 0 and again.executed == []


@needs_root
def test_context_images_ignore_files_and_keep_the_base_directories(
    example: Path, tmp_path: Path
) -> None:
    context = example / "web"
    (context / "static" / "css").mkdir(parents=True)
    (context / "static" / "index.html").write_text("<h1>hi</h1>\n")
    (context / "static" / "css" / "site.css").write_text("h1 {}\n")
    (context / "static" / "notes.md").write_text("secret notes\n")
    (context / ".dockerignore").write_text("**/*.md\n!static/keep.md\n")
    (context / "static" / "keep.md").write_text("kept\n")
    (context / "scratch.txt").write_text("scratch\n")
    (context / "Dockerfile").write_text(
        "FROM base\n"
        "COPY static /srv/www/\n"
        "COPY scratch.txt /tmp/scratch.txt\n"
        "ENV WEB_ROOT=/srv/www\n"
    )
    (example / "env-only.Dockerfile").write_text("FROM base\nENV ONLY=config\nUSER 1000\n")
    plan = example / "plans" / "images.yaml"
    plan.write_text(
        plan.read_text()
        + ("\n- name: web\n  context: web\n- name: env-only\n  dockerfile: env-only.Dockerfile\n")
    )
    run = doit(example, "build_images", "--targets", "web,env-only,base")
    assert run.code == 0, run.text
    rootfs = unpack(example, "web", tmp_path / "web")
    listing = _listing(rootfs)
    assert {p: v for p, v in listing.items() if p.startswith(("srv", "tmp"))} == {
        "srv": ("dir", 0o755, 0, 0),
        "srv/www": ("dir", 0o755, 0, 0),
        "srv/www/css": ("dir", 0o755, 0, 0),
        "srv/www/css/site.css": ("file", 0o644, 0, 0),
        "srv/www/index.html": ("file", 0o644, 0, 0),
        "srv/www/keep.md": ("file", 0o644, 0, 0),
        "tmp": ("dir", 0o1777, 0, 0),  # the base's /tmp, untouched by COPY into it
        "tmp/scratch.txt": ("file", 0o644, 0, 0),
    }
    layout = example / "out" / "oci"
    index = index_of(example)

    def manifest(name: str) -> dict[str, Any]:
        blob = layout / "blobs" / "sha256" / index[f"{name}:latest"][7:]
        return json.loads(blob.read_text())  # type: ignore[no-any-return]

    base_layers = manifest("base")["layers"]
    assert manifest("env-only")["layers"] == base_layers  # no file changed: no layer
    assert manifest("web")["layers"][: len(base_layers)] == base_layers
    assert len(manifest("web")["layers"]) == len(base_layers) + 2
    config = skopeo_config(example, "env-only")
    assert config["config"]["Env"][-1] == "ONLY=config"
    assert config["history"][-1] == {
        "created": "1970-01-01T00:00:00Z",
        "created_by": "USER 1000",
        "empty_layer": True,
    }
