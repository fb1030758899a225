"""The engine's steps in-process, without doit: each step's work, its up-to-date check and
its record, on a small plan of a base and an image built on it."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from doit_oci.registry import oci
from doit_oci.rules.build import load_build
from doit_oci.rules.options import Options
from doit_oci.rules.steps import copy, housekeeping, image, layer, layout, parse, status
from doit_oci.rules.steps.base import PlanBase, RegistryBase, ScratchBase, base_of
from doit_oci.rules.steps.records import (
    ImageRecord,
    LayerInputs,
    LayerRecord,
    LayoutRecord,
    ParseConfig,
    ParseCopies,
    RecordError,
    TreeRecord,
)
from doit_oci.rules.steps.run import Run
from doit_oci.rules.units import Unit

PLAN = """\
images:
- name: base
  dockerfile: base.Dockerfile
  files: [passwd]
  base: true
- name: app
  dockerfile: app.Dockerfile
  files: [app]
- name: remote
  dockerfile: remote.Dockerfile
  files: [app]
"""
FILES = {
    "base.Dockerfile": "FROM scratch\nCOPY passwd /etc/passwd\nENV PATH=/bin\n",
    "app.Dockerfile": 'FROM base\nCOPY app /usr/local/bin/app\nUSER 1000\nENTRYPOINT ["/app"]\n',
    "remote.Dockerfile": "FROM gcr.io/example/base:1\nCOPY app /app\n",
    "passwd": "root:x:0:0::/:/bin/sh\n",
    "app": "#!/bin/sh\necho app\n",
}


@pytest.fixture
def run(tmp_path: Path) -> Run:
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "images.yaml").write_text(PLAN)
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    os.chmod(tmp_path / "app", 0o755)
    options = Options(targets=("app",), skip_make=True)
    return Run(load_build(options, tmp_path, {}), {})


def build_unit(run: Run, unit: Unit) -> None:
    parse.parse(run, unit)
    copy.translate(run, unit)
    for index in range(unit.layer_count):
        layer.layer(run, unit, index)
    image.image(run, unit)


def built(run: Run) -> tuple[Unit, Unit]:
    base, app = run.unit("base"), run.unit("app")
    build_unit(run, base)
    build_unit(run, app)
    return base, app


def test_each_kind_of_base(run: Run, tmp_path: Path) -> None:
    assert isinstance(base_of(run, run.unit("base")), ScratchBase)
    below = base_of(run, run.unit("app"))
    assert isinstance(below, PlanBase) and below.upstream == run.unit("base")
    assert below.record == run.unit("base").image_record
    remote_build = load_build(Options(targets=("remote",), skip_make=True), tmp_path, {})
    remote = base_of(Run(remote_build, {}), remote_build.unit("remote"))
    assert isinstance(remote, RegistryBase) and remote.resolves and remote.upstream is None
    assert remote.label == "gcr.io/example/base:1"
    with pytest.raises(OSError):  # its tree is read from its layers once it is resolved
        remote.tree()
    assert remote.roots() == [] and remote.origins() == {}  # not resolved yet


def test_parse_writes_what_the_dockerfile_says(run: Run) -> None:
    base = run.unit("base")
    parse.parse(run, base)
    (step,) = ParseCopies.read(base.copies).copies
    assert (step.sources, step.dest) == (("passwd",), "/etc/passwd")
    config = ParseConfig.read(base.config)
    assert config.config.env == ("PATH=/bin",)
    assert config.history == (("COPY passwd /etc/passwd", 0), ("ENV PATH=/bin", None))


def test_translate_is_up_to_date_until_a_copied_file_changes(run: Run, tmp_path: Path) -> None:
    base = run.unit("base")
    parse.parse(run, base)
    assert not copy.uptodate(run, base)  # never made
    copy.translate(run, base)
    assert copy.uptodate(run, base)
    (entry,) = [e for e in LayerInputs.read(base.inputs(0)).entries if e.path == "etc/passwd"]
    assert entry.digest == "sha256:" + hashlib.sha256(b"root:x:0:0::/:/bin/sh\n").hexdigest()
    (tmp_path / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    assert not copy.uptodate(run, base)
    assert TreeRecord.read(base.tree).complete


def test_a_layer_is_up_to_date_while_its_blob_is_in_the_store(run: Run) -> None:
    base, _ = built(run)
    record = LayerRecord.read(base.layer(0))
    assert record.blob is not None and record.made_from.startswith("sha256:")
    assert layer.uptodate(run, base, 0)
    run.layout.blob_path(record.blob.descriptor.digest).unlink()
    assert not layer.uptodate(run, base, 0)


def test_the_image_stands_on_its_base(run: Run) -> None:
    base, app = built(run)
    base_record, app_record = (
        ImageRecord.read(base.image_record),
        ImageRecord.read(app.image_record),
    )
    base_manifest = oci.Manifest.from_json(json.loads(run.layout.read(base_record.manifest.digest)))
    manifest = oci.Manifest.from_json(json.loads(run.layout.read(app_record.manifest.digest)))
    assert manifest.layers[: len(base_manifest.layers)] == base_manifest.layers
    assert len(manifest.layers) == app_record.layers == len(base_manifest.layers) + 1
    config = oci.ImageConfig.from_json(json.loads(run.layout.read(app_record.config.digest)))
    assert config.config.user == "1000" and config.config.entrypoint == ("/app",)
    assert config.created == "1970-01-01T00:00:00Z"
    assert app_record.manifest.platform == app.platform
    assert image.uptodate(run, app)
    assert image.inputs(run, app)[-1] == base.image_record


def test_the_layout_names_the_outputs(run: Run) -> None:
    _, app = built(run)
    assert not layout.uptodate(run)
    layout.write_layout(run)
    assert layout.uptodate(run)
    digest = ImageRecord.read(app.image_record).manifest.digest
    assert run.layout.resolve("app:latest") is not None
    assert LayoutRecord.read(layout.record_path(run)).names == (("app:latest", digest),)


def test_status_says_why(run: Run, tmp_path: Path) -> None:
    assert status.status(run) == [("app", "", ["base base: never built", "never built"])]
    built(run)
    layout.write_layout(run)
    ((label, digest, reasons),) = status.status(run)
    assert (label, reasons) == ("app", []) and digest.startswith("sha256:")
    (tmp_path / "app").write_text("changed\n")
    assert status.status(run)[0][2] == ["layer 0: app changed"]


def test_gc_keeps_what_records_and_names_need(run: Run) -> None:
    base, app = built(run)
    layout.write_layout(run)
    stray = run.layout.put(oci.CONFIG, b'{"stray": true}')
    roots = housekeeping.roots(run)
    assert ImageRecord.read(base.image_record).manifest.digest in roots
    assert stray.digest not in roots
    lines = housekeeping.gc([run])
    assert not run.layout.has_blob(stray.digest)
    assert lines[0].startswith("gc: removed 1 blobs")
    assert image.uptodate(run, app) and layer.uptodate(run, base, 0)


def test_a_damaged_record_is_a_record_error(run: Run) -> None:
    base = run.unit("base")
    base.dir.mkdir(parents=True)
    base.image_record.write_text("[1, 2]")
    with pytest.raises(RecordError, match="not a JSON object"):
        ImageRecord.read(base.image_record)
    base.image_record.write_text('{"manifest": {}}')
    with pytest.raises(RecordError, match="not a ImageRecord"):
        ImageRecord.read(base.image_record)
    assert not image.uptodate(run, base)
