"""What a run prints at its end: the summary table (per image: layers built, taken from
the cache repository or reused, bytes uploaded, digest, time) and the timing line per
step, as the seed logs each phase's runtime. No doit here: rules.tasks' reporter calls it
with what doit told it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Set

from doit_oci.registry.sizes import size
from doit_oci.rules.names import STEPS, TaskName
from doit_oci.rules.steps.layout import image_descriptor
from doit_oci.rules.steps.push import record_path, upload_record
from doit_oci.rules.steps.records import LayerRecord, PushRecord
from doit_oci.rules.steps.run import Run
from doit_oci.rules.units import Output


def _row(
    run: Run,
    output: Output,
    prefix: str,
    durations: Mapping[str, float],
    failed: Set[str],
) -> tuple[str, str, str, str, str]:
    keys = set(output.keys)
    rebuilt = cached = 0
    spent = 0.0
    pushed = False
    sent = 0  # by the layer uploads of this run
    broken = ""
    for task, seconds in durations.items():
        name = TaskName.parse(task, prefix)
        ours = name.key in keys or (name.step in ("push", "save") and name.key == output.label)
        if not ours or name.prefix != prefix:
            continue
        spent += seconds
        if task in failed:
            broken = broken or task
        elif name.step == "layer" and name.layer is not None:
            record = LayerRecord.read(run.unit(name.key).layer(name.layer))
            cached += bool(record.cached)
            rebuilt += not record.cached
        elif name.step == "push":
            pushed = True
        elif name.step == "upload" and name.layer is not None:
            upload = upload_record(run.unit(name.key), name.layer)
            with contextlib.suppress(OSError, ValueError):
                sent += PushRecord.read(upload).uploaded_bytes
    total = sum(unit.layer_count for unit in run.units_of(output))
    uploaded = sent
    if pushed:
        with contextlib.suppress(OSError, ValueError):
            uploaded += PushRecord.read(record_path(run, output.label)).uploaded_bytes
    layers = f"{rebuilt}/{cached}/{total - rebuilt - cached}"
    if broken:
        digest = f"failed ({broken})"
    else:
        try:
            digest = image_descriptor(run, output).digest
        except (OSError, ValueError):
            first = min(failed, default="")
            digest = f"not built ({first} failed)" if first else "(not built)"
            layers = "-"
    return (output.label, layers, size(uploaded), digest, f"{spent:.2f}s")


def summary_table(
    run: Run, prefix: str, durations: Mapping[str, float], failed: Set[str] = frozenset()
) -> str:
    rows = [("image", "layers built/cached/reused", "uploaded", "digest", "time")]
    rows.extend(_row(run, output, prefix, durations, failed) for output in run.build.outputs)
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return "".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        + "\n"
        for row in rows
    )


def timing_line(created: float, seconds: Mapping[str, float]) -> str:
    """``timing: plan 0.12s, make 1.03s, layer 0.50s, ...``, or "" when no step ran."""
    if not any(step in seconds for step in STEPS):
        return ""
    parts = [f"plan {created:.2f}s"]
    parts.extend(f"{step} {seconds[step]:.2f}s" for step in STEPS if step in seconds)
    return f"timing: {', '.join(parts)}\n"


def hashed_line(hashed: Mapping[str, int]) -> str:
    """How many files this run hashed because their stat changed, or ""."""
    if not hashed:
        return ""
    return f"hashed {len(hashed)} files whose stat changed ({sum(hashed.values())} times)\n"
