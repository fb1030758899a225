"""rules.layercache: the remote layer cache, stored in and read from a real registry
(Debian's docker-registry), checked with its access log, the OCI schemas and skopeo."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from registries import AccessEntry, RunningRegistry, basic_registry
from schemas import validate

from doit_oci.registry import oci
from doit_oci.registry.client import RegistryClient, tags
from doit_oci.registry.errors import RegistryError
from doit_oci.registry.layout import Layout
from doit_oci.registry.session import USER_AGENT
from doit_oci.registry.upload import BlobSource
from doit_oci.rules.digests import file_digest
from doit_oci.rules.layer import COMPRESSIONS, LayerBlob, write_layer
from doit_oci.rules.layercache import (
    ARTIFACT_TYPE,
    CONFIG_TYPE,
    CacheRepo,
    cache_key,
    config_bytes,
    lookup,
    manifest_bytes,
    store,
)
from doit_oci.rules.tree import DIR, FILE, Entry

REPO_ROOT = Path(__file__).resolve().parent.parent
INPUTS = (
    b'{\n "entries": [\n  {\n   "kind": "dir",\n   "mode": 493,\n   "path": "app"\n  },\n'
    b'  {\n   "digest": "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",'
    b'\n   "kind": "file",\n   "mode": 420,\n   "path": "app/hello",\n   "size": 5,\n'
    b'   "source": "out/linux_amd64/hello"\n  }\n ]\n}\n'
)
# pinned: a change here means every cache entry stored so far is lost (bump VERSION then)
KNOWN_KEY = "562e40489af3dc3cb84c210d585c5b580b414ebc16f87599d321a52fbc1d2d0b"
KEY = cache_key(INPUTS, "gzip", 0)


# -- the key -------------------------------------------------------------------------------


def test_the_key_is_a_known_answer() -> None:
    assert cache_key(INPUTS, "gzip", 0) == KNOWN_KEY
    # sha256(version NUL compression NUL epoch NUL inputs), as sha256sum gives it
    framed = b"doit-oci layer cache v1\x00gzip\x000\x00" + INPUTS
    assert hashlib.sha256(framed).hexdigest() == KNOWN_KEY


def test_the_key_is_stable_and_a_valid_tag() -> None:
    assert cache_key(INPUTS, "zstd", 1700000000) == cache_key(INPUTS, "zstd", 1700000000)
    key = cache_key(INPUTS, "none", 0)
    assert len(key) == 64 and set(key) <= set("0123456789abcdef")


def test_the_key_changes_with_the_compression_and_the_epoch() -> None:
    keys = {cache_key(INPUTS, c, e) for c in COMPRESSIONS for e in (0, 1, 10, 1700000000)}
    assert len(keys) == len(COMPRESSIONS) * 4


def test_the_key_changes_with_any_byte_of_the_inputs() -> None:
    keys = {cache_key(INPUTS, "gzip", 0), cache_key(INPUTS + b"\n", "gzip", 0)}
    keys.add(cache_key(INPUTS[:-1], "gzip", 0))
    for index in range(len(INPUTS)):
        changed = bytearray(INPUTS)
        changed[index] ^= 0x01
        keys.add(cache_key(bytes(changed), "gzip", 0))
    assert len(keys) == len(INPUTS) + 3


def test_the_key_fields_cannot_run_into_each_other() -> None:
    assert cache_key(b"0{}", "gzip", 1) != cache_key(b"{}", "gzip", 10)
    assert cache_key(b"", "gzip", 10) != cache_key(b"0", "gzip", 1)


@pytest.mark.parametrize(
    ("compression", "epoch"), [("brotli", 0), ("", 0), ("gzip", -1), ("gzip", True)]
)
def test_the_key_refuses_what_makes_no_layer(compression: str, epoch: int) -> None:
    with pytest.raises(ValueError):
        cache_key(INPUTS, compression, epoch)


# -- the repository name -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "registry", "repository"),
    [
        ("127.0.0.1:5000/team/cache", "127.0.0.1:5000", "team/cache"),
        ("localhost:5000/cache", "localhost:5000", "cache"),
        ("localhost/cache", "localhost", "cache"),
        ("registry.example.com/a/b/cache", "registry.example.com", "a/b/cache"),
        ("[::1]:5000/team/layer-cache", "[::1]:5000", "team/layer-cache"),
        ("docker.io/team/cache", "docker.io", "team/cache"),
    ],
)
def test_a_cache_repository_is_parsed(text: str, registry: str, repository: str) -> None:
    repo = CacheRepo.parse(text)
    assert repo == CacheRepo(registry, repository)
    assert str(repo) == f"{registry}/{repository}"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        (" 127.0.0.1:5000/cache", "spaces"),
        ("team/cache", "names no registry host"),
        ("cache", "names no registry host"),
        ("127.0.0.1:5000", "names no registry host"),
        ("127.0.0.1:5000/", "names no repository"),
        ("127.0.0.1:5000/Team/cache", "invalid repository name"),
        ("127.0.0.1:5000/team//cache", "invalid repository name"),
        ("bad_host.example:5000/cache", "invalid registry host"),
        ("127.0.0.1:5000/team/cache:latest", "no tag or digest"),
        ("127.0.0.1:5000/team/cache@sha256:" + "0" * 64, "no tag or digest"),
    ],
)
def test_a_bad_cache_repository_gets_one_clear_message(text: str, problem: str) -> None:
    with pytest.raises(ValueError) as caught:
        CacheRepo.parse(text)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"invalid layer cache repository {text!r}: ")
    assert problem in message
    assert message.endswith("expected host[:port]/path such as 127.0.0.1:5000/team/cache")


def test_the_module_imports_neither_httpx_nor_doit() -> None:
    code = (
        "import sys, doit_oci.rules.layercache; print(sorted({'httpx', 'doit'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "[]"


# -- against a registry --------------------------------------------------------------------


@pytest.fixture
def client(registry: RunningRegistry) -> Iterator[RegistryClient]:
    with RegistryClient(registry.host) as made:
        yield made


@pytest.fixture
def cache(registry: RunningRegistry) -> CacheRepo:
    return CacheRepo.parse(f"{registry.host}/team/cache")


Made = tuple[LayerBlob, BlobSource, bytes]


def make_layer(root: Path, compression: str = "gzip", content: bytes = b"hello") -> Made:
    """A real layer (rules.layer) in a layout under ``root``: what a build makes."""
    workspace = root / "ws"
    (workspace / "out").mkdir(parents=True, exist_ok=True)
    source = workspace / "out" / "hello"
    source.write_bytes(content)
    entries = [
        Entry("app", DIR, 0o755),
        Entry(
            "app/hello",
            FILE,
            0o755,
            size=len(content),
            digest=file_digest(source),
            source="out/hello",
        ),
    ]
    layout = Layout(root / "oci", root / "tmp")
    layer = write_layer(entries, workspace, layout, compression, 0)
    path = layout.blob_path(layer.descriptor.digest)
    return layer, BlobSource.from_file(path, layer.descriptor.digest), path.read_bytes()


@pytest.fixture
def made(tmp_path: Path) -> Made:
    return make_layer(tmp_path / "made")


def ours(registry: RunningRegistry) -> list[AccessEntry]:
    """The requests our client made (not the fixture's start-up probe)."""
    return [e for e in registry.access_log() if e.user_agent == USER_AGENT]


def settled(registry: RunningRegistry) -> list[AccessEntry]:
    """Our requests once the registry has written every line (it logs after answering)."""
    seen = -1
    while True:
        entries = ours(registry)
        if len(entries) == seen:
            return entries
        seen = len(entries)
        time.sleep(0.15)


def summary(entries: list[AccessEntry]) -> list[tuple[str, str, int]]:
    return [(e.method, e.path, e.status) for e in entries]


def uploads(entries: list[AccessEntry]) -> list[AccessEntry]:
    """Blob uploads: POST without a mount, PATCH and PUT of an upload session."""
    return [
        e
        for e in entries
        if "/blobs/uploads/" in e.path
        and ((e.method == "POST" and "mount=" not in e.query) or e.method in ("PATCH", "PUT"))
    ]


def blob_bytes(client: RegistryClient, repository: str, digest: str) -> bytes:
    with client.get_blob(repository, digest) as response:
        return b"".join(response.iter_bytes())


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_store_then_lookup_gives_the_same_layer(
    registry: RunningRegistry, cache: CacheRepo, tmp_path: Path, compression: str
) -> None:
    layer, blob, data = make_layer(tmp_path / compression, compression)
    key = cache_key(INPUTS, compression, 0)
    with RegistryClient(registry.host) as writer:
        store(writer, cache, key, layer, blob)
    warnings: list[str] = []
    with RegistryClient(registry.host) as reader:  # another runner, starting empty
        found = lookup(reader, cache, key, warn=warnings.append)
        assert found == layer
        assert blob_bytes(reader, "team/cache", layer.descriptor.digest) == data
    assert warnings == []
    if compression == "none":
        assert found.diff_id == found.descriptor.digest


def test_a_hit_costs_two_requests(
    registry: RunningRegistry, client: RegistryClient, cache: CacheRepo, made: Made
) -> None:
    layer, blob, _ = made
    store(client, cache, KEY, layer, blob)
    before = len(settled(registry))
    assert lookup(client, cache, KEY) == layer
    config = oci.sha256_digest(config_bytes(KEY, layer))
    assert summary(settled(registry)[before:]) == [
        ("GET", f"/v2/team/cache/manifests/{KEY}", 200),
        ("GET", f"/v2/team/cache/blobs/{config}", 200),
    ]


def test_an_absent_key_is_one_request(
    registry: RunningRegistry, client: RegistryClient, cache: CacheRepo, made: Made
) -> None:
    # a repository that does not exist yet: NAME_UNKNOWN
    assert lookup(client, cache, KEY) is None
    assert summary(settled(registry)) == [("GET", f"/v2/team/cache/manifests/{KEY}", 404)]
    # a repository that holds other keys: MANIFEST_UNKNOWN
    layer, blob, _ = made
    other = cache_key(INPUTS, "zstd", 0)
    store(client, cache, other, layer, blob)
    before = len(settled(registry))
    assert lookup(client, cache, KEY) is None
    assert summary(settled(registry)[before:]) == [("GET", f"/v2/team/cache/manifests/{KEY}", 404)]


def test_store_mounts_the_layer_from_a_repository_that_has_it(
    registry: RunningRegistry, client: RegistryClient, cache: CacheRepo, made: Made
) -> None:
    layer, blob, _ = made
    digest = layer.descriptor.digest
    client.upload_blob("team/app", blob)  # the image was pushed there
    before = len(settled(registry))
    store(client, cache, KEY, layer, None, mount_from=["team/elsewhere", "team/app"])
    log = settled(registry)[before:]
    mounts = [e for e in log if e.method == "POST" and "mount=" in e.query]
    assert [(e.status, "from=team%2Felsewhere" in e.query) for e in mounts] == [
        (202, True),  # not there: the registry offers an upload, which is cancelled
        (201, False),
    ]
    assert "from=team%2Fapp" in mounts[1].query and digest.replace(":", "%3A") in mounts[1].query
    # the only upload is the config's: never the layer
    config = oci.sha256_digest(config_bytes(KEY, layer))
    puts = [e for e in uploads(log) if e.method == "PUT"]
    assert [e.query.rpartition("digest=")[2].replace("%3A", ":") for e in puts] == [config]
    assert not [e for e in uploads(log) if e.method == "PATCH"]
    assert len([e for e in uploads(log) if e.method == "POST"]) == 1
    assert lookup(client, cache, KEY) == layer


def test_store_skips_a_blob_already_in_the_cache(
    registry: RunningRegistry, client: RegistryClient, cache: CacheRepo, made: Made
) -> None:
    layer, blob, _ = made
    store(client, cache, KEY, layer, blob)
    other = cache_key(INPUTS, "gzip", 1)  # another key made the same bytes
    before = len(settled(registry))
    store(client, cache, other, layer, None, mount_from=["team/app"])
    log = settled(registry)[before:]
    assert not [e for e in log if "mount=" in e.query]
    assert ("HEAD", f"/v2/team/cache/blobs/{layer.descriptor.digest}", 200) in summary(log)
    assert lookup(client, cache, other) == layer


def test_storing_the_same_entry_again_is_one_head(
    registry: RunningRegistry, client: RegistryClient, cache: CacheRepo, made: Made
) -> None:
    layer, blob, _ = made
    store(client, cache, KEY, layer, blob)
    before = len(settled(registry))
    store(client, cache, KEY, layer, blob)
    assert summary(settled(registry)[before:]) == [("HEAD", f"/v2/team/cache/manifests/{KEY}", 200)]


def test_store_without_a_blob_to_give_fails_and_stores_nothing(
    registry: RunningRegistry, client: RegistryClient, cache: CacheRepo, made: Made
) -> None:
    layer, _, _ = made
    with pytest.raises(FileNotFoundError) as caught:
        store(client, cache, KEY, layer, None, mount_from=["team/app"])
    assert str(caught.value) == (
        f"layer {layer.descriptor.digest} is not in {cache} (nor in team/app to mount)"
        " and no copy of it was given to upload"
    )
    assert lookup(client, cache, KEY) is None
    assert not uploads(settled(registry))


def test_store_refuses_what_is_not_a_key_or_not_the_layer(
    client: RegistryClient, cache: CacheRepo, made: Made, tmp_path: Path
) -> None:
    layer, blob, _ = made
    with pytest.raises(ValueError, match="is not 64 lowercase hex digits"):
        store(client, cache, KEY.upper(), layer, blob)
    with pytest.raises(ValueError, match="is not 64 lowercase hex digits"):
        lookup(client, cache, "latest")
    _, other, _ = make_layer(tmp_path / "other", content=b"other")
    with pytest.raises(ValueError, match="is not the layer"):
        store(client, cache, KEY, layer, other)


def test_an_entry_is_an_oci_artifact_with_a_config(
    registry: RunningRegistry, client: RegistryClient, cache: CacheRepo, made: Made
) -> None:
    layer, blob, _ = made
    store(client, cache, KEY, layer, blob)
    data, media_type, digest = client.get_manifest("team/cache", KEY)
    assert media_type == oci.MANIFEST
    assert data == manifest_bytes(KEY, layer)  # the registry keeps our bytes as they are
    validate("manifest", data)
    document = json.loads(data)
    validate("descriptor", document["config"])
    validate("descriptor", document["layers"][0])
    assert document["artifactType"] == ARTIFACT_TYPE
    assert document["config"]["mediaType"] == CONFIG_TYPE
    assert document["layers"] == [layer.descriptor.to_json()]
    assert "annotations" not in document  # nothing that differs between runners
    config = blob_bytes(client, "team/cache", document["config"]["digest"])
    assert json.loads(config) == {
        "descriptor": layer.descriptor.to_json(),
        "diff_id": layer.diff_id,
        "key": KEY,
    }
    assert KEY in tags(client, "team/cache")
    # a standard client reads it as it is
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{cache}:{KEY}"],
        capture_output=True,
        check=True,
    ).stdout
    assert oci.sha256_digest(raw) == digest


