"""Rules in Python, as rules_oci's are in Starlark: the declarations and what they mean.

Pure: a declaration is checked when it is made (a mistake is a UserError naming the line
of dodo.py that made it), and the declared rules become, for each platform, the very
``ImagePlan`` entries a YAML plan gives (rules.rulesplan), so the same engine builds
both. Nothing here knows doit: rules.ruleset gives doit these rules as task creators.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from doit_oci.registry.reference import ReferenceError, check_tag, split_repository
from doit_oci.rules.annotations import check_key
from doit_oci.rules.errors import UserError

SAVE_SUFFIXES = (".tar.gz", ".tgz", ".oci.tar")


@dataclass(frozen=True)
class ImageConfigRule:
    """The config keywords of a rule without a Dockerfile."""

    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    env: tuple[tuple[str, str], ...] = ()
    user: str = ""
    workdir: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    expose: tuple[str, ...] = ()

    @property
    def given(self) -> list[str]:
        names = ("entrypoint", "cmd", "env", "user", "workdir", "labels", "expose")
        return [name for name in names if getattr(self, name) not in (None, "", ())]


@dataclass(frozen=True)
class ImageRule:
    """An image declared in Python."""

    name: str
    where: str  # dodo.py:<line> of the declaration
    dockerfile: str = ""
    base: str = ""  # ":rule", a registry reference, or "" for scratch (no Dockerfile)
    files: tuple[str, ...] = ()  # with a Dockerfile: its context, as a plan's files
    copies: tuple[tuple[str, str], ...] = ()  # without: (path in the image, workspace path)
    targets: tuple[str, ...] = ()
    context: str = ""
    args: tuple[tuple[str, str], ...] = ()
    platforms: tuple[str, ...] = ()
    emulation_required: bool = False
    config: ImageConfigRule = ImageConfigRule()
    annotations: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        return f":{self.name}"


@dataclass(frozen=True)
class IndexRule:
    """A multi-platform image made of single-platform image rules."""

    name: str
    where: str
    images: tuple[str, ...]  # names of image rules
    tags: tuple[str, ...]


@dataclass(frozen=True)
class PushRule:
    """An image (or index) rule pushed to repositories under tags."""

    name: str  # of its task: push:<name>
    where: str
    image: str  # the rule pushed
    repositories: tuple[tuple[str, str], ...]  # (registry, repository)
    tags: tuple[str, ...]


@dataclass(frozen=True)
class SaveRule:
    """An image rule saved as an archive."""

    where: str
    image: str
    path: str


Declaration = ImageRule | IndexRule | PushRule | SaveRule


def _strings(value: object, what: str, where: str, example: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise UserError(f"{what} must be a list of strings", where, f"write {example}")
    if not all(isinstance(item, str) for item in value):
        raise UserError(f"{what} must hold only strings", where, f"write {example}")
    return tuple(value)


def _mapping(value: object, what: str, where: str, example: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, Mapping):
        raise UserError(f"{what} must be a mapping", where, f"write {example}")
    items = tuple((str(k), str(v)) for k, v in value.items())
    if not all(isinstance(k, str) for k in value):
        raise UserError(f"the keys of {what} must be strings", where, f"write {example}")
    return items


def _command(value: object, what: str, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        raise UserError(
            f"{what}={value!r} is a string",
            where,
            f'write a list such as {what}=["/usr/local/bin/app"]; a string would be Docker\'s'
            f' shell form, which needs a shell: write {what}=["/bin/sh", "-c", "..."] for that',
        )
    return _strings(value, what, where, f'{what}=["/usr/local/bin/app", "--flag"]')


def _optional_text(value: object, what: str, where: str, example: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or not value:
        raise UserError(f"{what} must be a non-empty string", where, f"write {example}")
    return value


def image_rule(
    name: str,
    where: str,
    known: Sequence[Declaration],
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
    annotations: Mapping[str, str] | None = None,
) -> ImageRule:
    """An image rule, checked; ``known`` are the rules declared before it."""
    _check_name(name, "oci_image", where, known)
    if dockerfile is not None and (not isinstance(dockerfile, str) or not dockerfile):
        raise UserError(
            "dockerfile must be a path", where, 'write dockerfile="docker/app.Dockerfile"'
        )
    if dockerfile and (base is not None or isinstance(files, Mapping)):
        raise UserError(
            f"oci_image {name!r} has a dockerfile and base= or a files mapping",
            where,
            "either name a Dockerfile (its FROM is the base), or give base= and files={dest: src}",
        )
    if not dockerfile and files and not isinstance(files, Mapping):
        raise UserError(
            f"oci_image {name!r} without a Dockerfile needs files as a mapping",
            where,
            'write files={"/usr/local/bin/app": "out/app"}',
        )
    config = ImageConfigRule(
        entrypoint=_command(entrypoint, "entrypoint", where),
        cmd=_command(cmd, "cmd", where),
        env=_mapping(env, "env", where, 'env={"MODE": "prod"}') if env is not None else (),
        user=_optional_text(user, "user", where, 'user="1000"'),
        workdir=_optional_text(workdir, "workdir", where, 'workdir="/srv"'),
        labels=_mapping(labels, "labels", where, 'labels={"team": "core"}') if labels else (),
        expose=_strings(expose, "expose", where, 'expose=["8080/tcp"]'),
    )
    if dockerfile and config.given:
        raise UserError(
            f"oci_image {name!r} has a dockerfile and config keywords ({', '.join(config.given)})",
            where,
            "set them in the Dockerfile",
        )
    if isinstance(base, ImageRule):
        base = base.label
    elif base is not None and (not isinstance(base, str) or not base):
        raise UserError(
            "base must be a rule, ':name' or an image reference",
            where,
            'write base=":base" or base="gcr.io/distroless/static:nonroot"',
        )
    copies: tuple[tuple[str, str], ...] = ()
    listed: tuple[str, ...] = ()
    if isinstance(files, Mapping):
        copies = _mapping(files, "files", where, 'files={"/usr/local/bin/app": "out/app"}')
    else:
        listed = _strings(files, "files", where, 'files=["docker/passwd"]')
    return ImageRule(
        name=name,
        where=where,
        dockerfile=dockerfile or "",
        base=base or "",
        files=listed,
        copies=copies,
        targets=_strings(targets, "targets", where, 'targets=["${TARGET_OUT}/app"]'),
        context=_optional_text(context, "context", where, 'context="docker/app"'),
        args=_mapping(args, "args", where, 'args={"VERSION": "1.0"}') if args else (),
        platforms=_strings(platforms, "platforms", where, 'platforms=["linux/amd64"]'),
        emulation_required=bool(emulation_required),
        config=config,
        annotations=_annotations(annotations, where),
    )


def _annotations(value: object, where: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    example = 'annotations={"org.opencontainers.image.vendor": "Example"}'
    found = _mapping(value, "annotations", where, example)
    for key, _ in found:
        check_key(key, where, f"write {example}")
    return found


def _check_name(name: object, kind: str, where: str, known: Sequence[Declaration]) -> None:
    if not isinstance(name, str) or not name:
        raise UserError(f"{kind} needs a name", where, f'write {kind}(name="app", ...)')
    try:
        split_repository(f"example.com/{name}")
    except ReferenceError:
        raise UserError(
            f"{kind} name {name!r} is not an image name",
            where,
            "use lowercase letters, digits and '.', '_', '-' between them",
        ) from None
    for other in known:
        if isinstance(other, ImageRule | IndexRule) and other.name == name:
            raise UserError(
                f"{name!r} is declared twice (first at {other.where})",
                where,
                "give each image rule a name of its own",
            )


def _image_of(value: object, what: str, where: str) -> str:
    if isinstance(value, ImageRule | IndexRule):
        return value.name
    raise UserError(
        f"{what} takes an image rule, not {value!r}",
        where,
        f"pass what oci_image or oci_index returned: {what}(task_app, ...)",
    )


def index_rule(
    name: str,
    where: str,
    known: Sequence[Declaration],
    images: Sequence[ImageRule],
    tags: Sequence[str] = ("latest",),
) -> IndexRule:
    _check_name(name, "oci_index", where, known)
    if isinstance(images, str | ImageRule) or not isinstance(images, Sequence) or not images:
        raise UserError(
            "oci_index needs a list of image rules",
            where,
            f'write oci_index("{name}", [task_amd64, task_arm64])',
        )
    names = tuple(_image_of(image, "oci_index", where) for image in images)
    return IndexRule(name, where, names, _tags(tags, where))


def _tags(tags: object, where: str) -> tuple[str, ...]:
    values = _strings(tags, "tags", where, 'tags=["1.0", "latest"]')
    if not values:
        raise UserError("no tag given", where, 'write tags=["latest"]')
    try:
        return tuple(check_tag(tag) for tag in values)
    except ReferenceError as exc:
        raise UserError(str(exc), where, "fix the tag") from None


def push_rule(
    where: str,
    image: object,
    repositories: Sequence[str],
    tags: Sequence[str] = ("latest",),
    name: str = "",
) -> PushRule:
    """Push ``image`` to each repository (``host[:port]/path``) under each tag."""
    image_name = _image_of(image, "oci_push", where)
    found = []
    for repository in _strings(repositories, "repositories", where, '["registry.example.com/app"]'):
        try:
            found.append(split_repository(repository))
        except ReferenceError as exc:
            raise UserError(
                str(exc), where, "write the repository as host[:port]/path, in lowercase"
            ) from None
    if not found:
        raise UserError("oci_push needs a repository", where, 'write ["registry.example.com/app"]')
    if name and not isinstance(name, str):
        raise UserError("name must be a string", where, 'write name="release"')
    return PushRule(name or image_name, where, image_name, tuple(found), _tags(tags, where))


def save_rule(where: str, image: object, path: str) -> SaveRule:
    image_name = _image_of(image, "oci_save", where)
    if not isinstance(path, str) or not path.endswith(SAVE_SUFFIXES):
        raise UserError(
            f"oci_save cannot write {path!r}",
            where,
            "name a .tar.gz or .tgz (a docker archive of one platform) or a .oci.tar"
            " (an OCI archive of any image)",
        )
    return SaveRule(where, image_name, path)
