"""Signing as cosign signs: ECDSA P-256 over SHA-256 of the simple-signing payload, the
signature DER-encoded, then base64. The key is a PEM private key (``EC PRIVATE KEY`` or
PKCS #8 ``PRIVATE KEY``) or cosign's own encrypted key (``ENCRYPTED SIGSTORE PRIVATE KEY``
or ``ENCRYPTED COSIGN PRIVATE KEY``: a JSON body whose PKCS #8 key is sealed with NaCl's
secretbox under a key scrypt derives from ``COSIGN_PASSWORD``, as go-securesystemslib's
``encrypted`` package makes it).

Signatures are deterministic (RFC 6979): the same key and payload give the same bytes, so
an unchanged image's signature is the one the registry holds. The key is read from its
file when signing, kept in memory only, never written and never printed: no error says
anything of it but its path.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from doit_oci.rules.errors import UserError

ENCRYPTED = ("ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY")
PLAIN = ("EC PRIVATE KEY", "PRIVATE KEY")
# the scrypt parameters go-securesystemslib accepts (legacy, standard, OWASP): no other,
# so that a tampered key cannot make us spend minutes of CPU
SCRYPT_PARAMETERS = ((32768, 8, 1), (65536, 8, 1), (131072, 8, 1))


@dataclass(frozen=True)
class Signer:
    """An ECDSA P-256 private key, loaded."""

    key: Any  # cryptography's EllipticCurvePrivateKey (imported only when signing)
    path: str

    def sign(self, payload: bytes) -> str:
        """The base64 DER signature of ``payload``, as cosign's annotation holds it."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        signature = self.key.sign(payload, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
        return base64.b64encode(signature).decode()

    def public_pem(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return bytes(
            self.key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )


def _fail(path: str, what: str, fix: str) -> UserError:
    return UserError(f"signing key: {what}", path, fix)


def pem_block(text: str, path: str) -> tuple[str, bytes]:
    """The type and body of the first PEM block of ``text``."""
    lines = [line.strip() for line in text.splitlines()]
    for i, line in enumerate(lines):
        if line.startswith("-----BEGIN ") and line.endswith("-----"):
            kind = line[len("-----BEGIN ") : -5]
            end = f"-----END {kind}-----"
            if end not in lines[i + 1 :]:
                break
            body = "".join(lines[i + 1 : lines.index(end, i + 1)])
            try:
                return kind, base64.b64decode(body, validate=True)
            except binascii.Error:
                break
    raise _fail(path, "not a PEM private key", "give a PEM ECDSA P-256 key, or cosign.key")


def decrypt_cosign(body: bytes, password: str, path: str) -> bytes:
    """The PKCS #8 DER key of cosign's encrypted key ``body``."""
    import hashlib

    try:
        sealed = json.loads(body)
        kdf, cipher = sealed["kdf"], sealed["cipher"]
        params = kdf["params"]
        n, r, p = int(params["N"]), int(params["r"]), int(params["p"])
        salt = base64.b64decode(kdf["salt"])
        nonce = base64.b64decode(cipher["nonce"])
        ciphertext = base64.b64decode(sealed["ciphertext"])
        names = (kdf["name"], cipher["name"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise _fail(path, "not a cosign key", "give the cosign.key cosign wrote") from None
    if names != ("scrypt", "nacl/secretbox") or (n, r, p) not in SCRYPT_PARAMETERS:
        raise _fail(
            path, f"unsupported encryption {names[0]}/{names[1]} {n},{r},{p}", "use cosign's"
        )
    key = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 << 20, dklen=32)
    from nacl.exceptions import CryptoError
    from nacl.secret import SecretBox

    try:
        return bytes(SecretBox(key).decrypt(ciphertext, nonce))
    except (CryptoError, ValueError):
        raise _fail(
            path, "cannot decrypt it with COSIGN_PASSWORD", "set COSIGN_PASSWORD to its password"
        ) from None


def load_signer(path: Path, shown: str, environ: Mapping[str, str]) -> Signer:
    """The key in ``path`` (``shown`` in messages); COSIGN_PASSWORD for cosign's."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not text"
        raise _fail(shown, f"cannot read it ({reason})", "give a readable key file") from None
    kind, body = pem_block(text, shown)
    if kind in ENCRYPTED:
        password = environ.get("COSIGN_PASSWORD")
        if password is None:
            raise _fail(shown, "cosign's key needs its password", "set COSIGN_PASSWORD")
        body = decrypt_cosign(body, password, shown)
    elif kind not in PLAIN:
        raise _fail(shown, f"a {kind}, not a private key", "give an ECDSA P-256 private key")
    try:  # SEC 1 or PKCS #8 DER: OpenSSL tells them apart
        key = serialization.load_der_private_key(body, password=None)
    except (ValueError, TypeError):
        raise _fail(shown, "not a readable private key", "give a PEM ECDSA P-256 key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise _fail(shown, "not an ECDSA P-256 key", "give an ECDSA P-256 key (cosign's kind)")
    return Signer(key, shown)
