"""The stages that build the target: global ARGs, FROM lines, and ARG values.

As BuildKit: only the automatic platform ARGs and the ARGs declared before the first FROM
reach FROM lines (a build arg without such an ARG is not used there); a stage named by a
later FROM is built on, so the chain runs from the stage that stands on an image (or
scratch) to the target.
"""

from __future__ import annotations

from collections.abc import Mapping

from doit_oci.registry.oci import Platform
from doit_oci.rules.dockerfile.forms import arg_words
from doit_oci.rules.dockerfile.model import Chain, Dockerfile, Instruction, Stage
from doit_oci.rules.errors import UserError
from doit_oci.rules.shellwords import ExpandError, expand_word

# The platform ARGs BuildKit defines itself (``automatic_args``): they reach FROM lines
# undeclared, and a default written in the Dockerfile wins over them.
_AUTOMATIC = frozenset(
    {
        "TARGETPLATFORM",
        "TARGETOS",
        "TARGETARCH",
        "TARGETVARIANT",
        "BUILDPLATFORM",
        "BUILDOS",
        "BUILDARCH",
        "BUILDVARIANT",
    }
)


def automatic_args(platform: Platform, build_platform: Platform | None = None) -> dict[str, str]:
    """The platform ARGs BuildKit defines for every build."""
    build = build_platform or platform
    return {
        "TARGETPLATFORM": str(platform),
        "TARGETOS": platform.os,
        "TARGETARCH": platform.architecture,
        "TARGETVARIANT": platform.variant,
        "BUILDPLATFORM": str(build),
        "BUILDOS": build.os,
        "BUILDARCH": build.architecture,
        "BUILDVARIANT": build.variant,
    }


VALUE_LIMIT = 1 << 20  # the longest value a variable may expand to


def expand_in(ins: Instruction, word: str, env: Mapping[str, str], escape: str) -> str:
    """``word`` expanded in ``env`` (one word); a bad reference is the instruction's error."""
    try:
        value = expand_word(word, env, escape)
    except ExpandError as exc:
        raise ins.fail(str(exc), "fix the variable reference") from None
    if len(value) > VALUE_LIMIT:  # ${A}${A} ... doubles at each ENV: bounded here
        raise ins.fail(
            f"{ins.keyword} expands to more than {VALUE_LIMIT >> 20} MiB",
            "check the variables it uses",
        )
    return value


def arg_value(
    ins: Instruction,
    name: str,
    default: str | None,
    inherited: str | None,
    build_args: Mapping[str, str],
    scope: Mapping[str, str],
    escape: str,
) -> str | None:
    """An ARG's value as BuildKit gives it: the build arg passed for it, else its default
    expanded in ``scope``, else ``inherited`` (a global ARG's value), else the platform's
    value for an automatic platform ARG. A default wins over the platform's value, since
    BuildKit does not count those as passed build args."""
    if name in build_args and name not in _AUTOMATIC:
        return build_args[name]
    if default is not None:
        return expand_in(ins, default, scope, escape)
    if inherited is not None:
        return inherited
    return build_args.get(name)


def select_chain(df: Dockerfile, build_args: Mapping[str, str], target: str = "") -> Chain:
    """Expand the global ARGs and FROM lines and find the stages that build ``target``
    (the last stage when empty). ``build_args`` holds the automatic platform ARGs too."""
    # Only the platform ARGs and the declared global ARGs reach FROM lines, as in BuildKit:
    # a build arg without an ARG before the first FROM is not used there.
    scope = {name: value for name, value in build_args.items() if name in _AUTOMATIC}
    declared: list[tuple[str, str | None]] = []
    for ins in df.global_args:
        for name, default in arg_words(ins, df.escape):
            value = arg_value(ins, name, default, None, build_args, scope, df.escape)
            declared.append((name, value))
            if value is not None:
                scope[name] = value
    from_env = scope
    if target:
        wanted = [s for s in df.stages if s.name == target.lower()]
        if not wanted:
            names = ", ".join(s.name for s in df.stages if s.name) or "none"
            raise UserError(f"no stage named {target!r}", df.path, f"stages: {names}")
        stage = wanted[0]
    else:
        stage = df.stages[-1]
    chain: list[Stage] = []
    while True:
        chain.append(stage)
        image = expand_in(stage.from_line, stage.image, from_env, df.escape)
        if not image:
            raise stage.from_line.fail(
                f"FROM {stage.image} expands to an empty image name",
                "set the build arg it uses, or give the ARG a default",
            )
        earlier = [s for s in df.stages[: stage.index] if s.name == image.lower()]
        if earlier:
            stage = earlier[-1]
            continue
        if any(s.name == image.lower() for s in df.stages[stage.index + 1 :]):
            raise stage.from_line.fail(
                f"FROM {image} names a stage defined later", "stages can only build on earlier ones"
            )
        return Chain(df, tuple(reversed(chain)), image, stage.from_line.where, tuple(declared))


def root_platform(chain: Chain, build_args: Mapping[str, str]) -> str:
    """The root stage's ``FROM --platform`` expanded as BuildKit expands it, like the image
    name: in the automatic platform ARGs and the global ARGs (their defaults, or the build
    args passed for them), not in undeclared build args. "" when it has none."""
    root = chain.stages[0]
    if not root.platform:
        return ""
    env = {name: value for name, value in build_args.items() if name in _AUTOMATIC}
    env.update((name, value) for name, value in chain.global_args if value is not None)
    return expand_in(root.from_line, root.platform, env, chain.dockerfile.escape)
