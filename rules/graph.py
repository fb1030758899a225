"""The build as task dicts: one per image and step, each declaring what it reads (file_dep,
values, up-to-date checks) and what it writes (targets). The steps' work is in
rules.steps; what comes after the layout (pushes, saves, housekeeping) in rules.publish.

No doit here: the two things a task dict needs of doit (an action that fails with one
line, and a check of values against the last run) come in a ``Doit`` from rules.tasks,
so that the graph is made, and tested, without it.

    make[:<platform>]   make the plan's targets for a platform (up to date when `make -q` is)
    base:<reference>    resolve a registry base (a HEAD when up to date)
    parse:<image>       Dockerfile + base config -> copies.json, config.json
    translate:<image>   COPY sources -> layer-K.inputs.json (what each layer holds), tree.json
    layer:<image>.<K>   one layer blob per COPY/ADD, streamed into out/oci
    image:<image>       config and manifest -> out/oci, image.json
    sbom:<image>        its SPDX SBOM in out/sbom (--sbom)
    layout              out/oci/index.json names every image <name>:<tag>

``<image>`` is ``<name>[-variant][@<os>_<arch>]``: the platform when several are built.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from doit_oci.registry.oci import Platform
from doit_oci.rules.dockerfile.read import build_arg_names
from doit_oci.rules.errors import UserError
from doit_oci.rules.flags import OPTIONS
from doit_oci.rules.make import call_make, make_environment, make_is_up_to_date
from doit_oci.rules.names import TaskName
from doit_oci.rules.plan import platform_variables
from doit_oci.rules.progress import say
from doit_oci.rules.steps import copy, image, layer, layout, parse, sbom
from doit_oci.rules.steps.base import RegistryBase, base_of
from doit_oci.rules.steps.run import Run
from doit_oci.rules.units import Unit

SPEC_VERSION = 3  # bump when a record's format or meaning changes, to rebuild them all

TaskDict = dict[str, Any]
Work = Callable[[], object]


@dataclass(frozen=True)
class Doit:
    """What a task dict needs of doit: ``action(work)`` is a python-action that runs
    ``work`` and fails with one line on a user's mistake; ``changed(values)`` an
    up-to-date check that is false when ``values`` differ from the last run's."""

    action: Callable[[Work], Callable[..., object]]
    changed: Callable[[Any], object]


class Check:
    """An up-to-date check that doit shows by what it checks (`doit info <task>`)."""

    def __init__(self, description: str, check: Callable[[], bool]) -> None:
        self.description = description
        self.check = check

    def __call__(self) -> bool:
        return self.check()

    def __repr__(self) -> str:
        return self.description

    __str__ = __repr__


def task_params(plan: str) -> list[dict[str, Any]]:
    """doit parameters for a task that takes the build's options."""
    params = []
    for option in OPTIONS:
        param: dict[str, Any] = {"name": option.name, "long": option.flag, "help": option.help}
        if option.kind == "list":
            param.update(type=list, default=[])
        elif option.kind == "bool":
            param.update(type=bool, default=False)
        else:
            param.update(type=str, default=plan if option.name == "plan" else "")
        params.append(param)
    return params


def run_make(
    workspace: Path, platform: Platform, goals: tuple[str, ...], env: dict[str, str]
) -> None:
    started = time.monotonic()
    code = call_make(goals, workspace, env)
    if code != 0:
        raise UserError(
            f"make failed with exit code {code} for {platform} (goals: {' '.join(goals)})",
            fix="see make's output above",
        )
    say(f"make for {platform}: {time.monotonic() - started:.1f}s")


def make_task(
    doit: Doit, name: str, workspace: Path, platform: Platform, goals: tuple[str, ...]
) -> TaskDict:
    env = make_environment(os.environ, platform_variables(platform, workspace))
    return {
        "basename": name,
        "doc": f"make the plan's targets for {platform}",
        "actions": [doit.action(partial(run_make, workspace, platform, goals, env))],
        "uptodate": [
            Check(
                "`make -q` says the targets are up to date",
                partial(make_is_up_to_date, goals, workspace, env),
            )
        ],
        "verbosity": 2,
    }


def base_task(doit: Doit, run: Run, name: str, base: RegistryBase) -> TaskDict:
    return {
        "basename": name,
        "doc": f"resolve the registry base {base.label} for {base.unit.platform}",
        "actions": [doit.action(base.resolve)],
        "targets": [str(base.record)],
        "uptodate": [
            doit.changed({"push": run.options.push, "version": SPEC_VERSION}),
            Check(f"{base.label} still points at the manifest resolved before", base.uptodate),
        ],
        "clean": True,
    }


def _base_deps(run: Run, unit: Unit) -> list[str]:
    record = base_of(run, unit).record
    return [str(record)] if record is not None else []


def parse_task(doit: Doit, run: Run, name: str, unit: Unit) -> TaskDict:
    declared = build_arg_names(unit.chain.dockerfile)
    return {
        "basename": name,
        "doc": f"parse the Dockerfile of {unit.name} ({unit.platform})",
        "actions": [doit.action(partial(parse.parse, run, unit))],
        "file_dep": [str(unit.image.dockerfile), *_base_deps(run, unit)],
        "targets": [str(unit.copies), str(unit.config)],
        "uptodate": [
            doit.changed(
                {
                    # only the build args its Dockerfile declares can change it
                    "args": [(k, v) for k, v in unit.build_args if k in declared],
                    "version": SPEC_VERSION,
                    "chain": [s.index for s in unit.chain.stages],
                }
            )
        ],
        "clean": True,
    }


