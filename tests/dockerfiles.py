"""Helpers of the Dockerfile tests: a Dockerfile from its lines, and all the steps run.

Every row of those tests spells its Dockerfile out line by line, so that line numbers in
the expected messages can be read off the row.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from doit_oci.registry.oci import ImageConfig, Platform
from doit_oci.rules.dockerfile.evaluate import evaluate
from doit_oci.rules.dockerfile.model import CopyStep, ImageSpec
from doit_oci.rules.dockerfile.read import read_dockerfile
from doit_oci.rules.dockerfile.stages import automatic_args, select_chain

PATH = "img/Dockerfile"
AMD64 = automatic_args(Platform("linux", "amd64"))
JSON_FIX = 'write a JSON array of strings, e.g. ["a", "b"]'
STRINGS_ONLY = "when using JSON array syntax, arrays must be comprised of strings only"


def dockerfile(*lines: str) -> str:
    """The Dockerfile of ``lines``: line N of the file is ``lines[N-1]``."""
    return "\n".join(lines) + "\n"


def build(
    lines: tuple[str, ...],
    args: Mapping[str, str] | None = None,
    target: str = "",
    base: ImageConfig | None = None,
    ignore_runs: bool = False,
) -> ImageSpec:
    df = read_dockerfile(dockerfile(*lines), PATH, ignore_runs)
    build_args = {**AMD64, **(args or {})}
    chain = select_chain(df, build_args, target)
    spec = evaluate(chain, build_args, base)
    # the task graph relies on this: the layer count is known before evaluating
    assert chain.layer_count == len(spec.copies)
    return spec


def copy(
    line: int,
    created_by: str,
    sources: tuple[str, ...],
    dest: str,
    dest_is_dir: bool,
    **more: Any,
) -> CopyStep:
    keyword = created_by.split()[0]
    return CopyStep(
        f"{PATH}:{line}", keyword, sources, dest, dest_is_dir, created_by=created_by, **more
    )
