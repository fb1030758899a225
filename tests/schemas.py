"""Validation of what we write against the OCI image-spec JSON schemas (tests/oci-schemas)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

SCHEMAS = Path(__file__).parent / "oci-schemas"
NAMES = {
    "manifest": "image-manifest-schema.json",
    "index": "image-index-schema.json",
    "config": "config-schema.json",
    "layout": "image-layout-schema.json",
    "descriptor": "content-descriptor.json",
}


@cache
def _registry() -> Registry:
    # the schemas' ids are URLs under opencontainers.org and their $refs are file names
    # relative to them: serve every file under each base a $ref can resolve against
    bases = (
        "",
        "https://opencontainers.org/schema/",
        "https://opencontainers.org/schema/image/",
        "https://opencontainers.org/schema/image/descriptor/",
        "https://opencontainers.org/schema/descriptor/",
    )
    resources = []
    for path in SCHEMAS.glob("*.json"):
        resource = Resource.from_contents(json.loads(path.read_text()), DRAFT4)
        resources.extend((base + path.name, resource) for base in bases)
    return Registry().with_resources(resources)


def validate(kind: str, document: Any) -> None:
    """Raise jsonschema.ValidationError unless ``document`` is a valid OCI ``kind``."""
    if isinstance(document, (bytes, str)):
        document = json.loads(document)
    schema = json.loads((SCHEMAS / NAMES[kind]).read_text())
    validator = jsonschema.Draft4Validator(schema, registry=_registry())
    validator.validate(document)
