"""doit-oci's own build: the images of plans/images.yaml (or --plan PATH, or PLAN=PATH)."""

from doit_oci import doit_config, image_tasks

DOIT_CONFIG = doit_config()

task_build_images = image_tasks("plans/images.yaml")
