"""The options' one table (flag, help, environment variables, default: what ``doit help``,
``--help`` after a task and docs/options.md show) and the doit command line read for
them, before doit parses it: options decide which tasks exist. Pure.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from doit_oci.rules.errors import UserError

DEFAULT_PLAN = "plans/images.yaml"
PROGRESS_MODES = ("auto", "tty", "plain", "json")


@dataclass(frozen=True)
class Option:
    """One option: the one source of its flag, help, environment variables and default
    (``doit help <task>``, ``--help`` after a task and docs/options.md all show these)."""

    name: str  # the doit parameter name
    flag: str  # the long option, without "--"
    kind: str  # "str", "list" (repeatable) or "bool"
    about: str  # what it does
    env: tuple[str, ...] = ()  # the environment variables that give it, first wins
    default: str = ""  # what it is when neither gives it ("" for off / none)

    @property
    def help(self) -> str:
        parts = []
        if self.env:
            parts.append("env " + ", ".join(self.env))
        if self.default:
            parts.append(f"default {self.default}")
        return self.about + (f" ({'; '.join(parts)})" if parts else "")


OPTIONS = (
    Option("plan", "plan", "str", "the build plan", ("PLAN",), DEFAULT_PLAN),
    Option("hub", "hub", "list", "registries (host and path) to name images for", ("HUBS", "HUB")),
    Option("tag", "tag", "list", "tags to give every image", ("TAGS", "TAG"), "latest"),
    Option(
        "targets",
        "targets",
        "list",
        "images to build",
        ("DOCKER_TARGETS",),
        "every image that is not a base",
    ),
    Option(
        "architectures",
        "architectures",
        "list",
        "platforms to build, os/arch (all: every platform the registry bases offer)",
        ("DOCKER_ARCHITECTURES",),
        "linux/amd64",
    ),
    Option("build_arg", "build-arg", "list", "KEY=VALUE given to every Dockerfile (repeatable)"),
    Option(
        "compression",
        "compression",
        "str",
        "layer compression: none, gzip or zstd",
        ("COMPRESSION",),
        "none for loopback registries and out/oci, gzip for others",
    ),
    Option(
        "variants",
        "variants",
        "list",
        "variants to build",
        ("DOCKER_BUILD_VARIANTS", "INCLUDE_UNTAGGED_DEFAULT"),
        "default",
    ),
    Option("push", "push", "bool", "push every image to every hub and tag", ("PUSH",)),
    Option(
        "cache_dir",
        "cache-dir",
        "str",
        "keep the content store, the records and doit's state there instead of out/, for a"
        " CI cache to save and restore",
        ("DOIT_OCI_CACHE",),
        "out/",
    ),
    Option(
        "platform_tags",
        "platform-tags",
        "bool",
        "tag each image <tag>-<arch>: one platform per machine, then push_index makes the"
        " multi-platform image",
        ("PLATFORM_TAGS",),
    ),
    Option(
        "cache_repo",
        "cache-repo",
        "str",
        "a registry repository where layers are cached for every runner",
        ("CACHE_REPO",),
    ),
    Option("save", "save", "bool", "also save each image under out/release/docker"),
    Option("no_clobber", "no-clobber", "bool", "refuse to push over existing tags but latest"),
    Option("no_cache", "no-cache", "bool", "rebuild everything"),
    Option(
        "prune_tags",
        "prune-tags",
        "bool",
        "gc: also drop the names in out/oci/index.json that no plan of this run gives",
    ),
    Option(
        "remote",
        "remote",
        "bool",
        "verify: also ask the registries for every pushed manifest, tag and blob",
    ),
    Option("qemu", "qemu", "bool", "build images that need emulation", ("ISTIO_DOCKER_QEMU",)),
    Option(
        "insecure_registry",
        "insecure-registry",
        "list",
        "a registry spoken to over plain HTTP (loopback ones always are)",
        ("INSECURE_REGISTRIES",),
    ),
    Option(
        "load",
        "load",
        "bool",
        "also load every image into a local runtime; LOAD may name the runtime",
        ("LOAD",),
    ),
    Option(
        "load_runtime",
        "load-runtime",
        "str",
        "where --load loads: docker, podman, containerd[:namespace] or kind[:cluster]"
        " (given on the command line, it implies --load)",
        ("LOAD_RUNTIME",),
        "the first that answers: docker, podman, containerd",
    ),
    Option(
        "load_platform",
        "load-platform",
        "str",
        "the platform --load loads, os/arch",
        ("LOAD_PLATFORM",),
        "this machine's",
    ),
    Option(
        "locked",
        "locked",
        "bool",
        "fail at once when a registry base of the build is not pinned in bases.lock",
        ("LOCKED",),
    ),
    Option(
        "offline",
        "offline",
        "bool",
        "make no request: bases from bases.lock and the content store",
        ("OFFLINE",),
    ),
    Option(
        "check",
        "check",
        "bool",
        "lock: say whether bases.lock is current (one HEAD per base), fail when it is not",
    ),
    Option(
        "progress",
        "progress",
        "str",
        "how a run shows its work: tty (a live block), plain (a line per event, for CI"
        " logs), json (one JSON object per line, for tools) or auto (tty on a terminal)",
        ("PROGRESS",),
        "auto",
    ),
    Option(
        "annotation",
        "annotation",
        "list",
        "KEY=VALUE annotating every manifest and index (repeatable)",
    ),
    Option(
        "no_auto_annotations",
        "no-auto-annotations",
        "bool",
        "no automatic annotations (created, source, revision, base.name, base.digest)",
    ),
    Option(
        "image_refs",
        "image-refs",
        "str",
        "write <hub>/<name>@<digest> of every image pushed (or built) to FILE",
        ("IMAGE_REFS",),
    ),
    Option(
        "metadata_file",
        "metadata-file",
        "str",
        "write what was built, pushed and attached, by image, as JSON to FILE",
        ("METADATA_FILE",),
    ),
    Option(
        "sbom",
        "sbom",
        "bool",
        "an SPDX SBOM per image and platform in out/sbom, attached to what is pushed",
        ("SBOM",),
    ),
    Option(
        "provenance",
        "provenance",
        "bool",
        "SLSA provenance attached to every image pushed",
        ("PROVENANCE",),
    ),
    Option(
        "sign_key",
        "sign-key",
        "str",
        "sign what is pushed, as cosign does, with this ECDSA P-256 key (PEM, or cosign's"
        " encrypted key with COSIGN_PASSWORD)",
        ("SIGN_KEY",),
    ),
)


# options whose values are KEY=VALUE: a separate word would be a doit variable
_KEY_VALUE = frozenset({"build_arg", "annotation"})


class HelpWanted(Exception):
    """``--help`` (or ``-h``) after one of our tasks: its options are shown, nothing runs."""

    def __init__(self, task: str) -> None:
        super().__init__(task)
        self.task = task


def help_text(task: str) -> str:
    """What ``doit <task> --help`` prints: every option, from the one table."""
    width = max(len(o.flag) for o in OPTIONS) + 2
    lines = [f"doit {task} [options]: options are read when the tasks are made", ""]
    for option in OPTIONS:
        value = "" if option.kind == "bool" else "=VALUE"
        lines.append(f"  --{option.flag + value:<{width + 6}} {option.help}")
    lines += ["", f"doit help {task} says the same in doit's words"]
    return "\n".join(lines) + "\n"


def _unknown(flag: str, task: str) -> UserError:
    known = [option.flag for option in OPTIONS]
    close = difflib.get_close_matches(flag, known, n=1, cutoff=0.6)
    hint = f" (did you mean --{close[0]}?)" if close else ""
    return UserError(
        f"unknown option --{flag}{hint}",
        f"doit {task}",
        f"see doit {task} --help for its options",
    )


def read_argv(argv: Sequence[str], task: str | Sequence[str]) -> dict[str, list[str]]:
    """The values given to ``task``'s options on a doit command line.

    ``doit [opts] [run] task --opt value --opt=value other_task ...``: options count from
    the task's name up to the next word that is not an option or its value (words like
    ``NAME=VALUE`` are doit's variables: doit takes them out, so they are skipped here).
    """
    tasks = {task} if isinstance(task, str) else set(task)
    by_flag = {opt.flag: opt for opt in OPTIONS}
    found: dict[str, list[str]] = {}
    words = list(argv)
    i = 0
    active = ""
    while i < len(words):
        word = words[i]
        i += 1
        if word in tasks:
            active = word
            continue
        if not active:
            continue
        if word in ("--help", "-h"):
            raise HelpWanted(active)
        if not word.startswith("-") and "=" in word:
            continue  # NAME=VALUE is a doit variable, taken out before tasks are read
        if not word.startswith("--"):
            active = word if word in tasks else ""
            continue
        flag, has_value, value = word[2:].partition("=")
        option = by_flag.get(flag)
        if option is None:
            raise _unknown(flag, active)
        if option.kind == "bool":
            found.setdefault(option.name, []).append("true")
            continue
        if not has_value:
            if option.name in _KEY_VALUE and i < len(words) and "=" in words[i]:
                raise UserError(
                    f"--{flag} {words[i]} would be read by doit as a variable of its own",
                    "command line",
                    f"write --{flag}={words[i]}",
                )
            if i >= len(words):
                raise UserError(
                    f"option --{flag} needs a value", "command line", f"write --{flag} VALUE"
                )
            value = words[i]
            i += 1
        found.setdefault(option.name, []).append(value)
    return found


def cache_dir_from(argv: Sequence[str], environ: Mapping[str, str]) -> str:
    """--cache-dir DIR (or =DIR) anywhere on the command line, else DOIT_OCI_CACHE, else "".

    Read apart from the other options because doit's own state (its database) moves with
    it, and that is decided before the tasks exist."""
    words = list(argv)
    for i, word in enumerate(words):
        if word == "--cache-dir" and i + 1 < len(words):
            return words[i + 1]
        if word.startswith("--cache-dir="):
            return word.partition("=")[2]
    return environ.get("DOIT_OCI_CACHE") or ""


def progress_from(argv: Sequence[str], environ: Mapping[str, str]) -> str:
    """--progress MODE (or =MODE) anywhere on the command line, else PROGRESS, else auto.

    Read apart from the other options, as --cache-dir is, because the reporter shows the
    whole run in this mode, whichever task was given it."""
    words = list(argv)
    for i, word in enumerate(words):
        if word == "--progress" and i + 1 < len(words):
            return words[i + 1]
        if word.startswith("--progress="):
            return word.partition("=")[2]
    return environ.get("PROGRESS") or "auto"
