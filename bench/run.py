"""doit-oci against its peers and the hardware's floors (issue 8), on one machine.

    python3 bench/run.py [--quick] [--runs N] [--sizes 60,240,1000] [--out bench/results]

Run as root on Debian: it first installs what is missing (bench/install.sh: buildah, umoci,
skopeo, docker-registry, hyperfine, openssl, curl and GNU time from Debian, doit-oci in
.venv when this Python cannot import it, matplotlib), then times, on the same files:

- doit-oci cold (empty workspace, empty loopback registry) building and pushing, building
  and pushing with gzip, and building the OCI layout only; nothing changed (--push, and
  `doit list` on the same plan); one binary changed; a 200-image plan with nothing changed;
- buildah (vfs, chroot) cold and warm, build and push timed apart;
- umoci + skopeo cold;
- the floors: openssl sha256, bare curl uploads one and two at a time, a streaming probe;
- peak memory of doit-oci with a 1 GB layer, and its gzip against zlib level 1.

Workloads: a base and six apps of 80, 60, 40, 30, 20 and 10 parts of the total, at 240 MB
incompressible and real binaries, and a scale series (incompressible) at --sizes. Writes
OUT/latest.md (tables, targets met or missed, the machine), OUT/latest.json (every time)
and OUT/scale.png (time against total bytes per tool). --quick: the 240 MB incompressible
workload only, one run, into bench/results/quick unless --out says.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent


def ensure_installed(argv: list[str]) -> None:
    """Runs bench/install.sh; re-runs this script with the Python it names when that is
    not this one (a fresh machine: doit-oci goes into .venv)."""
    result = subprocess.run(
        ["bash", str(BENCH / "install.sh"), sys.executable],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    python = result.stdout.strip().splitlines()[-1]
    if os.path.abspath(python) != os.path.abspath(sys.executable):
        print(f"running again with {python}", file=sys.stderr)
        os.execv(python, [python, str(Path(__file__).resolve()), *argv, "--no-install"])


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="240 MB incompressible, one run")
    parser.add_argument("--runs", type=int, default=3, help="runs of each measurement (3)")
    parser.add_argument(
        "--sizes", default="60,240,1000", help="the scale series, total MB (60,240,1000)"
    )
    parser.add_argument(
        "--out", default="", help="where results go (bench/results; bench/results/quick)"
    )
    parser.add_argument("--scratch", default="", help="work folder (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--verbose", action="store_true", help="print every command")
    parser.add_argument("--no-install", action="store_true", help="skip bench/install.sh")
    args = parser.parse_args(argv)
    if not args.out:  # a quick look does not replace the last full run's results
        args.out = str(BENCH / "results" / ("quick" if args.quick else ""))
    if args.quick:
        args.runs = 1
        args.sizes = [240]
    else:
        args.sizes = sorted({int(size) for size in args.sizes.split(",") if size.strip()})
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def main() -> None:
    argv = sys.argv[1:]
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("warning: not root: installing and buildah may fail", file=sys.stderr)
    if not args.no_install:
        ensure_installed(argv)
    sys.path.insert(0, str(REPO))  # doit_oci, for the compression measurement
    scratch = Path(args.scratch or tempfile.mkdtemp(prefix="doit-oci-bench-"))
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        Bench(args, scratch).run()
    finally:
        if not args.keep and not args.scratch:
            import shutil

            shutil.rmtree(scratch, ignore_errors=True)
        else:
            print(f"work folder kept: {scratch}", file=sys.stderr)


class Bench:
    """The measurements. Its modules (bench/*.py) are imported where they are used: the
    tests' registry helper needs httpx, which a fresh machine has only after the install."""

    def __init__(self, args: argparse.Namespace, scratch: Path) -> None:
        # imported here: bench/ is on sys.path as this script's folder
        import measure

        self.args = args
        self.scratch = scratch
        self.runner = measure.Runner(scratch / "logs", verbose=args.verbose)
        self.results: dict[str, Any] = {
            "started": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "settings": {"quick": args.quick, "runs": args.runs, "sizes": args.sizes},
            "machine": measure.machine(),
            "workloads": {},
        }
        self.serial = 0

    # -- bookkeeping --

    def new_dir(self, label: str) -> Path:
        self.serial += 1
        return self.scratch / "work" / f"{self.serial:04d}-{label}"

    def section(self, key: str, label: str, total_bytes: int) -> dict[str, Any]:
        return self.results["workloads"].setdefault(
            key,
            {"label": label, "total_bytes": total_bytes, "times": {}, "errors": {}, "digests": {}},
        )

    def step(self, where: dict[str, Any], title: str, action: Callable[[], dict[str, Any]]) -> None:
        """Runs one measurement; its times (name -> seconds, or a list of them) are added to
        ``where``, its failure recorded there without stopping the benchmark."""
        started = time.monotonic()
        try:
            measured = action()
        except Exception as error:
            message = f"{type(error).__name__}: {error}"
            where.setdefault("errors", {})[title] = message
            print(f"  {title}: FAILED {message.splitlines()[0][:300]}", file=sys.stderr)
            if self.args.verbose:
                traceback.print_exc()
            return
        shown = []
        for name, value in measured.items():
            values = value if isinstance(value, list) else [value]
            where["times"].setdefault(name, []).extend(values)
            shown.append(f"{name} {statistics.median(values):.2f} s")
        print(f"  {', '.join(shown)}  [{time.monotonic() - started:.0f} s]", file=sys.stderr)

    def hyperfine_runs(self) -> int:
        """Runs of the quick commands (no-op, list): at least 5 unless --quick."""
        return self.args.runs if self.args.quick else max(self.args.runs, 5)

    def save(self) -> None:
        out = Path(self.args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "latest.json").write_text(json.dumps(self.results, indent=1) + "\n")

    # -- the whole run --

    def run(self) -> None:
        import measure
        from workload import make_workload

        began = time.monotonic()
        args = self.args
        plan: list[tuple[str, int]] = [("random", 240)]
        if not args.quick:
            plan.append(("real", 240))
        plan += [("random", size) for size in args.sizes if size != 240]
        workloads = []
        for flavour, size in plan:
            print(f"writing the {flavour} {size} MB workload", file=sys.stderr)
            workloads.append(make_workload(self.scratch, flavour, size))
        self.results["scale_keys"] = [
            w.key for w in sorted(workloads, key=lambda w: w.total_mb) if w.flavour == "random"
        ]
        for workload in workloads:
            section = self.section(workload.key, workload.label, workload.total_bytes)
            for attempt in range(args.runs):
                print(f"{workload.label}: cold run {attempt + 1}/{args.runs}", file=sys.stderr)
                self.cold_round(workload, section)
                self.save()
            if workload.total_mb == 240:
                print(f"{workload.label}: no-op and one change", file=sys.stderr)
                self.incremental(workload, section)
            self.save()
        self.check_digests()
        print("a plan of 200 images", file=sys.stderr)
        self.many_images(200, 64 * 1024)
        self.save()
        if not args.quick:
            print("peak memory with a 1 GB layer", file=sys.stderr)
            self.memory(1 << 30)
            self.save()
            real = next(w for w in workloads if w.flavour == "real")
            print("gzip speed and ratio on the real binaries", file=sys.stderr)
            import floors

            try:
                self.results["compression"] = floors.compression(real.files, args.runs)
            except Exception as error:
                self.results["compression_error"] = f"{type(error).__name__}: {error}"
                print(f"  FAILED {error}", file=sys.stderr)
        self.results["duration_s"] = time.monotonic() - began
        self.results["machine"]["load average at the end"] = measure.load_average()
        self.finish()

    def check_digests(self) -> None:
        """Whether every cold doit-oci run of a workload gave the same image digests."""
        import report

        stable: dict[str, dict[str, bool]] = {}
        for key, workload in self.results["workloads"].items():
            for name, runs in workload["digests"].items():
                if len(runs) > 1:
                    stable.setdefault(key, {})[name] = all(run == runs[0] for run in runs)
        self.results["digests_stable"] = stable
        gzip = [s[report.DOIT_PUSH_GZIP] for s in stable.values() if report.DOIT_PUSH_GZIP in s]
        if gzip:
            self.results["gzip_digests_stable"] = all(gzip)

    def finish(self) -> None:
        import report

        out = Path(self.args.out)
        targets: list[tuple[str, report.Target]] = []
        for key in ("random-240", "real-240"):
            workload = self.results["workloads"].get(key)
            if workload:
                label = workload["label"]
                targets += [(label, t) for t in report.workload_targets(workload["times"])]
        targets += [("", t) for t in report.global_targets(self.results)]
        self.results["targets"] = [
            {
                "target": t.name,
                "workload": where,
                "goal": t.goal,
                "measured": t.measured,
                "value": t.value,
                "met": t.met,
                "result": t.result(),
            }
            for where, t in targets
        ]
        self.save()
        plot_name = "scale.png"
        scale = self.results["scale_keys"]
        if len(scale) > 1:
            try:
                report.plot(self.results, scale, out / plot_name)
            except Exception as error:
                print(f"no plot: {error}", file=sys.stderr)
        text = report.markdown(self.results, targets, plot_name)
        (out / "latest.md").write_text(text)
        print(text)
        print(f"written: {out / 'latest.md'}, {out / 'latest.json'}", file=sys.stderr)

    # -- measurements --

    def cold_round(self, workload: Any, section: dict[str, Any]) -> None:
        import floors
        import measure
        import peers
        import report
        from workload import buildah_contexts, doit_workspace

        runner = self.runner

        def doit_cold(name: str, push: bool, compression: str | None) -> dict[str, float]:
            workspace = doit_workspace(self.new_dir("doit"), workload)
            try:
                if push:
                    with measure.registry(self.scratch / "registries") as host:
                        command = peers.build_images(f"{host}/doit", compression)
                        elapsed, output = runner.run(command, workspace, name="doit")
                        peers.check_pushed(host, "doit", peers.APPS)
                else:
                    command = peers.build_images(None)
                    elapsed, output = runner.run(command, workspace, name="doit")
                section["digests"].setdefault(name, []).append(peers.layout_digests(workspace))
                steps = section.setdefault("doit_timing", {}).setdefault(name, [])
                steps.append(peers.timing_line(output))
            finally:
                measure.remove(workspace)
            return {name: elapsed}

        def buildah() -> dict[str, float]:
            work = self.new_dir("buildah")
            contexts = buildah_contexts(work / "contexts", workload)
            tool = peers.Buildah(runner, work / "storage")
            names = [name for name, _ in contexts]
            try:
                with measure.registry(self.scratch / "registries") as host:
                    build = tool.build(contexts)
                    push = tool.push(host, names)
                    peers.check_pushed(host, "buildah", peers.APPS)
                    warm_build = tool.build(contexts)
                    warm_push = tool.push(host, names)
            finally:
                measure.remove(work)
            return {
                report.BUILDAH_BUILD: build,
                report.BUILDAH_PUSH: push,
                report.BUILDAH: build + push,
                report.BUILDAH_WARM_BUILD: warm_build,
                report.BUILDAH_WARM_PUSH: warm_push,
                report.BUILDAH_WARM: warm_build + warm_push,
            }

        def umoci() -> dict[str, float]:
            work = self.new_dir("umoci")
            work.mkdir(parents=True)
            tool = peers.UmociSkopeo(runner, work / "layout")
            try:
                with measure.registry(self.scratch / "registries") as host:
                    build = tool.build(workload)
                    push = tool.push(host, ["base", *peers.APPS])
                    peers.check_pushed(host, "umoci", peers.APPS)
            finally:
                measure.remove(work)
            return {report.UMOCI_BUILD: build, report.SKOPEO_PUSH: push, report.UMOCI: build + push}

        def curl(streams: int, name: str) -> dict[str, float]:
            with measure.registry(self.scratch / "registries") as host:
                return {
                    name: floors.curl_uploads(runner, host, "floor/curl", workload.files, streams)
                }

        def probe() -> dict[str, float]:
            with measure.registry(self.scratch / "registries") as host:
                return {
                    report.PROBE: floors.streaming_probe(host, "floor/probe", workload.files, 2)
                }

        self.step(section, report.DOIT_PUSH, lambda: doit_cold(report.DOIT_PUSH, True, None))
        self.step(
            section, report.DOIT_PUSH_GZIP, lambda: doit_cold(report.DOIT_PUSH_GZIP, True, "gzip")
        )
        self.step(section, report.DOIT_LAYOUT, lambda: doit_cold(report.DOIT_LAYOUT, False, None))
        self.step(section, report.BUILDAH, buildah)
        self.step(section, report.UMOCI, umoci)
        self.step(
            section,
            report.OPENSSL,
            lambda: {report.OPENSSL: floors.openssl_sha256(runner, workload.files)},
        )
        self.step(section, report.CURL1, lambda: curl(1, report.CURL1))
        self.step(section, report.CURL2, lambda: curl(2, report.CURL2))
        self.step(section, report.PROBE, probe)

    def incremental(self, workload: Any, section: dict[str, Any]) -> None:
        """No-op and one changed binary, on one workspace pushed once to one registry."""
        import floors
        import measure
        import peers
        import report
        from workload import change_file, doit_workspace

        runner = self.runner
        runs = self.hyperfine_runs()
        workspace = doit_workspace(self.new_dir("doit-incremental"), workload)
        try:
            with measure.registry(self.scratch / "registries") as host:
                hub = f"{host}/doit"
                command = peers.build_images(hub)
                try:
                    runner.run(command, workspace, name="doit-first")
                except Exception as error:
                    section["errors"][report.DOIT_NOOP] = f"{type(error).__name__}: {error}"
                    print(f"  FAILED {error}", file=sys.stderr)
                    return
                self.step(
                    section,
                    report.DOIT_NOOP,
                    lambda: {report.DOIT_NOOP: runner.hyperfine(command, runs, workspace)},
                )
                env = runner.env(HUB=hub, PUSH="true")
                self.step(
                    section,
                    report.DOIT_LIST,
                    lambda: {
                        report.DOIT_LIST: runner.hyperfine(peers.doit("list"), runs, workspace, env)
                    },
                )
                binary = workspace / "bin" / "app0"

                def change(seed: int) -> dict[str, float]:
                    change_file(binary, seed)
                    elapsed, output = runner.run(command, workspace, name="doit-change")
                    steps = section.setdefault("doit_timing", {})
                    steps.setdefault(report.DOIT_CHANGE, []).append(peers.timing_line(output))
                    hashing = floors.openssl_sha256(runner, [binary])
                    upload = floors.curl_uploads(runner, host, "floor/one", [binary], 1)
                    return {
                        report.DOIT_CHANGE: elapsed,
                        report.OPENSSL_ONE: hashing,
                        report.CURL_ONE: upload,
                        report.FLOOR_ONE: hashing + upload,
                    }

                for attempt in range(self.args.runs):
                    self.step(section, report.DOIT_CHANGE, lambda seed=attempt: change(seed))
        finally:
            measure.remove(workspace)

    def many_images(self, count: int, size: int) -> None:
        import measure
        import peers
        import report
        from workload import many_images_workspace

        runner = self.runner
        runs = self.hyperfine_runs()
        section: dict[str, Any] = {"images": count, "file_bytes": size, "times": {}, "errors": {}}
        self.results["many_images"] = section
        workspace = many_images_workspace(self.new_dir("many"), count, size)
        try:
            command = peers.build_images(None)
            self.step(
                section,
                report.MANY_COLD,
                lambda: {report.MANY_COLD: runner.run(command, workspace, name="many-cold")[0]},
            )
            self.step(
                section,
                report.MANY_NOOP,
                lambda: {report.MANY_NOOP: runner.hyperfine(command, runs, workspace)},
            )
            with measure.registry(self.scratch / "registries") as host:
                push = peers.build_images(f"{host}/many")
                self.step(
                    section,
                    report.MANY_COLD_PUSH,
                    lambda: {
                        report.MANY_COLD_PUSH: runner.run(push, workspace, name="many-push")[0]
                    },
                )
                self.step(
                    section,
                    report.MANY_NOOP_PUSH,
                    lambda: {report.MANY_NOOP_PUSH: runner.hyperfine(push, runs, workspace)},
                )
        finally:
            measure.remove(workspace)

    def memory(self, size: int) -> None:
        import measure
        import peers
        from workload import big_layer_workspace

        runner = self.runner
        section: dict[str, Any] = {"layer_bytes": size, "runs": {}, "errors": {}}
        self.results["memory"] = section
        workspace = big_layer_workspace(self.new_dir("big"), size)
        try:
            with measure.registry(self.scratch / "registries") as host:
                variants = {
                    "layout only, no compression": peers.build_images(None),
                    "layout only, gzip": peers.build_images(None, "gzip"),
                    "build + push, no compression": peers.build_images(f"{host}/big"),
                    "build + push, gzip": peers.build_images(f"{host}/big-gzip", "gzip"),
                }
                for name, command in variants.items():
                    measure.remove(workspace / "out")
                    for db in workspace.glob(".doit.db*"):
                        db.unlink()
                    try:
                        elapsed, output = runner.run(
                            ["/usr/bin/time", "-v", *command], workspace, name="doit-memory"
                        )
                        rss = peers.max_rss_mb(output)
                    except Exception as error:
                        section["errors"][name] = f"{type(error).__name__}: {error}"
                        print(f"  {name}: FAILED {error}", file=sys.stderr)
                        continue
                    section["runs"][name] = {"max_rss_mb": rss, "seconds": elapsed}
                    print(f"  {name}: {rss:.0f} MB, {elapsed:.2f} s", file=sys.stderr)
        finally:
            measure.remove(workspace)


if __name__ == "__main__":
    main()
