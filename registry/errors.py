"""The error of a registry operation, apart from the client so that it is cheap to import."""

from __future__ import annotations


class RegistryError(Exception):
    """One line: which registry and repository, what we were doing, what it answered."""

    def __init__(
        self, registry: str, repository: str, operation: str, detail: str, status: int = 0
    ) -> None:
        where = f"{registry}/{repository}" if repository else registry
        super().__init__(f"{where}: {operation} failed: {detail}")
        self.registry = registry
        self.repository = repository
        self.operation = operation
        self.status = status
