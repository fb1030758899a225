"""How long a CI runner that starts empty takes, with and without the remote layer cache.

    python bench/fresh_runner.py [--runs 3]

For the bundled example and for a larger plan (six images of 80, 60, 40, 30, 20 and 10 MB
of incompressible files on one base), each scenario runs in a fresh copy of the workspace
(no out/, no doit state) pushing with gzip to a loopback registry (Debian's docker-registry,
started here): "cold" with an empty registry, "warm" when another runner pushed the same
images to another repository of the registry (what reproducible layers give without a
cache), and "cache" when that runner also filled --cache-repo. Prints a markdown table of
medians, min and max.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from registries import open_registry  # noqa: E402  (the tests' registry fixture)

SIZES_MB = (80, 60, 40, 30, 20, 10)


def example_workspace(target: Path) -> Path:
    target.mkdir(parents=True)
    for name in ("dodo.py", "Makefile", "example", "plans"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, target / name)
        else:
            shutil.copy2(source, target / name)
    return target


def large_workspace(target: Path, data: Path) -> Path:
    target.mkdir(parents=True)
    shutil.copy2(REPO / "dodo.py", target / "dodo.py")
    (target / "plans").mkdir()
    (target / "bin").symlink_to(data)
    (target / "base.Dockerfile").write_text("FROM scratch\nCOPY etc /etc/\n")
    (target / "etc").mkdir()
    (target / "etc" / "passwd").write_text("root:x:0:0::/root:/sbin/nologin\n")
    lines = [
        "images:",
        "- name: base",
        "  dockerfile: base.Dockerfile",
        "  files: [etc]",
        "  base: true",
    ]
    for index, _ in enumerate(SIZES_MB):
        (target / f"app{index}.Dockerfile").write_text(
            f"FROM base\nCOPY app{index}.bin /usr/local/bin/app{index}\n"
            f'ENTRYPOINT ["/usr/local/bin/app{index}"]\n'
        )
        lines += [
            f"- name: app{index}",
            f"  dockerfile: app{index}.Dockerfile",
            f"  files: [bin/app{index}.bin]",
        ]
    (target / "plans" / "images.yaml").write_text("\n".join(lines) + "\n")
    return target


def run(workspace: Path, hub: str, cache: str | None) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [
        sys.executable,
        "-m",
        "doit",
        "build_images",
        "--push",
        "--hub",
        hub,
        "--compression",
        "gzip",
    ]
    if cache:
        command += ["--cache-repo", cache]
    started = time.monotonic()
    subprocess.run(command, cwd=workspace, env=env, check=True, capture_output=True)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        data = root / "data"
        data.mkdir()
        for index, size in enumerate(SIZES_MB):
            with open(data / f"app{index}.bin", "wb") as out:
                for _ in range(size):
                    out.write(os.urandom(1 << 20))
        makers = {
            "example (3 images, 0.8 MB)": example_workspace,
            "larger plan (6 images, 240 MB)": lambda target: large_workspace(target, data),
        }
        for number, (label, make) in enumerate(makers.items()):
            times: dict[str, list[float]] = {"cold": [], "warm": [], "cache": []}
            for attempt in range(args.runs):
                run_root = root / f"plan{number}-run{attempt}"
                with open_registry(run_root / "registry") as registry:
                    host = registry.host
                    cache = f"{host}/ci/cache"
                    times["cold"].append(run(make(run_root / "cold"), f"{host}/a", None))
                    times["warm"].append(run(make(run_root / "warm"), f"{host}/b", None))
                    run(make(run_root / "fill"), f"{host}/c", cache)
                    times["cache"].append(run(make(run_root / "hit"), f"{host}/d", cache))
            rows.append((label, times))
    print("| plan | cold (empty registry) | fresh runner, no cache | fresh runner, --cache-repo |")
    print("|---|---|---|---|")
    for label, times in rows:
        cells = [
            f"{statistics.median(v):.2f} s ({min(v):.2f}-{max(v):.2f})"
            for v in (times["cold"], times["warm"], times["cache"])
        ]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
