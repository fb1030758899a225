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
