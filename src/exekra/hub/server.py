"""Serving the hub over HTTP: uvicorn in this process, or `EXEKRA_HUB_WORKERS` worker processes on one port.

With several workers, this process becomes uvicorn's supervisor: it binds the socket once, starts the
workers with the `spawn` method, replaces a worker that dies, and stops them all on SIGINT or SIGTERM.
Each worker is a whole hub (connection pool, dispatcher, wake-up listener, scheduler, maintenance loop)
built from the environment by `app_from_environment`; the hub already coordinates several processes on one
database (docs/operations.md, "Scaling a hub over cores").
"""

from __future__ import annotations

import logging
import os
import signal
import ssl
import threading
import time
from typing import TYPE_CHECKING, Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from exekra.config import Settings, get_settings
from exekra.hub.http_protocol import LeanHttpToolsProtocol
from exekra.hub.observability import JsonFormatter

if TYPE_CHECKING:
    from fastapi import FastAPI

APP_FACTORY = "exekra.hub.server:app_from_environment"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
PARENT_CHECK_SECONDS = 1.0

log = logging.getLogger(__name__)

# How uvicorn serves the hub's application wherever it runs it: uvicorn's httptools protocol made lean per
# connection (`http_protocol`).
APP_OPTIONS: dict[str, Any] = {"http": LeanHttpToolsProtocol}


def configure_logging(settings: Settings) -> None:
    """The hub's log lines, in this process: JSON objects with `EXEKRA_LOG_JSON` (`observability.JsonFormatter`),
    else text. uvicorn's own loggers go through the same handler (it is given no logging set-up of its own);
    the access log is the hub's (`observability.RequestTelemetry`), not uvicorn's."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if settings.log_json else logging.Formatter(LOG_FORMAT))
    logging.basicConfig(level=settings.log_level, handlers=[handler], force=True)


def serve(settings: Settings) -> int:
    """Serve the hub until SIGINT or SIGTERM; returns the exit status (3 when the hub failed to start)."""
    configure_logging(settings)
    if settings.tls_cert:
        # uvicorn loads the files in each worker, and would replace a worker failing on them for ever.
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(settings.tls_cert, settings.tls_key)
        except (OSError, ssl.SSLError) as exc:
            log.error("cannot load the TLS certificate %s and key %s: %s", settings.tls_cert, settings.tls_key, exc)
            return STARTUP_FAILURE
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level.lower(),
        "log_config": None,
        "access_log": False,
        "ssl_certfile": str(settings.tls_cert) if settings.tls_cert else None,
        "ssl_keyfile": str(settings.tls_key) if settings.tls_key else None,
        "timeout_graceful_shutdown": 5,
        # X-Forwarded-* are believed only from EXEKRA_TRUSTED_PROXIES, by the app itself (create_app); uvicorn
        # would otherwise believe them from 127.0.0.1 (or FORWARDED_ALLOW_IPS).
        "proxy_headers": False,
        **APP_OPTIONS,
    }
    if settings.hub_workers == 1:
        from exekra.hub.app import create_app

        uvicorn.run(create_app(settings, owns_process=True), **options)  # exits with 3 itself when start-up fails
        return 0
    # Workers are fresh interpreters that read the environment: overrides from the command line go there.
    os.environ["EXEKRA_HOST"] = settings.host
    os.environ["EXEKRA_PORT"] = str(settings.port)
    os.environ["EXEKRA_LOG_JSON"] = str(settings.log_json).lower()
    os.environ["EXEKRA_ACCESS_LOG"] = str(settings.access_log).lower()
    config = uvicorn.Config(APP_FACTORY, factory=True, workers=settings.hub_workers, **options)
    supervisor = Multiprocess(config, sockets=[config.bind_socket()])
    supervisor.run()  # returns when told to stop, or when a worker failed to start (then it stops the rest)
    failed = any(worker.exitcode == STARTUP_FAILURE for worker in supervisor.processes)
    return STARTUP_FAILURE if failed else 0


def app_from_environment() -> FastAPI:
    """The application of one worker process: uvicorn calls this factory in each worker it starts."""
    from exekra.hub.app import create_app

    settings = get_settings()
    configure_logging(settings)
    _stop_when_orphaned()
    return create_app(settings, owns_process=True)


def _stop_when_orphaned() -> None:
    """Shut this worker down gracefully when its supervisor is gone (killed with SIGKILL, crashed).

    uvicorn's workers would otherwise keep serving the port as orphans, and a restarted hub would share it
    with them.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="exekra-orphan-watch", daemon=True).start()
