"""The benchmark's results as tables (markdown), targets met or missed, and the plot."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# --- names of the measurements --------------------------------------------------------

DOIT_PUSH = "doit-oci cold, build + push"
DOIT_PUSH_GZIP = "doit-oci cold, build + push (--compression gzip)"
DOIT_LAYOUT = "doit-oci cold, layout only"
DOIT_NOOP = "doit-oci no-op, build_images --push"
DOIT_LIST = "doit list (same plan)"
DOIT_CHANGE = "doit-oci one binary changed, build + push"
OPENSSL_ONE = "openssl dgst -sha256, that binary"
CURL_ONE = "curl upload, that binary"
FLOOR_ONE = "floor: hash + upload that binary"
BUILDAH_BUILD = "buildah cold, build"
BUILDAH_PUSH = "buildah cold, push"
BUILDAH = "buildah cold, build + push"
BUILDAH_WARM_BUILD = "buildah warm, build"
BUILDAH_WARM_PUSH = "buildah warm, push"
BUILDAH_WARM = "buildah warm, build + push"
UMOCI_BUILD = "umoci cold, build"
SKOPEO_PUSH = "skopeo copy (push)"
UMOCI = "umoci + skopeo cold, build + push"
OPENSSL = "floor: openssl dgst -sha256"
CURL1 = "floor: curl upload, one at a time"
CURL2 = "floor: curl upload, two at a time"
PROBE = "floor: streaming probe, two at a time"
MANY_COLD = "doit-oci cold, layout only"
MANY_NOOP = "doit-oci no-op, build_images"
MANY_COLD_PUSH = "doit-oci cold, build + push"
MANY_NOOP_PUSH = "doit-oci no-op, build_images --push"

# Rows of a workload's table, each with the doit-oci measurement it is compared with.
ROWS: list[tuple[str, str | None]] = [
    (DOIT_PUSH, None),
    (DOIT_PUSH_GZIP, None),
    (DOIT_LAYOUT, None),
    (DOIT_NOOP, None),
    (DOIT_LIST, None),
    (DOIT_CHANGE, None),
    (BUILDAH, DOIT_PUSH),
    (BUILDAH_BUILD, DOIT_LAYOUT),
    (BUILDAH_PUSH, None),
    (BUILDAH_WARM, DOIT_NOOP),
    (BUILDAH_WARM_BUILD, None),
    (BUILDAH_WARM_PUSH, None),
    (UMOCI, DOIT_PUSH),
    (UMOCI_BUILD, DOIT_LAYOUT),
    (SKOPEO_PUSH, None),
    (OPENSSL, DOIT_LAYOUT),
    (CURL1, DOIT_PUSH),
    (CURL2, DOIT_PUSH),
    (PROBE, DOIT_PUSH),
    (FLOOR_ONE, DOIT_CHANGE),
    (OPENSSL_ONE, None),
    (CURL_ONE, None),
]
GZIP_PEERS = {BUILDAH, UMOCI, CURL1, CURL2, PROBE}  # also compared with doit-oci's gzip push
SCALE_TOOLS = [
    DOIT_PUSH,
    DOIT_PUSH_GZIP,
    DOIT_LAYOUT,
    BUILDAH,
    BUILDAH_BUILD,
    UMOCI,
    OPENSSL,
    CURL1,
    CURL2,
    PROBE,
]


def median(times: list[float] | None) -> float | None:
    return statistics.median(times) if times else None


def seconds(times: list[float] | None) -> str:
    if not times:
        return "n/a"
    return f"{statistics.median(times):.2f} s"


def spread(times: list[float] | None) -> str:
    if not times:
        return ""
    return f"{min(times):.2f}-{max(times):.2f}"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return ""
    return f"{a / b:.2f}"


# --- targets --------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    goal: str
    measured: str  # what was measured, in words
    value: float | None  # the number compared with the goal
    met: bool | None  # None: not measured
    shortfall: str  # how much is missing, in words ("" when met)

    def result(self) -> str:
        if self.met is None:
            return "not measured"
        return "met" if self.met else f"missed: {self.shortfall}"


def _speedup(
    name: str, times: dict[str, list[float]], peer: str, mine: str, least: float
) -> Target:
    """doit-oci (``mine``) at least ``least`` times faster than ``peer``."""
    goal = f"at least {least:g}x faster"
    p, m = median(times.get(peer)), median(times.get(mine))
    if p is None or m is None:
        return Target(name, goal, "", None, None, "")
    value = p / m
    measured = f"{m:.2f} s vs {p:.2f} s: {value:.2f}x faster"
    shortfall = f"{least / value:.2f}x short (doit-oci needs {m * value / least:.2f} s or less)"
    return Target(name, goal, measured, value, value >= least, shortfall)


def _at_most(
    name: str, times: dict[str, list[float]], mine: str, other: str, most: float
) -> Target:
    """doit-oci (``mine``) takes at most ``most`` times ``other``."""
    goal = f"at most {most:g}x"
    o, m = median(times.get(other)), median(times.get(mine))
    if o is None or m is None:
        return Target(name, goal, "", None, None, "")
    value = m / o
    measured = f"{m:.2f} s vs {o:.2f} s: {value:.2f}x"
    shortfall = f"{value / most:.2f}x over (doit-oci needs {o * most:.2f} s or less)"
    return Target(name, goal, measured, value, value <= most, shortfall)


def workload_targets(times: dict[str, list[float]]) -> list[Target]:
    return [
        _speedup("cold build + push vs buildah", times, BUILDAH, DOIT_PUSH, 6),
        _speedup("cold build + push vs umoci + skopeo", times, UMOCI, DOIT_PUSH, 2),
        _at_most("cold build + push vs the streaming probe", times, DOIT_PUSH, PROBE, 1.3),
        _at_most("cold build + push vs curl, two at a time", times, DOIT_PUSH, CURL2, 2),
        _speedup("cold layout only vs buildah build", times, BUILDAH_BUILD, DOIT_LAYOUT, 10),
        _at_most("no-op build_images --push vs doit list", times, DOIT_NOOP, DOIT_LIST, 1.3),
        _at_most("one binary changed vs hash + upload it", times, DOIT_CHANGE, FLOOR_ONE, 1.3),
    ]


def _under(name: str, value: float | None, limit: float, unit: str, what: str) -> Target:
    goal = f"under {limit:g} {unit}"
    if value is None:
        return Target(name, goal, "", None, None, "")
    shortfall = f"{value / limit:.2f}x over ({value - limit:.2f} {unit} too many)"
    return Target(name, goal, f"{what}{value:.2f} {unit}", value, value < limit, shortfall)


def global_targets(results: dict[str, Any]) -> list[Target]:
    out = []
    many = results.get("many_images", {}).get("times", {})
    count = results.get("many_images", {}).get("images", 200)
    out.append(
        _under(f"{count}-image plan, no-op --push", median(many.get(MANY_NOOP_PUSH)), 2, "s", "")
    )
    out.append(
        _under(f"{count}-image plan, no-op (no push)", median(many.get(MANY_NOOP)), 2, "s", "")
    )
    memory = results.get("memory", {}).get("runs", {})
    peak = max((run["max_rss_mb"] for run in memory.values()), default=None)
    worst = max(memory, key=lambda k: memory[k]["max_rss_mb"], default="")
    out.append(_under("peak memory, 1 GB layer", peak, 150, "MB", f"{worst}: " if worst else ""))
    comp = results.get("compression", {})
    mine, std = comp.get("doit-oci gzip"), comp.get("zlib level 1")
    if mine and std:
        size = comp["input_bytes"] / (1 << 20)
        speed_mine = size / statistics.median(mine["times"])
        speed_std = size / statistics.median(std["times"])
        value = speed_mine / speed_std
        out.append(
            Target(
                "gzip speed vs zlib level 1",
                "at least 5x faster",
                f"{speed_mine:.0f} MB/s vs {speed_std:.0f} MB/s: {value:.2f}x",
                value,
                value >= 5,
                f"{5 / value:.2f}x short",
            )
        )
        worse = (mine["ratio"] - std["ratio"]) / std["ratio"] * 100
        out.append(
            Target(
                "gzip ratio vs zlib level 1",
                "same or better",
                f"{mine['ratio']:.3f} vs {std['ratio']:.3f}",
                mine["ratio"],
                mine["ratio"] >= std["ratio"],
                f"{-worse:.1f}% larger output",
            )
        )
        same = comp.get("doit-oci gzip reproducible") is True and (
            comp.get("doit-oci gzip same with one thread") is True
        )
        reproducible = results.get("gzip_digests_stable")
        detail = (
            "same bytes every run and with one thread"
            if same
            else "different bytes between runs or thread counts"
        )
        if reproducible is not None:
            detail += "; image digests of cold gzip pushes " + (
                "identical across runs" if reproducible else "DIFFER across runs"
            )
        out.append(
            Target(
                "gzip digests reproducible",
                "yes",
                detail,
                None,
                same and reproducible is not False,
                detail,
            )
        )
    else:
        for name, goal in (
            ("gzip speed vs zlib level 1", "at least 5x faster"),
            ("gzip ratio vs zlib level 1", "same or better"),
            ("gzip digests reproducible", "yes"),
        ):
            out.append(Target(name, goal, "", None, None, ""))
    return out


# --- markdown -------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def workload_table(workload: dict[str, Any]) -> list[str]:
    times: dict[str, list[float]] = workload["times"]
    errors: dict[str, str] = workload.get("errors", {})
    mb = workload["total_bytes"] / (1 << 20)
    rows = []
    for name, compared in ROWS:
        if name not in times and name not in errors:
            continue
        if name not in times:
            rows.append([name, "failed: " + errors[name].splitlines()[0][:120], "", "", "", ""])
            continue
        t = median(times[name])
        bulk = name not in (DOIT_NOOP, DOIT_LIST, BUILDAH_WARM, BUILDAH_WARM_BUILD)
        bulk = bulk and name not in (BUILDAH_WARM_PUSH, DOIT_CHANGE, FLOOR_ONE)
        bulk = bulk and name not in (OPENSSL_ONE, CURL_ONE)
        rows.append(
            [
                name,
                seconds(times[name]),
                spread(times[name]),
                f"{mb / t:.0f}" if bulk and t else "",
                ratio(median(times.get(compared)), t) if compared else "",
                ratio(median(times.get(DOIT_PUSH_GZIP)), t) if name in GZIP_PEERS else "",
            ]
        )
    header = ["step", "median", "min-max (s)", "MB/s", "doit-oci ÷ this", "doit-oci gzip ÷ this"]
    return _table(header, rows)


def timing_table(workload: dict[str, Any]) -> list[str]:
    """The steps of doit-oci's "timing:" line, median seconds per measurement."""
    timings: dict[str, list[dict[str, float]]] = workload.get("doit_timing", {})
    steps: list[str] = []
    for runs in timings.values():
        for run in runs:
            steps += [step for step in run if step not in steps]
    if not steps:
        return []
    rows = []
    for name, runs in timings.items():
        cells = []
        for step in steps:
            values = [run[step] for run in runs if step in run]
            cells.append(f"{statistics.median(values):.2f}" if values else "")
        rows.append([name, *cells])
    return _table(["run", *steps], rows)


