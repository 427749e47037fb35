"""Settings: the secret key file the hub's worker processes create together on first start."""

from __future__ import annotations

import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydantic import ValidationError

from exekra.cli_errors import settings_problems
from exekra.config import Settings

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
    assert len(keys.pop()) == 32
    assert [p.name for p in home.iterdir()] == ["secret.key"]  # no temporary file left behind
    assert stat.S_IMODE((home / "secret.key").stat().st_mode) == 0o600


def test_an_existing_key_file_is_kept(tmp_path: Path) -> None:
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