# -- entries that are not ours, or not whole -----------------------------------------------


def put_blob(client: RegistryClient, data: bytes, media_type: str = CONFIG_TYPE) -> oci.Descriptor:
    digest = oci.sha256_digest(data)
    client.upload_blob("team/cache", BlobSource(digest, len(data), lambda _o, _n: (data,)))
    return oci.describe(media_type, data)


def put_entry(
    client: RegistryClient, config: oci.Descriptor, layers: list[Any], **fields: Any
) -> None:
    """Tag KEY with a manifest made by hand; ``fields`` replace its own (None drops one)."""
    document = {
        "schemaVersion": 2,
        "mediaType": oci.MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": config.to_json(),
        "layers": layers,
    }
    document.update(fields)
    document = {k: v for k, v in document.items() if v is not None}
    client.put_manifest("team/cache", KEY, oci.canonical_json(document), oci.MANIFEST)


def record(layer: LayerBlob, **fields: Any) -> bytes:
    data = {"descriptor": layer.descriptor.to_json(), "diff_id": layer.diff_id, "key": KEY}
    data.update(fields)
    return json.dumps(data).encode()


Corrupt = Callable[[RegistryClient, LayerBlob, RunningRegistry], None]


def with_config(config: bytes, **fields: Any) -> Corrupt:
    """An entry of the layer whose config blob is ``config``."""

    def make(client: RegistryClient, layer: LayerBlob, _: RunningRegistry) -> None:
        put_entry(client, put_blob(client, config), [layer.descriptor.to_json()], **fields)

    return make


