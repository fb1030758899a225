"""Image references: ``[registry[:port]/]path[:tag][@digest]``, parsed and normalised. Pure.

The grammar is the distribution project's: lowercase path components joined by ``/``,
a first component that holds a ``.`` or a ``:`` or is ``localhost`` names the registry,
tags of at most 128 word characters, dots and dashes, and ``sha256:`` digests.
A reference without a registry is on Docker Hub (``docker.io``), where a single
component lives under ``library/``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

DEFAULT_REGISTRY = "docker.io"
DEFAULT_TAG = "latest"

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*\Z")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
_DOMAIN = re.compile(
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?\Z"
)
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}\Z")


class ReferenceError(ValueError):
    """The text is not a valid image reference; the message says which part is wrong."""


def is_valid_tag(tag: str) -> bool:
    return bool(_TAG.match(tag))


def check_tag(tag: str) -> str:
    if not is_valid_tag(tag):
        raise ReferenceError(
            f"invalid tag {tag!r}: a tag is 1 to 128 letters, digits, '_', '.' or '-',"
            " not starting with '.' or '-'"
        )
    return tag


def _looks_like_domain(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost"


@dataclass(frozen=True)
class Reference:
    registry: str
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def repository(self) -> str:
        """``registry/path``, the name a registry push or pull is about."""
        return f"{self.registry}/{self.path}"

    def __str__(self) -> str:
        text = self.repository
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.registry, self.path, check_tag(tag))

    @property
    def identifier(self) -> str:
        """The digest if there is one, else the tag (``latest`` if none was given)."""
        return self.digest or self.tag or DEFAULT_TAG


def split_repository(text: str) -> tuple[str, str]:
    """``host:5000/a/b`` -> (``host:5000``, ``a/b``); a bare path gets Docker Hub."""
    refuse_secrets(text, "repository")
    first, sep, rest = text.partition("/")
    if sep and _looks_like_domain(first):
        if not _DOMAIN.match(first):
            raise ReferenceError(f"invalid registry host {first!r} in {text!r}")
        registry, path = first, rest
    else:
        registry, path = DEFAULT_REGISTRY, text
    if not path:
        raise ReferenceError(f"{text!r} names no repository")
    for component in path.split("/"):
        if not _COMPONENT.match(component):
            raise ReferenceError(
                f"invalid repository name {path!r} in {text!r}: each '/'-separated part is"
                " lowercase letters and digits, joined by '.', '_', '__' or '-'"
            )
    if registry in (DEFAULT_REGISTRY, "index.docker.io") and "/" not in path:
        path = f"library/{path}"
    if registry == "index.docker.io":
        registry = DEFAULT_REGISTRY
    if len(f"{registry}/{path}") > 255:
        raise ReferenceError(f"repository name {text!r} is longer than 255 characters")
    return registry, path


def parse(text: str) -> Reference:
    """Parse and normalise ``text``; raises ReferenceError saying what is wrong."""
    refuse_secrets(text, "image reference")
    if not text or text != text.strip():
        raise ReferenceError(f"invalid image reference {text!r}: empty or surrounded by spaces")
    name, at, digest = text.partition("@")
    if at and not _DIGEST.match(digest):
        raise ReferenceError(
            f"invalid digest {digest!r} in {text!r}: expected sha256: and 64 lowercase hex digits"
        )
    tag = ""
    last_slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > last_slash:
        name, tag = name[:colon], name[colon + 1 :]
        check_tag(tag)
    registry, path = split_repository(name)
    return Reference(registry, path, tag, digest)


_CREDENTIALS = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)?(?P<user>[^/@\s]+)@(?P<host>[^/@]+)(?P<rest>/.*)?\Z"
)


def secrets_removed(text: str) -> str:
    """``text`` with a ``user:password@`` before a host shown as ``<credentials>@``."""
    match = _CREDENTIALS.match(text)
    if match is None or match["host"].startswith("sha256:"):  # name:tag@sha256:...
        return text
    host = match["host"]
    domain = "." in host or ":" in host or host.startswith("localhost")
    if ":" not in match["user"] and not (domain and match["rest"]):
        return text  # user@host without a path: not what credentials look like
    return f"{match['scheme'] or ''}<credentials>@{match['host']}{match['rest'] or ''}"


def refuse_secrets(text: str, what: str) -> None:
    """A hub, repository or reference with a scheme or credentials in it: refused, the
    credentials never repeated."""
    shown = secrets_removed(text)
    if shown != text:
        raise ReferenceError(
            f"invalid {what} {shown!r}: credentials do not go in it; log in with"
            " `docker login` (they are read from the docker config)"
        )
    scheme, sep, _ = text.partition("://")
    if sep and "/" not in scheme:
        raise ReferenceError(f"invalid {what} {text!r}: write it without {scheme}://")


def check_hub(hub: str) -> str:
    """A hub is a registry and an optional path prefix, as in ``localhost:5000/istio``.

    A hub without a registry host (``istio``) is an organisation on Docker Hub.
    """
    text = hub.rstrip("/")
    if not text:
        raise ReferenceError("empty hub: give a registry such as localhost:5000 or gcr.io/org")
    refuse_secrets(text, "hub")
    first, _, rest = text.partition("/")
    if _looks_like_domain(first):
        if not _DOMAIN.match(first):
            raise ReferenceError(
                f"invalid hub {hub!r}: {first!r} is not a registry host such as"
                " localhost:5000 or gcr.io"
            )
        path = rest
    else:
        path = text
    if path and not all(_COMPONENT.match(part) for part in path.split("/")):
        raise ReferenceError(
            f"invalid hub {hub!r}: each '/'-separated part of the path {path!r} is lowercase"
            " letters and digits, joined by '.', '_', '__' or '-'"
        )
    if len(text) > 253:
        raise ReferenceError(f"invalid hub {hub!r}: longer than 253 characters")
    return text


def is_loopback(registry: str) -> bool:
    host = registry.rsplit(":", 1)[0] if not registry.endswith("]") else registry
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
