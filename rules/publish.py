"""What comes after the layout, as task dicts: pushes, saves, the indexes of Python rules,
the housekeeping tasks, and the group task over a build. No doit here (see rules.graph).

    registry:<host>     one request before the first push to a registry (a setup task)
    no-clobber          --no-clobber's check, before any push
    push:<image>        an image to every hub and tag (and where an oci_push of it says)
    save:<image>        its archives (--save; and where an oci_save of it says)
    load:<image>        into a local runtime (--load)
    index:<image>       the multi-platform image of an oci_index, or push_index's join
    attach:<image>      its SBOMs, provenance and signatures, after its push
    release             the --image-refs and --metadata-file files
    status, gc, verify, push_index
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from doit_oci.registry.oci import Descriptor
from doit_oci.registry.push import Destination
from doit_oci.rules.errors import UserErrors
from doit_oci.rules.graph import (
    SPEC_VERSION,
    Check,
    Doit,
    TaskDict,
    image_tasks_of,
    task_params,
)
from doit_oci.rules.names import TaskName
from doit_oci.rules.progress import say
from doit_oci.rules.steps import attach, layout, load, push, save
from doit_oci.rules.steps import lock as locking
from doit_oci.rules.steps.base import base_of
from doit_oci.rules.steps.run import Run
from doit_oci.rules.units import Output
from doit_oci.rules.upkeep import Runs, housekeeping_tasks, release_task
from doit_oci.rules.uploads import upload_tasks


@dataclass(frozen=True)
class PushTask:
    """One push task: what it pushes, where, and what it waits for."""

    label: str  # push:<label>, push/<label>.json
    descriptor: Callable[[], Descriptor]
    where: tuple[Destination, ...]
    file_dep: tuple[str, ...]
    task_dep: tuple[str, ...] = ()


@dataclass(frozen=True)
class SaveTask:
    """One save task: the archives it writes of an output, and how."""

    label: str  # save:<label>
    output: Output
    paths: tuple[Path, ...]
    work: tuple[Callable[[], None], ...]


@dataclass(frozen=True)
class Extra:
    """What Python rules add to the graph of their images: index tasks (part of the
    group), pushes and saves (run when named; one of the same name as an output's --push
    or --save task is merged into it)."""

    indexes: tuple[TaskDict, ...] = ()
    pushes: tuple[PushTask, ...] = ()
    saves: tuple[SaveTask, ...] = ()


def build_tasks(
    doit: Doit,
    run: Run,
    group: str,
    prefix: str = "",
    extra: Extra = Extra(),
    everyone: Runs | None = None,
    peers: Runs | None = None,
) -> Iterator[TaskDict]:
    """Every task of ``run``'s build, ``prefix`` before each name, then ``group`` over
    them; with ``everyone`` (the runs of every plan of the process, known when the tasks
    run), also the housekeeping tasks under their plain names, over all of them.
    ``peers`` are the runs of every plan of the process, for the release files they
    share. With --no-cache every task that does something runs, whatever doit knows."""
    for task in _tasks(doit, run, group, prefix, extra, everyone, peers or partial(_one, run)):
        if run.options.no_cache and task.get("actions"):
            task["uptodate"] = [*task.get("uptodate", []), False]
        yield task


def _one(run: Run) -> list[Run]:
    return [run]


def _tasks(
    doit: Doit,
    run: Run,
    group: str,
    prefix: str,
    extra: Extra,
    everyone: Runs | None,
    peers: Runs,
) -> Iterator[TaskDict]:
    options = run.options
    problems = locking.problems(run, group)
    if problems:
        raise UserErrors(problems)  # --locked, --offline: one line per base, before any work
    warning = locking.unpinned_warning(run)
    if warning:
        say(f"warning: {warning}")
    yield from image_tasks_of(doit, run, prefix)
    pushes = list(output_pushes(run, prefix)) if options.push else []
    if options.push:
        checks = (str(TaskName("no-clobber", prefix=prefix)),) if options.no_clobber else ()
        uploads, needs = upload_tasks(doit, run, prefix, checks)
        yield from uploads
        pushes = [_after_uploads(run, spec, needs) for spec in pushes]
    grouped = [str(TaskName("push", spec.label, prefix=prefix)) for spec in pushes]
    if options.sbom:
        grouped += [str(TaskName("sbom", unit.key, prefix=prefix)) for unit in run.build.units]
    merged = merged_pushes(pushes, extra.pushes)
    yield from push_tasks(doit, run, prefix, merged)
    if options.attaches:
        labels = {output.label: output for output in run.build.outputs}
        for pushed in merged:
            if pushed.label in labels:
                yield attach_task(doit, run, prefix, pushed, labels[pushed.label])
                grouped.append(str(TaskName("attach", pushed.label, prefix=prefix)))
    saves = list(output_saves(run)) if options.save else []
    grouped += [str(TaskName("save", spec.label, prefix=prefix)) for spec in saves]
    for spec in merged_saves(saves, extra.saves):
        yield save_task(doit, run, str(TaskName("save", spec.label, prefix=prefix)), spec)
    yield from extra.indexes
    grouped += [task["basename"] for task in extra.indexes]
    if options.load:
        for output in run.build.outputs:
            grouped.append(str(TaskName("load", output.label, prefix=prefix)))
            yield load_task(doit, run, grouped[-1], output)
    if options.image_refs or options.metadata_file:
        after = [str(TaskName("layout", prefix=prefix)), *grouped]
        yield release_task(doit, run, str(TaskName("release", prefix=prefix)), after, peers)
        grouped.append(str(TaskName("release", prefix=prefix)))
    if prefix:
        yield from housekeeping_tasks(doit, partial(_one, run), prefix, run, peers)
    if everyone is not None:
        yield from housekeeping_tasks(doit, everyone, "", None if prefix else run, peers)
    yield {
        "basename": group,
        "doc": "build the images into the OCI image layout out/oci"
        + (" and push them" if options.push else "")
        + (" and load them" if options.load else ""),
        "actions": None,
        "task_dep": [str(TaskName("layout", prefix=prefix)), *grouped],
        "params": task_params(options.plan),
    }


# -- pushes --------------------------------------------------------------------------------


def output_pushes(run: Run, prefix: str) -> Iterator[PushTask]:
    """A push per output, each after the push of the plan image it is built on (so that
    its layers are mounted, not uploaded again), and after --no-clobber's check."""
    checks = (str(TaskName("no-clobber", prefix=prefix)),) if run.options.no_clobber else ()
    of_unit: dict[str, str] = {}
    for output in run.build.outputs:
        units = run.units_of(output)
        below = set()
        for unit in units:
            upstream = base_of(run, unit).upstream
            if upstream is not None and upstream.key in of_unit:
                below.add(of_unit[upstream.key])
        task = str(TaskName("push", output.label, prefix=prefix))
        of_unit.update((key, task) for key in output.keys)
        yield PushTask(
            output.label,
            partial(layout.image_descriptor, run, output),
            tuple(push.targets(run, output)),
            tuple(str(u.image_record) for u in units),
            (*checks, *sorted(below)),
        )


