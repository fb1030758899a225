"""Rules in Python, as rules_oci's are in Starlark, for projects that want no YAML.

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

Each rule is a doit task creator (doit finds its ``create_doit_tasks``: bind each rule to
one name of the dodo.py): its tasks are the very ones a plan gives (parse,
translate, layer, image...), made by the same engine from the same kind of plan, with the
same file_dep, targets and up-to-date checks, so the same inputs give the same digests
either way. The first image rule also carries the tasks all images share (make, registry
bases, the layout's names, status, gc, and ``oci_images``, which builds every image rule).
A rule without a Dockerfile is written as one (FROM its base, a COPY per file, then its
config) into out/rules/.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from doit_oci.registry.files import write_if_changed
from doit_oci.registry.oci import INDEX, Descriptor, Index, Platform
from doit_oci.registry.push import Destination
from doit_oci.registry.reference import split_repository
from doit_oci.rules.build import Build, Output, load_build
from doit_oci.rules.errors import UserError
from doit_oci.rules.options import read_options
from doit_oci.rules.plan import ImagePlan, Plan, expand, plan_variables

TaskDict = dict[str, Any]
GROUP = "oci_images"  # builds every image rule: DOIT_CONFIG = doit_config(default_task=GROUP)
SHARED = ("make", "base:", "layout", "status", "gc", "verify", GROUP)


@dataclass
class ImageRule:
    """An image declared in Python; call it (as doit does) for its tasks."""

    name: str
    dockerfile: str | None = None
    base: str | None = None
    files: tuple[str, ...] | Mapping[str, str] = ()
    targets: tuple[str, ...] = ()
    context: str | None = None
    args: Mapping[str, str] = field(default_factory=dict)
    platforms: tuple[str, ...] = ()
    emulation_required: bool = False
    config: Mapping[str, Any] = field(default_factory=dict)
    where: str = ""

    @property
    def label(self) -> str:
        return f":{self.name}"

    def create_doit_tasks(self) -> Iterator[TaskDict]:
        """the tasks of an image rule"""
        yield from _engine().tasks_of(self)


@dataclass
class IndexRule:
    """A multi-platform image made of single-platform image rules."""

    name: str
    images: tuple[ImageRule, ...]
    tags: tuple[str, ...]

    def create_doit_tasks(self) -> Iterator[TaskDict]:
        """the task of a multi-platform image"""
        yield _engine().index_task(self)


RULES: dict[str, ImageRule] = {}


def _where() -> str:
    frame = sys._getframe(2)
    return f"{os.path.relpath(frame.f_code.co_filename)}:{frame.f_lineno}"


def oci_image(
    name: str,
    *,
    dockerfile: str | None = None,
    base: str | ImageRule | None = None,
    files: Sequence[str] | Mapping[str, str] = (),
    targets: Sequence[str] = (),
    context: str | None = None,
    args: Mapping[str, str] | None = None,
    platforms: Sequence[str] = (),
    emulation_required: bool = False,
    entrypoint: Sequence[str] | None = None,
    cmd: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
    workdir: str | None = None,
    labels: Mapping[str, str] | None = None,
    expose: Sequence[str] = (),
) -> ImageRule:
    """Declare an image. With ``dockerfile``: its files and targets make its context as in a
    plan (or ``context`` names a directory), and a FROM naming another rule builds on it.
    Without: ``base`` (``":name"``, a rule, a registry reference, or None for scratch),
    ``files`` as {path in the image: path in the workspace} and the config keywords."""
    where = _where()
    if name in RULES:
        raise UserError(f"oci_image {name!r} is declared twice", where, "give each a unique name")
    if dockerfile and (base is not None or isinstance(files, Mapping)):
        raise UserError(
            f"oci_image {name!r} has a dockerfile and base= or a files mapping",
            where,
            "either name a Dockerfile (its FROM is the base), or give base= and files={dest: src}",
        )
    if not dockerfile and not isinstance(files, Mapping) and files:
        raise UserError(
            f"oci_image {name!r} without a Dockerfile needs files as a mapping",
            where,
            'write files={"/usr/local/bin/app": "out/app"}',
        )
    config = {
        key: value
        for key, value in (
            ("entrypoint", entrypoint),
            ("cmd", cmd),
            ("env", env),
            ("user", user),
            ("workdir", workdir),
            ("labels", labels),
            ("expose", list(expose) or None),
        )
        if value is not None
    }
    if dockerfile and config:
        raise UserError(
            f"oci_image {name!r} has a dockerfile and config keywords ({', '.join(config)})",
            where,
            "set them in the Dockerfile",
        )
    rule = ImageRule(
        name=name,
        dockerfile=dockerfile,
        base=base.label if isinstance(base, ImageRule) else base,
        files=dict(files) if isinstance(files, Mapping) else tuple(files),
        targets=tuple(targets),
        context=context,
        args=dict(args or {}),
        platforms=tuple(platforms),
        emulation_required=emulation_required,
        config=config,
        where=where,
    )
    RULES[name] = rule
    _Engine.current = None
    return rule


@dataclass(frozen=True)
class _Push:
    image: ImageRule | IndexRule
    repositories: tuple[str, ...]
    tags: tuple[str, ...]
    name: str

    def create_doit_tasks(self) -> Iterator[TaskDict]:
        """the task of a push"""
        yield _engine().push_task(self)


def oci_push(
    image: ImageRule | IndexRule,
    repositories: Sequence[str],
    tags: Sequence[str] = ("latest",),
    name: str = "",
) -> _Push:
    """Push ``image`` to each repository (``host[:port]/path``) under each tag."""
    for repository in repositories:
        split_repository(repository)
    return _Push(image, tuple(repositories), tuple(tags), name or image.name)


@dataclass(frozen=True)
class _Save:
    image: ImageRule
    path: str

    def create_doit_tasks(self) -> Iterator[TaskDict]:
        """the task of a save"""
        yield _engine().save_task(self)


def oci_save(image: ImageRule, path: str) -> _Save:
    """Save ``image``: a docker-archive .tar.gz (``docker load``), or an OCI archive of the
    whole index when it is built for several platforms."""
    return _Save(image, path)


def oci_index(
    name: str, images: Sequence[ImageRule], tags: Sequence[str] = ("latest",)
) -> IndexRule:
    """One multi-platform image from single-platform image rules (one per platform)."""
    return IndexRule(name, tuple(images), tuple(tags))


def oci_layout() -> None:
    """Nothing to declare: the first image rule names every image in out/oci."""


class _Engine:
    """The build of every declared rule, made once per process with the same engine as a
    plan (options from the command line and the environment, as image_tasks reads them)."""

    current: _Engine | None = None

    def __init__(self) -> None:
        from doit_oci.rules.tasks import build_tasks

        environ = os.environ
        self.workspace = Path.cwd()
        names = tuple(RULES)
        options = read_options(sys.argv[1:], environ, ("gc", "status"), default_plan="")
        options = replace(options, targets=names, variants=("default",))
        try:
            self.build: Build = load_build(options, self.workspace, environ, self.plan_for)
        except UserError as exc:
            from doit_oci.rules.tasks import invalid

            raise invalid(exc) from None
        self.tasks = list(build_tasks(self.build, group=GROUP))
        from doit_oci.rules.tasks import _made

        self.steps = _made["build"][0]
        self.first = names[0] if names else ""

    def plan_for(self, platform: Platform) -> Plan:
        variables = plan_variables(platform, self.workspace, os.environ)
        images = []
        for rule in RULES.values():
            images.append(self.image_plan(rule, platform, variables))
        return Plan("dodo.py", platform, tuple(images))

    def image_plan(
        self, rule: ImageRule, platform: Platform, variables: Mapping[str, str]
    ) -> ImagePlan:
        workspace = self.workspace
        targets = tuple(expand(t, variables) for t in rule.targets)
        if rule.dockerfile:
            files = tuple(workspace / expand(f, variables) for f in rule.files)
            dockerfile = workspace / rule.dockerfile
            context = (workspace / rule.context).resolve() if rule.context else None
        else:
            assert isinstance(rule.files, Mapping)
            dockerfile = self.synthesize(rule, variables)
            files = ()
            context = workspace
        if not dockerfile.is_file():
            raise UserError(
                f"Dockerfile {rule.dockerfile!r} of {rule.name!r} does not exist",
                rule.where,
                "fix the path (relative to the workspace)",
            )
        return ImagePlan(
            name=rule.name,
            where=rule.where,
            dockerfile=dockerfile.resolve(),
            context=context,
            files=files,
            targets=targets,
            platforms=rule.platforms,
            emulation_required=rule.emulation_required,
            args=tuple(rule.args.items()),
        )

    def synthesize(self, rule: ImageRule, variables: Mapping[str, str]) -> Path:
        """The Dockerfile a rule without one stands for."""
        base = rule.base or "scratch"
        lines = [f"FROM {base.removeprefix(':')}"]
        assert isinstance(rule.files, Mapping)
        for dest, source in rule.files.items():
            path = Path(expand(source, variables))
            if path.is_absolute():
                try:
                    path = path.relative_to(self.workspace)
                except ValueError:
                    raise UserError(
                        f"file {source!r} of {rule.name!r} is outside the workspace",
                        rule.where,
                        "copy files from the workspace only",
                    ) from None
            lines.append(f"COPY {json.dumps([str(path), dest])}")
        config = rule.config
        for key, value in (config.get("env") or {}).items():
            lines.append(f"ENV {key}={json.dumps(str(value))}")
        for key, value in (config.get("labels") or {}).items():
            lines.append(f"LABEL {json.dumps(str(key))}={json.dumps(str(value))}")
        if config.get("expose"):
            lines.append("EXPOSE " + " ".join(config["expose"]))
        if config.get("user"):
            lines.append(f"USER {config['user']}")
        if config.get("workdir"):
            lines.append(f"WORKDIR {config['workdir']}")
        if config.get("entrypoint") is not None:
            lines.append(f"ENTRYPOINT {json.dumps(list(config['entrypoint']))}")
        if config.get("cmd") is not None:
            lines.append(f"CMD {json.dumps(list(config['cmd']))}")
        path = self.workspace / "out" / "rules" / f"{rule.name}.Dockerfile"
        text = "# written by doit-oci from " + rule.where + "\n" + "\n".join(lines) + "\n"
        write_if_changed(path, text.encode())
        return path

    def output(self, rule: ImageRule) -> Output:
        for output in self.build.outputs:
            if output.name == rule.name:
                return output
        raise UserError(
            f"image {rule.name!r} is not built for any platform asked for",
            rule.where,
            "check its platforms",
        )

    def tasks_of(self, rule: ImageRule) -> Iterator[TaskDict]:
        keys = {
            key for output in self.build.outputs if output.name == rule.name for key in output.keys
        }
        keys |= {unit.key for unit in self.build.units if unit.name == rule.name}
        for task in self.tasks:
            name = task["basename"]
            step, _, rest = name.partition(":")
            unit = rest.rsplit(".", 1)[0] if step == "layer" else rest
            own = unit in keys and step in ("parse", "translate", "layer", "image")
            if own or (rule.name == self.first and name.startswith(SHARED)):
                yield dict(task)  # doit takes what it needs out of the dict it gets

    def push_task(self, push: _Push) -> TaskDict:
        from doit_oci.rules.tasks import _action, values_changed

        steps = self.steps
        image = push.image
        if isinstance(image, IndexRule):
            file_dep = [str(self.index_record(image))]
        else:
            units = self.build.units_of(self.output(image))
            file_dep = [str(unit.image_record) for unit in units]
        targets = []
        for repository in push.repositories:
            registry, path = split_repository(repository)
            targets.append(Destination(registry, path, push.tags))
        references = [ref for destination in targets for ref in destination.references()]
        record = self.build.state / "build" / "push" / f"{push.name}.rule.json"

        def run() -> None:
            if isinstance(image, IndexRule):
                descriptor = self.index_descriptor(image)
            else:
                descriptor = steps.image_descriptor(self.output(image))
            uploaded = steps.push_descriptor(descriptor, targets)
            write_if_changed(
                record, json.dumps({"pushed": references, "uploaded_bytes": uploaded}).encode()
            )

        return {
            "basename": f"push:{push.name}",
            "doc": f"push {image.name} to {', '.join(references)}",
            "actions": [_action(run)],
            "file_dep": file_dep,
            "uptodate": [values_changed({"to": references})],
            "targets": [str(record)],
            "verbosity": 2,
        }

    def save_task(self, save: _Save) -> TaskDict:
        from doit_oci.rules.save import write_docker_archive, write_oci_archive
        from doit_oci.rules.tasks import _action

        output = self.output(save.image)
        units = self.build.units_of(output)
        steps = self.steps
        path = self.workspace / save.path

        def run() -> None:
            if len(units) == 1:
                manifest = json.loads(units[0].image_record.read_text())["manifest"]
                write_docker_archive(
                    steps.layout, Descriptor.from_json(manifest), list(output.ref_names), path
                )
            else:
                write_oci_archive(
                    steps.layout, steps.image_descriptor(output), output.ref_names[0], path
                )

        return {
            "basename": f"save:{save.image.name}",
            "doc": f"save {save.image.name} as {save.path}",
            "actions": [_action(run)],
            "file_dep": [str(u.image_record) for u in units],
            "targets": [str(path)],
            "clean": True,
        }

    def index_record(self, index: IndexRule) -> Path:
        return self.build.state / "build" / "index" / f"{index.name}.json"

    def index_descriptor(self, index: IndexRule) -> Descriptor:
        return Descriptor.from_json(json.loads(self.index_record(index).read_text()))

    def index_task(self, index: IndexRule) -> TaskDict:
        from doit_oci.rules.tasks import _action

        steps = self.steps
        units = [u for image in index.images for u in self.build.units_of(self.output(image))]

        def run() -> None:
            manifests = []
            for unit in units:
                manifests.append(
                    Descriptor.from_json(json.loads(unit.image_record.read_text())["manifest"])
                )
            descriptor = steps.layout.put(INDEX, Index(tuple(manifests)).to_bytes())
            steps.layout.set_refs({f"{index.name}:{tag}": descriptor for tag in index.tags})
            write_if_changed(
                self.index_record(index),
                json.dumps(descriptor.to_json(), sort_keys=True).encode() + b"\n",
            )

        return {
            "basename": f"index:{index.name}",
            "doc": f"the multi-platform image {index.name} of "
            + ", ".join(image.name for image in index.images),
            "actions": [_action(run)],
            "file_dep": [str(u.image_record) for u in units],
            "targets": [str(self.index_record(index))],
        }


def _engine() -> _Engine:
    if _Engine.current is None:
        _Engine.current = _Engine()
    return _Engine.current


__all__ = ["ImageRule", "IndexRule", "oci_image", "oci_index", "oci_layout", "oci_push", "oci_save"]
