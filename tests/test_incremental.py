"""Incremental builds: what a change reruns, judged by the tasks doit executes."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from support import doit, index_of, snapshot


def build(workspace: Path, *args: str) -> list[str]:
    run = doit(workspace, "build_images", *args)
    assert run.code == 0, run.text
    return run.executed


def test_nothing_changed_runs_nothing_and_writes_nothing(example: Path) -> None:
    first = build(example)
    assert {"make", "layout", "image:hello", "layer:hello.0"} <= set(first)
    before = snapshot(example / "out")
    time.sleep(0.01)
    assert build(example) == []
    assert snapshot(example / "out") == before


def test_touching_a_copied_file_without_changing_it_runs_nothing(example: Path) -> None:
    build(example)
    config = example / "example" / "showconfig" / "config.json"
    later = time.time() + 5
    os.utime(config, (later, later))
    assert build(example) == []
    # and the digest cache has learnt the new mtime: hashing it again is not needed
    assert build(example) == []


def test_a_changed_file_rebuilds_only_its_layer_and_image(example: Path) -> None:
    build(example)
    digests = index_of(example)
    config = example / "example" / "showconfig" / "config.json"
    config.write_text('{"greeting": "changed"}\n')
    assert build(example) == [
        "translate:showconfig",
        "layer:showconfig.1",
        "image:showconfig",
        "layout",
    ]
    after = index_of(example)
    assert after["showconfig:latest"] != digests["showconfig:latest"]
    assert after["hello:latest"] == digests["hello:latest"]
    assert after["whoami:latest"] == digests["whoami:latest"]


def test_an_env_change_rebuilds_config_and_manifest_only(example: Path) -> None:
    build(example)
    digests = index_of(example)
    dockerfile = example / "example" / "hello" / "Dockerfile"
    dockerfile.write_text(
        dockerfile.read_text().replace("HELLO_HOME=/home/hello", "HELLO_HOME=/home/hola")
    )
    assert build(example) == ["parse:hello", "image:hello", "layout"]
    assert index_of(example)["hello:latest"] != digests["hello:latest"]


def test_a_label_user_or_entrypoint_change_reuses_every_layer(example: Path) -> None:
    dockerfile = example / "example" / "whoami" / "Dockerfile"
    # a USER before a WORKDIR owns the directories that WORKDIR makes (as in BuildKit):
    # the USER goes after it here, and the next test changes one before it
    text = dockerfile.read_text().replace("USER 1337:1337\n", "")
    text = text.replace("WORKDIR ${APP_DIR}\n", "WORKDIR ${APP_DIR}\nUSER 1337:1337\n")
    dockerfile.write_text(text)
    build(example)
    for old, new in (
        ('version="1.0"', 'version="2.0"'),
        ("USER 1337:1337", "USER 0"),
        ('ENTRYPOINT ["/usr/local/bin/whoami"]', 'ENTRYPOINT ["/bin/true"]'),
    ):
        text = text.replace(old, new)
        dockerfile.write_text(text)
        assert build(example) == ["parse:whoami", "image:whoami", "layout"], old


def test_a_user_change_before_a_workdir_rebuilds_that_workdirs_layer(example: Path) -> None:
    build(example)
    record = example / "out/build/linux_amd64/whoami/layer-1.inputs.json"
    assert owners(record)["var/lib/whoami"] == (1337, 1337)
    dockerfile = example / "example" / "whoami" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("USER 1337:1337", "USER 0"))
    assert build(example) == [
        "parse:whoami",
        "translate:whoami",
        "layer:whoami.1",
        "image:whoami",
        "layout",
    ]
    assert owners(record) == {"var": (0, 0), "var/lib": (0, 0), "var/lib/whoami": (0, 0)}


def owners(record: Path) -> dict[str, tuple[int, int]]:
    entries = json.loads(record.read_text())["entries"]
    return {e["path"]: (e.get("uid", 0), e.get("gid", 0)) for e in entries}


def test_a_rebuilt_binary_rebuilds_its_layer(example: Path) -> None:
    build(example)
    source = example / "example" / "src" / "hello.c"
    source.write_text(source.read_text().replace('"hello"', '"hi"'))
    executed = build(example)
    assert executed == ["make", "translate:hello", "layer:hello.0", "image:hello", "layout"]


def test_a_base_change_rebuilds_the_images_on_it_but_not_their_layers(example: Path) -> None:
    build(example)
    digests = index_of(example)
    passwd = example / "example" / "base" / "passwd"
    passwd.write_text(passwd.read_text() + "extra:x:2000:2000::/:/sbin/nologin\n")
    executed = build(example)
    assert executed[:3] == ["translate:base", "layer:base.0", "image:base"]
    assert not [task for task in executed if task.startswith("layer:") and "base" not in task]
    # showconfig resolves --chown names in /etc/passwd, so it is checked, and stays the same
    assert sorted(t for t in executed if t.startswith("image:")) == [
        "image:base",
        "image:hello",
        "image:showconfig",
        "image:whoami",
    ]
    after = index_of(example)
    assert all(after[name] != digests[name] for name in after)


def test_a_file_added_to_or_removed_from_a_copied_directory_is_noticed(example: Path) -> None:
    plan = example / "plans" / "images.yaml"
    plan.write_text(
        plan.read_text()
        + (
            "\n- name: withdir\n"
            "  dockerfile: example/withdir/Dockerfile\n"
            "  files: [example/withdir/data]\n"
        )
    )
    folder = example / "example" / "withdir"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "a.txt").write_text("a\n")
    (folder / "Dockerfile").write_text("FROM base\nCOPY data /srv/data/\n")
    build(example)
    (folder / "data" / "b.txt").write_text("b\n")
    assert build(example) == ["translate:withdir", "layer:withdir.0", "image:withdir", "layout"]
    (folder / "data" / "a.txt").unlink()
    assert build(example) == ["translate:withdir", "layer:withdir.0", "image:withdir", "layout"]
    entries = (example / "out/build/linux_amd64/withdir/layer-0.inputs.json").read_text()
    assert "srv/data/b.txt" in entries and "srv/data/a.txt" not in entries


def test_a_deleted_blob_is_made_again(example: Path) -> None:
    build(example)
    digest = index_of(example)["hello:latest"]
    (example / "out" / "oci" / "blobs" / "sha256" / digest[7:]).unlink()
    assert build(example) == ["image:hello"]  # same image.json: the layout stays as it is
    assert index_of(example)["hello:latest"] == digest


def test_a_changed_tag_only_renames(example: Path) -> None:
    build(example)
    digests = index_of(example)
    assert build(example, "--tag", "2.0") == ["layout"]
    after = index_of(example)
    assert after["hello:2.0"] == digests["hello:latest"]
    assert after["hello:latest"] == digests["hello:latest"]  # other names are kept
