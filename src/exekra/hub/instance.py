"""This hub process's identity, reported by `GET /api/health` as `instance`.

A random id made once per process (uvicorn starts each worker as a fresh interpreter, so each worker has its
own), after `EXEKRA_INSTANCE_PREFIX` when that is set: `exekra up` sets it to recognise the hub it started.
"""

from __future__ import annotations

import secrets

_PROCESS_ID = secrets.token_hex(6)


def instance_id(prefix: str = "") -> str:
    """`<prefix>-<random>` for this process, or just the random part without a prefix."""
    return f"{prefix}-{_PROCESS_ID}" if prefix else _PROCESS_ID
