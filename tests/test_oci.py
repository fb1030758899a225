"""Tests of registry.oci: canonical JSON, digests, platforms and the OCI documents.

Every document we render is checked against the OCI image-spec JSON schemas.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import jsonschema
import pytest

from doit_oci.registry import oci
from tests.schemas import validate

EMPTY_SHA = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64


# -- canonical JSON and digests ------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({}, b"{}"),
        ([], b"[]"),
        ({"b": 1, "a": 2}, b'{"a":2,"b":1}'),
        ({"a": {"d": 1, "c": [3, 2, 1]}}, b'{"a":{"c":[3,2,1],"d":1}}'),
        ({"k": "a b", "l": [1, 2]}, b'{"k":"a b","l":[1,2]}'),
        ({"é": "ü"}, '{"é":"ü"}'.encode()),
        ({"x": "한국어"}, '{"x":"한국어"}'.encode()),
        ({"x": "\u2028"}, b'{"x":"\xe2\x80\xa8"}'),
        ({"q": 'say "hi"\\'}, b'{"q":"say \\"hi\\"\\\\"}'),
        ({"n": "\n\t"}, b'{"n":"\\n\\t"}'),
        ({"t": True, "f": False, "z": None}, b'{"f":false,"t":true,"z":null}'),
        ({"B": 1, "a": 2, "_": 3}, b'{"B":1,"_":3,"a":2}'),
        ({"size": 0}, b'{"size":0}'),
    ],
)
def test_canonical_json(document: Any, expected: bytes) -> None:
    assert oci.canonical_json(document) == expected
    assert json.loads(expected) == document


def test_canonical_json_ignores_key_order() -> None:
    one = {"a": 1, "b": {"x": 1, "y": 2}}
    two = {"b": {"y": 2, "x": 1}, "a": 1}
    assert oci.canonical_json(one) == oci.canonical_json(two)


@pytest.mark.parametrize(
    ("data", "digest"),
    [
        (b"", EMPTY_SHA),
        (b"abc", "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        (b"{}", "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"),
    ],
)
def test_sha256_digest(data: bytes, digest: str) -> None:
    assert oci.sha256_digest(data) == digest
    assert oci.is_digest(digest)


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        (EMPTY_SHA, True),
        (D1, True),
        ("sha256:" + "a" * 63, False),
        ("sha256:" + "a" * 65, False),
        ("sha256:" + "A" * 64, False),
        ("sha256:" + "g" * 64, False),
        ("sha512:" + "a" * 64, False),
        ("a" * 64, False),
        ("", False),
    ],
)
def test_is_digest(value: str, valid: bool) -> None:
    assert oci.is_digest(value) is valid


def test_describe() -> None:
    assert oci.describe(oci.CONFIG, b"{}") == oci.Descriptor(
        oci.CONFIG,
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
        2,
    )


# -- platforms -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "platform", "shown", "slug"),
    [
        ("linux/amd64", oci.Platform("linux", "amd64"), "linux/amd64", "linux_amd64"),
        ("linux/arm64", oci.Platform("linux", "arm64"), "linux/arm64", "linux_arm64"),
        (
            "linux/arm64/v8",
            oci.Platform("linux", "arm64", "v8"),
            "linux/arm64/v8",
            "linux_arm64_v8",
        ),
        ("linux/arm/v7", oci.Platform("linux", "arm", "v7"), "linux/arm/v7", "linux_arm_v7"),
        ("windows/amd64", oci.Platform("windows", "amd64"), "windows/amd64", "windows_amd64"),
        ("linux/386", oci.Platform("linux", "386"), "linux/386", "linux_386"),
        (" linux/ppc64le ", oci.Platform("linux", "ppc64le"), "linux/ppc64le", "linux_ppc64le"),
        ("Linux/AMD64", oci.Platform("linux", "amd64"), "linux/amd64", "linux_amd64"),
    ],
)
def test_platform_parse(text: str, platform: oci.Platform, shown: str, slug: str) -> None:
    assert oci.Platform.parse(text) == platform
    assert str(platform) == shown
    assert platform.slug == slug
    assert oci.Platform.parse(shown) == platform


@pytest.mark.parametrize(
    "text",
    [
        "",
        "linux",
        "linux/",
        "/amd64",
        "linux//v8",
        "linux/amd64/",
        "linux/arm64/v8/x",
        "linux/amd64,linux/arm64",
        "linux /amd64",
        "linux/am d64",
    ],
)
def test_platform_parse_invalid(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        oci.Platform.parse(text)
    assert str(caught.value) == f"platform {text!r} is not os/arch[/variant]"


@pytest.mark.parametrize(
    ("platform", "document"),
    [
        (oci.Platform("linux", "amd64"), {"architecture": "amd64", "os": "linux"}),
        (
            oci.Platform("linux", "arm64", "v8"),
            {"architecture": "arm64", "os": "linux", "variant": "v8"},
        ),
    ],
)
def test_platform_json(platform: oci.Platform, document: dict[str, str]) -> None:
    assert platform.to_json() == document
    assert oci.Platform.from_json(document) == platform


# -- descriptors ---------------------------------------------------------------------------


DESCRIPTORS = [
    (
        oci.Descriptor(oci.LAYER_TAR, D1, 10),
        {"mediaType": oci.LAYER_TAR, "digest": D1, "size": 10},
    ),
    (
        oci.Descriptor(oci.MANIFEST, D2, 0, annotations=(("a", "1"), ("b", "2"))),
        {"mediaType": oci.MANIFEST, "digest": D2, "size": 0, "annotations": {"a": "1", "b": "2"}},
    ),
    (
        oci.Descriptor(oci.MANIFEST, D3, 512, platform=oci.Platform("linux", "arm64", "v8")),
        {
            "mediaType": oci.MANIFEST,
            "digest": D3,
            "size": 512,
            "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"},
        },
    ),
]


@pytest.mark.parametrize(("descriptor", "document"), DESCRIPTORS)
def test_descriptor_json(descriptor: oci.Descriptor, document: dict[str, Any]) -> None:
    assert descriptor.to_json() == document
    assert oci.Descriptor.from_json(document) == descriptor
    validate("descriptor", descriptor.to_json())


def test_descriptor_from_json_sorts_annotations() -> None:
    document = {
        "mediaType": oci.CONFIG,
        "digest": D1,
        "size": "7",
        "annotations": {"z": "1", "a": "2"},
    }
    descriptor = oci.Descriptor.from_json(document)
    assert descriptor.annotations == (("a", "2"), ("z", "1"))
    assert descriptor.size == 7


def test_descriptor_annotated_and_ref_name() -> None:
    plain = oci.Descriptor(oci.MANIFEST, D1, 3, annotations=(("z", "last"),))
    assert plain.ref_name == ""
    named = plain.annotated(**{oci.REF_NAME: "hello:latest"})
    assert named.ref_name == "hello:latest"
    assert named.annotations == ((oci.REF_NAME, "hello:latest"), ("z", "last"))
    renamed = named.annotated(**{oci.REF_NAME: "hello:1.0"})
    assert renamed.ref_name == "hello:1.0"
    assert plain.ref_name == ""  # frozen: the original is unchanged


def test_sorted_descriptors() -> None:
    a = oci.Descriptor(oci.MANIFEST, D2, 1).annotated(**{oci.REF_NAME: "a"})
    b1 = oci.Descriptor(oci.MANIFEST, D3, 1).annotated(**{oci.REF_NAME: "b"})
    b0 = oci.Descriptor(oci.MANIFEST, D1, 1).annotated(**{oci.REF_NAME: "b"})
    unnamed = oci.Descriptor(oci.MANIFEST, D3, 1)
    assert oci.sorted_descriptors([b1, a, unnamed, b0]) == (unnamed, a, b0, b1)


# -- manifests and indexes -----------------------------------------------------------------


def _manifest() -> oci.Manifest:
    return oci.Manifest(
        config=oci.Descriptor(oci.CONFIG, D1, 300),
        layers=(
            oci.Descriptor(oci.LAYER_TAR, D2, 2048),
            oci.Descriptor(oci.LAYER_GZIP, D3, 1024),
        ),
        annotations=(("org.opencontainers.image.title", "hello"),),
    )


def test_manifest_bytes() -> None:
    manifest = _manifest()
    assert manifest.to_bytes() == (
        b'{"annotations":{"org.opencontainers.image.title":"hello"},'
        b'"config":{"digest":"'
        + D1.encode()
        + b'","mediaType":"'
        + oci.CONFIG.encode()
        + b'","size":300},'
        b'"layers":[{"digest":"'
        + D2.encode()
        + b'","mediaType":"'
        + oci.LAYER_TAR.encode()
        + b'","size":2048},'
        b'{"digest":"'
        + D3.encode()
        + b'","mediaType":"'
        + oci.LAYER_GZIP.encode()
        + b'","size":1024}],'
        b'"mediaType":"' + oci.MANIFEST.encode() + b'","schemaVersion":2}'
    )


@pytest.mark.parametrize(
    "manifest",
    [
        _manifest(),
        oci.Manifest(oci.Descriptor(oci.CONFIG, D1, 2), (oci.Descriptor(oci.LAYER_TAR, D2, 1),)),
    ],
)
def test_manifest_round_trip_and_schema(manifest: oci.Manifest) -> None:
    data = manifest.to_bytes()
    validate("manifest", data)
    assert oci.Manifest.from_json(json.loads(data)) == manifest
    assert oci.describe(oci.MANIFEST, data).digest == "sha256:" + hashlib.sha256(data).hexdigest()


def test_a_manifest_without_layers_is_not_valid_oci() -> None:
    # why the image step gives a file-less image one empty layer
    manifest = oci.Manifest(oci.Descriptor(oci.CONFIG, D1, 2), ())
    assert oci.Manifest.from_json(manifest.to_json()) == manifest
    with pytest.raises(jsonschema.ValidationError, match=r"\[\] should be non-empty"):
        validate("manifest", manifest.to_bytes())


def test_manifest_from_docker_document() -> None:
    document = {
        "schemaVersion": 2,
        "mediaType": oci.DOCKER_MANIFEST,
        "config": {"mediaType": oci.DOCKER_CONFIG, "digest": D1, "size": 5},
        "layers": [{"mediaType": oci.DOCKER_LAYER_GZIP, "digest": D2, "size": 6}],
    }
    manifest = oci.Manifest.from_json(document)
    assert manifest.media_type == oci.DOCKER_MANIFEST
    assert manifest.to_json() == document


def test_manifest_media_type_defaults_to_oci() -> None:
    document = {"config": {"mediaType": oci.CONFIG, "digest": D1, "size": 5}}
    assert oci.Manifest.from_json(document) == oci.Manifest(oci.Descriptor(oci.CONFIG, D1, 5), ())


@pytest.mark.parametrize(
    "index",
    [
        oci.Index(()),
        oci.Index(
            (
                oci.Descriptor(oci.MANIFEST, D1, 400, platform=oci.Platform("linux", "amd64")),
                oci.Descriptor(
                    oci.MANIFEST, D2, 401, platform=oci.Platform("linux", "arm64", "v8")
                ),
            ),
            annotations=(("created-by", "doit-oci"),),
        ),
        oci.Index((oci.Descriptor(oci.MANIFEST, D3, 9).annotated(**{oci.REF_NAME: "a:1"}),)),
    ],
)
def test_index_round_trip_and_schema(index: oci.Index) -> None:
    data = index.to_bytes()
    validate("index", data)
    assert oci.Index.from_json(json.loads(data)) == index


def test_empty_index_bytes() -> None:
    assert oci.Index(()).to_bytes() == (
        b'{"manifests":[],"mediaType":"application/vnd.oci.image.index.v1+json","schemaVersion":2}'
    )


# -- image configs -------------------------------------------------------------------------


FULL_CONFIG = oci.ContainerConfig(
    user="65532:65532",
    exposed_ports=("8080/tcp", "9090/udp"),
    env=("PATH=/usr/bin:/bin", "EMPTY=", "EQ=a=b"),
    entrypoint=("/usr/local/bin/pilot-discovery",),
    cmd=("--help",),
    volumes=("/data", "/var/lib"),
    working_dir="/work",
    labels=(("a", "1"), ("org.opencontainers.image.source", "https://example.com")),
    stop_signal="SIGTERM",
)


@pytest.mark.parametrize(
    ("config", "document"),
    [
        (oci.ContainerConfig(), {}),
        (
            FULL_CONFIG,
            {
                "User": "65532:65532",
                "ExposedPorts": {"8080/tcp": {}, "9090/udp": {}},
                "Env": ["PATH=/usr/bin:/bin", "EMPTY=", "EQ=a=b"],
                "Entrypoint": ["/usr/local/bin/pilot-discovery"],
                "Cmd": ["--help"],
                "Volumes": {"/data": {}, "/var/lib": {}},
                "WorkingDir": "/work",
                "Labels": {"a": "1", "org.opencontainers.image.source": "https://example.com"},
                "StopSignal": "SIGTERM",
            },
        ),
        # an empty entrypoint or cmd is kept: it resets the base's
        (oci.ContainerConfig(entrypoint=(), cmd=()), {"Entrypoint": [], "Cmd": []}),
    ],
)
def test_container_config_json(config: oci.ContainerConfig, document: dict[str, Any]) -> None:
    assert config.to_json() == document
    assert oci.ContainerConfig.from_json(document) == config


@pytest.mark.parametrize(
    ("document", "config"),
    [
        (None, oci.ContainerConfig()),
        ({"Entrypoint": None, "Cmd": None, "Env": None, "Labels": None}, oci.ContainerConfig()),
        (
            {"ExposedPorts": {"b/tcp": {}, "a/tcp": {}}, "Labels": {"z": "1", "y": "2"}},
            oci.ContainerConfig(exposed_ports=("a/tcp", "b/tcp"), labels=(("y", "2"), ("z", "1"))),
        ),
    ],
)
def test_container_config_from_json(
    document: dict[str, Any] | None, config: oci.ContainerConfig
) -> None:
    assert oci.ContainerConfig.from_json(document) == config


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ((), {}),
        (("A=1", "B=2"), {"A": "1", "B": "2"}),
        (("A=",), {"A": ""}),
        (("NOVALUE",), {"NOVALUE": ""}),
        (("EQ=a=b=c",), {"EQ": "a=b=c"}),
        (("PATH=/a", "PATH=/b"), {"PATH": "/b"}),
    ],
)
def test_env_map(env: tuple[str, ...], expected: dict[str, str]) -> None:
    assert oci.ContainerConfig(env=env).env_map() == expected


IMAGE_CONFIG = oci.ImageConfig(
    architecture="arm64",
    os="linux",
    variant="v8",
    created="1970-01-01T00:00:00Z",
    author="doit-oci",
    config=FULL_CONFIG,
    diff_ids=(D1, D2),
    history=(
        oci.HistoryEntry("1970-01-01T00:00:00Z", "COPY passwd /etc/passwd"),
        oci.HistoryEntry("1970-01-01T00:00:00Z", "ENV A=1", empty_layer=True),
        oci.HistoryEntry("1970-01-01T00:00:00Z", "", comment="an empty layer"),
    ),
)


@pytest.mark.parametrize(
    "config",
    [
        IMAGE_CONFIG,
        oci.ImageConfig("amd64", "linux"),
        oci.ImageConfig("amd64", "windows", diff_ids=(D3,)),
    ],
)
def test_image_config_round_trip_and_schema(config: oci.ImageConfig) -> None:
    data = config.to_bytes()
    validate("config", data)
    assert oci.ImageConfig.from_json(json.loads(data)) == config
    assert config.platform == oci.Platform(config.os, config.architecture, config.variant)


def test_image_config_bytes() -> None:
    assert oci.ImageConfig("amd64", "linux").to_bytes() == (
        b'{"architecture":"amd64","config":{},"history":[],"os":"linux",'
        b'"rootfs":{"diff_ids":[],"type":"layers"}}'
    )
    document = json.loads(IMAGE_CONFIG.to_bytes())
    assert document["rootfs"] == {"type": "layers", "diff_ids": [D1, D2]}
    assert document["history"] == [
        {"created": "1970-01-01T00:00:00Z", "created_by": "COPY passwd /etc/passwd"},
        {"created": "1970-01-01T00:00:00Z", "created_by": "ENV A=1", "empty_layer": True},
        {"created": "1970-01-01T00:00:00Z", "created_by": "", "comment": "an empty layer"},
    ]
    assert (document["variant"], document["created"], document["author"]) == (
        "v8",
        "1970-01-01T00:00:00Z",
        "doit-oci",
    )


@pytest.mark.parametrize(
    ("entry", "document"),
    [
        (
            oci.HistoryEntry("2024-01-02T03:04:05Z", "RUN x"),
            {"created": "2024-01-02T03:04:05Z", "created_by": "RUN x"},
        ),
        # a base's entry without a time stays without one: "" is no date-time
        (oci.HistoryEntry("", "COPY a b"), {"created_by": "COPY a b"}),
        (oci.HistoryEntry("", "", empty_layer=True), {"created_by": "", "empty_layer": True}),
    ],
)
def test_history_entry_json(entry: oci.HistoryEntry, document: dict[str, Any]) -> None:
    assert entry.to_json() == document
    assert oci.HistoryEntry.from_json(document) == entry


def test_image_config_from_a_base_without_history_times() -> None:
    base = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [D1]},
        "history": [{"created_by": "/bin/sh -c #(nop) ADD file:x in /"}],
    }
    config = oci.ImageConfig.from_json(base)
    assert config.history == (oci.HistoryEntry("", "/bin/sh -c #(nop) ADD file:x in /"),)
    rendered = json.loads(config.to_bytes())
    assert rendered["history"] == base["history"]
    validate("config", rendered)


# -- parse_json_document -------------------------------------------------------------------


def test_parse_json_document() -> None:
    assert oci.parse_json_document(b'{"a": 1}', "x") == {"a": 1}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"[1]", "index.json is not a JSON object"),
        (b"null", "index.json is not a JSON object"),
        (
            b"{",
            "index.json is not valid JSON: Expecting property name enclosed in double quotes:"
            " line 1 column 2 (char 1)",
        ),
        (b"", "index.json is not valid JSON: Expecting value: line 1 column 1 (char 0)"),
    ],
)
def test_parse_json_document_errors(data: bytes, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        oci.parse_json_document(data, "index.json")
    assert str(caught.value) == message