def targets_table(targets: list[tuple[str, Target]]) -> list[str]:
    rows = [[t.name, where, t.goal, t.measured or "n/a", t.result()] for where, t in targets]
    return _table(["target", "workload", "goal", "measured", "result"], rows)


def scale_table(results: dict[str, Any], keys: list[str]) -> list[str]:
    workloads = [results["workloads"][key] for key in keys]
    header = ["step", *[f"{w['total_bytes'] / (1 << 20):.0f} MB" for w in workloads]]
    rows = []
    for tool in SCALE_TOOLS:
        cells = []
        for w in workloads:
            t = w["times"].get(tool)
            cells.append(
                f"{median(t):.2f} s ({w['total_bytes'] / (1 << 20) / median(t):.0f} MB/s)"  # type: ignore[operator]
                if t
                else "n/a"
            )
        rows.append([tool, *cells])
    return _table(header, rows)


def markdown(results: dict[str, Any], targets: list[tuple[str, Target]], plot: str) -> str:
    m = results["machine"]
    s = results["settings"]
    lines = [
        "# doit-oci benchmark",
        "",
        f"Run on {results['started']} with `python bench/run.py"
        + (" --quick" if s["quick"] else "")
        + f" --runs {s['runs']}"
        + (f" --sizes {','.join(str(x) for x in s['sizes'])}" if not s["quick"] else "")
        + f"` in {results['duration_s'] / 60:.1f} min: medians of {s['runs']} runs"
        + " (min-max). MB means 2^20 bytes.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram']} RAM, Linux {m['kernel']}, "
        f"{m['os']}, Python {m['python']}. Load average (1, 5, 15 min) at the start "
        f"{m['load average at the start']}, at the end {m.get('load average at the end', '?')}"
        " (other work on the machine slows every tool).",
        "",
        "Tools: "
        + ", ".join(
            f"{name} {m[name]}"
            for name in (
                "doit-oci",
                "doit",
                "isal",
                "buildah",
                "umoci",
                "skopeo",
                "docker-registry",
                "hyperfine",
                "openssl",
                "curl",
            )
        )
        + ".",
        "",
        "## Targets (issue 8)",
        "",
        *targets_table(targets),
        "",
    ]
    for workload in results["workloads"].values():
        lines += [f"## {workload['label']}", "", *workload_table(workload), ""]
        steps = timing_table(workload)
        if steps:
            lines += ["doit-oci's own timing line, medians (s):", "", *steps, ""]
    scale = results.get("scale_keys", [])
    if len(scale) > 1:
        lines += ["## Scale series (incompressible)", "", *scale_table(results, scale), ""]
        lines += [f"![time against total bytes]({plot})", ""]
    many = results.get("many_images")
    if many:
        rows = [[name, seconds(t), spread(t)] for name, t in many["times"].items()]
        rows += [
            [name, "failed: " + e.splitlines()[0][:120], ""]
            for name, e in many.get("errors", {}).items()
        ]
        lines += [
            f"## A plan of {many['images']} images ({many['file_bytes'] // 1024} KiB each)",
            "",
            *_table(["step", "median", "min-max (s)"], rows),
            "",
        ]
    memory = results.get("memory")
    if memory:
        rows = [
            [name, f"{run['max_rss_mb']:.0f} MB", f"{run['seconds']:.2f} s"]
            for name, run in memory.get("runs", {}).items()
        ]
        rows += [
            [name, "failed: " + e.splitlines()[0][:120], ""]
            for name, e in memory.get("errors", {}).items()
        ]
        lines += [
            f"## Peak memory, one layer of {memory['layer_bytes'] / (1 << 30):.1f} GB",
            "",
            "Maximum resident set size of the doit process tree's largest process "
            "(`/usr/bin/time -v`), cold.",
            "",
            *_table(["run", "max RSS", "time"], rows),
            "",
        ]
    comp = results.get("compression")
    if comp:
        size = comp["input_bytes"] / (1 << 20)
        rows = []
        for name, data in comp.items():
            if isinstance(data, dict):
                t = statistics.median(data["times"])
                rows.append([name, f"{t:.2f} s", f"{size / t:.0f} MB/s", f"{data['ratio']:.3f}"])
        lines += [
            f"## gzip on the real binaries ({size:.0f} MB in memory)",
            "",
            *_table(["compressor", "median", "speed", "ratio"], rows),
            "",
            "doit-oci gzip gives the same bytes every run: "
            f"{comp.get('doit-oci gzip reproducible')}; with one thread as with several: "
            f"{comp.get('doit-oci gzip same with one thread')}.",
            "",
        ]
    lines += [
        "## What is measured",
        "",
        NOTES,
    ]
    return "\n".join(lines) + "\n"


