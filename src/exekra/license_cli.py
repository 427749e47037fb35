"""`exekra license keygen | issue`: a licensing authority of one's own (tests, operators issuing their own);
`exekra license show | install`: a hub's licence, through its API (`exekra.client`).
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
from exekra.client.models import License
from exekra.clientcli.common import EXIT_OK, client_command, client_for, command, print_json

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


@command
def _show(args: argparse.Namespace) -> int:
    with client_for(args) as hub:
        licence = hub.license()
    _print_license(licence, args.json)
    return EXIT_OK


@command
def _install(args: argparse.Namespace) -> int:
    try:
        text = Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the licence file {args.file}: {getattr(exc, 'strerror', None) or exc}") from None
    with client_for(args) as hub:
        licence = hub.install_license(text)
    _print_license(licence, args.json)
    return EXIT_OK


def _print_license(licence: License, as_json: bool) -> None:
    if as_json:
        print_json({"license": licence})
        return
    print(f"hub id: {licence.hub_id}")
    if licence.status == "community":
        print(f"community edition: no licence, no runner cap ({licence.runners} runners registered)")
        return
    trial = " (trial)" if licence.trial else ""
    print(f"status: {licence.status}{trial}")
    if licence.licensee is not None:
        print(f"licensee: {licence.licensee} <{licence.email}>, {licence.edition}")
        print(f"runners: {licence.runners} of {licence.max_runners}")
        print(f"expires: {licence.expires_at} ({licence.days_left} days left)")
    if licence.problem:
        print(f"problem: {licence.problem}")


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
    """`exekra license show | install | keygen | issue`."""
    group = add_group(commands, "license", "a hub's licence; licensing keys and licence files")
    license_commands = group.add_subparsers(dest="license_command", required=True)

    show = client_command(
        license_commands,
        "show",
        "the hub's licence, or community mode, and its hub id",
        ["exekra license show", "exekra license show --json"],
        "The hub's licence: status (active, expired, community), licensee, runners registered of the maximum, "
        "expiry and days left, and the hub id a licence must be issued for (any signed-in user).",
    )
    show.set_defaults(func=_show)

    install = client_command(
        license_commands,
        "install",
        "install a .lic file on the hub (ADMIN)",
        ["exekra license install acme.lic"],
        "Install a licence file on the hub (ADMIN) in place of any other; it takes effect at once in every hub "
        "process. A refusal says why: not a licence, another key, another hub id, no ADMIN with its email.",
    )
    install.add_argument("file", help="the .lic file")
    install.set_defaults(func=_install)

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
