"""Python rules as doit task creators: what a dodo.py calls.

    from doit_oci import doit_config, oci_image, oci_index, oci_push, oci_save

    DOIT_CONFIG = doit_config(default_task="oci_images")     # every image rule

    task_base = oci_image(name="base", dockerfile="base/Dockerfile", files=["base/passwd"])
    task_app = oci_image(name="app", dockerfile="app/Dockerfile",
                         targets=["${TARGET_OUT}/app"])           # FROM base: the rule above
    task_tool = oci_image(name="tool", base=":base",             # no Dockerfile at all
                          files={"/usr/local/bin/tool": "${TARGET_OUT}/tool"},
                          targets=["${TARGET_OUT}/tool"], entrypoint=["/usr/local/bin/tool"])
    task_push = oci_push(task_app, ["registry.example.com/team/app"], ["1.0"])
    task_save = oci_save(task_app, "out/app.tar.gz")

Each call checks its rule at once (a mistake is one line naming dodo.py:<line>, from doit)
and records it (rules.globals); each returns a task creator. The first creator doit calls
gives the tasks of every declared rule, made as a plan's are (rules.tasks.make_tasks): the
images' steps, ``oci_images`` over them, the housekeeping tasks, and the rules' pushes,
saves and indexes; the others give none. So every option works as with a plan, and a rule
that is not bound to a name of dodo.py is still built.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from doit_oci.registry.files import write_if_changed
from doit_oci.registry.oci import Platform
from doit_oci.registry.push import Destination
from doit_oci.rules import api, rulesplan
from doit_oci.rules.build import load_build
from doit_oci.rules.errors import UserError
from doit_oci.rules.globals import PROCESS
from doit_oci.rules.graph import TaskDict
from doit_oci.rules.names import TaskName
from doit_oci.rules.options import Options, read_options
from doit_oci.rules.plan import Plan
from doit_oci.rules.publish import Extra, PushTask, SaveTask
from doit_oci.rules.steps import layout, save
from doit_oci.rules.steps.run import Run
from doit_oci.rules.tasks import DOIT, make_tasks, stop, tasks_taking_options
from doit_oci.rules.units import Build, Output

GROUP = "oci_images"  # builds every image rule: DOIT_CONFIG = doit_config(default_task=GROUP)


@dataclass(frozen=True)
class RuleTasks:
    """What a rule function returns: a doit task creator (bind each to one name)."""

    rule: api.Declaration

    @property
    def name(self) -> str:
        return getattr(self.rule, "name", "")

    def create_doit_tasks(self) -> Iterator[TaskDict]:
        """the tasks of the Python rules"""
        if PROCESS.rules_tasks_given:
            return
        PROCESS.rules_tasks_given = True
        yield from rules_tasks(list(PROCESS.declared))


def _where() -> str:
    """dodo.py:<line> of the call to the rule function."""
    frame = sys._getframe(2)
    return f"{os.path.relpath(frame.f_code.co_filename)}:{frame.f_lineno}"


def _rule(value: object) -> object:
    return value.rule if isinstance(value, RuleTasks) else value


def _declare(rule: api.Declaration) -> RuleTasks:
    PROCESS.declared.append(rule)
    return RuleTasks(rule)


def oci_image(name: str, **keywords: Any) -> RuleTasks:
    """Declare an image. With ``dockerfile``: its ``files`` and ``targets`` make its context
    as in a plan (or ``context`` names a directory), and a FROM naming another rule builds
    on it. Without: ``base`` (``":name"``, a rule, a registry reference, or None for
    scratch), ``files`` as {path in the image: path in the workspace} and the config
    keywords ``entrypoint``, ``cmd`` (lists), ``env``, ``labels`` (mappings), ``user``,
    ``workdir``, ``expose``. Also ``args``, ``platforms``, ``emulation_required`` and
    ``annotations`` (a mapping, on its manifests and index)."""
    where = _where()
    if "base" in keywords:
        keywords["base"] = _rule(keywords["base"])
    try:
        rule = api.image_rule(name, where, PROCESS.declared, **keywords)
    except TypeError as exc:
        stop(UserError(f"oci_image: {exc}", where, "see the keywords in help(oci_image)"))
    except UserError as exc:
        stop(exc)
    return _declare(rule)


def oci_index(name: str, images: Sequence[object], tags: Sequence[str] = ("latest",)) -> RuleTasks:
    """One multi-platform image from single-platform image rules (one per platform)."""
    where = _where()
    try:
        listed = [_rule(image) for image in images] if isinstance(images, list | tuple) else images
        rule = api.index_rule(name, where, PROCESS.declared, listed, tags)  # type: ignore[arg-type]
    except UserError as exc:
        stop(exc)
    return _declare(rule)


def oci_push(
    image: object, repositories: Sequence[str], tags: Sequence[str] = ("latest",), name: str = ""
) -> RuleTasks:
    """Push ``image`` to each repository (``host[:port]/path``) under each tag:
    ``doit push:<name>`` (the image's name unless ``name`` is given)."""
    where = _where()
    try:
        rule = api.push_rule(where, _rule(image), repositories, tags, name)
    except UserError as exc:
        stop(exc)
    return _declare(rule)


def oci_save(image: object, path: str) -> RuleTasks:
    """Save ``image`` at ``path``: a docker archive (``.tar.gz``, ``.tgz``: one platform,
    for ``docker load``) or an OCI archive (``.oci.tar``: any image): ``doit save:<image>``."""
    where = _where()
    try:
        rule = api.save_rule(where, _rule(image), path)
    except UserError as exc:
        stop(exc)
    return _declare(rule)


def oci_layout() -> None:
    """Nothing to declare: every image rule is named in out/oci."""


# -- the tasks of the rules ------------------------------------------------------------------


def rules_tasks(declared: Sequence[api.Declaration], group: str = GROUP) -> list[TaskDict]:
    """Every task of the Python rules ``declared``: the ones a plan of the same images
    gives, and the pushes, saves and indexes the rules declare."""
    env = os.environ
    workspace = Path.cwd()

    def options() -> Options:
        read = read_options(
            sys.argv[1:],
            env,
            tasks_taking_options(group, ""),
            default_plan="",
            default_platforms=rulesplan.rule_platforms(declared),
        )
        names = tuple(rule.name for rule in rulesplan.images_of(declared))
        return replace(read, targets=names, variants=("default",))

    def build(options: Options) -> Build:
        made = load_build(options, workspace, env, partial(_plan, declared, workspace, env))
        _check_built(declared, made)
        return made

    return make_tasks(options, build, group, "", partial(_extra, declared), env)


def _plan(
    declared: Sequence[api.Declaration],
    workspace: Path,
    environ: Mapping[str, str],
    platform: Platform,
) -> Plan:
    plan, written = rulesplan.rules_plan(declared, platform, workspace, environ)
    for path, text in written.items():
        write_if_changed(path, text.encode())
    return plan


def _output(build: Build, name: str) -> Output:
    for output in build.outputs:
        if output.name == name:
            return output
    raise KeyError(name)


def _check_built(declared: Sequence[api.Declaration], build: Build) -> None:
    """Every image an index, push or save rule names is built for a platform of the run."""
    built = {output.name for output in build.outputs}
    platforms = ", ".join(str(p) for p in build.options.platforms)
    for rule in declared:
        names: tuple[str, ...] = ()
        if isinstance(rule, api.IndexRule):
            names = rule.images
        elif isinstance(rule, api.PushRule | api.SaveRule):
            names = (rule.image,)
        for name in names:
            if name in built or isinstance(rulesplan.rule_named(declared, name), api.IndexRule):
                continue
            raise UserError(
                f"image rule {name!r} is not built for any platform of this build ({platforms})",
                rule.where,
                "add its platforms to --architectures (or DOCKER_ARCHITECTURES)",
            )
        if isinstance(rule, api.SaveRule) and not rule.path.endswith(".oci.tar"):
            output = _output(build, rule.image)
            if len(output.keys) > 1:
                raise UserError(
                    f"oci_save of {rule.image!r}: a docker archive holds one platform, and"
                    f" {rule.image!r} is built for {len(output.keys)}",
                    rule.where,
                    "save it as a .oci.tar (an OCI archive of the whole index)",
                )


def _extra(declared: Sequence[api.Declaration], run: Run) -> Extra:
    """The tasks of oci_index, oci_push and oci_save rules."""
    build = run.build
    indexes: list[TaskDict] = []
    pushes: list[PushTask] = []
    saves: list[SaveTask] = []
    for rule in declared:
        if isinstance(rule, api.IndexRule):
            units = tuple(u for n in rule.images for u in run.units_of(_output(build, n)))
            indexes.append(
                {
                    "basename": str(TaskName("index", rule.name)),
                    "doc": f"the multi-platform image {rule.name} of {', '.join(rule.images)}",
                    "actions": [
                        DOIT.action(partial(layout.join, run, rule.name, rule.tags, units))
                    ],
                    "file_dep": [str(u.image_record) for u in units],
                    "targets": [str(layout.index_record_path(run, rule.name))],
                }
            )
        elif isinstance(rule, api.PushRule):
            where = tuple(Destination(r, path, rule.tags) for r, path in rule.repositories)
            target = rulesplan.rule_named(declared, rule.image)
            if isinstance(target, api.IndexRule):
                record = layout.index_record_path(run, target.name)
                descriptor = partial(layout.joined, run, target.name)
                pushes.append(PushTask(rule.name, descriptor, where, (str(record),)))
            else:
                output = _output(build, target.name)
                units = run.units_of(output)
                descriptor = partial(layout.image_descriptor, run, output)
                records = tuple(str(u.image_record) for u in units)
                pushes.append(PushTask(rule.name, descriptor, where, records))
        elif isinstance(rule, api.SaveRule):
            output = _output(build, rule.image)
            path = run.workspace / rule.path
            work = partial(save.save_one, run, output, path)
            saves.append(SaveTask(output.label, output, (path,), (work,)))
    return Extra(tuple(indexes), tuple(pushes), tuple(saves))
