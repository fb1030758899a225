"""Build plans: YAML in the schema of Istio's ``tools/docker.yaml`` -> ``Plan`` per platform.

As in the seed, ``${VAR}`` in the plan's text is expanded per platform before the YAML
is read: first from TARGET_OS, TARGET_ARCH, TARGET_OUT, TARGET_OUT_LINUX (and the seed's
SIDECAR and RELEASE_MODE), then from the environment. Every mistake is reported with the
plan file and line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from doit_oci.registry.mirror import Mirror, parse_mirror
from doit_oci.registry.oci import Platform
from doit_oci.registry.reference import ReferenceError, split_repository
from doit_oci.rules.errors import UserError
from doit_oci.rules.inputs import PLAN_LIMIT, read_text
from doit_oci.rules.planyaml import Reader

IMAGE_KEYS = (
    "name",
    "dockerfile",
    "context",
    "files",
    "targets",
    "base",
    "emulationRequired",
    "platforms",
    "args",
    "ignoreRuns",
    "annotations",
)
PLAN_KEYS = (
    "images",
    "example",
    "args",
    "ignoreRuns",
    "protectedHubs",
    "mirrors",
    "annotations",
)

# Go's os.Expand: ${NAME} (any text up to '}'), $NAME (letters, digits, '_'), and the
# one-character shell names ($1, $$, $?, ...), all looked up; "${}" and an unclosed "${"
# are dropped; any other '$' stays as it is.
_SPECIAL = r"[*#$@!?0-9-]"
_VARIABLE = re.compile(
    rf"\$(?:\{{(?P<braced_special>{_SPECIAL})\}}|\{{(?P<braced>[^}}]+)\}}|(?P<bad>\{{\}}?)"
    rf"|(?P<special>{_SPECIAL})|(?P<name>[A-Za-z0-9_]+))"
)


@dataclass(frozen=True)
class ImagePlan:
    name: str
    where: str  # plan file:line of the image's entry
    dockerfile: Path  # absolute
    context: Path | None  # absolute; None: the context is made of files and targets
    files: tuple[Path, ...]  # absolute
    targets: tuple[str, ...]  # as written (after expansion): make goals and file paths
    base: bool = False
    emulation_required: bool = False
    platforms: tuple[str, ...] = ()
    args: tuple[tuple[str, str], ...] = ()
    ignore_runs: bool = False
    # where messages place its instructions: "" for the Dockerfile's own lines, the rule's
    # place in dodo.py for a Dockerfile written for a Python rule
    dockerfile_where: str = ""
    annotations: tuple[tuple[str, str], ...] = ()  # its own, over the plan's

    def dependencies(self, workspace: Path) -> tuple[Path, ...]:
        """The real paths a Dockerfile of this image may COPY from, as in the seed."""
        return self.files + tuple(workspace / t for t in self.targets)

    def builds_for(self, platform: Platform) -> bool:
        return not self.platforms or str(platform) in self.platforms


@dataclass(frozen=True)
class Plan:
    path: str  # as given, relative to the workspace when it is inside it
    platform: Platform
    images: tuple[ImagePlan, ...]
    args: tuple[tuple[str, str], ...] = ()
    ignore_runs: bool = False
    protected_hubs: tuple[str, ...] = ()  # pushed to only from CI (the env var CI set)
    mirrors: tuple[Mirror, ...] = ()  # where bases are read first (mirrors:)
    annotations: tuple[tuple[str, str], ...] = ()  # of every image of the plan

    def find(self, name: str) -> ImagePlan | None:
        for image in self.images:
            if image.name == name:
                return image
        return None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(image.name for image in self.images)


def platform_variables(platform: Platform, workspace: Path) -> dict[str, str]:
    """The seed's per-platform variables; the TARGET_OUT* paths are absolute."""
    out = workspace.resolve() / "out"
    return {
        "TARGET_OS": platform.os,
        "TARGET_ARCH": platform.architecture,
        "TARGET_OUT": str(out / f"{platform.os}_{platform.architecture}"),
        "TARGET_OUT_LINUX": str(out / f"linux_{platform.architecture}"),
        "TARGET_OUT_WINDOWS": str(out / f"windows_{platform.architecture}"),
    }


def plan_variables(
    platform: Platform, workspace: Path, environ: Mapping[str, str]
) -> dict[str, str]:
    """What ``${VAR}`` means in a plan for ``platform``; the environment fills the rest."""
    variables = dict(environ)
    variables["SIDECAR"] = environ.get("SIDECAR", "envoy")
    variables["RELEASE_MODE"] = "debug" if "DEBUG_IMAGE" in environ else "release"
    variables.update(platform_variables(platform, workspace))
    return variables


