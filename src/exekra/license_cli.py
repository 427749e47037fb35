"""`exekra license keygen | issue`: a licensing authority of one's own (tests, operators issuing their own).

Installing a licence is the hub's business (`POST /api/license`, or the dashboard's Licence page).
"""

from __future__ import annotations

import argparse
import base64
import os
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from exekra.cli_errors import UsageError
from exekra.cli_help import add_command, add_group

PUBLIC_KEY_ENV = {
    "EXEKRA_LICENSE_PUBLIC_KEY": "on the hub: the public key's PEM path (or its base64) replaces the built-in key",
}


def _keygen(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives import serialization

    from exekra.hub.license.envelope import new_key_pair

    private_path, public_path = Path(args.private_key), Path(args.public_key)
    for path in (private_path, public_path):
        if path.exists():
            raise UsageError(f"{path} exists: choose another file (a key is never overwritten)")
    private_pem, public_pem = new_key_pair()
    _write(private_path, private_pem, 0o600)
    _write(public_path, public_pem, 0o644)
    key = serialization.load_pem_public_key(public_pem)
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    print(f"private key: {private_path} (keep it secret)\npublic key: {public_path}")
    print(f"EXEKRA_LICENSE_PUBLIC_KEY={base64.b64encode(raw).decode()}")
    return 0


def _issue(args: argparse.Namespace) -> int:
    from exekra.hub.license.envelope import LicenseTerms, load_private_key, sign

    try:
        pem = Path(args.private_key).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the private key {args.private_key}: {exc.strerror or exc}") from None
    try:
        private_key = load_private_key(pem)
    except (ValueError, TypeError):
        raise UsageError(f"{args.private_key} is not an Ed25519 private key in PEM (`exekra license keygen`)") from None
    if "@" not in args.email:
        raise UsageError(f"--email: not an email address: {args.email!r}")
    terms = LicenseTerms(
        licensee=args.licensee,
        email=args.email,
        max_runners=args.max_runners,
        expires_at=args.expires_at,
        hub_id=args.hub_id,
        edition=args.edition,
        trial=args.trial,
        issued_at=datetime.now(UTC).replace(microsecond=0),
    )
    _write(Path(args.out), sign(terms, private_key).encode(), 0o644)
    kind = "trial licence" if args.trial else "licence"
    print(f"{kind} for {args.licensee} ({args.max_runners} runners, until {args.expires_at}) written to {args.out}")
    return 0


def _write(path: Path, content: bytes, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text!r}") from None


def _runner_count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return int(text)


def _non_empty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text.strip()


def add_license_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """`exekra license keygen` and `exekra license issue`."""
    group = add_group(commands, "license", "make licensing keys and issue licence files")
    license_commands = group.add_subparsers(dest="license_command", required=True)

    keygen = add_command(
        license_commands,
        "keygen",
        summary="write a new Ed25519 key pair in PEM",
        description=(
            "Write a new Ed25519 key pair in PEM: the private key (mode 0600) signs licences with `exekra license "
            "issue`; hubs that should trust them get the public key in EXEKRA_LICENSE_PUBLIC_KEY (its path, or "
            "the base64 line printed). Existing files are never overwritten."
        ),
        env=PUBLIC_KEY_ENV,
        examples=["exekra license keygen --private-key authority.pem --public-key authority.pub.pem"],
    )
    keygen.add_argument("--private-key", required=True, metavar="FILE", help="where to write the private key")
    keygen.add_argument("--public-key", required=True, metavar="FILE", help="where to write the public key")
    keygen.set_defaults(func=_keygen)

    issue = add_command(
        license_commands,
        "issue",
        summary="sign a licence file (.lic) for one hub",
        description=(
            "Sign a licence for the hub whose id is --hub-id (shown on its Licence page and by GET /api/license) "
            "and write it to --out. The hub accepts it only if its email is one of its ADMINs' and its public key "
            "(EXEKRA_LICENSE_PUBLIC_KEY) matches --private-key. The licence is in force until the end of "
            "--expires-at (UTC)."
        ),
        env=PUBLIC_KEY_ENV,
        examples=[
            "exekra license issue --private-key authority.pem --licensee 'ACME Corp' --email admin@acme.example "
            "--max-runners 10 --expires-at 2027-12-31 --hub-id hub_0123456789abcdef0123 --out acme.lic",
        ],
    )
    issue.add_argument("--private-key", required=True, metavar="FILE", help="the authority's private key (PEM)")
    issue.add_argument("--licensee", required=True, type=_non_empty, metavar="NAME", help="who the licence is for")
    issue.add_argument("--email", required=True, metavar="EMAIL", help="an ADMIN's email on the hub")
    issue.add_argument("--max-runners", required=True, type=_runner_count, metavar="N", help="runners allowed")
    issue.add_argument("--expires-at", required=True, type=_day, metavar="YYYY-MM-DD", help="last day in force")
    issue.add_argument("--hub-id", required=True, type=_non_empty, metavar="ID", help="the hub's id")
    issue.add_argument("--edition", default="enterprise", type=_non_empty, help="edition name (enterprise)")
    issue.add_argument("--trial", action="store_true", help="mark it a trial licence")
    issue.add_argument("--out", required=True, metavar="FILE", help="where to write the .lic file")
    issue.set_defaults(func=_issue)
