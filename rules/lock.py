"""bases.lock: the registry bases of a build pinned to digests, in a file beside the plan,
reviewed in a diff as any other change (a moved tag is a new base). Pure but for reading
the file; rules.steps.lock writes it.

One entry per base, sorted by reference (as the Dockerfile names it, normalised), with
the index it points at (when it names one) and the manifest of every platform it offers,
sorted too::

    version: 1
    bases:
    - reference: ghcr.io/x/base:1.2
      index: sha256:...
      platforms:
        linux/amd64: sha256:...
        linux/arm64: sha256:...

A lone manifest has no ``index``: its one platform names it. The file is YAML whose plain
scalars are all strings, so a JSON file of the same shape reads as well.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from doit_oci.registry.oci import Platform
from doit_oci.registry.pull import normal
from doit_oci.rules.errors import UserError

LOCK_NAME = "bases.lock"
VERSION = 1
HEADER = (
    "# The registry bases of the plans in this folder, pinned to digests: written by\n"
    "# `doit lock`, checked by `doit lock --check`. Builds use these digests and do not\n"
    "# ask for the tags. Review a change here as any other: a moved tag is a new base.\n"
)
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}\Z")
FIX = "write it again with doit lock"


def short(digest: str) -> str:
    """``sha256:0123456789ab``: enough of a digest for a line."""
    return digest[:19]


@dataclass(frozen=True)
class Pin:
    """One base of the lock: the digest its reference pointed at, and what that holds."""

    reference: str
    index: str  # the index the reference points at; "" for a lone manifest
    platforms: tuple[tuple[str, str], ...]  # (platform, manifest digest), sorted

    @property
    def digest(self) -> str:
        """What the reference points at: its index, or its one manifest."""
        return self.index or (self.platforms[0][1] if self.platforms else "")

    def manifest_for(self, platform: Platform) -> str:
        """The manifest pinned for ``platform``; "" when the lock has none for it."""
        return dict(self.platforms).get(str(normal(platform)), "")

    def to_lines(self) -> list[str]:
        lines = [f"- reference: {self.reference}"]
        if self.index:
            lines.append(f"  index: {self.index}")
        lines.append("  platforms:")
        lines += [f"    {platform}: {digest}" for platform, digest in self.platforms]
        return lines


def pin(reference: str, index: str, platforms: Iterable[tuple[Platform, str]]) -> Pin:
    """A Pin, its platforms normalised and sorted."""
    found = {str(normal(platform)): digest for platform, digest in platforms}
    return Pin(reference, index, tuple(sorted(found.items())))


@dataclass(frozen=True)
class Lock:
    pins: tuple[Pin, ...] = ()

    def get(self, reference: str) -> Pin | None:
        for each in self.pins:
            if each.reference == reference:
                return each
        return None

    def to_bytes(self) -> bytes:
        lines = [f"version: {VERSION}"]
        if not self.pins:
            lines.append("bases: []")
        else:
            lines.append("bases:")
            for each in sorted(self.pins, key=lambda p: p.reference):
                lines += each.to_lines()
        return (HEADER + "\n".join(lines) + "\n").encode()

    def updated(self, pins: Iterable[Pin], keep_others: bool) -> Lock:
        """This lock with ``pins`` in it; the other entries kept only with ``keep_others``."""
        new = {each.reference: each for each in pins}
        kept = [each for each in self.pins if keep_others and each.reference not in new]
        return Lock(tuple(sorted([*kept, *new.values()], key=lambda p: p.reference)))


def lock_path(workspace: Path, plan_path: str) -> Path:
    """bases.lock beside the plan (beside dodo.py for Python rules)."""
    return (workspace / plan_path).parent / LOCK_NAME


def _text(value: object, what: str, shown: str) -> str:
    if not isinstance(value, str) or not value:
        raise UserError(f"{what} is not a string", shown, FIX)
    return value


def _digest(value: object, what: str, shown: str) -> str:
    text = _text(value, what, shown)
    if not _DIGEST.match(text):
        raise UserError(f"{what} {text!r} is not a sha256: digest", shown, FIX)
    return text


def _pin(entry: object, number: int, shown: str) -> Pin:
    if not isinstance(entry, Mapping):
        raise UserError(f"base {number} is not a mapping", shown, FIX)
    unknown = sorted(set(entry) - {"reference", "index", "platforms"})
    reference = _text(entry.get("reference"), f"the reference of base {number}", shown)
    what = f"{reference} (base {number})"
    if unknown:
        raise UserError(f"{what} has unknown keys: {', '.join(map(str, unknown))}", shown, FIX)
    index = "" if entry.get("index") is None else _digest(entry["index"], f"{what}: index", shown)
    platforms = entry.get("platforms")
    if not isinstance(platforms, Mapping) or not platforms:
        raise UserError(f"{what} has no platforms", shown, FIX)
    found = []
    for name, digest in platforms.items():
        try:
            platform = Platform.parse(_text(name, f"{what}: a platform", shown))
        except ValueError as exc:
            raise UserError(f"{what}: {exc}", shown, FIX) from None
        found.append((platform, _digest(digest, f"{what}: {name}", shown)))
    if not index and len(found) != 1:
        raise UserError(f"{what} has no index and more than one platform", shown, FIX)
    return pin(reference, index, found)


def parse_lock(text: str, shown: str) -> Lock:
    """The lock that ``text`` (the file ``shown``) holds; UserError saying what is wrong."""
    try:
        document = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{shown}:{mark.line + 1}" if mark else shown
        raise UserError(f"invalid YAML: {exc.problem}", where, FIX) from None
    except yaml.YAMLError as exc:
        raise UserError(f"invalid YAML: {exc}", shown, FIX) from None
    if not isinstance(document, Mapping) or document.get("version") != VERSION:
        raise UserError(f"not a lock file of version {VERSION}", shown, FIX)
    bases = document.get("bases")
    if not isinstance(bases, list):
        raise UserError("'bases' is not a list", shown, FIX)
    pins = [_pin(entry, number, shown) for number, entry in enumerate(bases, 1)]
    seen: set[str] = set()
    for each in pins:
        if each.reference in seen:
            raise UserError(f"{each.reference} is pinned twice", shown, FIX)
        seen.add(each.reference)
    return Lock(tuple(sorted(pins, key=lambda p: p.reference)))


def read_lock(path: Path, shown: str) -> Lock | None:
    """The lock in ``path``; None when there is none."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read the lock: {exc}", shown, "check the file") from None
    return parse_lock(text, shown)


def moves(old: Lock | None, new: Lock) -> list[str]:
    """What moved from ``old`` to ``new``, one line per base:
    ``ghcr.io/x/base:1.2  sha256:aaaaaaaaaaaa -> sha256:bbbbbbbbbbbb``."""
    before = {each.reference: each for each in (old.pins if old else ())}
    after = {each.reference: each for each in new.pins}
    lines = []
    for reference in sorted(before.keys() | after.keys()):
        was, now = before.get(reference), after.get(reference)
        if was is None and now is not None:
            lines.append(f"{reference}  (new) -> {short(now.digest)}")
        elif now is None and was is not None:
            lines.append(f"{reference}  {short(was.digest)} -> (gone)")
        elif was is not None and now is not None and was != now:
            if was.digest != now.digest:
                lines.append(f"{reference}  {short(was.digest)} -> {short(now.digest)}")
            else:
                platforms = ", ".join(platform for platform, _ in now.platforms)
                lines.append(f"{reference}  {short(now.digest)}: platforms now {platforms}")
    return lines
