"""Signing keys and signatures: PEM ECDSA P-256 keys (SEC 1 and PKCS #8) and cosign's
encrypted key (sealed here with PyNaCl, as cosign seals it), deterministic signatures
checked with cryptography's verifier, and every mistake one line that never shows the key."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from support import cosign_key

from doit_oci.rules.errors import UserError
from doit_oci.rules.sign import load_signer

PAYLOAD = b'{"critical":{"identity":{"docker-reference":"r.io/a"}}}'


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def pem(key: object, kind: str) -> bytes:
    form = {"sec1": serialization.PrivateFormat.TraditionalOpenSSL}.get(
        kind, serialization.PrivateFormat.PKCS8
    )
    return key.private_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.PEM, form, serialization.NoEncryption()
    )


def verify(key: ec.EllipticCurvePrivateKey, signature: str, data: bytes = PAYLOAD) -> None:
    key.public_key().verify(base64.b64decode(signature), data, ec.ECDSA(hashes.SHA256()))


@pytest.mark.parametrize("kind", ["sec1", "pkcs8"])
def test_a_pem_key_signs_deterministically(tmp_path: Path, kind: str) -> None:
    key = ec_key()
    path = tmp_path / "key.pem"
    path.write_bytes(pem(key, kind))
    signer = load_signer(path, "key.pem", {})
    signature = signer.sign(PAYLOAD)
    verify(key, signature)
    assert signer.sign(PAYLOAD) == signature  # RFC 6979: same key, same payload, same bytes
    with pytest.raises(InvalidSignature):
        verify(key, signature, PAYLOAD + b" ")
    with pytest.raises(InvalidSignature):
        verify(ec_key(), signature)
    assert b"BEGIN PUBLIC KEY" in signer.public_pem()


def test_cosigns_encrypted_key_with_its_password(tmp_path: Path) -> None:
    key = ec_key()
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path = tmp_path / "cosign.key"
    path.write_text(cosign_key(der, "hunter2"))
    signer = load_signer(path, "cosign.key", {"COSIGN_PASSWORD": "hunter2"})
    verify(key, signer.sign(PAYLOAD))
    for environ, message in (
        ({"COSIGN_PASSWORD": "wrong"}, "cannot decrypt it with COSIGN_PASSWORD"),
        ({}, "cosign's key needs its password; set COSIGN_PASSWORD"),
    ):
        with pytest.raises(UserError) as caught:
            load_signer(path, "cosign.key", environ)
        assert str(caught.value).startswith(f"cosign.key: signing key: {message}")
    tampered = tmp_path / "tampered.key"
    tampered.write_text(cosign_key(der, "x", claimed=1 << 20))
    with pytest.raises(UserError, match="unsupported encryption scrypt/nacl/secretbox 1048576"):
        load_signer(tampered, "tampered.key", {"COSIGN_PASSWORD": "x"})


def test_what_is_not_an_ecdsa_p256_private_key_is_refused(tmp_path: Path) -> None:
    cases = {
        "rsa.pem": pem(rsa.generate_private_key(public_exponent=65537, key_size=2048), "pkcs8"),
        "p384.pem": pem(ec.generate_private_key(ec.SECP384R1()), "pkcs8"),
        "public.pem": ec_key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        "text.pem": b"not a key at all\n",
    }
    messages = {
        "rsa.pem": "rsa.pem: signing key: not an ECDSA P-256 key",
        "p384.pem": "p384.pem: signing key: not an ECDSA P-256 key",
        "public.pem": "public.pem: signing key: a PUBLIC KEY, not a private key",
        "text.pem": "text.pem: signing key: not a PEM private key",
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(UserError) as caught:
            load_signer(path, name, {})
        text = str(caught.value)
        assert text.startswith(messages[name]), text
        assert "\n" not in text and "MII" not in text  # one line, nothing of the key
    with pytest.raises(UserError, match=r"missing\.pem: signing key: cannot read it"):
        load_signer(tmp_path / "missing.pem", "missing.pem", {})
