"""What Python rules mean: for each platform, the ``ImagePlan`` entries a YAML plan of the
same images would give, so that one engine builds both. A rule without a Dockerfile
stands for one (FROM its base, a COPY per file, then its config), whose text
``dockerfile_text`` gives; rules.ruleset writes it under out/rules/. Pure.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from doit_oci.registry.oci import Platform
from doit_oci.rules.api import Declaration, ImageRule, IndexRule
from doit_oci.rules.errors import UserError
from doit_oci.rules.plan import ImagePlan, Plan, expand, plan_variables


def images_of(declared: Sequence[Declaration]) -> list[ImageRule]:
    return [rule for rule in declared if isinstance(rule, ImageRule)]


def rule_platforms(declared: Sequence[Declaration]) -> tuple[Platform, ...]:
    """The platforms the image rules name, in order (none when no rule names any)."""
    found: list[Platform] = []
    for rule in images_of(declared):
        for text in rule.platforms:
            try:
                platform = Platform.parse(text)
            except ValueError as exc:
                raise UserError(str(exc), rule.where, 'write platforms=["linux/arm64"]') from None
            if platform not in found:
                found.append(platform)
    return tuple(found)


def dockerfile_path(rule: ImageRule, workspace: Path) -> Path:
    """Where the Dockerfile a rule without one stands for is written."""
    return workspace / "out" / "rules" / f"{rule.name}.Dockerfile"


def dockerfile_text(
    rule: ImageRule, variables: Mapping[str, str], workspace: Path, rules: Sequence[str]
) -> str:
    """The Dockerfile a rule without one stands for; ``rules`` are the image rules' names."""
    base = rule.base or "scratch"
    if base.startswith(":") and base[1:] not in rules:
        raise UserError(
            f"base {base!r} names no image rule",
            rule.where,
            f"name one of the rules: {', '.join(':' + n for n in rules)}, or a registry image",
        )
    lines = [f"FROM {base.removeprefix(':')}"]
    for dest, source in rule.copies:
        path = Path(expand(source, variables))
        if path.is_absolute():
            try:
                path = path.relative_to(workspace)
            except ValueError:
                raise UserError(
                    f"file {source!r} of {rule.name!r} is outside the workspace",
                    rule.where,
                    "copy files from the workspace only",
                ) from None
        lines.append(f"COPY {json.dumps([str(path), dest])}")
    config = rule.config
    lines.extend(f"ENV {key}={json.dumps(value)}" for key, value in config.env)
    lines.extend(f"LABEL {json.dumps(key)}={json.dumps(value)}" for key, value in config.labels)
    if config.expose:
        lines.append("EXPOSE " + " ".join(config.expose))
    if config.user:
        lines.append(f"USER {config.user}")
    if config.workdir:
        lines.append(f"WORKDIR {config.workdir}")
    if config.entrypoint is not None:
        lines.append(f"ENTRYPOINT {json.dumps(list(config.entrypoint))}")
    if config.cmd is not None:
        lines.append(f"CMD {json.dumps(list(config.cmd))}")
    return "# written by doit-oci from " + rule.where + "\n" + "\n".join(lines) + "\n"


def rules_plan(
    declared: Sequence[Declaration],
    platform: Platform,
    workspace: Path,
    environ: Mapping[str, str],
) -> tuple[Plan, dict[Path, str]]:
    """The plan the image rules make for ``platform``, and the Dockerfiles to write for
    the rules that have none (path -> text)."""
    variables = plan_variables(platform, workspace, environ)
    rules = images_of(declared)
    names = [rule.name for rule in rules]
    images = []
    written: dict[Path, str] = {}
    for rule in rules:
        targets = tuple(expand(t, variables) for t in rule.targets)
        if rule.dockerfile:
            files = tuple(workspace / expand(f, variables) for f in rule.files)
            dockerfile = workspace / rule.dockerfile
            context = (workspace / rule.context).resolve() if rule.context else None
            if not dockerfile.is_file():
                raise UserError(
                    f"Dockerfile {rule.dockerfile!r} of {rule.name!r} does not exist",
                    rule.where,
                    "fix the path (relative to the workspace)",
                )
        else:
            dockerfile = dockerfile_path(rule, workspace)
            written[dockerfile] = dockerfile_text(rule, variables, workspace, names)
            files = ()
            context = workspace
        images.append(
            ImagePlan(
                name=rule.name,
                where=rule.where,
                dockerfile=dockerfile.resolve(),
                context=context,
                files=files,
                targets=targets,
                platforms=rule.platforms,
                emulation_required=rule.emulation_required,
                args=rule.args,
                dockerfile_where="" if rule.dockerfile else rule.where,
                annotations=rule.annotations,
            )
        )
    return Plan("dodo.py", platform, tuple(images)), written


def rule_named(declared: Sequence[Declaration], name: str) -> ImageRule | IndexRule:
    for rule in declared:
        if isinstance(rule, ImageRule | IndexRule) and rule.name == name:
            return rule
    raise KeyError(name)
