"""Options + plan + Dockerfiles -> the units of a build: one per image and platform.

Made when the tasks are created, so it only reads the plan and the Dockerfiles (small
files) and never builds anything. It decides everything the task graph depends on:
which images are built (the targets and the plan images they stand on), the chain of
stages of each Dockerfile, how many layers each image gets, and the make goals per
platform. Every user mistake found here stops the build before any work starts.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from pathlib import Path

from doit_oci.registry import reference
from doit_oci.registry.oci import Platform, is_ref_name
from doit_oci.rules.annotations import automatic, merged
from doit_oci.rules.dockerfile.model import Dockerfile
from doit_oci.rules.dockerfile.read import read_dockerfile
from doit_oci.rules.dockerfile.stages import automatic_args, root_platform, select_chain
from doit_oci.rules.errors import UserError
from doit_oci.rules.gitsource import read_source
from doit_oci.rules.inputs import DOCKERFILE_LIMIT, read_text
from doit_oci.rules.options import Options
from doit_oci.rules.plan import ImagePlan, Plan, load_plan
from doit_oci.rules.units import (
    DEFAULT_VARIANT,
    PRIMARY_VARIANT,
    BaseImage,
    Build,
    Output,
    PlanImage,
    RegistryImage,
    Scratch,
    Unit,
    build_variants,
    local_platform,
    platform_tag,
    state_dir,
    unit_key,
    variant_tags,
)


def base_candidates(name: str, options: Options) -> set[str]:
    """The FROM references that mean the plan's image ``name`` in this build."""
    names = {name, *(f"{name}:{tag}" for tag in options.tags)}
    for hub in options.hubs:
        names.update(f"{hub}/{name}:{tag}" for tag in options.tags)
        if "latest" in options.tags:
            names.add(f"{hub}/{name}")
    return names


def _normal(text: str) -> str:
    try:
        ref = reference.parse(text)
    except reference.ReferenceError:
        return text
    return str(reference.Reference(ref.registry, ref.path, ref.tag or "latest", ref.digest))


def find_plan_base(ref: str, plan: Plan, options: Options) -> ImagePlan | None:
    wanted = _normal(ref)
    for image in plan.images:
        candidates = base_candidates(image.name, options)
        if ref in candidates or wanted in {_normal(c) for c in candidates if "/" in c}:
            return image
    return None


def _display(path: Path, workspace: Path) -> str:
    try:
        return str(path.relative_to(workspace))
    except ValueError:
        return str(path)


def _check_names(output: Output, image: ImagePlan | None) -> None:
    """Every name the layout gets for ``output`` in the OCI grammar too (Docker's allows
    more: ``a__b``, ``a---b``, a tag starting with ``_``, which skopeo then refuses)."""
    for name in output.ref_names:
        if not is_ref_name(name):
            raise UserError(
                f"{name!r} would name an image in out/oci/index.json, which the OCI"
                " image-spec's grammar does not allow",
                image.where if image is not None else "options",
                "use single '.', '_' or '-' between letters and digits in names and tags",
            )


def _swapped(typed: str, name: str) -> bool:
    """``bsae`` for ``base``: the same letters, two neighbours swapped (a typo, where one
    letter changed, ``bash`` for ``base``, may well name another image)."""
    if len(typed) != len(name) or typed == name:
        return False
    wrong = [i for i, (a, b) in enumerate(zip(typed, name, strict=True)) if a != b]
    return (
        len(wrong) == 2
        and wrong[1] == wrong[0] + 1
        and typed[wrong[0]] == name[wrong[1]]
        and typed[wrong[1]] == name[wrong[0]]
    )