def expand(text: str, variables: Mapping[str, str]) -> str:
    """``$VAR`` and ``${VAR}`` as Go's os.Expand does them; unknown names become ''."""

    def value(match: re.Match[str]) -> str:
        if match.group("bad") is not None:
            return ""
        name = next(group for group in match.groups() if group is not None)
        return variables.get(name, "")

    return _VARIABLE.sub(value, text)


def _relative(path: Path, workspace: Path) -> str:
    try:
        return str(path.relative_to(workspace))
    except ValueError:
        return str(path)


def load_plan(path: str, platform: Platform, workspace: Path, environ: Mapping[str, str]) -> Plan:
    """Read the plan at ``path`` (relative to ``workspace``) as it is for ``platform``."""
    workspace = workspace.resolve()
    full = (workspace / path).resolve()
    shown = _relative(full, workspace)
    try:
        raw = read_text(full, "plan", shown, PLAN_LIMIT)
    except FileNotFoundError:
        raise UserError(
            "plan file not found",
            shown,
            "give an existing plan with --plan PATH or PLAN=PATH (relative to the workspace)",
        ) from None
    text = expand(raw, plan_variables(platform, workspace, environ))
    if len(text) > PLAN_LIMIT:
        raise UserError(
            f"the plan is larger than {PLAN_LIMIT >> 20} MiB once its ${{VAR}} are expanded",
            shown,
            "check the variables it uses",
        )
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise UserError(
            "the plan nests lists or mappings too deeply to read",
            shown,
            "a plan is a mapping with an 'images:' list of mappings",
        ) from None
    except yaml.MarkedYAMLError as exc:
        # the problem's line, unless the problem is the end of the file: then the line of
        # what was left open (a quote, a bracket...) is the one to look at
        mark = exc.problem_mark
        if mark is None or (mark.index >= len(text) and exc.context_mark is not None):
            mark = exc.context_mark
        where = f"{shown}:{mark.line + 1}" if mark else shown
        what = ", ".join(part for part in (exc.context, exc.problem) if part)
        raise UserError(f"invalid YAML: {what}", where, "fix the YAML syntax") from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise UserError(
            f"invalid YAML: unacceptable character #x{exc.character:04x}: {exc.reason}",
            f"{shown}:{line}",
            "fix the YAML syntax",
        ) from None
    except yaml.YAMLError as exc:
        raise UserError(f"invalid YAML: {exc}", shown, "fix the YAML syntax") from None
    reader = Reader(shown)
    if root is None:
        raise UserError("the plan is empty", shown, "list the images under 'images:'")
    top = reader.mapping(root, "the plan")
    reader.check_keys(top, PLAN_KEYS, "the plan")
    if "images" not in top:
        raise reader.fail(root, "the plan has no 'images:' list", "list the images to build")
    plan_args = reader.string_map(top["args"][1], "args") if "args" in top else ()
    ignore_runs = (
        reader.boolean(top["ignoreRuns"][1], "ignoreRuns") if "ignoreRuns" in top else False
    )
    protected = (
        tuple(
            text.rstrip("/") for _, text in reader.strings(top["protectedHubs"][1], "protectedHubs")
        )
        if "protectedHubs" in top
        else ()
    )
    mirrors = _mirrors(reader, top["mirrors"][1]) if "mirrors" in top else ()
    annotations = (
        reader.annotations(top["annotations"][1], "annotations") if "annotations" in top else ()
    )
    images_node = top["images"][1]
    if not isinstance(images_node, yaml.SequenceNode):
        raise reader.fail(
            images_node, "'images' must be a list", "write one '- name: ...' per image"
        )
    images: list[ImagePlan] = []
    seen: dict[str, str] = {}
    for node in images_node.value:
        image = _read_image(reader, node, workspace)
        if image.name in seen:
            raise UserError(
                f"image name {image.name!r} is used twice (first at {seen[image.name]})",
                image.where,
                "give each image a unique name",
            )
        seen[image.name] = image.where
        images.append(image)
    return Plan(
        shown, platform, tuple(images), plan_args, ignore_runs, protected, mirrors, annotations
    )


