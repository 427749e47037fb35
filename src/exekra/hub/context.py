"""The hub's shared objects, built once per process (`exekra.hub.app.build_hub`) and reached from routes
through `get_hub`."""

from __future__ import annotations

from dataclasses import dataclass, field

from exekra.config import Settings
from exekra.db.session import Database
from exekra.hub.alerts.worker import AlertWorker
from exekra.hub.auth.security import RunnerTokens
from exekra.hub.auth.throttle import InFlight
from exekra.hub.dispatch.dispatcher import Dispatcher
from exekra.hub.effects import EffectApplier
from exekra.hub.executions.service import ExecutionService
from exekra.hub.leader import LeaderLease
from exekra.hub.license.service import Licensing
from exekra.hub.listener import Listener
from exekra.hub.ratelimit import RateLimiter


@dataclass
class Hub:
    settings: Settings
    db: Database
    effects: EffectApplier
    listener: Listener
    dispatcher: Dispatcher
    executions: ExecutionService
    limiter: RateLimiter
    runner_tokens: RunnerTokens
    licensing: Licensing
    secret_key: bytes
    alerts: AlertWorker
    started_at: float = field(default=0.0)
    leader: LeaderLease | None = None  # the lease, once the hub has started (`exekra.hub.app.create_app`)
    password_checks: InFlight = field(default_factory=InFlight)
