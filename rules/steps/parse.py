"""parse:<image>: the Dockerfile's chain of stages, applied to the base's config, gives
what each COPY takes (copies.json) and the image's config and history (config.json).

Up to date by doit's own checks: the Dockerfile and the base's record are its file_dep,
and the build args its Dockerfile declares are its values (rules.tasks).
"""

from __future__ import annotations

from doit_oci.rules.dockerfile.evaluate import evaluate
from doit_oci.rules.progress import warn
from doit_oci.rules.steps.base import base_of
from doit_oci.rules.steps.records import ParseConfig, ParseCopies
from doit_oci.rules.steps.run import Run
from doit_oci.rules.units import Unit


def records(run: Run, unit: Unit) -> tuple[ParseCopies, ParseConfig, tuple[str, ...]]:
    """What parse writes for ``unit`` now, and the warnings it has."""
    documents = base_of(run, unit).documents()
    spec = evaluate(unit.chain, dict(unit.build_args), documents[1] if documents else None)
    if len(spec.copies) != unit.layer_count:
        raise AssertionError("layer count changed between task creation and parse")
    copies = ParseCopies(spec.copies)
    config = ParseConfig(
        spec.config, spec.author, tuple((step.created_by, step.layer) for step in spec.history)
    )
    return copies, config, spec.warnings


def parse(run: Run, unit: Unit) -> None:
    copies, config, warnings = records(run, unit)
    for warning in warnings:
        warn(warning)
    copies.write(unit.copies)
    config.write(unit.config)
