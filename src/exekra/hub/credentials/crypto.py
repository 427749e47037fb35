"""Encryption of credential fields at rest: AES-256-GCM with a key derived from the hub's secret key."""

from __future__ import annotations

import os
from functools import lru_cache

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE_BYTES = 12
_INFO = b"exekra-credentials"


class DecryptionFailed(Exception):
    """The stored bytes do not decrypt with this key (a changed secret key, or tampering)."""


@lru_cache(maxsize=8)
def credentials_key(secret_key: bytes) -> bytes:
    """The 256-bit AES key for credentials, derived from the hub's master key with HKDF-SHA256."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret_key)


def encrypt_fields(key: bytes, fields: dict[str, str]) -> bytes:
    """A fresh random nonce followed by the AES-GCM ciphertext of the fields as JSON."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, orjson.dumps(fields), None)


def decrypt_fields(key: bytes, blob: bytes) -> dict[str, str]:
    """The fields sealed by `encrypt_fields`; DecryptionFailed when the key or the bytes are wrong."""
    if len(blob) <= NONCE_BYTES:
        raise DecryptionFailed("ciphertext too short")
    try:
        plain = AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], None)
    except InvalidTag:
        raise DecryptionFailed("credential fields do not decrypt with the current secret key") from None
    fields: dict[str, str] = orjson.loads(plain)
    return fields
