"""Reading the YAML of a plan: its nodes as the values a plan takes, every mistake one
UserError naming the plan's file and line. Pure."""

from __future__ import annotations

import difflib
from collections.abc import Mapping

import yaml

from doit_oci.rules.annotations import check_key
from doit_oci.rules.errors import UserError


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


class Reader:
    """Walks the YAML node tree, checking types, with the file and line in every error."""

    def __init__(self, path: str) -> None:
        self.path = path

    def where(self, node: yaml.Node) -> str:
        return f"{self.path}:{_line(node)}"

    def fail(self, node: yaml.Node, what: str, fix: str) -> UserError:
        return UserError(what, self.where(node), fix)

    def mapping(self, node: yaml.Node, what: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} is not a mapping", "write it as 'key: value' lines")
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                raise self.fail(key, f"a key of {what} is not a string", "use plain keys")
            if key.value in out:
                raise self.fail(key, f"key {key.value!r} appears twice in {what}", "keep one")
            out[key.value] = (key, value)
        return out

    def check_keys(
        self,
        entries: Mapping[str, tuple[yaml.Node, yaml.Node]],
        allowed: tuple[str, ...],
        what: str,
    ) -> None:
        for name, (key, _) in entries.items():
            if name not in allowed:
                close = difflib.get_close_matches(name, allowed, n=1)
                fix = (
                    f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(allowed)}"
                )
                raise self.fail(key, f"unknown key {name!r} in {what}", fix)

    def string(self, node: yaml.Node, what: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or node.tag not in (
            "tag:yaml.org,2002:str",
            "tag:yaml.org,2002:int",
            "tag:yaml.org,2002:float",
        ):
            raise self.fail(node, f"{what} must be a string", "write a plain value")
        text = str(node.value)
        control = next((c for c in text if (c < " " and c != "\t") or c == "\x7f"), None)
        if control is not None:
            raise self.fail(
                node,
                f"{what} holds the control character U+{ord(control):04X}",
                "remove it: no path, name or value of an image takes one",
            )
        return text

    def boolean(self, node: yaml.Node, what: str) -> bool:
        if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:bool":
            raise self.fail(node, f"{what} must be true or false", "write true or false")
        return bool(yaml.safe_load(node.value))

    def strings(self, node: yaml.Node, what: str) -> list[tuple[yaml.Node, str]]:
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            return []
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, f"{what} must be a list", "write one '- item' per line")
        return [(item, self.string(item, f"an entry of {what}")) for item in node.value]

    def annotations(self, node: yaml.Node, what: str) -> tuple[tuple[str, str], ...]:
        """An ``annotations:`` map: keys without spaces, string values."""
        found = self.string_map(node, what)
        if found:
            for name, (key_node, _) in self.mapping(node, what).items():
                check_key(name, self.where(key_node), "write keys such as org.example.team")
        return found

    def string_map(self, node: yaml.Node, what: str) -> tuple[tuple[str, str], ...]:
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            return ()
        entries = self.mapping(node, what)
        return tuple(
            (name, self.string(value, f"{what}.{name}")) for name, (_, value) in entries.items()
        )