def with_record(**fields: Any) -> Corrupt:
    """An entry of the layer whose record has ``fields`` changed."""

    def make(client: RegistryClient, layer: LayerBlob, _: RunningRegistry) -> None:
        config = put_blob(client, record(layer, **fields))
        put_entry(client, config, [layer.descriptor.to_json()])

    return make


def another_layer_recorded(client: RegistryClient, layer: LayerBlob, _: RunningRegistry) -> None:
    recorded = layer.descriptor.to_json() | {"size": layer.descriptor.size + 1}
    config = put_blob(client, record(layer, descriptor=recorded))
    put_entry(client, config, [layer.descriptor.to_json()])


def an_image(client: RegistryClient, layer: LayerBlob, _: RunningRegistry) -> None:
    image = oci.ImageConfig("amd64", "linux", diff_ids=(layer.diff_id,)).to_bytes()
    config = put_blob(client, image, oci.CONFIG)
    put_entry(client, config, [layer.descriptor.to_json()], artifactType=None)


def another_artifact(client: RegistryClient, layer: LayerBlob, _: RunningRegistry) -> None:
    config = put_blob(client, record(layer))
    put_entry(
        client, config, [layer.descriptor.to_json()], artifactType="application/vnd.example.v1"
    )


def another_config_type(client: RegistryClient, layer: LayerBlob, _: RunningRegistry) -> None:
    config = put_blob(client, record(layer), "application/vnd.example.config.v1+json")
    put_entry(client, config, [layer.descriptor.to_json()])


