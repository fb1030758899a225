"""The errors of registry operations, apart from the client so that they are cheap to import."""

from __future__ import annotations


class RegistryError(Exception):
    """One line: which registry and repository, what we were doing, what it answered."""

    def __init__(
        self,
        registry: str,
        repository: str,
        operation: str,
        detail: str,
        status: int = 0,
        fix: str = "",
    ) -> None:
        where = f"{registry}/{repository}" if repository else registry
        fix = fix or what_to_do(registry, repository, status)
        super().__init__(f"{where}: {operation} failed: {detail}; {fix}")
        self.registry = registry
        self.repository = repository
        self.operation = operation
        self.detail = detail
        self.status = status


class DigestMismatch(RegistryError):
    """What a registry (or a mirror) served is not what its digest says: never taken, and
    never a reason to ask elsewhere (a mirror that serves wrong bytes is refused)."""

    def __init__(self, registry: str, repository: str, operation: str, detail: str) -> None:
        fix = (
            f"{registry} served other bytes than the digest names and nothing of them is used:"
            " ask who runs it, or leave that mirror out"
        )
        super().__init__(registry, repository, operation, detail, fix=fix)


class AuthError(Exception):
    """The registry could not be authenticated to; the message names the registry and realm.

    ``status`` is what to report it as: 401, or the token server's own failing status
    (5xx, 429) when it failed on every try.
    """

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


def unreachable(registry: str) -> str:
    """What to do when a registry does not answer at all."""
    return (
        f"check that {registry} runs and is reachable from here (REGISTRY_DEADLINE sets"
        " how long to retry)"
    )


def what_to_do(registry: str, repository: str, status: int) -> str:
    """What a user can do about a registry's answer (0: an answer we could not use)."""
    if status == 401:
        return f"log in (docker login {registry}) or fix its entry in ~/.docker/config.json"
    if status == 403:
        return f"use credentials that may push to {repository or registry}"
    if status == 404:
        return "check the repository, tag or digest"
    if status >= 500:
        return "the registry failed: try again later, or ask who runs it"
    if status == 0:
        return "check the registry's answer above; the push can be run again"
    return "see the registry's message"
