"""doit-oci as a doit plugin: a task loader that needs no dodo.py.

A project that wants only YAML names the loader and its plans in its pyproject.toml:

    [tool.doit]
    loader = "doit_oci"
    plans = ["plans/docker.yaml"]      # or plan = "plans/docker.yaml"

and gets `doit build_images`, `doit list`, `doit status`... as a dodo.py with
``task_build_images = image_tasks(...)`` would give them. With several plans, each gets
its tasks under the plan's name (``docker.build_images``, ``docker.image:pilot``...) and
``build_images`` builds them all. The loader is found through the ``doit.LOADER`` entry
point that the doit-oci distribution declares.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from doit.cmd_base import NamespaceTaskLoader, opt_cwd

from doit_oci.rules.errors import UserError
from doit_oci.rules.graph import task_params
from doit_oci.rules.tasks import doit_config, image_tasks, stop


def plans_of(config: dict[str, Any]) -> list[str]:
    """The plans [tool.doit] names: ``plans`` (a list) or ``plan`` (one)."""
    settings = (config or {}).get("GLOBAL", {})
    plans = settings.get("plans", settings.get("plan", "plans/images.yaml"))
    if isinstance(plans, str):
        plans = [plans]
    if not isinstance(plans, list) or not plans or not all(isinstance(p, str) for p in plans):
        stop(
            UserError(
                "[tool.doit] plans must be a list of plan files (or plan one file)",
                "pyproject.toml",
                'write plans = ["plans/images.yaml"]',
            )
        )
    return plans


class PlanLoader(NamespaceTaskLoader):
    """Tasks from the plans of [tool.doit], with doit-oci's DOIT_CONFIG."""

    cmd_options = (opt_cwd,)

    def setup(self, opt_values: dict[str, Any]) -> None:
        workspace = opt_values.get("cwdPath")
        if workspace:
            if not Path(workspace).is_dir():
                stop(UserError(f"-d {workspace}: not a directory", fix="give the workspace"))
            os.chdir(workspace)
        plans = plans_of(self.config)
        namespace: dict[str, Any] = {"DOIT_CONFIG": doit_config()}
        if len(plans) == 1:
            namespace["task_build_images"] = image_tasks(plans[0])
        else:
            groups = []
            for plan in plans:
                stem = Path(plan).stem
                group = f"{stem}.build_images"
                groups.append(group)
                namespace[f"task_{stem}"] = image_tasks(
                    plan, group=group, prefix=f"{stem}.", option_tasks=("build_images",)
                )

            def task_build_images() -> dict[str, Any]:
                """build every plan's images"""
                return {"actions": None, "task_dep": groups, "params": task_params(plans[0])}

            namespace["task_build_images"] = task_build_images
        self.namespace = namespace
