"""Runner configuration: where the hub is, how this machine proves who it is, where executions run."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

_ENV_NAMES: dict[str, str] = {
    "hub_url": "EXEKRA_HUB_URL",
    "machine_key": "EXEKRA_MACHINE_KEY",
    "machine_secret": "EXEKRA_MACHINE_SECRET",
    "ca_bundle": "EXEKRA_CA_BUNDLE",
    "insecure": "EXEKRA_RUNNER_INSECURE",
    "workdir": "EXEKRA_RUNNER_WORKDIR",
    "name": "EXEKRA_RUNNER_NAME",
    "sample_interval_seconds": "EXEKRA_SAMPLE_INTERVAL_SECONDS",
    "artifact_max_bytes": "EXEKRA_RUNNER_ARTIFACT_MAX_BYTES",
    "chromium": "EXEKRA_CHROMIUM",
}
RUNNER_VARIABLES = frozenset(_ENV_NAMES.values())
"""The environment variables a runner reads (every other `EXEKRA_*` variable is the hub's)."""
_REQUIRED = {"hub_url": "--hub-url", "machine_key": "--machine-key", "machine_secret": "--machine-secret"}
_LABELS = {"hub_url": "hub URL", "machine_key": "machine key", "machine_secret": "machine secret"}
_TRUE = {"1", "true", "yes", "on"}
DEFAULT_ARTIFACT_MAX_BYTES = 100 * 1024 * 1024


class RunnerConfigError(ValueError):
    """A missing or malformed runner setting; the message names the option and the variable."""


@dataclass(frozen=True)
class RunnerConfig:
    """Everything one runner agent needs. Build it with `RunnerConfig.from_env(**overrides)`."""

    hub_url: str
    machine_key: str
    machine_secret: str = field(repr=False)
    ca_bundle: Path | None = None
    insecure: bool = False
    workdir: Path | None = None
    sample_interval_seconds: float = 1.0
    name: str = ""
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    artifact_max_bytes: int = DEFAULT_ARTIFACT_MAX_BYTES
    chromium: str | None = None

    def __post_init__(self) -> None:
        missing = [
            f"{_LABELS[name]} ({option} or {_ENV_NAMES[name]})"
            for name, option in _REQUIRED.items()
            if not getattr(self, name)
        ]
        if missing:
            raise RunnerConfigError(
                f"missing settings: {', '.join(missing)}; `exekra runners register NAME` prints a runner's key "
                "and secret"
            )
        if not self.hub_url.startswith(("http://", "https://")):
            raise RunnerConfigError(f"hub URL must start with http:// or https://, got {self.hub_url!r}")
        if self.sample_interval_seconds <= 0:
            raise RunnerConfigError("sample_interval_seconds must be greater than 0")
        if self.artifact_max_bytes < 0:
            raise RunnerConfigError("artifact_max_bytes must be >= 0")
        if self.backoff_base_seconds <= 0 or self.backoff_max_seconds < self.backoff_base_seconds:
            raise RunnerConfigError("backoff needs 0 < backoff_base_seconds <= backoff_max_seconds")
        # Frozen dataclass: derived defaults are written once, here.
        object.__setattr__(self, "hub_url", self.hub_url.rstrip("/"))
        workdir = Path("~/.exekra/runner-work") / self.machine_key if self.workdir is None else self.workdir
        object.__setattr__(self, "workdir", Path(workdir).expanduser())
        if self.ca_bundle is not None:
            object.__setattr__(self, "ca_bundle", Path(self.ca_bundle).expanduser())
        if not self.name:
            object.__setattr__(self, "name", self.machine_key)

    @property
    def work_root(self) -> Path:
        """The runner's working directory (always set after construction)."""
        assert self.workdir is not None
        return self.workdir

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> RunnerConfig:
        """Build the config from `EXEKRA_*` variables; keyword overrides (CLI options) win, `None` is ignored.

        Variables: EXEKRA_HUB_URL, EXEKRA_MACHINE_KEY, EXEKRA_MACHINE_SECRET, EXEKRA_CA_BUNDLE,
        EXEKRA_SAMPLE_INTERVAL_SECONDS, EXEKRA_RUNNER_INSECURE, EXEKRA_RUNNER_WORKDIR, EXEKRA_RUNNER_NAME,
        EXEKRA_RUNNER_ARTIFACT_MAX_BYTES, EXEKRA_CHROMIUM.
        """
        env = os.environ if environ is None else environ
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise TypeError(f"unknown runner settings: {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for name, variable in _ENV_NAMES.items():
            raw = env.get(variable)
            if raw not in (None, ""):
                values[name] = _parse(name, variable, raw)
        values.update({key: value for key, value in overrides.items() if value is not None})
        for name in _REQUIRED:
            values.setdefault(name, "")
        return cls(**values)


def _parse(name: str, variable: str, raw: str) -> Any:
    if name == "insecure":
        return raw.strip().lower() in _TRUE
    if name in ("ca_bundle", "workdir"):
        return Path(raw)
    if name == "artifact_max_bytes":
        try:
            return int(raw)
        except ValueError:
            raise RunnerConfigError(f"{variable} must be a whole number of bytes, got {raw!r}") from None
    if name == "sample_interval_seconds":
        try:
            return float(raw)
        except ValueError:
            raise RunnerConfigError(f"{variable} must be a number of seconds, got {raw!r}") from None
    return raw
