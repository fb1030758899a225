"""load:<image> (--load), and ``doit load``: an image of out/oci into a local runtime, for
the platform to load (``--load-platform``, else this machine's), under every
``<hub>/<name>:<tag>`` of the build (``<name>:<tag>`` without hubs).

Incremental, one runtime query per image: an image the runtime holds under every name
is up to date (nothing is sent); one it holds under other names is retagged; otherwise
the archive is streamed into it, without the layers it has already (when that partial
archive is refused, the whole one follows). out/oci stays the source of truth: the
records say what was loaded, and ``doit load`` loads what the last build made.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from doit_oci.registry.errors import RegistryError
from doit_oci.registry.oci import Platform
from doit_oci.rules.errors import UserError
from doit_oci.rules.progress import say
from doit_oci.rules.steps.records import ImageRecord, RecordError
from doit_oci.rules.steps.run import Run
from doit_oci.rules.steps.save import repo_tags
from doit_oci.rules.steps.shipped import LoadRecord
from doit_oci.rules.units import Output, Unit, local_platform

if TYPE_CHECKING:  # the runtimes (http.client, subprocesses) only when something is loaded
    from doit_oci.registry.runtimes import Image, Runtime


@dataclass(frozen=True)
class Outcome:
    """What one load did in one runtime."""

    where: str
    done: str  # "there", "tagged" or "loaded"
    names: tuple[str, ...]
    layers: int = 0
    sent: int = 0
    size: int = 0

    @property
    def line(self) -> str:
        names = ", ".join(self.names)
        if self.done == "there":
            return f"{names}: already in {self.where}"
        if self.done == "tagged":
            return f"{names}: tagged in {self.where} (nothing sent)"
        return (
            f"{names}: loaded into {self.where}, {self.sent} of {self.layers} layers sent"
            f" ({self.size} bytes)"
        )


def record_path(run: Run, label: str) -> Path:
    return run.records / "load" / f"{label}.json"


def platform(run: Run) -> Platform:
    return run.options.load_platform or local_platform()


def unit_of(run: Run, output: Output) -> Unit:
    """The unit of ``output`` for the platform to load; a user's mistake when not built."""
    wanted = platform(run)
    for unit in run.units_of(output):
        if unit.platform == wanted:
            return unit
    built = ", ".join(str(unit.platform) for unit in run.units_of(output))
    raise UserError(
        f"{output.label} is built for {built}, not for {wanted}, the platform to load",
        "options",
        f"add {wanted} to --architectures, or load one of {built} with --load-platform",
    )


def _image(unit: Unit) -> Image:
    from doit_oci.registry.runtimes import Image

    record = ImageRecord.read(unit.image_record)
    return Image(record.config.digest, record.manifest.digest, (), ())


def uptodate(run: Run, output: Output) -> bool:
    """Whether every runtime holds the image under every name: one query each. Anything
    that fails says "not up to date", and the task says why when it runs."""
    try:
        image = _image(unit_of(run, output))
        refs = repo_tags(run, output)
        for runtime in run.runtimes:
            names = runtime.names(refs)
            if runtime.held(image, names).names != frozenset(names):
                return False
    except (UserError, RegistryError, RecordError, OSError, KeyError, TypeError, ValueError):
        return False
    return True


def _check_platform(runtime: Runtime, label: str, image_platform: str) -> None:
    theirs = runtime.platform()
    if theirs and theirs != image_platform:
        raise UserError(
            f"{label} is a {image_platform} image; {runtime.where} runs {theirs}",
            "--load",
            f"load {theirs}: build it (--architectures {theirs}) and give --load-platform"
            f" {theirs}, or leave --load-platform out on a {theirs} machine",
        )


def load_into(run: Run, runtime: Runtime, label: str, unit: Unit, refs: list[str]) -> Outcome:
    """The image of ``unit`` into ``runtime`` under ``refs``: nothing, a retag or a load."""
    from doit_oci.rules.loadarchive import load_archive, read_stored
    from doit_oci.rules.tar import tar_chunks

    stored = read_stored(run.layout, ImageRecord.read(unit.image_record).manifest)
    names = runtime.names(refs)
    held = runtime.held(stored.image, names)
    missing = [name for name in names if name not in held.names]
    if not missing:
        return Outcome(runtime.where, "there", names)
    if held.source:
        for name in missing:
            runtime.tag(held.source, name)
        return Outcome(runtime.where, "tagged", tuple(missing))
    _check_platform(runtime, label, stored.platform)
    leave_out = runtime.reusable(stored.image, names)
    while True:
        with load_archive(run.layout, stored, names, leave_out, runtime.archive) as archive:
            try:
                runtime.load(tar_chunks(archive.members), label)
            except RegistryError as exc:
                if not leave_out:
                    raise
                # it lost a layer it had since it was asked: send the whole image
                say(f"{label}: {exc}; sending the whole image to {runtime.where}")
                leave_out = frozenset()
                continue
        return Outcome(runtime.where, "loaded", names, archive.layers, archive.sent, archive.size)


def load(run: Run, output: Output) -> list[Outcome]:
    """``output``'s image into every runtime (every node of a kind cluster); says what it
    did, and writes the record."""
    unit = unit_of(run, output)
    refs = repo_tags(run, output)
    started = time.monotonic()
    outcomes = [load_into(run, runtime, output.label, unit, refs) for runtime in run.runtimes]
    spent = time.monotonic() - started
    for outcome in outcomes:
        say(f"{outcome.line} in {spent:.2f}s")
    record = ImageRecord.read(unit.image_record)
    LoadRecord(
        record.manifest.digest,
        record.config.digest,
        tuple(outcome.where for outcome in outcomes),
        tuple(refs),
        sum(outcome.size for outcome in outcomes),
    ).write(record_path(run, output.label))
    return outcomes


def load_built(run: Run) -> None:
    """``doit load``: what the last build made, without building."""
    for output in run.build.outputs:
        unit = unit_of(run, output)
        if not unit.image_record.exists():
            raise UserError(
                f"{output.label} has not been built for {unit.platform}",
                str(unit.image_record),
                "build it first: doit build_images (or build and load: --load)",
            )
        load(run, output)
