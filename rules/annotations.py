"""OCI annotations of the images we make, per the image-spec's annotations.md. Pure.

The automatic ones: ``created`` (from SOURCE_DATE_EPOCH, as the config's ``created``),
``source`` and ``revision`` (the git checkout, when there is one), ``base.name`` and
``base.digest`` (a registry base, added by the image step once it is resolved). The
user's: the plan's ``annotations:`` (top level, then per image), ``annotations=`` of
``oci_image``, then ``--annotation=K=V``; each later one wins over the earlier.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Sequence

from doit_oci.rules.errors import UserError
from doit_oci.rules.gitsource import GitSource

CREATED = "org.opencontainers.image.created"
SOURCE = "org.opencontainers.image.source"
REVISION = "org.opencontainers.image.revision"
BASE_NAME = "org.opencontainers.image.base.name"
BASE_DIGEST = "org.opencontainers.image.base.digest"

Annotations = tuple[tuple[str, str], ...]

# a key: no spaces or control characters (the spec asks for reverse domain notation)
_KEY = re.compile(r"[^\s\x00-\x1f=][^\s\x00-\x1f]*")


def created_at(epoch: int) -> str:
    """``1970-01-01T00:00:00Z``: RFC 3339, as the config's ``created`` is written."""
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def automatic(epoch: int, source: GitSource | None) -> Annotations:
    """The annotations every image of a build gets without being asked."""
    found = {CREATED: created_at(epoch)}
    if source is not None:
        found[REVISION] = source.revision
        if source.url:
            found[SOURCE] = source.url
    return tuple(sorted(found.items()))


def merged(*layers: Iterable[tuple[str, str]]) -> Annotations:
    """The layers of annotations, a later one's value winning, sorted by key."""
    out: dict[str, str] = {}
    for layer in layers:
        out.update(layer)
    return tuple(sorted(out.items()))


def common(sets: Sequence[Annotations]) -> Annotations:
    """What every one of ``sets`` holds with the same value (an index's annotations: what
    its platforms' manifests agree on)."""
    if not sets:
        return ()
    shared = set(sets[0])
    for each in sets[1:]:
        shared &= set(each)
    return tuple(sorted(shared))


def check_key(key: str, where: str, fix: str) -> str:
    if not _KEY.fullmatch(key):
        raise UserError(f"invalid annotation key {key!r}", where, fix)
    return key


def parse_option(item: str) -> tuple[str, str]:
    """``--annotation=K=V`` -> (K, V)."""
    key, has_value, value = item.partition("=")
    if not has_value:
        raise UserError(
            f"invalid --annotation {item!r}", "command line", "write --annotation=KEY=VALUE"
        )
    check_key(key, "command line", "write --annotation=org.example.key=VALUE")
    return key, value
