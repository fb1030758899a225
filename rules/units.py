"""What a build is made of: a Unit per image, variant and platform (with the base it is
built on), an Output per image and variant (its tags, a unit per platform), and the Build
that holds them with the options. Pure data; rules.build makes it from a plan.
"""

from __future__ import annotations

import platform as host
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from doit_oci.registry.oci import Platform
from doit_oci.rules.dockerfile.model import Chain
from doit_oci.rules.gitsource import GitSource
from doit_oci.rules.options import Options
from doit_oci.rules.plan import ImagePlan, Plan

OUT = "out"
DEFAULT_VARIANT = "default"
PRIMARY_VARIANT = "debug"  # what the default variant builds (BASE_DISTRIBUTION)


@dataclass(frozen=True)
class Scratch:
    """``FROM scratch``: nothing below."""

    @property
    def label(self) -> str:
        return "scratch"


@dataclass(frozen=True)
class PlanImage:
    """An image of this build: the unit of that image for the same platform and variant."""

    key: str

    @property
    def label(self) -> str:
        return self.key


@dataclass(frozen=True)
class RegistryImage:
    """An image of a registry (a normalised reference), resolved by a ``base`` task."""

    reference: str

    @property
    def label(self) -> str:
        return self.reference

    def record(self, platform_dir: Path) -> Path:
        """Where its resolution is kept, beside the records of the platform's units."""
        return platform_dir / "_bases" / (_slug(self.reference) + ".json")


BaseImage = Scratch | PlanImage | RegistryImage


@dataclass(frozen=True)
class Unit:
    """One image of the plan, built for one platform and one variant."""

    key: str  # "pilot", "pilot-distroless", "pilot@linux_arm64"... (see unit_key)
    image: ImagePlan
    platform: Platform
    chain: Chain
    base: BaseImage
    build_args: tuple[tuple[str, str], ...]
    dir: Path  # where its records live
    variant: str = "default"
    # the user's and the automatic ones but a registry base's (the image step adds those)
    annotations: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        return self.image.name

    @property
    def layer_count(self) -> int:
        return self.chain.layer_count

    def record(self, name: str) -> Path:
        return self.dir / name

    @property
    def copies(self) -> Path:
        return self.dir / "copies.json"

    @property
    def config(self) -> Path:
        return self.dir / "config.json"

    @property
    def tree(self) -> Path:
        return self.dir / "tree.json"

    @property
    def image_record(self) -> Path:
        return self.dir / "image.json"

    def inputs(self, index: int) -> Path:
        return self.dir / f"layer-{index}.inputs.json"

    def layer(self, index: int) -> Path:
        return self.dir / f"layer-{index}.json"


@dataclass(frozen=True)
class Output:
    """An image this build gives: one name and variant, its tags, a unit per platform."""

    name: str
    variant: str
    tags: tuple[str, ...]  # "1.2", or "1.2-distroless" (and "1.2" for debug as default)
    keys: tuple[str, ...]
    also_default: bool = False  # the debug build that the default variant also names

    @property
    def label(self) -> str:
        """``pilot`` or ``pilot-distroless``: names its push task and its --save file."""
        return self.name if self.variant == DEFAULT_VARIANT else f"{self.name}-{self.variant}"

    @property
    def ref_names(self) -> tuple[str, ...]:
        return tuple(f"{self.name}:{tag}" for tag in self.tags)


def variant_tags(tags: Sequence[str], variant: str, double_default: bool) -> tuple[str, ...]:
    """The seed's extractTags without the hub: ``tag`` for the default variant,
    ``tag-variant`` otherwise, and the debug build also carries ``tag`` when both the
    default and debug variants are asked for (one build, byte-for-byte the same image)."""
    out: list[str] = []
    for tag in tags:
        if variant == DEFAULT_VARIANT:
            out.append(tag)
            continue
        out.append(f"{tag}-{variant}")
        if variant == PRIMARY_VARIANT and double_default:
            out.append(tag)
    return tuple(out)


def platform_tag(tag: str, platform: Platform) -> str:
    """``1.2-arm64`` (``1.2-arm-v7``): the tag one machine pushes its platform under."""
    return f"{tag}-{platform.architecture}" + (f"-{platform.variant}" if platform.variant else "")


def build_variants(variants: Sequence[str]) -> list[tuple[str, bool]]:
    """(variant, double default) pairs to build: default collapses into debug when both."""
    double = DEFAULT_VARIANT in variants and PRIMARY_VARIANT in variants
    return [(v, double) for v in variants if not (double and v == DEFAULT_VARIANT)]


@dataclass(frozen=True)
class Build:
    workspace: Path
    options: Options
    plans: tuple[Plan, ...]  # one per platform
    units: tuple[Unit, ...]  # bases before the images on them
    outputs: tuple[Output, ...]  # the images this build gives, in plan order
    make_goals: tuple[tuple[Platform, tuple[str, ...]], ...]
    source: GitSource | None = None  # the workspace's git checkout, when it is one

    @property
    def out(self) -> Path:
        return self.workspace / OUT

    @property
    def state(self) -> Path:
        """Where the content store, the records and the digest cache live: out/, or the
        --cache-dir a CI cache saves and restores."""
        return state_dir(self.workspace, self.options.cache_dir)

    @property
    def layout_dir(self) -> Path:
        return self.state / "oci"

    def unit(self, key: str) -> Unit:
        for unit in self.units:
            if unit.key == key:
                return unit
        raise KeyError(key)

    @property
    def wanted(self) -> tuple[str, ...]:
        """Keys of every unit an output is made of."""
        return tuple(key for output in self.outputs for key in output.keys)

    def units_of(self, output: Output) -> tuple[Unit, ...]:
        return tuple(self.unit(key) for key in output.keys)

    def output_of(self, unit: Unit) -> Output | None:
        for output in self.outputs:
            if unit.key in output.keys:
                return output
        return None


def state_dir(workspace: Path, cache_dir: str) -> Path:
    return (workspace / cache_dir).resolve() if cache_dir else workspace / OUT


def _slug(text: str) -> str:
    """A file name for a reference: ``gcr.io/x/y:1`` -> ``gcr.io_x_y_1``."""
    return "".join(c if c.isalnum() or c in ".-" else "_" for c in text)


def local_platform() -> Platform:
    """The platform of this machine, which builds without emulation."""
    machine = host.machine().lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(
        machine, machine
    )
    return Platform("linux", arch)


def unit_key(name: str, variant: str, platform: Platform, several: bool) -> str:
    """``pilot``; ``pilot-distroless`` for a variant; ``...@linux_arm64`` when several
    platforms are built."""
    key = name if variant == DEFAULT_VARIANT else f"{name}-{variant}"
    return f"{key}@{platform.slug}" if several else key