def a_layer_with_half_a_platform(
    client: RegistryClient, layer: LayerBlob, _: RunningRegistry
) -> None:
    config = put_blob(client, record(layer))
    put_entry(client, config, [layer.descriptor.to_json() | {"platform": {"os": "linux"}}])


def two_layers(client: RegistryClient, layer: LayerBlob, _: RunningRegistry) -> None:
    config = put_blob(client, record(layer))
    put_entry(client, config, [layer.descriptor.to_json()] * 2)


def config_deleted(client: RegistryClient, layer: LayerBlob, registry: RunningRegistry) -> None:
    config = put_blob(client, record(layer))
    put_entry(client, config, [layer.descriptor.to_json()])
    url = f"{registry.url}/v2/team/cache/blobs/{config.digest}"
    assert httpx.delete(url).status_code == 202


CORRUPTIONS: dict[str, tuple[Corrupt, str]] = {
    "config not JSON": (with_config(b"not json at all"), "its config is not valid JSON"),
    "config not an object": (with_config(b"[1, 2]"), "its config is not a JSON object"),
    "config of another key": (with_record(key="0" * 64), "is the record of key '0000"),
    "config without a diff_id": (with_record(diff_id="md5:abc"), "has no sha256 diff_id"),
    "config records another layer": (another_layer_recorded, "is not the layer it holds"),
    "an image": (an_image, "an artifact of type none, not " + ARTIFACT_TYPE),
    "another artifact": (another_artifact, "of type application/vnd.example.v1, not"),
    "another config type": (another_config_type, "config has media type application/vnd.ex"),
    "half a platform": (a_layer_with_half_a_platform, "its layer is not a descriptor"),
    "two layers": (two_layers, "it does not hold exactly one layer"),
    "config blob deleted": (config_deleted, "its config blob sha256:"),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_a_corrupt_entry_is_absent_until_stored_again(
    registry: RunningRegistry, client: RegistryClient, cache: CacheRepo, made: Made, name: str
) -> None:
    layer, blob, _ = made
    client.upload_blob("team/cache", blob)
    make, reason = CORRUPTIONS[name]
    make(client, layer, registry)
    warnings: list[str] = []
    assert lookup(client, cache, KEY, warn=warnings.append) is None
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"layer cache {cache}:{KEY}: ")
    assert reason in warnings[0]
    assert warnings[0].endswith("; taken as absent")
    assert lookup(client, cache, KEY) is None  # without warn: absent all the same
    store(client, cache, KEY, layer, blob)  # the next runner that builds it repairs it
    assert lookup(client, cache, KEY, warn=warnings.append) == layer
    assert len(warnings) == 1


def test_a_tag_naming_an_index_is_absent(
    client: RegistryClient, cache: CacheRepo, made: Made
) -> None:
    layer, blob, _ = made
    store(client, cache, KEY, layer, blob)
    _, _, digest = client.get_manifest("team/cache", KEY)
    size = len(manifest_bytes(KEY, layer))
    index = oci.Index((oci.Descriptor(oci.MANIFEST, digest, size),)).to_bytes()
    client.put_manifest("team/cache", KEY, index, oci.INDEX)
    warnings: list[str] = []
    assert lookup(client, cache, KEY, warn=warnings.append) is None
    assert warnings == [
        f"layer cache {cache}:{KEY}: the tag names a {oci.INDEX}, not an OCI manifest;"
        " taken as absent"
    ]


def test_a_registry_that_refuses_is_an_error_not_a_miss(tmp_path: Path) -> None:
    with basic_registry(tmp_path / "basic") as guarded, RegistryClient(guarded.host) as client:
        cache = CacheRepo.parse(f"{guarded.host}/team/cache")
        with pytest.raises(RegistryError) as caught:
            lookup(client, cache, KEY)
        assert caught.value.status == 401
