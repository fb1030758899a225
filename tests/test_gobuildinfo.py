"""The build info of Go binaries, as ``go version -m`` reads it: a byte fixture laid out
as Go 1.18+ writes the .go.buildinfo section, and the real Go binaries Debian ships
(docker-registry, skopeo, umoci: built by Go 1.19 outside module mode)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from doit_oci.rules.gobuildinfo import BuildInfo, Module, read_buildinfo, read_file
from doit_oci.rules.sbom import golang_purl

START = bytes.fromhex("3077af0c9274080241e1c107e6d618e6")  # Go's framing of the module info
END = bytes.fromhex("f932433186182072008242104116d8f2")
MODINFO = (
    "path\texample.com/app/cmd/app\n"
    "mod\texample.com/app\tv1.2.3\th1:abc=\n"
    "dep\tgolang.org/x/sys\tv0.1.0\th1:sys=\n"
    "dep\tgithub.com/old/dep\tv1.0.0\th1:old=\n"
    "=>\tgithub.com/new/dep\tv1.1.0\th1:new=\n"
    "build\t-compiler=gc\n"
    "build\tGOARCH=amd64\n"
)


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def binary(version: str = "go1.22.1", modinfo: str = MODINFO, flags: int = 2) -> bytes:
    """An ELF-looking file with a .go.buildinfo section of Go 1.18's layout."""
    framed = START + modinfo.encode() + END
    header = b"\xff Go buildinf:" + bytes([8, flags]) + bytes(16)
    section = header + varint(len(version)) + version.encode() + varint(len(framed)) + framed
    return b"\x7fELF" + bytes(4092) + section + bytes(64)


def test_the_build_info_of_a_byte_fixture(tmp_path: Path) -> None:
    found = read_buildinfo(binary())
    assert found == BuildInfo(
        "go1.22.1",
        "example.com/app/cmd/app",
        Module("example.com/app", "v1.2.3", "h1:abc="),
        (
            Module("golang.org/x/sys", "v0.1.0", "h1:sys="),
            Module("github.com/new/dep", "v1.1.0", "h1:new="),  # the replacement
        ),
    )
    path = tmp_path / "app"
    path.write_bytes(binary())
    assert read_file(path) == found
    assert golang_purl(found.deps[1]) == "pkg:golang/github.com/new/dep@v1.1.0"


def test_no_build_info_rather_than_a_wrong_one(tmp_path: Path) -> None:
    assert read_buildinfo(b"\x7fELF" + bytes(100)) is None  # not Go
    assert read_buildinfo(binary(flags=0)) is None  # before Go 1.18: pointers, not read
    assert read_buildinfo(binary()[:-150]) is None  # truncated
    unframed = read_buildinfo(binary(modinfo="")[:-32] + bytes(64))
    assert unframed is None or unframed.path == ""
    script = tmp_path / "script"
    script.write_bytes(b"#!/bin/sh\n" + binary())  # not ELF: not looked into
    assert read_file(script) is None
    assert read_file(tmp_path / "missing") is None


@pytest.mark.parametrize("name", ["umoci", "skopeo", "docker-registry"])
def test_a_real_go_binary(name: str) -> None:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (.ci/install --test installs it)")
    info = read_file(Path(found))
    assert info is not None and info.go_version.startswith("go1.")
    expected = {
        "umoci": "github.com/opencontainers/umoci/cmd/umoci",
        "skopeo": "github.com/containers/skopeo/cmd/skopeo",
        "docker-registry": "github.com/docker/distribution/cmd/registry",
    }[name]
    assert info.path == expected
