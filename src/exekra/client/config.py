"""Where the SDK and the command line find the hub and the token.

Hub URL: the argument, else `EXEKRA_HUB_URL`, else the hub `exekra login` signed in to last, else
`http://127.0.0.1:4545`. Token: `EXEKRA_TOKEN`, else the token `exekra login` stored for that hub.
Logins are kept in `config.json` in the user's config directory (`EXEKRA_CONFIG_DIR` overrides it),
readable by the user only (mode 0600).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

DEFAULT_HUB_URL = "http://127.0.0.1:4545"


@dataclass(frozen=True)
class Connection:
    hub_url: str
    token: str | None


def config_path() -> Path:
    """The file logins are stored in."""
    directory = os.environ.get("EXEKRA_CONFIG_DIR") or platformdirs.user_config_dir("exekra", appauthor=False)
    return Path(directory) / "config.json"


def _normalise(url: str) -> str:
    return url.strip().rstrip("/")


def _load() -> dict[str, Any]:
    try:
        data = json.loads(config_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save(data: dict[str, Any]) -> Path:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
    os.chmod(temporary, 0o600)  # an existing file keeps its old mode through O_CREAT
    os.replace(temporary, path)
    return path


def resolve_connection(hub_url: str | None = None) -> Connection:
    """The hub URL and token to use (see the module docstring for the order)."""
    url = _normalise(hub_url or os.environ.get("EXEKRA_HUB_URL") or _load().get("current") or DEFAULT_HUB_URL)
    return Connection(url, os.environ.get("EXEKRA_TOKEN") or stored_token(url))


def stored_token(hub_url: str) -> str | None:
    """The token `exekra login` stored for `hub_url`, if any."""
    entry = _load().get("hubs", {}).get(_normalise(hub_url))
    token = entry.get("token") if isinstance(entry, dict) else None
    return token if isinstance(token, str) and token else None


def store_login(hub_url: str, token: str, email: str | None = None) -> Path:
    """Keep `token` for `hub_url` and make that hub the default one; returns the file written."""
    data = _load()
    url = _normalise(hub_url)
    data.setdefault("hubs", {})[url] = {"token": token, "email": email}
    data["current"] = url
    return _save(data)


def forget_login(hub_url: str) -> bool:
    """Remove the stored token of `hub_url`; whether there was one."""
    data = _load()
    removed = data.get("hubs", {}).pop(_normalise(hub_url), None) is not None
    if removed:
        _save(data)
    return removed
