"""What --sbom --provenance --sign-key (with --image-refs and --metadata-file) add to a
cold push: the 240 MB incompressible workload (a base and six apps) pushed to a new
loopback registry from a new workspace, with and without them, runs alternated.

    python3 bench/release.py [--runs 3] [--size 240] [--scratch DIR]

Prints one line per run and the medians; docs/releases.md keeps the latest figure.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from measure import DOIT_OCI_VARIABLES, registry, remove
from workload import doit_workspace, make_workload

OPTIONS = ("--sbom", "--provenance", "--image-refs", "refs.txt", "--metadata-file", "meta.json")


def cold_push(scratch: Path, workload: object, extra: tuple[str, ...], key: Path) -> float:
    target = Path(tempfile.mkdtemp(prefix="ws-", dir=scratch)) / "ws"
    doit_workspace(target, workload)  # type: ignore[arg-type]
    env = {k: v for k, v in __import__("os").environ.items() if k not in DOIT_OCI_VARIABLES}
    with registry(scratch) as host:
        command = [
            sys.executable, "-m", "doit", "-f", str(target / "dodo.py"), "-d", str(target),
            "build_images", "--push", "--hub", f"{host}/bench", *extra,
        ]  # fmt: skip
        if extra:
            command += ["--sign-key", str(key)]
        started = time.monotonic()
        subprocess.run(command, check=True, capture_output=True, env=env)
        seconds = time.monotonic() - started
    remove(target.parent)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", type=int, default=240)
    parser.add_argument(
        "--scratch", type=Path, default=Path(tempfile.gettempdir()) / "doit-oci-bench"
    )
    args = parser.parse_args()
    args.scratch.mkdir(parents=True, exist_ok=True)
    workload = make_workload(args.scratch, "random", args.size)
    key = args.scratch / "bench-key.pem"
    subprocess.run(
        ["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key)],
        check=True,
    )
    plain: list[float] = []
    released: list[float] = []
    for run in range(args.runs):
        plain.append(cold_push(args.scratch, workload, (), key))
        released.append(cold_push(args.scratch, workload, OPTIONS, key))
        print(f"run {run + 1}: push {plain[-1]:.2f}s, with release options {released[-1]:.2f}s")
    a, b = statistics.median(plain), statistics.median(released)
    print(f"median: push {a:.2f}s, with --sbom --provenance --sign-key {b:.2f}s: +{b - a:.2f}s"
          f" ({(b - a) / a * 100:+.1f}%)")  # fmt: skip


if __name__ == "__main__":
    main()
