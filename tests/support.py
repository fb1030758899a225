"""Helpers the tests share: workspaces holding the bundled example, doit runs as a user
makes them, and what a build left in out/ (as doit's own tests/support.py). Imported by
name (``from support import doit``); conftest.py holds only fixtures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_FILES = ("dodo.py", "Makefile", "example", "plans")


def copy_example(target: Path) -> Path:
    """A workspace holding the bundled example, as a user's checkout would."""
    target.mkdir(parents=True, exist_ok=True)
    for name in EXAMPLE_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, target / name)
        else:
            shutil.copy2(source, target / name)
    return target


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    @property
    def executed(self) -> list[str]:
        """The tasks doit ran, in order (doit prints ".  <task>" for each)."""
        return [line[3:].strip() for line in self.out.splitlines() if line.startswith(".  ")]

    @property
    def text(self) -> str:
        return self.out + self.err


def doit(
    workspace: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    dodo: Path | None = None,
    timeout: float = 300,
) -> Run:
    """Run ``doit -f <dodo> -d <workspace> args...`` as a user would, in a subprocess."""
    full_env = dict(os.environ)
    for name in (
        "PLAN",
        "HUB",
        "HUBS",
        "TAG",
        "TAGS",
        "DOCKER_TARGETS",
        "DOCKER_ARCHITECTURES",
        "SKIP_MAKE",
        "SOURCE_DATE_EPOCH",
        "DOIT_OCI_CACHE",
        "CACHE_REPO",
        "PUSH",
        "DOCKER_BUILD_VARIANTS",
        "INCLUDE_UNTAGGED_DEFAULT",
        "INSECURE_REGISTRIES",
        "CI",
        "REGISTRY_DEADLINE",
        "ISTIO_DOCKER_QEMU",
        "COMPRESSION",
        "DEBUG_IMAGE",
        "LOAD",
        "LOAD_RUNTIME",
        "LOAD_PLATFORM",
        "PROGRESS",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ):
        full_env.pop(name, None)
    full_env["PYTHONPATH"] = str(REPO)
    full_env.update(env or {})
    command = [
        sys.executable,
        "-m",
        "doit",
        "-f",
        str(dodo or workspace / "dodo.py"),
        "-d",
        str(workspace),
        *args,
    ]
    result = subprocess.run(
        command,
        cwd=cwd or workspace,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Run(result.returncode, result.stdout, result.stderr)


def index_of(workspace: Path) -> dict[str, str]:
    """ref name -> digest of out/oci/index.json."""
    index = json.loads((workspace / "out" / "oci" / "index.json").read_text())
    return {
        m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
        for m in index["manifests"]
    }


def snapshot(root: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file under ``root``: (mtime_ns, size, content) by relative path."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            st = path.stat()
            out[str(path.relative_to(root))] = (st.st_mtime_ns, st.st_size, path.read_bytes())
    return out


# -- small base images in a registry -------------------------------------------------


@dataclass(frozen=True)
class Pushed:
    """An image pushed by ``push_base``: the digest its tag points at, and per platform
    the manifest digest (``top`` is that manifest's when there is no index)."""

    reference: str
    top: str
    manifests: dict[str, str]


def _tar(files: Mapping[str, bytes]) -> bytes:
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name in sorted({str(Path(path).parent) for path in files} - {"."}):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            archive.addfile(info)
        for path, data in sorted(files.items()):
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def push_base(
    host: str,
    repository: str,
    tag: str,
    platforms: tuple[str, ...] = ("linux/amd64",),
    note: str = "",
    attestation: bool = False,
) -> Pushed:
    """Push a small image (one layer: /etc/passwd and /srv/base.txt naming the platform and
    ``note``) to ``host/repository:tag`` with plain HTTP requests: an index over
    ``platforms`` when there are several (or an ``attestation`` entry, unknown/unknown, as
    BuildKit adds), else one manifest. Independent of doit-oci's own client."""
    import hashlib

    import httpx

    def digest(data: bytes) -> str:
        return "sha256:" + hashlib.sha256(data).hexdigest()

    def blob(data: bytes) -> dict[str, object]:
        start = httpx.post(f"http://{host}/v2/{repository}/blobs/uploads/")
        assert start.status_code == 202, start.text
        location = str(httpx.URL(f"http://{host}").join(start.headers["location"]))
        separator = "&" if "?" in location else "?"
        done = httpx.put(f"{location}{separator}digest={digest(data)}", content=data)
        assert done.status_code == 201, done.text
        return {"digest": digest(data), "size": len(data)}

    def manifest(document: dict[str, object], media_type: str, reference: str) -> str:
        data = json.dumps(document, sort_keys=True).encode()
        answer = httpx.put(
            f"http://{host}/v2/{repository}/manifests/{reference}",
            content=data,
            headers={"Content-Type": media_type},
        )
        assert answer.status_code == 201, answer.text
        return digest(data)

    oci = "application/vnd.oci.image."
    entries, manifests = [], {}
    for platform in platforms:
        os_name, arch = platform.split("/")[:2]
        layer = _tar(
            {
                "etc/passwd": b"root:x:0:0::/:/bin/sh\nbase:x:1000:1000::/:/bin/sh\n",
                "srv/base.txt": f"{platform} {note}\n".encode(),
            }
        )
        config = json.dumps(
            {
                "architecture": arch,
                "os": os_name,
                "config": {"Env": ["PATH=/bin", f"BASE_NOTE={note}"]},
                "rootfs": {"type": "layers", "diff_ids": [digest(layer)]},
            }
        ).encode()
        document = {
            "schemaVersion": 2,
            "mediaType": oci + "manifest.v1+json",
            "config": {"mediaType": oci + "config.v1+json", **blob(config)},
            "layers": [{"mediaType": oci + "layer.v1.tar", **blob(layer)}],
        }
        data = json.dumps(document, sort_keys=True).encode()
        manifests[platform] = manifest(document, oci + "manifest.v1+json", digest(data))
        entries.append(
            {
                "mediaType": oci + "manifest.v1+json",
                "digest": manifests[platform],
                "size": len(data),
                "platform": {"architecture": arch, "os": os_name},
            }
        )
    if len(platforms) == 1 and not attestation:
        top = manifest(document, oci + "manifest.v1+json", tag)
        return Pushed(f"{host}/{repository}:{tag}", top, manifests)
    if attestation:
        statement = json.dumps({"predicateType": "https://spdx.dev/Document"}).encode()
        document = {
            "schemaVersion": 2,
            "mediaType": oci + "manifest.v1+json",
            "config": {"mediaType": oci + "config.v1+json", **blob(b"{}")},
            "layers": [{"mediaType": "application/vnd.in-toto+json", **blob(statement)}],
        }
        data = json.dumps(document, sort_keys=True).encode()
        entries.append(
            {
                "mediaType": oci + "manifest.v1+json",
                "digest": manifest(document, oci + "manifest.v1+json", digest(data)),
                "size": len(data),
                "platform": {"architecture": "unknown", "os": "unknown"},
                "annotations": {
                    "vnd.docker.reference.digest": entries[0]["digest"],
                    "vnd.docker.reference.type": "attestation-manifest",
                },
            }
        )
    index = {"schemaVersion": 2, "mediaType": oci + "index.v1+json", "manifests": entries}
    top = manifest(index, oci + "index.v1+json", tag)
    return Pushed(f"{host}/{repository}:{tag}", top, manifests)


def cosign_key(pkcs8_der: bytes, password: str, n: int = 32768, claimed: int = 0) -> str:
    """A private key as ``cosign generate-key-pair`` writes it: PKCS #8 sealed with NaCl's
    secretbox under scrypt(password) (go-securesystemslib's ``encrypted`` format), made
    here with PyNaCl and hashlib, not with the code under test. ``claimed`` writes another
    scrypt N in it than the one used (a tampered key)."""
    import base64
    import hashlib

    from nacl.secret import SecretBox
    from nacl.utils import random

    salt, nonce = random(32), random(24)
    key = hashlib.scrypt(password.encode(), salt=salt, n=n, r=8, p=1, maxmem=256 << 20, dklen=32)
    sealed = SecretBox(key).encrypt(pkcs8_der, nonce).ciphertext
    body = {
        "kdf": {
            "name": "scrypt",
            "params": {"N": claimed or n, "r": 8, "p": 1},
            "salt": base64.b64encode(salt).decode(),
        },
        "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
        "ciphertext": base64.b64encode(sealed).decode(),
    }
    text = base64.encodebytes(json.dumps(body).encode()).decode()
    kind = "ENCRYPTED SIGSTORE PRIVATE KEY"
    return f"-----BEGIN {kind}-----\n{text}-----END {kind}-----\n"
