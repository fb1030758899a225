"""translate:<image>: each COPY's sources found in its context (the plan's files and
make's outputs, or a context directory) and laid over the base's file tree, giving what
each layer holds (layer-K.inputs.json, files with their content digests) and the image's
whole tree (tree.json, what an image built on this one copies onto).

It has no fixed list of input files: it is up to date when recomputing its records from
``stat`` and the digest cache gives what is on disk, so a file added to or removed from a
copied directory is noticed; unchanged files are not hashed again.
"""

from __future__ import annotations

from doit_oci.rules.context import Context, ContextDir
from doit_oci.rules.copyplan import plan_copy
from doit_oci.rules.plancontext import PlanContext
from doit_oci.rules.steps.base import base_of
from doit_oci.rules.steps.records import LayerInputs, ParseCopies, TreeRecord, same
from doit_oci.rules.steps.run import Run
from doit_oci.rules.units import Unit


def context(run: Run, unit: Unit) -> Context:
    """Where the COPYs of ``unit`` read from."""
    image = unit.image
    workspace = run.workspace
    if image.context is not None:
        return ContextDir(image.context, workspace)
    deps = (image.dockerfile, *image.dependencies(workspace))
    platform = unit.platform
    arch_out = workspace / "out" / f"{platform.os}_{platform.architecture}"
    return PlanContext(deps, workspace, arch_out, platform.architecture)


def records(run: Run, unit: Unit) -> tuple[list[LayerInputs], TreeRecord]:
    """What translate writes for ``unit`` now."""
    copies = ParseCopies.read(unit.copies).copies
    source = context(run, unit)
    tree = base_of(run, unit).tree()
    layers = []
    for step in copies:
        entries = plan_copy(
            step,
            source if step.keyword != "WORKDIR" else None,
            tree,
            run.workspace,
            run.digests.digest,
        )
        tree.add(entries)
        layers.append(LayerInputs(tuple(entries)))
    return layers, TreeRecord.of(tree)


def uptodate(run: Run, unit: Unit) -> bool:
    """Recomputing gives the records on disk. Never made: not up to date, and its files
    are hashed by the task (in a worker), not here."""
    if not unit.tree.exists():
        return False
    try:
        layers, tree = records(run, unit)
    except Exception:  # whatever it is, the task reports it when it runs
        return False
    return all(
        same(unit.inputs(index), layer.to_bytes()) for index, layer in enumerate(layers)
    ) and same(unit.tree, tree.to_bytes())


def translate(run: Run, unit: Unit) -> None:
    layers, tree = records(run, unit)
    for index, layer in enumerate(layers):
        layer.write(unit.inputs(index))
    tree.write(unit.tree)
