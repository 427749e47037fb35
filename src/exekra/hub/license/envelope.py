"""The licence file: an Ed25519 signature over the canonical JSON of the licence terms (SPEC §10.7).

A `.lic` file is JSON: `{"license": {terms}, "signature": "<base64 of the 64-byte signature>"}`. The signed
bytes are the terms as canonical JSON (sorted keys, no spaces, UTF-8), so the file may be re-indented or
its keys reordered without breaking it. Nothing here touches the database: the hub (`service.py`) and the
`exekra license` commands share it.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from exekra.hub.errors import LicenseInvalid

BUILT_IN_PUBLIC_KEY = "GddvtFS6WHo50AGjX9cuSPMwnaiWjXAwnzkEAYB9dOs="
"""The licensing authority's public key (base64 of the raw 32 bytes); `EXEKRA_LICENSE_PUBLIC_KEY` replaces it."""

MAX_FILE_CHARS = 16_384
_FIELDS = ("licensee", "email", "maxRunners", "expiresAt", "hubId", "edition", "trial", "issuedAt")


class PublicKeyUnusable(ValueError):
    """`EXEKRA_LICENSE_PUBLIC_KEY` names no usable Ed25519 public key."""


@dataclass(frozen=True)
class LicenseTerms:
    """What a licence grants, as signed."""

    licensee: str
    email: str
    max_runners: int
    expires_at: date  # the last day the licence is in force (UTC)
    hub_id: str
    edition: str
    trial: bool
    issued_at: datetime

    def to_signed(self) -> dict[str, Any]:
        """The signed object, with the contract's names."""
        return {
            "licensee": self.licensee,
            "email": self.email,
            "maxRunners": self.max_runners,
            "expiresAt": self.expires_at.isoformat(),
            "hubId": self.hub_id,
            "edition": self.edition,
            "trial": self.trial,
            "issuedAt": self.issued_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


def canonical_json(value: dict[str, Any]) -> bytes:
    """Sorted keys, no spaces, UTF-8: the bytes a signature covers."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(terms: LicenseTerms, private_key: Ed25519PrivateKey) -> str:
    """The text of a `.lic` file for these terms."""
    signed = terms.to_signed()
    signature = private_key.sign(canonical_json(signed))
    envelope = {"license": signed, "signature": base64.b64encode(signature).decode()}
    return json.dumps(envelope, indent=2, ensure_ascii=False) + "\n"


def verify(text: str, public_key: Ed25519PublicKey) -> LicenseTerms:
    """The terms of a `.lic` file whose signature `public_key` accepts; LicenseInvalid otherwise."""
    if len(text) > MAX_FILE_CHARS:
        raise LicenseInvalid(f"not a licence file: longer than {MAX_FILE_CHARS} characters")
    try:
        envelope = json.loads(text)
    except ValueError:
        raise LicenseInvalid("not a licence file: it is not JSON") from None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("license"), dict):
        raise LicenseInvalid('not a licence file: no "license" object')
    signed: dict[str, Any] = envelope["license"]
    try:
        signature = base64.b64decode(str(envelope.get("signature", "")), validate=True)
        public_key.verify(signature, canonical_json(signed))
    except (binascii.Error, InvalidSignature, ValueError):
        raise LicenseInvalid(
            "the licence's signature does not verify: the file was changed, or it was issued for another key"
        ) from None
    return _terms(signed)


def _terms(signed: dict[str, Any]) -> LicenseTerms:
    missing = [name for name in _FIELDS if name not in signed]
    if missing:
        raise LicenseInvalid(f"the licence lacks {', '.join(missing)}")
    try:
        terms = LicenseTerms(
            licensee=_text(signed["licensee"]),
            email=_text(signed["email"]),
            max_runners=_count(signed["maxRunners"]),
            expires_at=date.fromisoformat(signed["expiresAt"]),
            hub_id=_text(signed["hubId"]),
            edition=_text(signed["edition"]),
            trial=_flag(signed["trial"]),
            issued_at=datetime.fromisoformat(signed["issuedAt"]),
        )
    except (TypeError, ValueError) as exc:
        raise LicenseInvalid(f"the licence's terms are malformed: {exc}") from None
    return terms


def _text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected text, got {value!r}")
    return value


def _count(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"maxRunners must be a whole number of at least 1, not {value!r}")
    return value


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"trial must be true or false, not {value!r}")
    return value


# --- keys ----------------------------------------------------------------------------------------------------


def new_key_pair() -> tuple[bytes, bytes]:
    """A fresh Ed25519 key pair as PEM: (private key in PKCS#8, public key in SubjectPublicKeyInfo)."""
    private_key = Ed25519PrivateKey.generate()
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    """An Ed25519 private key from PEM; ValueError for anything else."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("not an Ed25519 private key")
    return key


def load_public_key(setting: str | None) -> Ed25519PublicKey:
    """The key licences are checked against: `EXEKRA_LICENSE_PUBLIC_KEY` (a PEM file's path, or base64 of the
    raw 32 bytes), else the built-in key. PublicKeyUnusable names what is wrong with the setting."""
    value = (setting or BUILT_IN_PUBLIC_KEY).strip()
    path = Path(value).expanduser()
    if path.is_file():
        try:
            key = serialization.load_pem_public_key(path.read_bytes())
        except (ValueError, TypeError, OSError):
            key = None
        if not isinstance(key, Ed25519PublicKey):
            raise PublicKeyUnusable(f"EXEKRA_LICENSE_PUBLIC_KEY: {path} holds no Ed25519 public key in PEM")
        return key
    try:
        raw = base64.b64decode(value, validate=True)
    except binascii.Error:
        raw = b""
    if len(raw) != 32:
        raise PublicKeyUnusable(
            "EXEKRA_LICENSE_PUBLIC_KEY: neither a readable PEM file nor base64 of a 32-byte Ed25519 public key"
        )
    return Ed25519PublicKey.from_public_bytes(raw)
