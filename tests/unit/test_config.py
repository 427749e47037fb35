"""Settings: the master key, from EXEKRA_SECRET_KEY (32 bytes in base64, or a passphrase stretched with scrypt)
or from the key file the hub's worker processes create together on first start."""

from __future__ import annotations

import base64
import hashlib
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from exekra.cli_errors import settings_problems
from exekra.config import SCRYPT_N, SCRYPT_P, SCRYPT_R, SCRYPT_SALT, SecretKeyError, Settings

STARTING_TOGETHER = 8


def test_processes_starting_together_all_read_the_one_key_file_they_created(tmp_path: Path) -> None:
    home = tmp_path / "home"
    start = threading.Barrier(STARTING_TOGETHER)

    def resolve(_: int) -> bytes:
        start.wait()
        return Settings(home=home, secret_key=None).resolve_secret_key()

    with ThreadPoolExecutor(STARTING_TOGETHER) as pool:
        keys = set(pool.map(resolve, range(STARTING_TOGETHER)))

    assert len(keys) == 1
    key = keys.pop()
    assert len(key) == 32
    assert base64.b64decode((home / "secret.key").read_bytes().strip(), validate=True) == key  # 32 random bytes, base64
    assert [p.name for p in home.iterdir()] == ["secret.key"]  # no temporary file left behind
    assert stat.S_IMODE((home / "secret.key").stat().st_mode) == 0o600


def test_a_key_file_written_before_0013_with_the_raw_bytes_is_kept(tmp_path: Path) -> None:
    (tmp_path / "secret.key").write_bytes(b"k" * 32)
    assert Settings(home=tmp_path, secret_key=None).resolve_secret_key() == b"k" * 32


def test_trusted_proxies_are_read_as_a_comma_separated_list_of_addresses_and_networks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().trusted_proxies == []
    monkeypatch.setenv("EXEKRA_TRUSTED_PROXIES", " 10.0.0.5, 192.168.0.0/16,,::1 ")
    assert Settings().trusted_proxies == ["10.0.0.5/32", "192.168.0.0/16", "::1/128"]


def test_a_trusted_proxy_that_is_no_address_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXEKRA_TRUSTED_PROXIES", "10.0.0.5,proxy.local")
    with pytest.raises(ValidationError) as refused:
        Settings()
    line = settings_problems(refused.value)
    assert "\n" not in line
    assert "EXEKRA_TRUSTED_PROXIES" in line and "'proxy.local' is not an IP address or network" in line


def test_a_damaged_key_file_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "secret.key").write_bytes(b"half a key")
    with pytest.raises(SecretKeyError, match="does not hold a key"):
        Settings(home=tmp_path, secret_key=None).resolve_secret_key()


def test_32_bytes_in_base64_are_the_master_key_as_they_are(tmp_path: Path) -> None:
    raw = bytes(range(32))
    assert Settings(home=tmp_path, secret_key=base64.b64encode(raw).decode()).resolve_secret_key() == raw
    assert not (tmp_path / "secret.key").exists()


def test_a_passphrase_goes_through_scrypt_with_the_documented_salt(tmp_path: Path) -> None:
    passphrase = "correct horse battery staple"
    expected = hashlib.scrypt(
        passphrase.encode(), salt=SCRYPT_SALT, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=2**28, dklen=32
    )
    assert hashlib.sha256(b"exekra secret key v1").digest() == SCRYPT_SALT
    assert SCRYPT_N >= 2**17
    key = Settings(home=tmp_path, secret_key=passphrase).resolve_secret_key()
    assert key == expected and key != hashlib.sha256(passphrase.encode()).digest()
    # Base64 of anything but 32 bytes is a passphrase too.
    sixteen = base64.b64encode(b"s" * 16).decode()
    assert Settings(home=tmp_path, secret_key=sixteen).resolve_secret_key() != b"s" * 16


@pytest.mark.parametrize("short", ["test-secret-key", "up-test", "x"])
def test_a_passphrase_shorter_than_16_characters_is_refused(tmp_path: Path, short: str) -> None:
    with pytest.raises(SecretKeyError, match=f"passphrase of {len(short)} characters: use at least 16"):
        Settings(home=tmp_path, secret_key=short).resolve_secret_key()


def test_the_keys_of_before_0013_are_derived_for_re_encryption_without_making_a_key_file(tmp_path: Path) -> None:
    assert Settings(home=tmp_path, secret_key=None).existing_secret_keys() is None
    assert not (tmp_path / "secret.key").exists()

    raw = base64.b64encode(bytes(range(32))).decode()
    assert Settings(home=tmp_path, secret_key=raw).existing_secret_keys() == (
        bytes(range(32)),
        hashlib.sha256(raw.encode()).digest(),
    )
    changed = Settings(home=tmp_path, secret_key=raw, previous_secret_key="short")
    assert changed.existing_secret_keys() == (bytes(range(32)), hashlib.sha256(b"short").digest())

    (tmp_path / "secret.key").write_bytes(b"k" * 32)
    assert Settings(home=tmp_path, secret_key=None).existing_secret_keys() == (b"k" * 32, b"k" * 32)


def test_a_libpq_multi_host_database_url_reaches_sqlalchemy_and_asyncpg_with_every_host() -> None:
    settings = Settings(
        database_url="postgresql://exekra:s3cret@db1:5432,db2/exekra?target_session_attrs=read-write&connection_limit=7"
    )

    url = make_url(settings.sqlalchemy_url)
    _, connect = create_async_engine(url).dialect.create_connect_args(url)

    assert connect == {
        "user": "exekra",
        "password": "s3cret",
        "database": "exekra",
        "host": ["db1", "db2"],
        "port": [5432, 5432],
        "target_session_attrs": "read-write",
    }
    assert settings.pool_size == 7
    # asyncpg's own connections (the listener, the leader lease) take the libpq form as it is.
    assert settings.asyncpg_dsn == "postgresql://exekra:s3cret@db1:5432,db2/exekra?target_session_attrs=read-write"


def test_a_single_host_database_url_keeps_its_form() -> None:
    settings = Settings(database_url="postgres://exekra:pw@db:6432/exekra?connection_limit=3&sslmode=require")
    assert settings.sqlalchemy_url == "postgresql+asyncpg://exekra:pw@db:6432/exekra?sslmode=require"
    assert settings.asyncpg_dsn == "postgresql://exekra:pw@db:6432/exekra?sslmode=require"


def test_a_malformed_redis_url_is_refused_in_one_line_without_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis+sentinel://:hunter2-secret@s1:26379,s2:26379")
    with pytest.raises(ValidationError) as caught:
        Settings()
    problem = settings_problems(caught.value)
    assert problem == "invalid settings: REDIS_URL: redis+sentinel:// needs the master's name: …:26379/mymaster[/db]"
    assert "hunter2" not in problem
