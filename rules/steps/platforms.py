"""--architectures all: each image is built for the platforms every registry base below it
offers (their intersection; a plan image below counts as offering all), as ko's
``--platform=all`` builds every platform of the base. Attestation entries of an index
(``unknown/unknown``) are no platform. A plan image's ``platforms:`` still narrows it.

Chosen when the tasks are made, because the platforms decide which tasks exist: the
build is first made for this machine's platform to find the bases, then each base's
platforms are read from what bases.lock pins (the index in the content store, else by
its digest), else from the tag (a HEAD, and the index when the store lacks it). The
build runs on the union; an image is built only for those of its own bases.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from doit_oci.registry import pull, reference
from doit_oci.registry.errors import RegistryError
from doit_oci.registry.oci import Platform
from doit_oci.rules.errors import UserError
from doit_oci.rules.options import Options
from doit_oci.rules.progress import say
from doit_oci.rules.steps.run import Run
from doit_oci.rules.units import Build, PlanImage, RegistryImage, Unit, local_platform


def _registry_bases(build: Build, unit: Unit) -> list[str]:
    """The registry bases below ``unit``, through the plan images it is built on."""
    below = unit.base
    if isinstance(below, RegistryImage):
        return [below.reference]
    if isinstance(below, PlanImage):
        return _registry_bases(build, build.unit(below.key))
    return []


def offered(run: Run, text: str) -> tuple[Platform, ...]:
    """The platforms the base ``text`` offers, sorted: from the lock and the store when
    they know, else from the registry (through its mirrors)."""
    ref = reference.parse(text)
    pinned = run.pin(text)
    if pinned is not None and not pinned.index:
        return tuple(Platform.parse(platform) for platform, _ in pinned.platforms)
    options = run.options
    top = pinned.index if pinned is not None else ref.digest
    if not top and (options.locked or options.offline):
        raise UserError(
            f"--architectures all: {ref} is not pinned in {run.lock_shown}",
            "--locked" if options.locked else "--offline",
            "run doit lock and commit the lock",
        )
    try:
        reads = run.reader(ref.registry)
        if not top:
            head = reads.head_manifest(ref.path, ref.identifier)
            if head is None:
                raise UserError(f"{ref} is not in {ref.registry}", "--architectures all")
            top = head.digest
        _, platforms = pull.manifests(reads, ref, top, run.layout)
    except RegistryError as exc:
        raise UserError(str(exc)) from None
    except (ValueError, KeyError) as exc:  # a damaged document
        raise UserError(f"{ref}: {exc}", "--architectures all", "run doit verify") from None
    return tuple(sorted({platform for platform, _ in platforms}, key=str))


def every_platform(
    options: Options, build_of: Callable[[Options], Build], environ: Mapping[str, str]
) -> Options:
    """``options`` with the platforms --architectures all chooses, each image's own in
    ``offered``; one line says which."""
    local = local_platform()
    first = build_of(replace(options, platforms=(local,), qemu=True))
    listed = {Platform.parse(text) for image in first.plans[0].images for text in image.platforms}
    if listed - {local}:  # images built for other platforms only are found on those
        more = sorted(listed - {local}, key=str)
        first = build_of(replace(options, platforms=(local, *more), qemu=True))
    run = Run(first, environ)
    known: dict[str, tuple[Platform, ...]] = {}
    per_image: dict[str, tuple[Platform, ...]] = {}
    for output in first.outputs:
        units = first.units_of(output)
        bases = list(dict.fromkeys(ref for unit in units for ref in _registry_bases(first, unit)))
        if not bases:
            continue
        image = units[0].image
        common: list[Platform] | None = None
        for text in bases:
            if text not in known:
                known[text] = offered(run, text)
            common = [p for p in (known[text] if common is None else common) if p in known[text]]
        narrowed = [p for p in common or [] if image.builds_for(p)]
        per_image[output.label] = tuple(narrowed)
    if not per_image:
        raise UserError(
            "--architectures all takes the platforms of the registry bases, and no image of"
            " the build has one",
            "options",
            "name the platforms: --architectures linux/amd64,linux/arm64",
        )
    chosen = sorted({p for platforms in per_image.values() for p in platforms}, key=str)
    if not chosen:
        raise UserError(
            "--architectures all: the registry bases of the images share no platform",
            ", ".join(known),
            "name the platforms with --architectures",
        )
    differing = [
        f"{name}: {', '.join(map(str, platforms)) or 'none'}"
        for name, platforms in per_image.items()
        if list(platforms) != chosen
    ]
    say(
        f"--architectures all: {', '.join(map(str, chosen))} (offered by {', '.join(known)})"
        + (f"; {'; '.join(differing)}" if differing else "")
    )
    return replace(options, platforms=tuple(chosen), offered=tuple(per_image.items()))