def _after_uploads(run: Run, spec: PushTask, needs: dict[str, list[str]]) -> PushTask:
    """``spec`` waiting for the uploads of every layer its image holds."""
    output = next(o for o in run.build.outputs if o.label == spec.label)
    waits = [name for key in output.keys for name in needs.get(key, ())]
    return replace(spec, task_dep=spec.task_dep + tuple(dict.fromkeys(waits)))


def merged_pushes(ours: Sequence[PushTask], rules: Sequence[PushTask]) -> list[PushTask]:
    """``ours``, each with the destinations of the rule push of the same name, then the
    other rule pushes."""
    by_label = {spec.label: spec for spec in rules}
    merged = [
        replace(spec, where=spec.where + by_label.pop(spec.label).where)
        if spec.label in by_label
        else spec
        for spec in ours
    ]
    return merged + list(by_label.values())


def push_task(doit: Doit, run: Run, prefix: str, spec: PushTask) -> TaskDict:
    references = [f"{d.name}:{tag}" for d in spec.where for tag in d.tags]
    checks = [
        str(TaskName("registry", registry, prefix=prefix))
        for registry in sorted({d.registry for d in spec.where})
    ]

    def work() -> None:
        push.push(run, spec.label, spec.descriptor(), spec.where)

    return {
        "basename": str(TaskName("push", spec.label, prefix=prefix)),
        "doc": f"push {spec.label} to {', '.join(references)}",
        "actions": [doit.action(work)],
        "file_dep": list(spec.file_dep),
        "task_dep": list(spec.task_dep),
        "setup": checks,
        "targets": [str(push.record_path(run, spec.label))],
        "uptodate": [doit.changed({"to": references, "version": SPEC_VERSION})],
        "verbosity": 2,
    }


