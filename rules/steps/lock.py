"""lock: the registry bases of a build pinned in bases.lock (rules.lock is its format), and
what the lock means for a build, checked when the tasks are made:

- ``doit lock`` asks each base's tag once (a HEAD; a base named by digest is not asked)
  and, for a digest it has not pinned yet, reads what it holds (the index, or the lone
  manifest's config) through the registry's mirrors, from the content store when it is
  there; it rewrites the file only when something moved, and says what did.
  ``doit lock --check`` makes the HEADs alone, writes nothing, and fails when the lock is
  not current (a scheduled CI job).
- ``--locked``: every registry base of the build pinned for every platform built, or one
  line per base that is not, before anything runs.
- ``--offline``: every registry base pinned (by the lock or its own digest) and what the
  build needs of it in the content store, or one line per base naming what is missing.
- A push to a hub of the plan's ``protectedHubs`` on a base that only a tag names: one
  warning line.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from doit_oci.registry import pull, reference
from doit_oci.registry.errors import RegistryError
from doit_oci.registry.files import write_if_changed
from doit_oci.rules.errors import UserError
from doit_oci.rules.lock import Lock, Pin, moves, pin, read_lock
from doit_oci.rules.steps.base import RegistryBase, base_of
from doit_oci.rules.steps.run import Offline, Run


def registry_bases(run: Run) -> dict[str, list[RegistryBase]]:
    """reference -> its bases in this build (one per platform), in the order of the units."""
    found: dict[str, list[RegistryBase]] = {}
    seen: set[Path] = set()
    for unit in run.build.units:
        base = base_of(run, unit)
        if isinstance(base, RegistryBase) and base.record not in seen:
            seen.add(base.record)
            found.setdefault(base.image.reference, []).append(base)
    return found


def _by_tag(text: str) -> bool:
    return not reference.parse(text).digest


# -- when the tasks are made -----------------------------------------------------------


def locked_problems(run: Run) -> list[UserError]:
    """--locked: one error per base that the lock does not pin for every platform built."""
    errors = []
    none = "" if run.lock is not None else " (there is none)"
    for ref, bases in registry_bases(run).items():
        where = bases[0].unit.chain.base_where
        pinned = run.pin(ref)
        if pinned is None:
            errors.append(
                UserError(
                    f"--locked: {ref} is not pinned in {run.lock_shown}{none}",
                    where,
                    "run doit lock and commit the lock (or build without --locked)",
                )
            )
            continue
        missing = [str(b.unit.platform) for b in bases if not pinned.manifest_for(b.unit.platform)]
        if missing:
            has = ", ".join(platform for platform, _ in pinned.platforms)
            errors.append(
                UserError(
                    f"--locked: {run.lock_shown} pins {ref} for {has}, not {', '.join(missing)}",
                    where,
                    "build the platforms it pins, or run doit lock and commit the lock",
                )
            )
    return errors


def _offline_problem(run: Run, base: RegistryBase, group: str) -> UserError | None:
    ref, pinned = base.reference, base.pin
    where = base.unit.chain.base_where
    if pinned is None and not ref.digest:
        return UserError(
            f"--offline: {ref} is named by a tag and not pinned in {run.lock_shown}",
            where,
            f"run doit lock, then doit {group}, without --offline",
        )
    if base.uptodate():  # offline, that makes no request
        return None
    top = pinned.digest if pinned is not None else ""
    layout = run.layout
    reads = Offline(ref.registry, run.shown(layout.root))
    try:
        resolved = pull.resolve(reads, ref, base.unit.platform, layout, top)
        missing = [layer.digest for layer in resolved.layers if not layout.has_blob(layer.digest)]
        if missing:
            raise reads.missing(ref.path, missing[0])
    except UserError as exc:
        return UserError(
            f"{exc.what} (of {ref} for {base.unit.platform})",
            where,
            f"run doit {group} once without --offline to fetch it",
        )
    except RegistryError as exc:
        return UserError(f"--offline: {exc}", where)
    except (ValueError, KeyError) as exc:  # a damaged document in the store
        return UserError(f"--offline: {ref}: {exc}", where, "run doit verify")
    return None


def offline_problems(run: Run, group: str) -> list[UserError]:
    """--offline: one error per base the build cannot have without a request."""
    errors = []
    for bases in registry_bases(run).values():
        for base in bases:
            problem = _offline_problem(run, base, group)
            if problem is not None:
                errors.append(problem)
                break  # one line per base
    return errors


def problems(run: Run, group: str) -> list[UserError]:
    """What --locked and --offline find wrong with the build's bases, one per base. The
    lock is read now, when the tasks are made (a damaged one stops the run here)."""
    if registry_bases(run):
        _ = run.lock
    found = locked_problems(run) if run.options.locked else []
    return found + (offline_problems(run, group) if run.options.offline else [])


def unpinned_warning(run: Run) -> str:
    """The warning for a push to a protected hub on bases only a tag names ("" if none)."""
    options = run.options
    protected = sorted(set(options.hubs) & set(run.build.plans[0].protected_hubs))
    if not options.push or not protected:
        return ""
    tags = [ref for ref in registry_bases(run) if run.pin(ref) is None and _by_tag(ref)]
    if not tags:
        return ""
    return (
        f"pushing to {', '.join(protected)} on bases named by a tag and not pinned in"
        f" {run.lock_shown}: {', '.join(tags)}; run doit lock and commit it, so that the same"
        " commit gives the same image"
    )


# -- doit lock -------------------------------------------------------------------------


def current_pin(run: Run, text: str, check: bool) -> Pin:
    """What ``text`` (a base's reference) points at now: one HEAD for a tag. With
    ``check``, only the digest it points at is known (the pin holds no platform)."""
    ref = reference.parse(text)
    reads = run.reader(ref.registry)
    top = ref.digest
    if not top:
        head = reads.head_manifest(ref.path, ref.identifier)
        if head is None:
            raise UserError(f"{ref} is not in {ref.registry}", run.lock_shown, "fix the FROM")
        top = head.digest
    before = run.pin(text)
    if before is not None and before.digest == top:
        return before
    if check:
        return Pin(text, top, ())
    try:
        is_index, platforms = pull.manifests(reads, ref, top, run.layout)
    except (ValueError, KeyError) as exc:
        raise UserError(f"{ref}: {exc}", run.lock_shown, "check the image") from None
    return pin(text, top if is_index else "", platforms)


def _sharing(runs: Sequence[Run]) -> Iterator[tuple[Path, str, list[Run]]]:
    """The runs that share each lock file (the plans of a folder share one)."""
    found: dict[Path, list[Run]] = {}
    for run in runs:
        found.setdefault(run.lock_file, []).append(run)
    for path, sharing in found.items():
        yield path, sharing[0].lock_shown, sharing


def lock(runs: Sequence[Run], keep_others: bool, check: bool) -> tuple[list[str], list[str]]:
    """Pin the bases of ``runs`` in their lock files (with ``check``, only compare): the
    lines to print, and the lock files that are not current (with ``check``). Entries
    that no run uses are dropped unless ``keep_others``."""
    if any(run.options.offline for run in runs):
        raise UserError(
            "doit lock asks the registries: it makes requests", "--offline", "run it online"
        )
    lines: list[str] = []
    stale: list[str] = []
    for path, shown, sharing in _sharing(runs):
        old = read_lock(path, shown)
        pins: dict[str, Pin] = {}
        for run in sharing:
            for text in registry_bases(run):
                if text not in pins:
                    pins[text] = current_pin(run, text, check)
        if not pins and old is None:
            lines.append(f"lock: no registry base to pin: {shown} not written")
            continue
        new = (old or Lock()).updated(pins.values(), keep_others)
        moved = moves(old, new)
        lines += [f"lock: {line}" for line in moved]
        if check:
            if moved or old is None:
                stale.append(shown)
            else:
                lines.append(f"lock: {shown} is current ({len(new.pins)} bases)")
        elif write_if_changed(path, new.to_bytes()):
            lines.append(f"lock: wrote {shown} ({len(new.pins)} bases)")
        else:
            lines.append(f"lock: {shown} is up to date ({len(new.pins)} bases)")
    return lines, stale
