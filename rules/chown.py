"""``--chown`` (and the USER a WORKDIR creates directories for) -> numeric ids.

By id, or by name from the image's own ``/etc/passwd`` and ``/etc/group``, as BuildKit
resolves them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from doit_oci.rules.errors import UserError
from doit_oci.rules.tree import FILE, HARDLINK, Entry, Tree

_NUMBER = re.compile(r"[0-9]+")
MAX_ID = 4294967294  # uid_t is 32 bits and 4294967295 is (uid_t)-1, "no id"


@dataclass(frozen=True)
class Owner:
    uid: int
    gid: int


def parse_chown(
    text: str, tree: Tree, read: Callable[[Entry], bytes], where: str, flag: str = "--chown"
) -> Owner:
    """``--chown=user[:group]`` by id or by name from the image's /etc/passwd and /etc/group.

    As in BuildKit, a user given alone by name gets its primary group from /etc/passwd,
    and one given alone by id gets the same id as its group. BuildKit resolves the USER
    a WORKDIR creates its directories for the same way; ``flag`` names what is resolved
    in messages.
    """
    user, has_group, group = text.partition(":")
    if not user or (has_group and not group):
        usage = "--chown=user[:group]" if flag == "--chown" else "USER user[:group]"
        raise UserError(f"invalid {flag} {text!r}", where, f"write {usage}")

    def lookup(name: str, file: str) -> tuple[int, int]:
        """The id of ``name`` in ``file``, and the primary group id its line gives."""
        if _NUMBER.fullmatch(name):
            return int(name), int(name)
        entry = tree.get(tree.realpath(file))
        if entry is not None and entry.kind == HARDLINK:
            entry = tree.get(entry.link)
        if (entry is None or entry.kind != FILE) and not tree.complete:
            raise UserError(
                f"{flag} names {name!r}, which would be looked up in /{file} of a registry"
                " base image, whose layers doit-oci does not read",
                where,
                "use numeric ids (--chown=1337:1337)",
            )
        if entry is None or entry.kind != FILE:
            raise UserError(
                f"{flag} names {name!r} but the image has no /{file} to look it up in",
                where,
                "use numeric ids, or COPY an /etc/passwd and /etc/group first",
            )
        for line in read(entry).decode("utf-8", "replace").splitlines():
            fields = line.split(":")
            if len(fields) >= 3 and fields[0] == name and _NUMBER.fullmatch(fields[2]):
                number = int(fields[2])
                primary = fields[3] if len(fields) >= 4 else ""
                return number, int(primary) if _NUMBER.fullmatch(primary) else number
        raise UserError(
            f"{flag}: no {'user' if file.endswith('passwd') else 'group'} {name!r} in /{file}",
            where,
            "add it to that file in the base image, or use a numeric id",
        )

    uid, primary_gid = lookup(user, "etc/passwd")
    gid = lookup(group, "etc/group")[0] if has_group else primary_gid
    for kind, number in (("user", uid), ("group", gid)):
        if number > MAX_ID:
            raise UserError(
                f"{flag} {text!r}: the {kind} id {number} is past {MAX_ID}, the largest a"
                " Linux id (and a runtime) takes",
                where,
                "use an id from 0 to 4294967294",
            )
    return Owner(uid, gid)