def translate_task(doit: Doit, run: Run, name: str, unit: Unit, after: list[str]) -> TaskDict:
    return {
        "basename": name,
        "doc": f"find the files each COPY of {unit.name} ({unit.platform}) takes",
        "actions": [doit.action(partial(copy.translate, run, unit))],
        "file_dep": [str(unit.copies)],
        "task_dep": after,
        "targets": [str(unit.inputs(i)) for i in range(unit.layer_count)] + [str(unit.tree)],
        "uptodate": [
            Check(
                "the files its COPYs take are as recorded (size, mtime, then content digest)",
                partial(copy.uptodate, run, unit),
            )
        ],
        "clean": True,
    }


def cache_check_task(doit: Doit, run: Run, name: str) -> TaskDict:
    return {
        "basename": name,
        "doc": f"check once that the layer cache {run.options.cache_repo} answers",
        "actions": [doit.action(partial(layer.check_cache, run))],
        "targets": [str(layer.cache_check_path(run))],
        "verbosity": 2,
    }


def layer_task(
    doit: Doit, run: Run, name: str, unit: Unit, index: int, setup: list[str]
) -> TaskDict:
    options = run.options
    return {
        "basename": name,
        "setup": setup,
        "doc": f"layer {index} of {unit.name} ({unit.platform})",
        "actions": [doit.action(partial(layer.layer, run, unit, index))],
        "file_dep": [str(unit.inputs(index))],
        "targets": [str(unit.layer(index))],
        "uptodate": [
            doit.changed(
                {
                    "compression": options.layer_compression,
                    "epoch": options.epoch,
                    "version": SPEC_VERSION,
                    "cache": options.cache_repo,
                }
            ),
            Check("its blob is in out/oci", partial(layer.uptodate, run, unit, index)),
        ],
        "clean": True,
    }


def image_task(doit: Doit, run: Run, name: str, unit: Unit) -> TaskDict:
    return {
        "basename": name,
        "doc": f"assemble the config and manifest of {unit.name} ({unit.platform})",
        "actions": [doit.action(partial(image.image, run, unit))],
        "file_dep": [str(unit.config)]
        + [str(unit.layer(i)) for i in range(unit.layer_count)]
        + _base_deps(run, unit),
        "targets": [str(unit.image_record)],
        "uptodate": [
            doit.changed(
                {
                    "epoch": run.options.epoch,
                    "version": SPEC_VERSION,
                    "annotations": [*unit.annotations, run.options.auto_annotations],
                }
            ),
            Check("its manifest and config are in out/oci", partial(image.uptodate, run, unit)),
        ],
        "clean": True,
    }


def sbom_task(doit: Doit, run: Run, name: str, unit: Unit) -> TaskDict:
    return {
        "basename": name,
        "doc": f"write the SPDX SBOM of {unit.name} ({unit.platform})",
        "actions": [doit.action(partial(sbom.sbom, run, unit))],
        "file_dep": [str(path) for path in sbom.inputs(run, unit)],
        "targets": [str(sbom.sbom_path(run, unit))],
        "uptodate": [doit.changed({"epoch": run.options.epoch, "version": SPEC_VERSION})],
        "clean": True,
    }


def layout_task(doit: Doit, run: Run, name: str) -> TaskDict:
    build = run.build
    return {
        "basename": name,
        "doc": "name the images <name>:<tag> in the OCI image layout out/oci",
        "actions": [doit.action(partial(layout.write_layout, run))],
        "file_dep": [str(build.unit(key).image_record) for key in build.wanted],
        "targets": [str(layout.record_path(run))],
        "uptodate": [
            Check("out/oci/index.json names every image as built", partial(layout.uptodate, run))
        ],
    }


def image_tasks_of(doit: Doit, run: Run, prefix: str) -> Iterator[TaskDict]:
    """The tasks that build every image of ``run`` into out/oci, up to the layout."""
    build = run.build
    several = len(run.options.platforms) > 1

    def name(step: str, unit: Unit | None = None, index: int | None = None) -> str:
        return str(TaskName(step, unit.key if unit else "", index, prefix))

    make_tasks: dict[Platform, str] = {}
    for platform, goals in build.make_goals:
        make_tasks[platform] = str(TaskName("make", platform.slug if several else "", None, prefix))
        yield make_task(doit, make_tasks[platform], build.workspace, platform, goals)
    resolved: set[Path] = set()
    for unit in build.units:
        base = base_of(run, unit)
        if isinstance(base, RegistryBase) and base.record not in resolved:
            resolved.add(base.record)
            key = base.label + (f"@{unit.platform.slug}" if several else "")
            yield base_task(doit, run, str(TaskName("base", key, None, prefix)), base)
    cache_check = []
    if run.options.cache_repo:
        cache_check.append(name("cache-repo"))
        yield cache_check_task(doit, run, cache_check[0])
    for unit in build.units:
        yield parse_task(doit, run, name("parse", unit), unit)
        after = []
        if unit.image.targets and unit.platform in make_tasks:
            after.append(make_tasks[unit.platform])
        upstream = base_of(run, unit).upstream
        if upstream is not None:
            after.append(name("translate", upstream))
        yield translate_task(doit, run, name("translate", unit), unit, after)
        for index in range(unit.layer_count):
            yield layer_task(doit, run, name("layer", unit, index), unit, index, cache_check)
        yield image_task(doit, run, name("image", unit), unit)
        if run.options.sbom:
            yield sbom_task(doit, run, name("sbom", unit), unit)
    yield layout_task(doit, run, name("layout"))
