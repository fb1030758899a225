"""What Istio's docker-builder offers, spelled as it knows it: variants and tags, build
args, architectures, no-clobber, the protected-hubs check, --no-cache, timings, and a plan
and Dockerfiles in Istio's style (tests/istio)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from registries import RunningRegistry
from support import doit, index_of

from doit_oci.registry.push import destinations
from doit_oci.rules.units import build_variants, variant_tags

ISTIO = Path(__file__).parent / "istio"
ELF_MACHINE = {"amd64": 0x3E, "arm64": 0xB7}


def seed_extract_tags(
    hubs: list[str], target: str, tags: list[str], variants: list[str]
) -> dict[str, list[str]]:
    """Our names for every variant, shaped as the seed's extractTags returns them."""
    out: dict[str, list[str]] = {}
    for variant, double in build_variants(variants):
        refs = []
        for destination in destinations(hubs, target, variant_tags(tags, variant, double)):
            refs.extend(destination.references())
        out[variant] = refs
    return out


@pytest.mark.parametrize(
    ("variants", "expected"),
    [
        # the seed's extractTags(a, "pilot", variant, hasDoubleDefault), HUBS="h1 h2" TAGS="t1 t2"
        (["default"], {"default": ["h1/pilot:t1", "h1/pilot:t2", "h2/pilot:t1", "h2/pilot:t2"]}),
        (
            ["distroless"],
            {
                "distroless": [
                    "h1/pilot:t1-distroless",
                    "h1/pilot:t2-distroless",
                    "h2/pilot:t1-distroless",
                    "h2/pilot:t2-distroless",
                ]
            },
        ),
        (
            ["debug"],
            {
                "debug": [
                    "h1/pilot:t1-debug",
                    "h1/pilot:t2-debug",
                    "h2/pilot:t1-debug",
                    "h2/pilot:t2-debug",
                ]
            },
        ),
        (
            ["default", "debug"],
            {
                "debug": [
                    "h1/pilot:t1-debug",
                    "h1/pilot:t1",
                    "h1/pilot:t2-debug",
                    "h1/pilot:t2",
                    "h2/pilot:t1-debug",
                    "h2/pilot:t1",
                    "h2/pilot:t2-debug",
                    "h2/pilot:t2",
                ]
            },
        ),
        (
            ["default", "distroless"],
            {
                "default": ["h1/pilot:t1", "h1/pilot:t2", "h2/pilot:t1", "h2/pilot:t2"],
                "distroless": [
                    "h1/pilot:t1-distroless",
                    "h1/pilot:t2-distroless",
                    "h2/pilot:t1-distroless",
                    "h2/pilot:t2-distroless",
                ],
            },
        ),
    ],
)
def test_tags_match_the_seeds_extract_tags(
    variants: list[str], expected: dict[str, list[str]]
) -> None:
    hubs = ["h1", "h2"]
    got = seed_extract_tags(hubs, "pilot", ["t1", "t2"], variants)
    # the seed lists hub by hub, then tag by tag: ours too, with docker.io for bare hubs
    assert {v: [r.replace("docker.io/", "") for r in refs] for v, refs in got.items()} == expected


def test_variants_build_their_base_distribution(example: Path) -> None:
    run = doit(example, "build_images", env={"DOCKER_BUILD_VARIANTS": "default debug distroless"})
    assert run.code == 0, run.text
    index = index_of(example)
    assert sorted(index) == sorted(
        f"{name}:{tag}"
        for name in ("hello", "showconfig", "whoami")
        for tag in ("latest", "latest-debug", "latest-distroless")
    )
    for name in ("hello", "showconfig", "whoami"):
        # default and debug: one build, both tags
        assert index[f"{name}:latest"] == index[f"{name}:latest-debug"]
        assert index[f"{name}:latest-distroless"] != index[f"{name}:latest"]
    configs = {}
    for tag in ("latest", "latest-distroless"):
        result = subprocess.run(
            ["skopeo", "inspect", "--config", f"oci:{example}/out/oci:hello:{tag}"],
            capture_output=True,
            text=True,
            check=True,
        )
        configs[tag] = json.loads(result.stdout)["config"]["Env"][0]
    assert configs == {
        "latest": "PATH=/usr/local/bin:/usr/bin:/bin",  # the debug base
        "latest-distroless": "PATH=/usr/local/bin",
    }  # the distroless base
    assert "image:hello-debug" in run.executed and "image:hello-distroless" in run.executed
    assert "image:hello" not in run.executed  # default is the debug build