NOTES = """\
- Every tool gets the same files (hard links) and builds a base image (`/etc/passwd`,
  `/etc/group`) and six images `FROM base` + `COPY appN /usr/local/bin/appN` + `ENTRYPOINT`.
  Each run is cold: a new workspace (or storage, or layout) and a new, empty loopback
  registry (Debian's docker-registry, filesystem storage in a temp dir). The files are in
  the page cache for every tool.
- doit-oci runs as a user runs it, `python -m doit build_images [--push --hub
  127.0.0.1:PORT/doit] [--compression gzip]`, with this repository's dodo.py. To a loopback
  registry it stores layers uncompressed by default; "gzip" is the remote-style push.
- buildah: `buildah --storage-driver vfs build --isolation chroot --layers` per image, then
  `buildah push` per image (gzip, its default); warm is the same again on the same storage
  and registry. umoci + skopeo: `umoci init`, `new`, `insert` (gzip) and `config` per image,
  then `skopeo copy oci:... docker://...` per image. Both peers compress: compare them with
  doit-oci's gzip column too.
- Floors: `openssl dgst -sha256` over the six binaries in one process; curl: POST then one
  monolithic PUT per binary (digest computed beforehand, not timed), one or two at a time;
  the streaming probe: per binary, tar -> sha256 -> isal gzip (level 1) -> sha256 -> a
  chunked PATCH to the registry, then the PUT with the digest, two layers at a time (blobs
  only, no manifests).
- One binary changed: 4 KiB in the middle of the 80-part binary (app0) replaced, then
  `build_images --push` to the registry that holds the previous images. Its floor is
  `openssl dgst -sha256` of that binary plus a curl upload of it.
- No-op and `doit list` are timed with hyperfine (one warm-up run, then at least 5 runs
  unless --quick); `doit list` gets the same hub and push through HUB and PUSH=true.
- Peak memory: `/usr/bin/time -v` around a cold `build_images` of one image whose one file
  is 1 GiB of random bytes; the figure is the largest process of the tree.
- gzip: the real binaries held in memory, fed in 1 MiB pieces to doit-oci's own gzip stream
  (`doit_oci.rules.compress.compressing("gzip", ...)`), to the standard library's
  `zlib.compressobj(1)` and to one isal thread at level 1, after a warm-up.
- "doit-oci ÷ this" divides the doit-oci time of the same kind (build + push, layout only,
  no-op, one change) by the row's time: below 1, doit-oci is faster.
"""


