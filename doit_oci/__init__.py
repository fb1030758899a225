"""doit-oci: daemonless, incremental, reproducible container image builds as doit rules.

The unique import path of the project: ``doit_oci.rules`` and ``doit_oci.registry`` are the
``rules/`` and ``registry/`` folders of the repository, so that a project with modules of
its own named ``rules`` or ``registry`` can use doit-oci. The names a dodo.py needs are here:

    from doit_oci import doit_config, image_tasks                   # a YAML plan
    from doit_oci import oci_image, oci_push, oci_save, oci_index   # rules in Python

They are imported when first used, so that ``doit_oci.registry`` alone imports neither
doit nor the build rules.
"""

from __future__ import annotations

from typing import Any

_FROM_TASKS = ("doit_config", "image_tasks")
_FROM_RULES = ("oci_image", "oci_push", "oci_save", "oci_index", "oci_layout")

__all__ = [*_FROM_TASKS, *_FROM_RULES]


def __getattr__(name: str) -> Any:
    if name in _FROM_TASKS:
        from doit_oci.rules import tasks

        return getattr(tasks, name)
    if name in _FROM_RULES:
        from doit_oci.rules import ruleset

        return getattr(ruleset, name)
    raise AttributeError(f"module 'doit_oci' has no attribute {name!r}")
