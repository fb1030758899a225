"""Build options, read when the tasks are created: command line first, then environment.

doit parses task parameters only after the tasks exist, but these options decide which
tasks exist (the plan, the targets, the platforms...). So they are read here, early,
from the words that follow the build task's name on the command line, with the
environment variables of Istio's docker-builder as fallbacks, and the same options are
declared as doit parameters (``PARAMS``) so that doit accepts them. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from doit_oci.registry.mirror import Mirror, parse_mirrors
from doit_oci.registry.oci import Platform
from doit_oci.registry.reference import ReferenceError, check_hub, check_tag, is_loopback
from doit_oci.rules.annotations import parse_option
from doit_oci.rules.errors import UserError
from doit_oci.rules.flags import (
    DEFAULT_PLAN,
    PROGRESS_MODES,
    cache_dir_from,
    progress_from,
    read_argv,
)
from doit_oci.rules.layer import COMPRESSIONS


@dataclass(frozen=True)
class Options:
    plan: str = DEFAULT_PLAN
    hubs: tuple[str, ...] = ()
    tags: tuple[str, ...] = ("latest",)
    targets: tuple[str, ...] = ()  # empty: every image that is not a base
    platforms: tuple[Platform, ...] = (Platform("linux", "amd64"),)
    build_args: tuple[tuple[str, str], ...] = ()
    compression: str = ""  # "" chooses from the destinations (see compression_for)
    skip_make: bool = False
    epoch: int = 0
    push: bool = False
    insecure: tuple[str, ...] = ()  # registries spoken to over plain HTTP
    registry_deadline: float = 60.0  # seconds a registry request may keep failing
    cache_dir: str = ""  # where the state lives instead of out/ (relative to the workspace)
    platform_tags: bool = False  # tags get -<arch>: one platform per machine
    cache_repo: str = ""  # host[:port]/path of the remote layer cache, or ""
    scope: str = ""  # keeps the records of one plan apart from another's (the task prefix)
    variants: tuple[str, ...] = ("default",)
    save: bool = False
    no_clobber: bool = False
    no_cache: bool = False
    prune_tags: bool = False
    remote: bool = False
    qemu: bool = False
    load: bool = False  # --load: into a local runtime
    load_runtime: str = ""  # docker, podman, containerd[:ns], kind[:cluster]; "": the first found
    load_platform: Platform | None = None  # None: this machine's
    locked: bool = False  # every registry base pinned in bases.lock, or stop at once
    offline: bool = False  # no request at all: bases from the lock and the store
    check: bool = False  # lock --check: say whether the lock is current, write nothing
    all_platforms: bool = False  # --architectures all: the platforms the bases offer
    # with all_platforms: output label (name[-variant]) -> what its registry bases offer
    offered: tuple[tuple[str, tuple[Platform, ...]], ...] = ()
    mirrors: tuple[Mirror, ...] = ()  # REGISTRY_MIRRORS, read before the registries

    def offers(self, label: str, platform: Platform) -> bool:
        """Whether the image ``label`` is built for ``platform`` as far as its bases go."""
        found = dict(self.offered)
        return label not in found or platform in found[label]

    progress: str = "auto"  # auto, tty, plain or json (rules.display)
    annotations: tuple[tuple[str, str], ...] = ()  # --annotation=K=V, in order
    auto_annotations: bool = True  # created, source, revision, base.name, base.digest
    image_refs: str = ""  # the file --image-refs writes (relative to the workspace)
    metadata_file: str = ""  # the file --metadata-file writes
    sbom: bool = False
    provenance: bool = False
    sign_key: str = ""  # the key --sign-key signs with (never copied anywhere)

    @property
    def attaches(self) -> bool:
        """Whether anything is attached to the images pushed."""
        return self.push and (self.sbom or self.provenance or bool(self.sign_key))

    @property
    def layer_compression(self) -> str:
        """The compression of every layer of the run, chosen once so that the layout and
        every registry hold the same digests: none when every destination is a loopback
        registry (or there is none), a fast gzip otherwise, unless --compression says."""
        if self.compression:
            return self.compression
        if self.push and not all(is_loopback(hub.split("/")[0]) for hub in self.hubs):
            return "gzip"
        return "none"


def _split(values: Sequence[str], separators: str) -> tuple[str, ...]:
    """The non-empty parts of ``values`` split at any of ``separators``, first one kept."""
    out: list[str] = []
    for value in values:
        for part in re.split(f"[{separators}]", value):
            if part and part not in out:
                out.append(part)
    return tuple(out)


def _variants(given: Mapping[str, list[str]], env: Callable[[str], str | None]) -> tuple[str, ...]:
    """--variants (commas), else DOCKER_BUILD_VARIANTS (spaces), else default; with
    INCLUDE_UNTAGGED_DEFAULT=true, default is added and the list sorted, as the seed does."""
    if "variants" in given:
        variants = list(_split(given["variants"], ","))
    else:
        legacy = env("DOCKER_BUILD_VARIANTS")
        variants = list(_split([legacy], " ")) if legacy is not None else ["default"]
    if env("INCLUDE_UNTAGGED_DEFAULT") == "true":
        variants = sorted({*variants, "default"})
    for variant in variants:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", variant):
            raise UserError(
                f"invalid variant {variant!r}",
                "options",
                "a variant becomes part of a tag: lowercase letters, digits, '.', '_', '-'",
            )
    if not variants:
        raise UserError("no variant given", "options", "give --variants default,distroless")
    return tuple(variants)


LOAD_RUNTIMES = ("docker", "podman", "containerd", "kind")


def _load(
    given: Mapping[str, list[str]], env: Callable[[str], str | None]
) -> tuple[bool, str, Platform | None]:
    """--load, --load-runtime (which implies it) and --load-platform; LOAD=true, or LOAD
    naming a runtime, also loads."""
    word = (env("LOAD") or "").strip()
    runtime = (given.get("load_runtime") or [""])[-1] or env("LOAD_RUNTIME") or ""
    load = "load" in given or "load_runtime" in given
    if word and word not in ("false", "0"):
        load = True
        if word not in ("true", "1"):
            runtime = runtime or word
    kind, _, detail = runtime.partition(":")
    if runtime and (kind not in LOAD_RUNTIMES or (kind in ("docker", "podman") and detail)):
        raise UserError(
            f"unknown runtime {runtime!r} to load into",
            "options",
            "give --load-runtime=docker, podman, containerd[:namespace] or kind[:cluster]"
            " (or LOAD, LOAD_RUNTIME)",
        )
    text = (given.get("load_platform") or [""])[-1] or env("LOAD_PLATFORM") or ""
    try:
        platform = Platform.parse(text) if text else None
    except ValueError as exc:
        raise UserError(str(exc), "options", "write --load-platform linux/amd64") from None
    return load, runtime, platform


def read_options(
    argv: Sequence[str],
    environ: Mapping[str, str],
    task: str | Sequence[str] = "build_images",
    default_plan: str = DEFAULT_PLAN,
    default_platforms: Sequence[Platform] = (),
) -> Options:
    """Options from the command line, then the environment; checked before any work.
    ``default_platforms`` are built when neither names any (else linux/amd64).

    An environment variable that is set but empty counts as unset.
    """
    given = read_argv(argv, task)

    def env(name: str) -> str | None:
        return environ.get(name) or None

    def pick(name: str, *env_names: str) -> list[str] | None:
        if name in given:
            return given[name]
        for env_name in env_names:
            value = env(env_name)
            if value is not None:
                return [value]
        return None

    def listed(name: str, env_name: str) -> tuple[str, ...] | None:
        # as the seed's flags: commas on the command line; commas or spaces in the environment
        if name in given:
            return _split(given[name], ",")
        value = env(env_name)
        return None if value is None else _split([value], ", ")

    plan = (pick("plan", "PLAN") or [default_plan])[-1] or default_plan

    def plural(name: str, many: str, one: str, default: tuple[str, ...]) -> tuple[str, ...]:
        # the seed's HUBS/TAGS (space separated) win over HUB/TAG
        if name in given:
            return _split(given[name], ",")
        value = env(many)
        if value is not None:
            return _split([value], " ")
        single = env(one)
        return (single,) if single else default

    hubs = plural("hub", "HUBS", "HUB", ())
    tags = plural("tag", "TAGS", "TAG", ("latest",))
    try:
        hubs = tuple(dict.fromkeys(check_hub(hub) for hub in hubs))
        tags = tuple(check_tag(tag) for tag in tags)
    except ReferenceError as exc:
        raise UserError(str(exc), "options", "fix --hub/--tag (or HUB, HUBS, TAG, TAGS)") from None
    if not tags:
        raise UserError("no tag given", "options", "give --tag TAG or TAG=...")
    named = listed("targets", "DOCKER_TARGETS") or ()
    targets = _split([name.removeprefix("docker.") for name in named], ",")
    platforms: list[Platform] = []
    architectures = listed("architectures", "DOCKER_ARCHITECTURES")
    if architectures is None:
        architectures = tuple(str(p) for p in default_platforms) or ("linux/amd64",)
    all_platforms = any(text.lower() == "all" for text in architectures)
    if all_platforms and len(architectures) > 1:
        raise UserError(
            "--architectures all takes every platform the bases offer: name no other",
            "options",
            "write --architectures all, or name the platforms: linux/amd64,linux/arm64",
        )
    if all_platforms:
        architectures = ("linux/amd64",)  # until the bases say which (rules.steps.platforms)
    for text in architectures:
        try:
            platform = Platform.parse(text)
        except ValueError as exc:
            raise UserError(
                str(exc), "options", "write --architectures linux/amd64,linux/arm64"
            ) from None
        if platform not in platforms:
            platforms.append(platform)
    if not platforms:
        raise UserError(
            "no platform given", "options", "write --architectures linux/amd64,linux/arm64"
        )
    build_args: list[tuple[str, str]] = []
    for item in given.get("build_arg", []):
        name, has_value, value = item.partition("=")
        if not has_value or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise UserError(
                f"invalid --build-arg {item!r}", "command line", "write --build-arg NAME=VALUE"
            )
        build_args.append((name, value))
    compression = (pick("compression", "COMPRESSION") or [""])[-1]
    if compression and compression not in COMPRESSIONS:
        raise UserError(
            f"unknown compression {compression!r}",
            "options",
            f"choose one of {', '.join(COMPRESSIONS)}",
        )
    epoch_text = env("SOURCE_DATE_EPOCH") or "0"
    if not re.fullmatch(r"[0-9]+", epoch_text):
        raise UserError(
            f"SOURCE_DATE_EPOCH={epoch_text!r} is not a number of seconds",
            "environment",
            "set it to an integer such as 0",
        )
    push = "push" in given or env("PUSH") == "true"
    save = "save" in given
    if push and save:
        raise UserError(
            "--push and --save are mutually exclusive", "options", "give one of them per run"
        )
    variants = _variants(given, env)
    qemu_text = env("ISTIO_DOCKER_QEMU") or ""
    qemu = "qemu" in given or qemu_text in ("1", "t", "T", "true", "TRUE", "True")
    if push and not hubs:
        raise UserError(
            "--push needs a registry to push to", "options", "give --hub HOST[/PATH] or HUB=..."
        )
    insecure = listed("insecure_registry", "INSECURE_REGISTRIES") or ()
    deadline_text = env("REGISTRY_DEADLINE") or "60"
    try:
        deadline = float(deadline_text)
    except ValueError:
        deadline = -1.0
    if not 0 < deadline <= 3600:
        raise UserError(
            f"REGISTRY_DEADLINE={deadline_text!r} is not a number of seconds up to 3600",
            "environment",
            "set it to how long one registry request may keep failing, e.g. 60",
        )
    platform_tags = "platform_tags" in given or env("PLATFORM_TAGS") == "true"
    if platform_tags and len(platforms) > 1:
        raise UserError(
            "--platform-tags builds one platform per run",
            "options",
            "give one --architectures per machine, then run push_index with all of them",
        )
    if all_platforms and platform_tags:
        raise UserError(
            "--platform-tags builds one platform per run, --architectures all every one",
            "options",
            "give one --architectures per machine with --platform-tags",
        )
    cache_repo = (pick("cache_repo", "CACHE_REPO") or [""])[-1]
    if cache_repo:
        from doit_oci.rules.layercache import CacheRepo

        try:
            CacheRepo.parse(cache_repo)
        except ValueError as exc:
            raise UserError(str(exc), "options", "fix --cache-repo (or CACHE_REPO)") from None
    load, load_runtime, load_platform = _load(given, env)
    offline = "offline" in given or env("OFFLINE") == "true"
    for refused, flag in ((push, "--push"), (bool(cache_repo), "--cache-repo")):
        if offline and refused:
            raise UserError(
                f"--offline makes no request: it cannot go with {flag}",
                "options",
                f"give --offline or {flag} (and OFFLINE, PUSH, CACHE_REPO), not both",
            )
    try:
        mirrors = parse_mirrors(env("REGISTRY_MIRRORS") or "")
    except ValueError as exc:
        raise UserError(
            str(exc),
            "REGISTRY_MIRRORS",
            "write REGISTRY_MIRRORS=docker.io=mirror.example.com,ghcr.io=other.example.com/ghcr",
        ) from None
    progress = progress_from(argv, environ)
    if progress not in PROGRESS_MODES:
        raise UserError(
            f"unknown progress mode {progress!r}",
            "options",
            f"choose one of {', '.join(PROGRESS_MODES)} (--progress or PROGRESS)",
        )
    sign_key = (pick("sign_key", "SIGN_KEY") or [""])[-1]
    return Options(
        progress=progress,
        load=load,
        load_runtime=load_runtime,
        load_platform=load_platform,
        locked="locked" in given or env("LOCKED") == "true",
        offline=offline,
        check="check" in given,
        all_platforms=all_platforms,
        mirrors=mirrors,
        annotations=tuple(parse_option(item) for item in given.get("annotation", [])),
        auto_annotations="no_auto_annotations" not in given,
        image_refs=(pick("image_refs", "IMAGE_REFS") or [""])[-1],
        metadata_file=(pick("metadata_file", "METADATA_FILE") or [""])[-1],
        sbom="sbom" in given or env("SBOM") == "true",
        provenance="provenance" in given or env("PROVENANCE") == "true",
        sign_key=sign_key,
        cache_repo=cache_repo,
        platform_tags=platform_tags,
        cache_dir=cache_dir_from(argv, environ),
        variants=variants,
        save=save,
        no_clobber="no_clobber" in given,
        no_cache="no_cache" in given,
        prune_tags="prune_tags" in given,
        remote="remote" in given,
        qemu=qemu,
        push=push,
        insecure=insecure,
        registry_deadline=deadline,
        plan=plan,
        hubs=hubs,
        tags=tags,
        targets=targets,
        platforms=tuple(platforms),
        build_args=tuple(build_args),
        compression=compression,
        skip_make=environ.get("SKIP_MAKE", "") == "true",
        epoch=int(epoch_text),
    )
