"""The licence file (SPEC §10.7): signed canonical JSON, checked against one trusted key; the `exekra license`
commands that make keys and issue files."""

from __future__ import annotations

import base64
import json
import stat
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from exekra import cli
from exekra.hub.errors import LicenseInvalid
from exekra.hub.license.envelope import (
    BUILT_IN_PUBLIC_KEY,
    LicenseTerms,
    PublicKeyUnusable,
    canonical_json,
    load_public_key,
    sign,
    verify,
)

TERMS = LicenseTerms(
    licensee="ACME Corp",
    email="admin@acme.example",
    max_runners=5,
    expires_at=date(2027, 12, 31),
    hub_id="hub_0123456789abcdef0123",
    edition="enterprise",
    trial=False,
    issued_at=datetime(2026, 12, 1, 9, 30, tzinfo=UTC),
)


def _raw(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def test_canonical_json_sorts_keys_without_spaces_in_utf8() -> None:
    assert canonical_json({"b": 1, "a": "é", "c": [1, 2]}) == '{"a":"é","b":1,"c":[1,2]}'.encode()


def test_a_signed_licence_verifies_with_its_key_and_keeps_every_term() -> None:
    key = Ed25519PrivateKey.generate()
    text = sign(TERMS, key)
    assert verify(text, key.public_key()) == TERMS
    signed = json.loads(text)["license"]
    assert set(signed) == {"licensee", "email", "maxRunners", "expiresAt", "hubId", "edition", "trial", "issuedAt"}
    assert signed["expiresAt"] == "2027-12-31" and signed["issuedAt"] == "2026-12-01T09:30:00Z"


def test_reformatting_the_file_keeps_it_valid() -> None:
    key = Ed25519PrivateKey.generate()
    envelope = json.loads(sign(TERMS, key))
    reordered = {"signature": envelope["signature"], "license": dict(reversed(list(envelope["license"].items())))}
    assert verify(json.dumps(reordered), key.public_key()) == TERMS


@pytest.mark.parametrize(
    ("field", "value"), [("maxRunners", 500), ("expiresAt", "2099-12-31"), ("hubId", "hub_other"), ("trial", True)]
)
def test_a_tampered_licence_is_invalid(field: str, value: object) -> None:
    key = Ed25519PrivateKey.generate()
    envelope = json.loads(sign(TERMS, key))
    envelope["license"][field] = value
    with pytest.raises(LicenseInvalid, match="signature does not verify"):
        verify(json.dumps(envelope), key.public_key())


def test_a_licence_signed_with_another_key_is_invalid() -> None:
    text = sign(TERMS, Ed25519PrivateKey.generate())
    with pytest.raises(LicenseInvalid, match="another key"):
        verify(text, Ed25519PrivateKey.generate().public_key())


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", 'no "license" object'),
        ('{"license": {}, "signature": "%%%"}', "signature does not verify"),
        ("x" * 20_000, "longer than"),
    ],
)
def test_what_is_no_licence_file_is_invalid(text: str, problem: str) -> None:
    with pytest.raises(LicenseInvalid, match=problem) as caught:
        verify(text, Ed25519PrivateKey.generate().public_key())
    assert caught.value.code == "license_invalid" and caught.value.status_code == 422


def test_signed_but_malformed_terms_are_invalid() -> None:
    key = Ed25519PrivateKey.generate()
    signed = {**TERMS.to_signed(), "maxRunners": 0}
    signature = base64.b64encode(key.sign(canonical_json(signed))).decode()
    with pytest.raises(LicenseInvalid, match="maxRunners"):
        verify(json.dumps({"license": signed, "signature": signature}), key.public_key())


def test_the_public_key_setting_takes_a_pem_path_or_base64_raw_bytes(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    pem = tmp_path / "authority.pub.pem"
    pem.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    text = sign(TERMS, key)
    assert verify(text, load_public_key(str(pem))) == TERMS
    assert verify(text, load_public_key(_raw(key))) == TERMS
    with pytest.raises(LicenseInvalid):
        verify(text, load_public_key(None))  # the built-in key did not sign it
    assert _raw_of(load_public_key(None)) == BUILT_IN_PUBLIC_KEY


def _raw_of(key: object) -> str:
    assert hasattr(key, "public_bytes")
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize("value", ["/nowhere/key.pem", "c2hvcnQ=", "not base64 at all!"])
def test_an_unusable_public_key_setting_is_named(value: str) -> None:
    with pytest.raises(PublicKeyUnusable, match="EXEKRA_LICENSE_PUBLIC_KEY"):
        load_public_key(value)


# --- exekra license keygen | issue ---------------------------------------------------------------------------


def test_keygen_then_issue_writes_a_licence_the_public_key_accepts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    private, public, out = tmp_path / "a.pem", tmp_path / "a.pub.pem", tmp_path / "acme.lic"
    assert cli.main(["license", "keygen", "--private-key", str(private), "--public-key", str(public)]) == 0
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    printed = capsys.readouterr().out
    raw = printed.split("EXEKRA_LICENSE_PUBLIC_KEY=", 1)[1].strip()
    argv = [
        "license", "issue", "--private-key", str(private), "--licensee", "ACME Corp",
        "--email", "admin@acme.example", "--max-runners", "3", "--expires-at", "2027-06-30",
        "--hub-id", "hub_abc", "--trial", "--out", str(out),
    ]  # fmt: skip
    assert cli.main(argv) == 0
    for key in (str(public), raw):
        terms = verify(out.read_text(), load_public_key(key))
        assert (terms.licensee, terms.max_runners, terms.expires_at) == ("ACME Corp", 3, date(2027, 6, 30))
        assert terms.trial is True and terms.hub_id == "hub_abc" and terms.edition == "enterprise"


def test_keygen_never_overwrites_a_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    private = tmp_path / "a.pem"
    private.write_text("precious")
    code = cli.main(["license", "keygen", "--private-key", str(private), "--public-key", str(tmp_path / "p.pem")])
    assert code == 2 and private.read_text() == "precious"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exists" in err and "Traceback" not in err
