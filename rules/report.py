"""What a run reports of its tasks: the summary at its end (per image: layers built,
taken from the cache repository or reused, bytes uploaded, digest, time; and the seconds
per step, as the seed logs each phase's runtime), and what the events of a task say of
it, found from its name among the task creators' runs. No doit here: rules.tasks'
reporter calls it with what doit told it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass

from doit_oci.rules.events import ImageRow, Summary, TaskFinished
from doit_oci.rules.globals import PROCESS
from doit_oci.rules.names import STEPS, TaskName
from doit_oci.rules.steps import facts
from doit_oci.rules.steps.layout import image_descriptor
from doit_oci.rules.steps.push import record_path, upload_record
from doit_oci.rules.steps.records import LayerRecord, PushRecord
from doit_oci.rules.steps.run import Run
from doit_oci.rules.units import Output


@dataclass(frozen=True)
class Made:
    """The tasks one creator made: its run, its group task and its prefix."""

    run: Run
    group: str
    prefix: str


def owner(name: str) -> Made | None:
    """The task creator's result that made the task ``name`` (the longest prefix first)."""
    made = [m for m in PROCESS.runs if isinstance(m, Made) and name.startswith(m.prefix)]
    return max(made, key=lambda m: len(m.prefix), default=None)


def describe(name: str) -> facts.TaskInfo:
    found = owner(name)
    return facts.describe(found.run if found else None, found.prefix if found else "", name)


def made_by(name: str) -> tuple[int, bool]:
    """(bytes, cached) of a task that ran (rules.steps.facts)."""
    found = owner(name)
    return facts.made(found.run if found else None, found.prefix if found else "", name)


def finished(
    info: facts.TaskInfo,
    seconds: float = 0.0,
    done: int = 0,
    cached: bool = False,
    uptodate: bool = False,
    ok: bool = True,
) -> TaskFinished:
    return TaskFinished(
        info.task, info.step, info.image, info.platform, seconds, done, cached, uptodate, ok
    )


def _row(
    run: Run,
    output: Output,
    prefix: str,
    durations: Mapping[str, float],
    failed: Set[str],
) -> ImageRow:
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
    digest = blocked = ""
    if not broken:
        try:
            digest = image_descriptor(run, output).digest
        except (OSError, ValueError):
            blocked = min(failed, default="")
    return ImageRow(
        output.label,
        rebuilt,
        cached,
        total - rebuilt - cached,
        uploaded,
        digest,
        round(spent, 3),
        broken,
        prefix,
        blocked,
    )


def rows(
    run: Run, prefix: str, durations: Mapping[str, float], failed: Set[str] = frozenset()
) -> tuple[ImageRow, ...]:
    """The summary table's rows of one plan: one per image it gives."""
    return tuple(_row(run, output, prefix, durations, failed) for output in run.build.outputs)


def timing(created: float, seconds: Mapping[str, float]) -> tuple[tuple[str, float], ...]:
    """(step, seconds) for making the tasks ("plan") and each step that ran, in the order a
    build runs them; nothing when no step ran."""
    if not any(step in seconds for step in STEPS):
        return ()
    return (
        ("plan", round(created, 3)),
        *((step, round(seconds[step], 3)) for step in STEPS if step in seconds),
    )


def summary(
    tables: Sequence[tuple[Run, str]],
    durations: Mapping[str, float],
    failed: Set[str],
    created: float,
    seconds: Mapping[str, float],
    hashed: Mapping[str, int],
) -> Summary:
    """The summary event of a run: the rows of each plan asked for (``tables``: its run
    and prefix), the hashing count and the timing per step."""
    found: list[ImageRow] = []
    problems: list[str] = []
    for run, prefix in tables:
        try:
            found.extend(rows(run, prefix, durations, failed))
        except Exception as exc:  # a summary must not fail a build
            problems.append(str(exc))
    return Summary(
        tuple(found),
        timing(created, seconds),
        len(hashed),
        sum(hashed.values()),
        not failed,
        tuple(problems),
    )