def load_build(
    options: Options,
    workspace: Path,
    environ: Mapping[str, str],
    plan_for: Callable[[Platform], Plan] | None = None,
) -> Build:
    """The build of ``options.plan`` (or of the plans ``plan_for`` gives per platform, as
    the Python rules make them) in ``workspace``."""
    plans = tuple(
        plan_for(p) if plan_for else load_plan(options.plan, p, workspace, environ)
        for p in options.platforms
    )
    first = plans[0]
    names = first.names
    for target in options.targets:
        if target not in names:
            raise UserError(
                f"unknown target {target!r}",
                first.path,
                f"choose among the plan's images: {', '.join(names)}",
            )
    targets = options.targets or tuple(i.name for i in first.images if not i.base)
    protected = sorted(set(options.hubs) & set(first.protected_hubs))
    if options.push and protected and "CI" not in environ:
        raise UserError(
            f"pushing to {', '.join(protected)} is only done from CI",
            first.path,
            "push to another hub, or set CI=true if this really is CI (protectedHubs in the plan)",
        )
    several = len(options.platforms) > 1
    check_sign_key(options, workspace)
    # read once, when the tasks are made: HEAD and the remote of the workspace's checkout
    source = read_source(workspace) if options.auto_annotations else None
    auto = automatic(options.epoch, source) if options.auto_annotations else ()
    dockerfiles: dict[Path, Dockerfile] = {}
    units: dict[str, Unit] = {}
    order: list[str] = []

    def dockerfile(image: ImagePlan, plan: Plan) -> Dockerfile:
        path = image.dockerfile
        if path not in dockerfiles:
            shown = _display(path, workspace)
            try:
                text = read_text(path, "Dockerfile", shown, DOCKERFILE_LIMIT)
            except FileNotFoundError:
                raise UserError(
                    f"the Dockerfile {shown} does not exist", image.where, "check the file"
                ) from None
            dockerfiles[path] = read_dockerfile(
                text,
                _display(path, workspace),
                image.ignore_runs or plan.ignore_runs,
                image.dockerfile_where,
            )
        return dockerfiles[path]

    def visit(image: ImagePlan, plan: Plan, variant: str, stack: tuple[str, ...]) -> str:
        key = unit_key(image.name, variant, plan.platform, several)
        if key in units:
            return key
        if image.name in stack:
            cycle = " -> ".join((*stack[stack.index(image.name) :], image.name))
            raise UserError(
                f"base images form a cycle: {cycle}",
                image.where,
                "make one of them build FROM another image",
            )
        args = {
            **automatic_args(plan.platform),
            "BASE_DISTRIBUTION": PRIMARY_VARIANT if variant == DEFAULT_VARIANT else variant,
            **dict(plan.args),
            **dict(image.args),
            **dict(options.build_args),
        }
        chain = select_chain(dockerfile(image, plan), args)
        root = chain.stages[0]
        if root.platform:
            wanted_platform = root_platform(chain, args)
            if wanted_platform != str(plan.platform):
                raise root.from_line.fail(
                    f"FROM --platform={wanted_platform} differs from the platform being built"
                    f" ({plan.platform})",
                    "drop --platform, or build that platform instead",
                )
        below: BaseImage = Scratch()
        base = find_plan_base(chain.base, plan, options) if chain.base != "scratch" else None
        if chain.base != "scratch" and base is None and "/" not in chain.base:
            # docker.io/library/<name>, or a typo of a plan image: one that is close to a
            # plan image's name fails at once instead of asking Docker Hub for it
            name = chain.base.split("@")[0].split(":")[0]
            close = difflib.get_close_matches(name, plan.names, n=1, cutoff=0.8)
            close = close or [n for n in plan.names if _swapped(name, n)]
            if close and close[0] != name:
                raise UserError(
                    f"no plan image {name!r} (did you mean {close[0]!r}?) and it is not a"
                    " registry image either",
                    chain.base_where,
                    f"write FROM {close[0]}{chain.base[len(name) :]} for the plan image, or FROM"
                    f" docker.io/library/{chain.base} for an image of Docker Hub",
                )
        if chain.base != "scratch" and base is None:
            try:
                below = RegistryImage(str(reference.parse(chain.base)))
            except reference.ReferenceError as exc:
                raise UserError(
                    f"base image {chain.base!r} is neither scratch, an image of this plan, nor a"
                    f" valid image reference: {exc}",
                    chain.base_where,
                    "name a plan image, or a registry image such as"
                    " gcr.io/distroless/static:nonroot",
                ) from None
        if base is not None:
            if not base.builds_for(plan.platform):
                raise UserError(
                    f"base image {base.name!r} is not built for {plan.platform}",
                    chain.base_where,
                    f"add {plan.platform} to its platforms",
                )
            below = PlanImage(visit(base, plan, variant, (*stack, image.name)))
        unit = Unit(
            key=key,
            image=image,
            platform=plan.platform,
            chain=chain,
            base=below,
            build_args=tuple(sorted(args.items())),
            dir=state_dir(workspace, options.cache_dir)
            / "build"
            / options.scope
            / plan.platform.slug
            / key.split("@")[0],
            variant=variant,
            annotations=merged(auto, plan.annotations, image.annotations, options.annotations),
        )
        units[key] = unit
        order.append(key)
        return key

    local = local_platform()
    outputs: list[Output] = []
    for variant, double in build_variants(options.variants):
        for name in targets:
            keys = []
            for plan in plans:
                image = plan.find(name)
                assert image is not None
                label = name if variant == DEFAULT_VARIANT else f"{name}-{variant}"
                if not image.builds_for(plan.platform) or not options.offers(label, plan.platform):
                    continue
                if image.emulation_required and plan.platform != local and not options.qemu:
                    continue
                keys.append(visit(image, plan, variant, ()))
            if keys:
                tags = variant_tags(options.tags, variant, double)
                if options.platform_tags:
                    tags = tuple(platform_tag(tag, plans[0].platform) for tag in tags)
                also = double and variant == PRIMARY_VARIANT
                output = Output(name, variant, tags, tuple(keys), also)
                _check_names(output, plans[0].find(name))
                outputs.append(output)
    goals: list[tuple[Platform, tuple[str, ...]]] = []
    for plan in plans:
        platform_goals: list[str] = []
        for key in order:
            unit = units[key]
            if unit.platform == plan.platform:
                platform_goals.extend(t for t in unit.image.targets if t not in platform_goals)
        if platform_goals and not options.skip_make:
            goals.append((plan.platform, tuple(platform_goals)))
    return Build(
        workspace=workspace,
        options=options,
        plans=plans,
        units=tuple(units[k] for k in order),
        outputs=tuple(outputs),
        make_goals=tuple(goals),
        source=source,
    )


def check_sign_key(options: Options, workspace: Path) -> None:
    """--sign-key names a file we can read (it is read, and never copied, when signing)."""
    if not options.sign_key or not options.push:
        return
    path = workspace / options.sign_key
    if not path.is_file():
        raise UserError(
            f"--sign-key {options.sign_key}: no such file",
            "options",
            "give the path of a PEM ECDSA P-256 private key (or of cosign.key)",
        )
