"""doit-oci's own name and version, as SBOMs and provenance name their maker."""

from __future__ import annotations

import importlib.metadata

NAME = "doit-oci"


def version() -> str:
    """The installed distribution's version ("unknown" when run from a bare checkout)."""
    try:
        return importlib.metadata.version(NAME)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
