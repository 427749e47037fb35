"""Encryption at rest of credential fields and of the licence: AES-256-GCM under a key derived from the hub's
master key, each value bound to what it belongs to.

A sealed value is `SEALED_V1` + a random 12-byte nonce + the ciphertext. The associated data is the marker
followed by the value's context (`credential_context(id)`, `LICENSE_CONTEXT`): a value copied onto another row
fails to decrypt there. Values sealed before migration 0013 have no marker, no associated data, and a master key
derived the old way; `decrypt_legacy_fields` reads them only to re-encrypt them (`exekra.hub.credentials.reseal`).
"""

from __future__ import annotations

import os
import uuid
from functools import lru_cache

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SEALED_V1 = b"exk\x01"
"""The version marker that starts every value sealed since migration 0013."""
NONCE_BYTES = 12
LICENSE_CONTEXT = b"license"
_INFO = b"exekra-credentials"


class DecryptionFailed(Exception):
    """The stored bytes do not decrypt here: another secret key, another row's value, tampering, or a value in the
    format of before 0013 that was not re-encrypted."""


@lru_cache(maxsize=8)
def credentials_key(secret_key: bytes) -> bytes:
    """The 256-bit AES key for credentials, derived from the hub's master key with HKDF-SHA256."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret_key)


def credential_context(credential_id: uuid.UUID | str) -> bytes:
    """The associated data that binds a credential's fields to its id."""
    return b"credential:" + str(credential_id).encode()


def encrypt_fields(key: bytes, fields: dict[str, str], context: bytes) -> bytes:
    """The fields as JSON, sealed for `context` under a fresh random nonce."""
    nonce = os.urandom(NONCE_BYTES)
    return SEALED_V1 + nonce + AESGCM(key).encrypt(nonce, orjson.dumps(fields), SEALED_V1 + context)


def decrypt_fields(key: bytes, blob: bytes, context: bytes) -> dict[str, str]:
    """The fields sealed by `encrypt_fields` for `context`; DecryptionFailed otherwise."""
    if not blob.startswith(SEALED_V1):
        raise DecryptionFailed("the value is in the format of before migration 0013 and was not re-encrypted")
    sealed = blob[len(SEALED_V1) :]
    return _open(key, sealed, SEALED_V1 + context, "the value belongs to another row, or the secret key changed")


def decrypt_legacy_fields(key: bytes, blob: bytes) -> dict[str, str]:
    """The fields of a value sealed before migration 0013 (no marker, no associated data), to re-encrypt it."""
    return _open(key, blob, None, "the value does not decrypt with the secret key of before 0013")


def encrypt_legacy_fields(key: bytes, fields: dict[str, str]) -> bytes:
    """The fields sealed as before migration 0013, for its downgrade only."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, orjson.dumps(fields), None)


def _open(key: bytes, sealed: bytes, associated: bytes | None, failure: str) -> dict[str, str]:
    if len(sealed) <= NONCE_BYTES:
        raise DecryptionFailed("ciphertext too short")
    try:
        plain = AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], associated)
    except InvalidTag:
        raise DecryptionFailed(failure) from None
    fields: dict[str, str] = orjson.loads(plain)
    return fields