def _mirrors(reader: Reader, node: yaml.Node) -> tuple[Mirror, ...]:
    """``mirrors: {docker.io: mirror.example.com, ghcr.io: [a.example.com, b.example.com/gh]}``"""
    found: list[Mirror] = []
    for registry, (_, value) in reader.mapping(node, "mirrors").items():
        many = isinstance(value, yaml.SequenceNode)
        what = f"mirrors.{registry}"
        for item, text in (
            reader.strings(value, what) if many else [(value, reader.string(value, what))]
        ):
            try:
                found.append(parse_mirror(registry, text))
            except ValueError as exc:
                raise reader.fail(item, str(exc), "write registry: host[/prefix]") from None
    return tuple(found)


def _read_image(reader: Reader, node: yaml.Node, workspace: Path) -> ImagePlan:
    entries = reader.mapping(node, "an image entry")
    where = reader.where(node)
    if "name" not in entries:
        # a misspelt 'name' is better reported as such than as a missing one
        reader.check_keys(entries, IMAGE_KEYS, "an image entry")
        raise reader.fail(node, "an image has no 'name'", "add 'name: <image name>'")
    name_node = entries["name"][1]
    name = reader.string(name_node, "name")
    what = f"image {name!r}"
    reader.check_keys(entries, IMAGE_KEYS, what)
    try:
        split_repository(f"example.com/{name}")
    except ReferenceError:
        raise reader.fail(
            name_node,
            f"invalid image name {name!r}",
            "use lowercase letters, digits and '.', '_', '-' (and '/' between parts)",
        ) from None

    def text(key: str) -> str | None:
        return reader.string(entries[key][1], f"{key} of {what}") if key in entries else None

    def flag(key: str) -> bool:
        return reader.boolean(entries[key][1], f"{key} of {what}") if key in entries else False

    def items(key: str) -> list[tuple[yaml.Node, str]]:
        return reader.strings(entries[key][1], f"{key} of {what}") if key in entries else []

    context: Path | None = None
    context_text = text("context")
    if context_text is not None:
        context = (workspace / context_text).resolve()
        if not context.is_dir():
            problem = "is not a directory" if context.exists() else "does not exist"
            raise reader.fail(
                entries["context"][1],
                f"context directory {context_text!r} of {what} {problem}",
                "create it or fix the path (relative to the workspace)",
            )
    if context is not None and items("files"):
        raise reader.fail(
            entries["files"][0],
            f"{what} has both 'context' and 'files'",
            "with a context, COPY sources are paths in it; drop 'files'",
        )
    dockerfile_text = text("dockerfile")
    if dockerfile_text is None:
        if context is None:
            raise reader.fail(
                node,
                f"{what} has neither 'dockerfile' nor 'context'",
                "add 'dockerfile: path/to/Dockerfile' (or a 'context:' directory holding one)",
            )
        dockerfile = context / "Dockerfile"
        dockerfile_node = entries["context"][1]
    else:
        dockerfile = workspace / dockerfile_text
        dockerfile_node = entries["dockerfile"][1]
    if not dockerfile.is_file():
        raise reader.fail(
            dockerfile_node,
            f"Dockerfile {_relative(dockerfile, workspace)!r} of {what} does not exist",
            "fix the path (relative to the workspace) or create the file",
        )
    files: list[Path] = []
    for item_node, item in items("files"):
        path = workspace / item
        # a file under out/ may be made by make (as Istio's `make init` fetches envoy):
        # it is looked for when the image is built
        made = (workspace / "out") in path.resolve().parents
        if not made and not path.exists() and not path.is_symlink():
            raise reader.fail(
                item_node,
                f"file {item!r} of {what} does not exist",
                "fix the path (relative to the workspace), or list it under 'targets' if make"
                " builds it",
            )
        files.append(path)
    platforms = []
    for item_node, item in items("platforms"):
        try:
            platforms.append(str(Platform.parse(item)))
        except ValueError as exc:
            raise reader.fail(
                item_node, str(exc), "write it as os/arch, e.g. linux/amd64"
            ) from None
    return ImagePlan(
        name=name,
        where=where,
        dockerfile=dockerfile.resolve(),
        context=context,
        files=tuple(files),
        targets=tuple(item for _, item in items("targets")),
        base=flag("base"),
        emulation_required=flag("emulationRequired"),
        platforms=tuple(platforms),
        args=reader.string_map(entries["args"][1], f"args of {what}") if "args" in entries else (),
        ignore_runs=flag("ignoreRuns"),
        annotations=reader.annotations(entries["annotations"][1], f"annotations of {what}")
        if "annotations" in entries
        else (),
    )
