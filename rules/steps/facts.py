"""What the events and trace spans of a task say of it: its step, image and platform, read
from its name and the run; and once it ran, the bytes it wrote (a layer's blob) or
uploaded (a push, a layer's upload), and whether its result came from the layer cache repository.
"""

from __future__ import annotations

from dataclasses import dataclass

from doit_oci.rules.names import TaskName
from doit_oci.rules.steps.push import record_path, upload_record
from doit_oci.rules.steps.records import LayerRecord, PushRecord, RecordError
from doit_oci.rules.steps.run import Run

UNIT_STEPS = frozenset({"parse", "translate", "layer", "upload", "image"})
OUTPUT_STEPS = frozenset({"push", "save", "index"})


@dataclass(frozen=True)
class TaskInfo:
    task: str
    step: str
    image: str = ""  # the output's label (name, or name-variant), as the summary names it
    platform: str = ""  # os/arch; several, comma separated, for a push of an index

    def attributes(self) -> dict[str, str]:
        found = {"doit_oci.task": self.task, "doit_oci.step": self.step}
        if self.image:
            found["doit_oci.image"] = self.image
        if self.platform:
            found["doit_oci.platform"] = self.platform
        return found


def describe(run: Run | None, prefix: str, name: str) -> TaskInfo:
    """The step, image and platform of the task ``name`` of ``run`` (made with ``prefix``)."""
    parsed = TaskName.parse(name, prefix)
    step, key = parsed.step, parsed.key
    if run is None:
        return TaskInfo(name, step)
    build = run.build
    platforms = [str(p) for p in run.options.platforms]
    if step in UNIT_STEPS:
        try:
            unit = build.unit(key)
        except KeyError:
            return TaskInfo(name, step)
        output = build.output_of(unit)
        return TaskInfo(name, step, output.label if output else unit.name, str(unit.platform))
    if step in OUTPUT_STEPS:
        for output in build.outputs:
            if output.label == key:
                units = build.units_of(output)
                return TaskInfo(name, step, key, ",".join(str(u.platform) for u in units))
        return TaskInfo(name, step, key)
    if step == "make":
        return TaskInfo(name, step, "", key.replace("_", "/", 1) if key else ",".join(platforms))
    if step == "base":
        reference, _, slug = key.partition("@")
        return TaskInfo(name, step, reference, slug.replace("_", "/", 1) or ",".join(platforms))
    return TaskInfo(name, step)


def made(run: Run | None, prefix: str, name: str) -> tuple[int, bool]:
    """(bytes, cached) of a task that ran: a layer's blob size and whether it came from the
    layer cache repository; the bytes a push or a layer's upload sent; (0, False) else."""
    if run is None:
        return 0, False
    parsed = TaskName.parse(name, prefix)
    try:
        if parsed.step == "layer" and parsed.layer is not None:
            record = LayerRecord.read(run.unit(parsed.key).layer(parsed.layer))
            blob = record.blob
            return (blob.descriptor.size if blob is not None else 0), bool(record.cached)
        if parsed.step == "upload" and parsed.layer is not None:
            uploaded = PushRecord.read(upload_record(run.unit(parsed.key), parsed.layer))
            return uploaded.uploaded_bytes, False
        if parsed.step == "push":
            return PushRecord.read(record_path(run, parsed.key)).uploaded_bytes, False
    except (OSError, RecordError, KeyError, ValueError):
        pass
    return 0, False