def test_build_args_from_the_plan_the_image_and_the_command_line(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    (workspace / "plans").mkdir(parents=True)
    shutil.copy(Path(__file__).parent.parent / "dodo.py", workspace / "dodo.py")
    (workspace / "Dockerfile").write_text(
        "FROM scratch\n"
        "ARG TARGETOS\nARG TARGETARCH\nARG TARGETPLATFORM\nARG TARGETVARIANT\n"
        "ARG BUILDPLATFORM\nARG BASE_DISTRIBUTION\nARG FROM_PLAN\nARG FROM_IMAGE\nARG BOTH\n"
        "ARG CLI\n"
        "LABEL os=$TARGETOS arch=$TARGETARCH platform=$TARGETPLATFORM"
        " variant=x$TARGETVARIANT build=$BUILDPLATFORM dist=$BASE_DISTRIBUTION"
        " plan=$FROM_PLAN image=$FROM_IMAGE both=$BOTH cli=$CLI\n"
    )
    (workspace / "plans/images.yaml").write_text(
        "args: {FROM_PLAN: p, BOTH: plan, CLI: plan}\n"
        "images:\n- name: args\n  dockerfile: Dockerfile\n"
        "  args: {FROM_IMAGE: i, BOTH: image, CLI: image}\n"
    )
    run = doit(
        workspace,
        "build_images",
        "--build-arg=CLI=command-line",
        env={"DOCKER_BUILD_VARIANTS": "distroless"},
    )
    assert run.code == 0, run.text
    result = subprocess.run(
        ["skopeo", "inspect", "--config", f"oci:{workspace}/out/oci:args:latest-distroless"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(result.stdout)["config"]["Labels"] == {
        "os": "linux",
        "arch": "amd64",
        "platform": "linux/amd64",
        "variant": "x",
        "build": "linux/amd64",
        "dist": "distroless",
        "plan": "p",
        "image": "i",
        "both": "image",
        "cli": "command-line",
    }


def _elf_machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF"
    return int.from_bytes(header[18:20], "little")


@pytest.mark.skipif(
    shutil.which("aarch64-linux-gnu-gcc") is None and shutil.which("x86_64-linux-gnu-gcc") is None,
    reason="no cross compiler: .ci/install --test installs one",
)
def test_two_architectures_give_an_index_with_each_platforms_files(
    example: Path, tmp_path: Path
) -> None:
    run = doit(
        example,
        "build_images",
        "--targets",
        "hello",
        env={"DOCKER_ARCHITECTURES": "linux/amd64,linux/arm64"},
    )
    assert run.code == 0, run.text
    assert {"make:linux_amd64", "make:linux_arm64"} <= set(run.executed)
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", f"oci:{example}/out/oci:hello:latest"],
        capture_output=True,
        text=True,
        check=True,
    )
    index = json.loads(raw.stdout)
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    platforms = [m["platform"]["architecture"] for m in index["manifests"]]
    assert platforms == ["amd64", "arm64"]
    for arch in platforms:
        copy = tmp_path / f"copy-{arch}"
        subprocess.run(
            [
                "skopeo",
                f"--override-arch={arch}",
                "copy",
                "--preserve-digests",
                f"oci:{example}/out/oci:hello:latest",
                f"oci:{copy}:hello",
            ],
            capture_output=True,
            check=True,
        )
        config = json.loads(
            subprocess.run(
                ["skopeo", "inspect", "--config", f"oci:{copy}:hello"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        assert config["architecture"] == arch
        bundle = tmp_path / f"bundle-{arch}"
        command = ["umoci", "unpack", "--image", f"{copy}:hello", str(bundle)]
        if os.geteuid() != 0:
            command.insert(2, "--rootless")
        subprocess.run(command, capture_output=True, check=True)
        binary = bundle / "rootfs/usr/local/bin/hello"
        assert _elf_machine(binary) == ELF_MACHINE[arch]
        assert binary.read_bytes() == (example / f"out/linux_{arch}/hello").read_bytes()


def test_emulation_required_images_need_qemu_for_other_platforms(tmp_path: Path) -> None:
    workspace = copy_istio(tmp_path)
    env = {"DOCKER_ARCHITECTURES": "linux/amd64,linux/arm64", "PLAN": "docker.yaml"}
    listed = doit(workspace, "list", env=env)
    assert "image:app_sidecar_debian_12@linux_amd64" in listed.out
    assert "image:app_sidecar_debian_12@linux_arm64" not in listed.out
    listed = doit(workspace, "list", env={**env, "ISTIO_DOCKER_QEMU": "true"})
    assert "image:app_sidecar_debian_12@linux_arm64" in listed.out


def copy_istio(tmp_path: Path) -> Path:
    workspace = tmp_path / "istio"
    shutil.copytree(ISTIO, workspace)
    shutil.copy(Path(__file__).parent.parent / "dodo.py", workspace / "dodo.py")
    return workspace


def test_istios_plan_and_dockerfiles_build(tmp_path: Path) -> None:
    workspace = copy_istio(tmp_path)
    env = {
        "PLAN": "docker.yaml",
        "HUB": "localhost:5000/istio",
        "TAG": "1.30-dev",
        "DOCKER_BUILD_VARIANTS": "default distroless",
    }
    args = [
        "--build-arg=ISTIO_BASE_REGISTRY=localhost:5000/istio",
        "--build-arg=BASE_VERSION=1.30-dev",
        "--build-arg=proxy_version=istio-proxy:abc123",
        "--build-arg=istio_version=1.30-dev",
    ]
    run = doit(workspace, "build_images", *args, env=env)
    assert run.code == 0, run.text
    index = index_of(workspace)
    assert sorted(index) == sorted(
        f"{name}:{tag}"
        for name in ("proxyv2", "pilot", "app_sidecar_debian_12")
        for tag in ("1.30-dev", "1.30-dev-distroless")
    )
    result = subprocess.run(
        ["skopeo", "inspect", "--config", f"oci:{workspace}/out/oci:proxyv2:1.30-dev"],
        capture_output=True,
        text=True,
        check=True,
    )
    config = json.loads(result.stdout)["config"]
    assert config["Env"] == [
        "PATH=/usr/local/bin:/usr/bin:/bin",
        "ISTIO_META_ISTIO_PROXY_SHA=istio-proxy:abc123",
        "ISTIO_META_ISTIO_VERSION=1.30-dev",
    ]
    assert config["Entrypoint"] == ["/usr/local/bin/pilot-agent"]
    layout = workspace / "out/build/linux_amd64/proxyv2"
    inputs = [
        json.loads((layout / f"layer-{i}.inputs.json").read_text())["entries"] for i in range(3)
    ]
    assert [e["path"] for e in inputs[1] if e["kind"] == "file"] == ["usr/local/bin/envoy"]
    assert [e["source"] for e in inputs[1] if e["kind"] == "file"] == [
        "out/linux_amd64/release/envoy"
    ]
    distroless = subprocess.run(
        ["skopeo", "inspect", "--config", f"oci:{workspace}/out/oci:pilot:1.30-dev-distroless"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(distroless.stdout)["config"]["Env"][0] == "PATH=/usr/local/bin"


def test_no_clobber_refuses_existing_tags_but_latest(
    example: Path, registry: RunningRegistry
) -> None:
    hub = f"{registry.host}/istio"
    first = doit(
        example,
        "build_images",
        "--push",
        "--hub",
        hub,
        "--tag",
        "1.0,latest",
        "--targets",
        "hello,whoami",
    )
    assert first.code == 0, first.text
    registry.wait_for("PUT", "/v2/istio/whoami/manifests/latest")
    before = len(registry.access_log())
    again = doit(
        example,
        "build_images",
        "--push",
        "--hub",
        hub,
        "--tag",
        "1.0,latest",
        "--targets",
        "hello,whoami",
        "--no-clobber",
    )
    assert again.code != 0 and "Traceback" not in again.text
    errors = [line for line in again.err.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: the registries: --no-clobber: {hub}/hello:1.0, {hub}/whoami:1.0 already exist;"
        " push with another tag, or without --no-clobber to overwrite"
    ]
    assert not [e for e in registry.access_log()[before:] if e.method in ("PUT", "POST")]
    only_latest = doit(
        example,
        "build_images",
        "--push",
        "--hub",
        hub,
        "--tag",
        "latest",
        "--targets",
        "hello",
        "--no-clobber",
    )
    assert only_latest.code == 0, only_latest.text


def test_protected_hubs_are_pushed_to_only_from_ci(example: Path) -> None:
    plan = example / "plans" / "images.yaml"
    plan.write_text("protectedHubs: [127.0.0.1:1/official]\n" + plan.read_text())
    run = doit(example, "build_images", "--push", "--hub", "127.0.0.1:1/official")
    assert run.code != 0 and "Traceback" not in run.text
    assert run.err.strip() == (
        "error: plans/images.yaml: pushing to 127.0.0.1:1/official is only done from CI; push to"
        " another hub, or set CI=true if this really is CI (protectedHubs in the plan)"
    )
    assert not (example / "out").exists()
    elsewhere = doit(example, "list", "--all", env={"HUB": "127.0.0.1:1/mine", "PUSH": "true"})
    assert elsewhere.code == 0 and "push:hello" in elsewhere.out
    in_ci = doit(example, "list", env={"HUB": "127.0.0.1:1/official", "PUSH": "true", "CI": "1"})
    assert in_ci.code == 0 and "push:hello" in in_ci.out


def test_no_cache_rebuilds_everything_with_the_same_digests(example: Path) -> None:
    first = doit(example, "build_images")
    assert first.code == 0
    digests = index_of(example)
    run = doit(example, "build_images", "--no-cache")
    assert run.code == 0, run.text
    assert set(run.executed) == set(first.executed)
    assert index_of(example) == digests


def test_timings_per_step_end_a_run(example: Path) -> None:
    run = doit(example, "build_images")
    timing = [line for line in run.err.splitlines() if line.startswith("timing: ")]
    assert len(timing) == 1
    steps = [part.split()[0] for part in timing[0][len("timing: ") :].split(", ")]
    assert steps == ["plan", "make", "parse", "translate", "layer", "image", "layout"]
    again = doit(example, "build_images")
    assert "timing:" not in again.err  # nothing ran, nothing to time


def _gunzip(path: Path, target: Path) -> Path:
    import gzip

    target.write_bytes(gzip.decompress(path.read_bytes()))
    return target


def test_save_writes_docker_archives_with_the_seeds_names(example: Path, tmp_path: Path) -> None:
    run = doit(
        example,
        "build_images",
        "--save",
        "--targets",
        "hello,whoami",
        env={
            "DOCKER_BUILD_VARIANTS": "default debug distroless",
            "HUB": "localhost:5000/istio",
            "TAG": "1.2",
        },
    )
    assert run.code == 0, run.text
    folder = example / "out/release/docker"
    assert sorted(p.name for p in folder.iterdir()) == [
        "hello-debug.tar.gz",
        "hello-distroless.tar.gz",
        "hello.tar.gz",
        "whoami-debug.tar.gz",
        "whoami-distroless.tar.gz",
        "whoami.tar.gz",
    ]
    # the default variant is the debug build: its archive under both names
    assert (folder / "hello.tar.gz").read_bytes() == (folder / "hello-debug.tar.gz").read_bytes()
    archive = _gunzip(folder / "hello-debug.tar.gz", tmp_path / "hello.tar")
    import tarfile

    with tarfile.open(archive) as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None
        (entry,) = json.loads(member.read())
    assert entry["RepoTags"] == [
        "localhost:5000/istio/hello:1.2-debug",
        "localhost:5000/istio/hello:1.2",
    ]
    # skopeo finds the image by one of those names
    named = f"docker-archive:{archive}:localhost:5000/istio/hello:1.2"
    subprocess.run(["skopeo", "inspect", named], capture_output=True, check=True)
    config = json.loads(
        subprocess.run(
            ["skopeo", "inspect", "--config", f"docker-archive:{archive}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    layout_config = json.loads(
        subprocess.run(
            ["skopeo", "inspect", "--config", f"oci:{example}/out/oci:hello:1.2"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert config == layout_config
    # reproducible: saving again (no cache) writes the same bytes
    before = (folder / "whoami-distroless.tar.gz").read_bytes()
    again = doit(
        example,
        "build_images",
        "--save",
        "--no-cache",
        "--targets",
        "hello,whoami",
        env={
            "DOCKER_BUILD_VARIANTS": "default debug distroless",
            "HUB": "localhost:5000/istio",
            "TAG": "1.2",
        },
    )
    assert again.code == 0 and "save:whoami-distroless" in again.executed
    assert (folder / "whoami-distroless.tar.gz").read_bytes() == before


@pytest.mark.skipif(
    shutil.which("aarch64-linux-gnu-gcc") is None and shutil.which("x86_64-linux-gnu-gcc") is None,
    reason="no cross compiler: .ci/install --test installs one",
)
def test_save_of_a_multi_platform_image(example: Path, tmp_path: Path) -> None:
    run = doit(
        example,
        "build_images",
        "--save",
        "--targets",
        "hello",
        env={"DOCKER_ARCHITECTURES": "linux/amd64,linux/arm64"},
    )
    assert run.code == 0, run.text
    folder = example / "out/release/docker"
    assert sorted(p.name for p in folder.iterdir()) == [
        "hello-arm64.tar.gz",
        "hello.oci.tar",
        "hello.tar.gz",
    ]
    raw = json.loads(
        subprocess.run(
            ["skopeo", "inspect", "--raw", f"oci-archive:{folder / 'hello.oci.tar'}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert [m["platform"]["architecture"] for m in raw["manifests"]] == ["amd64", "arm64"]
    arm = _gunzip(folder / "hello-arm64.tar.gz", tmp_path / "arm.tar")
    inspected = json.loads(
        subprocess.run(
            ["skopeo", "inspect", f"docker-archive:{arm}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert inspected["Architecture"] == "arm64"


def test_push_and_save_are_mutually_exclusive(example: Path) -> None:
    run = doit(example, "build_images", "--push", "--save", "--hub", "127.0.0.1:1/x")
    assert run.code != 0 and "--push and --save are mutually exclusive" in run.err


def test_the_seeds_parser_bugs_are_not_copied(example: Path, tmp_path: Path) -> None:
    (example / "one.txt").write_text("one\n")
    (example / "two.txt").write_text("two\n")
    (example / "seed.Dockerfile").write_text(
        "from base\n"
        "arg A=1 B=2\n"
        "env PATH=/opt/bin:$PATH X=$A Y=$B\n"
        "label one=1 two=2\n"
        "copy --chmod=0600 one.txt two.txt /etc/seed/\n"
        "copy one.txt /etc/same\n"
        "copy two.txt /etc/same\n"
        "expose 8080 53/udp\n"
        "volume /data\n"
        "stopsignal SIGQUIT\n"
        'healthcheck CMD ["/bin/true"]\n'
    )
    plan = example / "plans" / "images.yaml"
    plan.write_text(
        plan.read_text()
        + ("\n- name: seedbugs\n  dockerfile: seed.Dockerfile\n  files: [one.txt, two.txt]\n")
    )
    run = doit(example, "build_images", "--targets", "seedbugs")
    assert run.code == 0, run.text
    assert "HEALTHCHECK is ignored: the OCI image format has no field for it" in run.err
    config = json.loads(
        subprocess.run(
            ["skopeo", "inspect", "--config", f"oci:{example}/out/oci:seedbugs:latest"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert config["config"]["Env"] == [
        "PATH=/opt/bin:/usr/local/bin:/usr/bin:/bin",  # replaced in place, not appended
        "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
        "X=1",
        "Y=2",
    ]
    assert config["config"]["Labels"]["one"] == "1" and config["config"]["Labels"]["two"] == "2"
    assert config["config"]["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}}
    assert config["config"]["Volumes"] == {"/data": {}}
    assert config["config"]["StopSignal"] == "SIGQUIT"
    layers = [
        json.loads((example / f"out/build/linux_amd64/seedbugs/layer-{i}.inputs.json").read_text())[
            "entries"
        ]
        for i in range(3)
    ]
    assert [(e["path"], e["mode"]) for e in layers[0] if e["kind"] == "file"] == [
        ("etc/seed/one.txt", 0o600),
        ("etc/seed/two.txt", 0o600),
    ]
    # two COPYs to one destination: both count, the second wins
    # (each layer also declares the directories above what it holds, as they are)
    assert [(e["path"], e.get("source")) for e in layers[1]] == [
        ("etc", None),
        ("etc/same", "one.txt"),
    ]
    assert [(e["path"], e.get("source")) for e in layers[2]] == [
        ("etc", None),
        ("etc/same", "two.txt"),
    ]
    bundle = tmp_path / "bundle"
    command = ["umoci", "unpack", "--image", f"{example}/out/oci:seedbugs:latest", str(bundle)]
    if os.geteuid() != 0:
        command.insert(2, "--rootless")
    subprocess.run(command, capture_output=True, check=True)
    assert (bundle / "rootfs/etc/same").read_text() == "two\n"
