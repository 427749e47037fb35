"""Settings: the secret key file the hub's worker processes create together on first start."""

from __future__ import annotations

import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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