# --- the plot -------------------------------------------------------------------------


def plot(results: dict[str, Any], keys: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(12, 6), dpi=110)
    workloads = [results["workloads"][key] for key in keys]
    for tool in SCALE_TOOLS:
        xs, ys, low, high = [], [], [], []
        for w in workloads:
            t = w["times"].get(tool)
            if not t:
                continue
            xs.append(w["total_bytes"] / (1 << 20))
            ys.append(statistics.median(t))
            low.append(statistics.median(t) - min(t))
            high.append(max(t) - statistics.median(t))
        if not xs:
            continue
        dashed = tool.startswith("floor")
        bold = tool.startswith("doit-oci")
        axes.errorbar(
            xs,
            ys,
            yerr=[low, high],
            marker="o",
            capsize=3,
            linestyle="--" if dashed else "-",
            linewidth=2.5 if bold else 1.3,
            label=tool,
        )
    axes.set_xscale("log")
    axes.set_yscale("log")
    sizes = [w["total_bytes"] / (1 << 20) for w in workloads]
    axes.set_xticks(sizes)
    axes.set_xticklabels([f"{s:.0f} MB" for s in sizes])
    axes.minorticks_off()
    axes.set_xlabel("total bytes of the six binaries (incompressible)")
    axes.set_ylabel("seconds (median, min-max bars)")
    m = results["machine"]
    axes.set_title(f"Cold build (+ push) time by tool\n{m['cpu']}, {m['cores']} cores")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
