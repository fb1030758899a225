"""The Dockerfile's data: instructions, stages, the chain that builds the target, and the
image spec that evaluating it gives (the COPY steps and the history).

Frozen dataclasses, made by ``read`` (Instruction, Stage, Dockerfile), ``stages`` (Chain)
and ``evaluate`` (CopyStep, HistoryStep, ImageSpec); a CopyStep is also written to and read
from the parse step's record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from doit_oci.registry.oci import ContainerConfig
from doit_oci.rules.errors import UserError

# the instructions that add a layer of their own
LAYER_KEYWORDS = frozenset({"COPY", "ADD"})


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case
    value: str  # the arguments as written, continuation lines joined
    line: int  # 1-based line of the instruction's first line
    where: str  # "path:line"

    def fail(self, what: str, fix: str) -> UserError:
        return UserError(what, self.where, fix)

    @property
    def text(self) -> str:
        """The instruction on one line, as history records it."""
        return f"{self.keyword} {' '.join(self.value.split())}".strip()


@dataclass(frozen=True)
class Stage:
    index: int
    name: str  # lower-cased alias, or ""
    image: str  # the FROM argument as written
    platform: str  # the --platform flag as written, or ""
    from_line: Instruction
    instructions: tuple[Instruction, ...]


@dataclass(frozen=True)
class Dockerfile:
    path: str  # as shown in messages
    escape: str
    global_args: tuple[Instruction, ...]
    stages: tuple[Stage, ...]


@dataclass(frozen=True)
class Chain:
    """The stages that build the target, root first, and what the root stands on."""

    dockerfile: Dockerfile
    stages: tuple[Stage, ...]
    base: str  # the expanded FROM reference of the root stage: "scratch" or an image
    base_where: str  # path:line of that FROM
    global_args: tuple[tuple[str, str | None], ...]  # declared before FROM, as expanded

    @property
    def layer_count(self) -> int:
        """How many layer steps ``evaluate`` will give: one per COPY/ADD, plus one for
        directories that a trailing WORKDIR creates."""
        count = 0
        pending = False
        for stage in self.stages:
            for ins in stage.instructions:
                if ins.keyword in LAYER_KEYWORDS:
                    count += 1
                    pending = False
                elif ins.keyword == "WORKDIR":
                    pending = True
        return count + (1 if pending else 0)


@dataclass(frozen=True)
class CopyStep:
    """One COPY/ADD: its sources in the context, destination and ownership, expanded."""

    where: str
    keyword: str
    sources: tuple[str, ...]
    dest: str  # absolute, cleaned
    dest_is_dir: bool  # ends with "/" (or is "/" or ".")
    chown: str = ""
    chmod: int | None = None
    workdirs: tuple[str, ...] = ()  # absolute directories WORKDIR asked for before it
    created_by: str = ""
    # the USER in effect at each of those WORKDIRs ("" for root): BuildKit creates a
    # WORKDIR's missing directories owned by it
    workdir_users: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "where": self.where,
            "keyword": self.keyword,
            "sources": list(self.sources),
            "dest": self.dest,
            "dest_is_dir": self.dest_is_dir,
            "chown": self.chown,
            "chmod": self.chmod,
            "workdirs": list(self.workdirs),
            "created_by": self.created_by,
        }
        if any(self.workdir_users):
            data["workdir_users"] = list(self.workdir_users)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> CopyStep:
        chmod = data.get("chmod")
        return cls(
            where=str(data["where"]),
            keyword=str(data["keyword"]),
            sources=tuple(str(s) for s in data["sources"]),  # type: ignore[attr-defined]
            dest=str(data["dest"]),
            dest_is_dir=bool(data["dest_is_dir"]),
            chown=str(data.get("chown") or ""),
            chmod=int(chmod) if isinstance(chmod, int) else None,
            workdirs=tuple(str(w) for w in data.get("workdirs") or ()),  # type: ignore[attr-defined]
            created_by=str(data.get("created_by") or ""),
            workdir_users=tuple(str(u) for u in data.get("workdir_users") or ()),  # type: ignore[attr-defined]
        )


@dataclass(frozen=True)
class HistoryStep:
    created_by: str
    layer: int | None  # index into ImageSpec.copies, None for a config-only step


@dataclass(frozen=True)
class ImageSpec:
    """What the Dockerfile makes of its base: the final container config and the steps."""

    config: ContainerConfig
    author: str
    history: tuple[HistoryStep, ...]
    copies: tuple[CopyStep, ...]
    warnings: tuple[str, ...] = ()
