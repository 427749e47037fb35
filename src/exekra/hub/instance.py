"""This hub process's identity, reported by `GET /api/health` as `instance` and named in the leader's log lines.

`<host>:<pid>:<random>`, made once per process (uvicorn starts each worker as a fresh interpreter, so each worker
has its own), after `EXEKRA_INSTANCE_PREFIX` and a dash when that is set: `exekra up` sets it to recognise the hub
it started. It fits PostgreSQL's 63-character `application_name`, where the leader lease shows it.
"""

from __future__ import annotations

import os
import secrets
import socket

MAX_HOST_CHARS = 24
_PROCESS_ID = f"{socket.gethostname()[:MAX_HOST_CHARS]}:{os.getpid()}:{secrets.token_hex(4)}"


def instance_id(prefix: str = "") -> str:
    """`<prefix>-<host>:<pid>:<random>` for this process, or without the prefix when there is none."""
    return f"{prefix}-{_PROCESS_ID}" if prefix else _PROCESS_ID
