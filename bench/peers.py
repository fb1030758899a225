"""The builders, run as their users run them: doit-oci, buildah, umoci + skopeo."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from measure import Runner
from workload import SHAPE, Workload


def doit(*words: str) -> list[str]:
    """``python -m doit WORDS``, with the Python that runs the benchmark."""
    return [sys.executable, "-m", "doit", *words]


def build_images(hub: str | None, compression: str | None = None) -> list[str]:
    words = ["build_images"]
    if hub:
        words += ["--push", "--hub", hub]
    if compression:
        words += ["--compression", compression]
    return doit(*words)


def layout_digests(workspace: Path) -> dict[str, str]:
    """image name -> manifest digest, from the workspace's out/oci/index.json."""
    index = json.loads((workspace / "out" / "oci" / "index.json").read_text())
    out = {}
    for manifest in index.get("manifests", []):
        name = manifest.get("annotations", {}).get("org.opencontainers.image.ref.name", "")
        out[name or manifest["digest"]] = manifest["digest"]
    return out


def timing_line(output: str) -> dict[str, float]:
    """doit-oci's own "timing: plan 0.02s, make 0.36s, ..." line: step -> seconds."""
    steps: dict[str, float] = {}
    for line in output.splitlines():
        if line.startswith("timing:"):
            for part in line[len("timing:") :].split(","):
                name, _, value = part.strip().rpartition(" ")
                try:
                    steps[name] = float(value.rstrip("s"))
                except ValueError:
                    continue
    return steps


def check_pushed(host: str, repository_prefix: str, names: list[str]) -> None:
    """Every image is in the registry under ``prefix/name:latest``."""
    import urllib.request

    for name in names:
        request = urllib.request.Request(
            f"http://{host}/v2/{repository_prefix}/{name}/manifests/latest",
            method="HEAD",
            headers={
                "Accept": ", ".join(
                    [
                        "application/vnd.oci.image.manifest.v1+json",
                        "application/vnd.oci.image.index.v1+json",
                        "application/vnd.docker.distribution.manifest.v2+json",
                    ]
                )
            },
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status != 200:
                raise RuntimeError(f"{host}/{repository_prefix}/{name}: {response.status}")


APPS = [f"app{index}" for index in range(len(SHAPE))]


class Buildah:
    """``buildah build --storage-driver vfs --isolation chroot`` per image, then
    ``buildah push`` per image, with its storage in ``store``."""

    def __init__(self, runner: Runner, store: Path) -> None:
        self.runner = runner
        self.store = store
        self.global_words = [
            "buildah",
            "--root",
            str(store / "root"),
            "--runroot",
            str(store / "run"),
            "--storage-driver",
            "vfs",
        ]

    def build(self, contexts: list[tuple[str, Path]]) -> float:
        total = 0.0
        for name, context in contexts:
            command = [
                *self.global_words,
                "build",
                "--isolation",
                "chroot",
                "--layers",
                "--quiet",
                "--tag",
                name,
                str(context),
            ]
            total += self.runner.run(command, context, name="buildah-build")[0]
        return total

    def push(self, host: str, names: list[str]) -> float:
        total = 0.0
        for name in names:
            command = [
                *self.global_words,
                "push",
                "--quiet",
                "--tls-verify=false",
                name,
                f"docker://{host}/buildah/{name}:latest",
            ]
            total += self.runner.run(command, name="buildah-push")[0]
        return total


class UmociSkopeo:
    """The daemonless pipeline: ``umoci init``, ``new``, ``insert`` and ``config`` per image
    into an OCI layout, then ``skopeo copy`` of each image to the registry."""

    def __init__(self, runner: Runner, layout: Path) -> None:
        self.runner = runner
        self.layout = layout

    def build(self, workload: Workload) -> float:
        layout = str(self.layout)
        commands = [
            ["umoci", "init", "--layout", layout],
            ["umoci", "new", "--image", f"{layout}:base"],
            ["umoci", "insert", "--image", f"{layout}:base", str(workload.etc), "/etc"],
        ]
        for name, source in zip(APPS, workload.files, strict=True):
            image = f"{layout}:{name}"
            commands += [
                ["umoci", "tag", "--image", f"{layout}:base", name],
                ["umoci", "insert", "--image", image, str(source), f"/usr/local/bin/{name}"],
                [
                    "umoci",
                    "config",
                    "--image",
                    image,
                    "--config.entrypoint",
                    f"/usr/local/bin/{name}",
                ],
            ]
        return sum(self.runner.run(command, name="umoci")[0] for command in commands)

    def push(self, host: str, names: list[str]) -> float:
        total = 0.0
        for name in names:
            command = [
                "skopeo",
                "copy",
                "--quiet",
                "--dest-tls-verify=false",
                f"oci:{self.layout}:{name}",
                f"docker://{host}/umoci/{name}:latest",
            ]
            total += self.runner.run(command, name="skopeo")[0]
        return total


def max_rss_mb(time_output: str) -> float:
    """GNU time -v's "Maximum resident set size (kbytes)", in MB (2^20 bytes)."""
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", time_output)
    if match is None:
        raise RuntimeError("no maximum resident set size in /usr/bin/time's output")
    return int(match.group(1)) / 1024