def push_tasks(doit: Doit, run: Run, prefix: str, specs: Sequence[PushTask]) -> Iterator[TaskDict]:
    """One request to each registry before the first push to it, so that a registry that
    cannot be reached or refuses our login stops the run with one message, not one per
    image (a setup task: it runs only when something is pushed); then the pushes."""
    if not specs:
        return
    if run.options.no_clobber and run.options.push:
        yield {
            "basename": str(TaskName("no-clobber", prefix=prefix)),
            "doc": "refuse to push when a destination tag other than latest exists already",
            "actions": [doit.action(partial(push.check_clobber, run))],
            "verbosity": 2,
        }
    for registry in sorted({d.registry for spec in specs for d in spec.where}):
        yield {
            "basename": str(TaskName("registry", registry, prefix=prefix)),
            "doc": f"check that {registry} answers and accepts our credentials",
            "actions": [doit.action(partial(push.check_registry, run, registry))],
            "verbosity": 2,
        }
    for spec in specs:
        yield push_task(doit, run, prefix, spec)


def attach_task(doit: Doit, run: Run, prefix: str, spec: PushTask, output: Output) -> TaskDict:
    """attach:<image>: after its push, its SBOMs, provenance and signatures."""
    options = run.options
    pushed = str(TaskName("push", spec.label, prefix=prefix))
    sboms = (
        [str(TaskName("sbom", unit.key, prefix=prefix)) for unit in run.units_of(output)]
        if options.sbom
        else []
    )
    source = run.build.source
    return {
        "basename": str(TaskName("attach", spec.label, prefix=prefix)),
        "doc": f"attach to {spec.label} what --sbom, --provenance and --sign-key ask for",
        "actions": [doit.action(partial(attach.attach_all, run, output, spec.label, spec.where))],
        "file_dep": [str(push.record_path(run, spec.label)), *attach.file_deps(run, output)],
        "task_dep": [pushed, *sboms],
        "targets": [str(attach.record_path(run, spec.label))],
        "uptodate": [
            doit.changed(
                {
                    "sbom": options.sbom,
                    "provenance": options.provenance,
                    "key": options.sign_key,
                    "source": [source.revision, source.url] if source else [],
                    "args": list(options.build_args),
                    "annotations": list(options.annotations),
                    "version": SPEC_VERSION,
                }
            )
        ],
        "verbosity": 2,
    }


# -- saves ---------------------------------------------------------------------------------


def output_saves(run: Run) -> Iterator[SaveTask]:
    for output in run.build.outputs:
        found = tuple(save.paths(run, output).values())
        yield SaveTask(output.label, output, found, (partial(save.save, run, output),))


def merged_saves(ours: Sequence[SaveTask], rules: Sequence[SaveTask]) -> list[SaveTask]:
    by_label = {spec.label: spec for spec in rules}
    merged = []
    for spec in ours:
        rule = by_label.pop(spec.label, None)
        if rule is not None:
            spec = replace(spec, paths=spec.paths + rule.paths, work=spec.work + rule.work)
        merged.append(spec)
    return merged + list(by_label.values())


def save_task(doit: Doit, run: Run, name: str, spec: SaveTask) -> TaskDict:
    def work() -> None:
        for write in spec.work:
            write()

    return {
        "basename": name,
        "doc": f"save {spec.output.label} as {', '.join(str(p) for p in spec.paths)}",
        "actions": [doit.action(work)],
        "file_dep": [str(u.image_record) for u in run.units_of(spec.output)],
        "targets": [str(p) for p in spec.paths],
        "uptodate": [
            doit.changed(
                {
                    "tags": spec.output.ref_names,
                    "hubs": run.options.hubs,
                    "version": SPEC_VERSION,
                }
            )
        ],
        "clean": True,
    }


# -- loads ---------------------------------------------------------------------------------


def load_task(doit: Doit, run: Run, name: str, output: Output) -> TaskDict:
    """An image into a local runtime: up to date when the runtime holds it under every
    name (one query), whatever doit remembers."""
    unit = load.unit_of(run, output)
    return {
        "basename": name,
        "doc": f"load {output.label} ({unit.platform}) into a local runtime",
        "actions": [doit.action(partial(load.load, run, output))],
        "file_dep": [str(unit.image_record)],
        "targets": [str(load.record_path(run, output.label))],
        "uptodate": [
            Check("the runtime holds it under every name", partial(load.uptodate, run, output))
        ],
        "verbosity": 2,
    }
