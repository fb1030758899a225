"""The housekeeping tasks: status, verify, gc, load, lock and push_index, for one plan (under its
prefix: ``oci.status``) and under their plain names over every plan of the process
(``status``), in every way of use. No doit here (see rules.graph).

The plain ones are made by the first task creator, before the others have run: so
status, verify and gc take the runs of every plan as a callable, read when they run
(every creator has run by then), and push_index depends on every plan's own by a
pattern doit resolves once all tasks exist.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path

from doit_oci.rules.errors import UserError
from doit_oci.rules.graph import Check, Doit, TaskDict, task_params
from doit_oci.rules.names import TaskName
from doit_oci.rules.progress import tell
from doit_oci.rules.steps import attach, housekeeping, load, push, release, status
from doit_oci.rules.steps import lock as locking
from doit_oci.rules.steps.remote import verify_remote
from doit_oci.rules.steps.run import Run
from doit_oci.rules.units import Output

Runs = Callable[[], Sequence[Run]]


def _by_layout(runs: Sequence[Run]) -> dict[Path, list[Run]]:
    """The runs that share each content store (plans of one workspace share out/oci)."""
    found: dict[Path, list[Run]] = {}
    for run in runs:
        found.setdefault(run.layout.root, []).append(run)
    return found


def _status(runs: Runs) -> None:
    every = runs()
    for run in every:
        label = f"{run.options.scope}." if len(every) > 1 and run.options.scope else ""
        for line in status.report(run):
            tell(label + line)


def _verify(runs: Runs) -> None:
    damaged = 0
    for root, sharing in _by_layout(runs()).items():
        lines, count = housekeeping.verify(sharing)
        damaged += count
        for line in lines:
            tell(line)
        if count:
            raise UserError(
                f"{count} damaged or missing blobs in {root}",
                "verify",
                "run the build again: it makes them again",
            )
        if sharing[0].options.remote:
            lines, gone = verify_remote(sharing[0])
            for line in lines:
                tell(line)
            if gone:
                raise UserError(
                    f"{gone} manifests, tags or blobs pushed are missing from their registries",
                    "verify --remote",
                    "push again: what is missing is sent again",
                )


def _gc(runs: Runs) -> None:
    for sharing in _by_layout(runs()).values():
        for line in housekeeping.gc(sharing):
            tell(line)


def _load(runs: Runs) -> None:
    for run in runs():
        load.load_built(run)


def _lock(runs: Runs, keep_others: bool) -> None:
    every = runs()
    check = any(run.options.check for run in every)
    lines, stale = locking.lock(every, keep_others, check)
    for line in lines:
        tell(line)
    if stale:
        raise UserError(
            f"{', '.join(stale)} is not current",
            "lock --check",
            "run doit lock, review what moved and commit it",
        )


def _push_index(run: Run, output: Output) -> None:
    joined = push.push_index(run, output)
    for destination, tag, digest in joined:
        tell(f"pushed the index {destination.name}:{tag}@{digest}")
    if run.options.sign_key:  # every index pushed is signed, as every image pushed is
        for line in attach.sign_indexes(run, [(d, digest) for d, _, digest in joined]):
            tell(line)


def command_task(
    doit: Doit, name: str, doc: str, work: Callable[[], object], plan: str
) -> TaskDict:
    """A task that builds nothing: it runs when asked for, and prints what it finds."""
    return {
        "basename": name,
        "doc": doc,
        "actions": [doit.action(work)],
        "verbosity": 2,
        "params": task_params(plan),
    }


def release_task(
    doit: Doit, run: Run, name: str, after: Sequence[str], peers: Runs, what: str = release.BUILT
) -> TaskDict:
    """release: the --image-refs and --metadata-file files, once what they tell is done."""
    return {
        "basename": name,
        "doc": "write the --image-refs and --metadata-file files",
        "actions": [doit.action(partial(release.release, run, peers, what))],
        "task_dep": list(after),
        "uptodate": [
            Check(
                "the refs and metadata files say what the records say",
                partial(release.uptodate, run, peers, what),
            )
        ],
        "verbosity": 2,
    }


def housekeeping_tasks(
    doit: Doit, runs: Runs, prefix: str, own: Run | None, peers: Runs | None = None
) -> Iterator[TaskDict]:
    """status, verify, gc, load and push_index over ``runs``; ``own`` is the run whose
    push_index joins are tasks of their own (``index:<image>``), and whose release files
    (--image-refs, --metadata-file) then tell what they joined (with ``peers``')."""
    plan = own.options.plan if own is not None else ""
    commands: tuple[tuple[str, str, Callable[[], object]], ...] = (
        (
            "status",
            "say which images are out of date and why (nothing is built)",
            partial(_status, runs),
        ),
        (
            "verify",
            "hash the content store again, remove damaged blobs, name missing ones",
            partial(_verify, runs),
        ),
        (
            "gc",
            "remove from the content store what no name and no record needs",
            partial(_gc, runs),
        ),
        (
            "load",
            "load what the last build made into a local runtime (nothing is built)",
            partial(_load, runs),
        ),
        (
            "lock",
            "pin the registry bases in bases.lock beside the plan (--check: say whether it is"
            " current, write nothing)",
            partial(_lock, runs, bool(prefix)),
        ),
    )
    for step, doc, work in commands:
        yield command_task(doit, str(TaskName(step, prefix=prefix)), doc, work, plan)
    joins: list[str] = []
    if own is not None and own.options.hubs and not own.options.platform_tags:
        for output in own.build.outputs:
            joins.append(str(TaskName("index", output.label, prefix=prefix)))
            yield {
                "basename": joins[-1],
                "doc": f"make {output.label} for every platform from the <tag>-<arch> images",
                "actions": [doit.action(partial(_push_index, own, output))],
                "verbosity": 2,
            }
        if own.options.image_refs or own.options.metadata_file:
            name = str(TaskName("release", "push_index", prefix=prefix))
            task = release_task(doit, own, name, list(joins), peers or runs, release.JOINED)
            yield {**task, "uptodate": []}  # push_index always runs: so does its release
            joins.append(name)
    if not prefix:
        # the plain one over every plan: each plan's own (``<prefix>push_index``), found by
        # doit once every creator has run (a name with a prefix: at least one character)
        joins.append("?*push_index")
    yield {
        "basename": str(TaskName("push_index", prefix=prefix)),
        "doc": "make each multi-platform image from what one machine per platform pushed"
        " with --platform-tags (reads manifests and configs, never a layer)",
        "actions": None,
        "task_dep": joins,
        "params": task_params(plan),
    }
