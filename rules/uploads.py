"""Uploads that start while the build goes on: with --push, each layer has a task of its
own, ``upload:<image>.<K>``, that sends its blob to every repository that will need it
(the images it is a layer of, its own and those built on it) as soon as the layer is
built, while other layers are still being made; the image's push then only mounts or
finds its blobs, and puts the config, the manifests and the tags. No doit here.

An upload is up to date when its layer record is unchanged and the repositories are the
same: an unchanged image sends nothing and asks nothing.
"""

from __future__ import annotations

from functools import partial

from doit_oci.registry.push import Destination
from doit_oci.rules.graph import SPEC_VERSION, Doit, TaskDict
from doit_oci.rules.names import TaskName
from doit_oci.rules.steps import push
from doit_oci.rules.steps.base import base_of
from doit_oci.rules.steps.run import Run
from doit_oci.rules.units import Unit


def consumers(run: Run) -> dict[str, tuple[Destination, ...]]:
    """unit key -> the repositories that will hold its layers: those of every output that
    is it or is built on it (through plan bases), in the order the outputs come."""
    found: dict[str, list[Destination]] = {}
    for output in run.build.outputs:
        where = push.targets(run, output)
        for unit in run.units_of(output):
            below: Unit | None = unit
            while below is not None:
                known = found.setdefault(below.key, [])
                known.extend(d for d in where if d not in known)
                below = base_of(run, below).upstream
    return {key: tuple(where) for key, where in found.items()}


def upload_tasks(
    doit: Doit, run: Run, prefix: str, checks: tuple[str, ...]
) -> tuple[list[TaskDict], dict[str, list[str]]]:
    """The upload tasks, and for each unit the upload tasks of its layers and its bases'
    (what its push waits for)."""
    tasks: list[TaskDict] = []
    of_unit: dict[str, list[str]] = {}
    repositories = consumers(run)
    for unit in run.build.units:
        where = repositories.get(unit.key, ())
        if not where:
            continue
        names = []
        for index in range(unit.layer_count):
            name = str(TaskName("upload", unit.key, index, prefix))
            names.append(name)
            tasks.append(_upload_task(doit, run, name, unit, index, where, checks, prefix))
        of_unit[unit.key] = names
    needs: dict[str, list[str]] = {}
    for unit in run.build.units:
        chain: list[str] = []
        below: Unit | None = unit
        while below is not None:
            chain.extend(of_unit.get(below.key, ()))
            below = base_of(run, below).upstream
        needs[unit.key] = chain
    return tasks, needs


def _upload_task(
    doit: Doit,
    run: Run,
    name: str,
    unit: Unit,
    index: int,
    where: tuple[Destination, ...],
    checks: tuple[str, ...],
    prefix: str,
) -> TaskDict:
    registries = sorted({d.registry for d in where})
    return {
        "basename": name,
        "doc": f"send layer {index} of {unit.name} ({unit.platform}) to"
        f" {', '.join(d.name for d in where)} as soon as it is built",
        "actions": [doit.action(partial(push.upload_layer, run, unit, index, where))],
        "file_dep": [str(unit.layer(index))],
        "task_dep": list(checks),
        "setup": [str(TaskName("registry", r, prefix=prefix)) for r in registries],
        "targets": [str(push.upload_record(unit, index))],
        "uptodate": [doit.changed({"to": [d.name for d in where], "version": SPEC_VERSION})],
        "verbosity": 2,
    }
