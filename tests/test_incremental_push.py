"""Incremental pushes, counted in the real registry's own access log: a change uploads
exactly what depends on it."""

from __future__ import annotations

import json
from pathlib import Path

from registries import AccessEntry, RunningRegistry
from support import Run, doit, index_of

IMAGES = ("hello", "showconfig", "whoami")


def push(workspace: Path, registry: RunningRegistry, *args: str) -> Run:
    run = doit(workspace, "build_images", "--push", "--hub", f"{registry.host}/inc", *args)
    assert run.code == 0, run.text
    return run


def since(registry: RunningRegistry, count: int) -> list[AccessEntry]:
    return registry.access_log()[count:]


def blob_uploads(log: list[AccessEntry]) -> dict[str, list[str]]:
    """repository -> digests of the blobs whose upload was finished."""
    out: dict[str, list[str]] = {}
    for entry in log:
        if entry.method == "PUT" and "/blobs/uploads/" in entry.path and "digest=" in entry.query:
            repository = entry.path.split("/blobs/")[0].removeprefix("/v2/")
            digest = entry.query.split("digest=")[1].split("&")[0].replace("%3A", ":")
            out.setdefault(repository, []).append(digest)
    return out


def manifest_puts(log: list[AccessEntry]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for entry in log:
        if entry.method == "PUT" and "/manifests/" in entry.path:
            repository, reference = entry.path.removeprefix("/v2/").split("/manifests/")
            out.setdefault(repository, []).append(reference)
    return out


def settle(registry: RunningRegistry) -> int:
    registry.wait_for("PUT", "/v2/inc/whoami/manifests/latest")
    return len(registry.access_log())


def test_one_changed_file_uploads_one_layer_and_the_image(
    example: Path, registry: RunningRegistry
) -> None:
    push(example, registry)
    before = settle(registry)
    old = index_of(example)
    (example / "example/showconfig/config.json").write_text('{"replicas": 5}\n')
    run = push(example, registry)
    assert set(run.executed) == {
        "translate:showconfig",
        "layer:showconfig.1",
        "upload:showconfig.1",  # sent as soon as it is built
        "image:showconfig",
        "layout",
        f"registry:{registry.host}",  # asked once before the first push to it
        "push:showconfig",
    }
    registry.wait_for("PUT", "/v2/inc/showconfig/manifests/latest")
    log = since(registry, before)
    record = example / "out/build/linux_amd64/showconfig"
    layer = json.loads((record / "layer-1.json").read_text())["descriptor"]["digest"]
    config = json.loads((record / "image.json").read_text())["config"]["digest"]
    assert list(blob_uploads(log)) == ["inc/showconfig"]
    assert sorted(blob_uploads(log)["inc/showconfig"]) == sorted([layer, config])
    new = index_of(example)["showconfig:latest"]
    assert manifest_puts(log) == {"inc/showconfig": [new, "latest"]}
    assert index_of(example)["hello:latest"] == old["hello:latest"]


def test_an_env_label_user_or_entrypoint_change_uploads_the_config_only(
    example: Path, registry: RunningRegistry
) -> None:
    dockerfile = example / "example/whoami/Dockerfile"
    # the USER after the WORKDIR: one before it owns the directories WORKDIR makes
    text = dockerfile.read_text().replace("USER 1337:1337\n", "")
    text = text.replace("WORKDIR ${APP_DIR}\n", "WORKDIR ${APP_DIR}\nUSER 1337:1337\n")
    dockerfile.write_text(text)
    push(example, registry)
    for old, new in (
        ("APP_DIR=/var/lib/whoami", "APP_DIR=/var/lib/whoami MODE=fast"),
        ('version="1.0"', 'version="2.0"'),
        ("USER 1337:1337", "USER 1000"),
        ('ENTRYPOINT ["/usr/local/bin/whoami"]', 'ENTRYPOINT ["/bin/whoami"]'),
    ):
        before = settle(registry)
        text = text.replace(old, new)
        dockerfile.write_text(text)
        run = push(example, registry)
        assert not [t for t in run.executed if t.startswith(("layer:", "translate:"))], old
        registry.wait_for("PUT", "/v2/inc/whoami/manifests/latest")
        log = since(registry, before)
        uploads = blob_uploads(log)
        assert list(uploads) == ["inc/whoami"] and len(uploads["inc/whoami"]) == 1, old
        record = json.loads((example / "out/build/linux_amd64/whoami/image.json").read_text())
        assert uploads["inc/whoami"] == [record["config"]["digest"]]  # the new config only
        assert manifest_puts(log) == {"inc/whoami": [index_of(example)["whoami:latest"], "latest"]}


def test_a_build_arg_changes_only_what_declares_it(
    example: Path, registry: RunningRegistry
) -> None:
    push(example, registry)
    before = settle(registry)
    run = push(example, registry, "--build-arg=GREETING=hi")  # only hello declares it
    assert set(run.executed) == {
        "parse:hello",
        "image:hello",
        "layout",
        f"registry:{registry.host}",
        "push:hello",
    }
    registry.wait_for("PUT", "/v2/inc/hello/manifests/latest")
    log = since(registry, before)
    assert list(blob_uploads(log)) == ["inc/hello"] and len(blob_uploads(log)["inc/hello"]) == 1
    assert list(manifest_puts(log)) == ["inc/hello"]


def test_a_changed_file_list_rebuilds_only_its_image(
    example: Path, registry: RunningRegistry
) -> None:
    push(example, registry)
    before = settle(registry)
    (example / "example/showconfig/extra.conf").write_text("extra\n")
    dockerfile = example / "example/showconfig/Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "COPY extra.conf /etc/showconfig/\n")
    plan = example / "plans/images.yaml"
    plan.write_text(
        plan.read_text().replace(
            "  - example/showconfig/config.json\n",
            "  - example/showconfig/config.json\n  - example/showconfig/extra.conf\n",
        )
    )
    run = push(example, registry)
    assert {t for t in run.executed if ":" in t} == {
        "parse:showconfig",
        "translate:showconfig",
        "layer:showconfig.2",
        "upload:showconfig.2",
        "image:showconfig",
        f"registry:{registry.host}",
        "push:showconfig",
    }
    registry.wait_for("PUT", "/v2/inc/showconfig/manifests/latest")
    assert list(blob_uploads(since(registry, before))) == ["inc/showconfig"]
    assert len(blob_uploads(since(registry, before))["inc/showconfig"]) == 2  # layer, config


def test_a_no_op_push_and_doit_list_import_no_client_and_no_compressor(
    example: Path, registry: RunningRegistry
) -> None:
    # what makes a no-op cost as little as `doit list`: the registry client (httpx) and
    # the compressors are imported only by tasks that run
    push(example, registry)
    lazy = ("httpx", "isal", "zstandard")
    for args in (("build_images", "--push", "--hub", f"{registry.host}/inc"), ("list",)):
        run = doit(example, *args, env={"PYTHONPROFILEIMPORTTIME": "1"})
        assert run.code == 0, run.text
        imported = {
            line.rsplit("|", 1)[1].strip()
            for line in run.err.splitlines()
            if line.startswith("import time:")
        }
        assert "doit" in imported  # the import log is there
        assert not {name for name in imported if name.split(".")[0] in lazy}, args
