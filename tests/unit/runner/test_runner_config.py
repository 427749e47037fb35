"""RunnerConfig: environment, CLI overrides, defaults and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from exekra.runner.config import RunnerConfig, RunnerConfigError

ENV = {
    "EXEKRA_HUB_URL": "https://hub.local:4545/",
    "EXEKRA_MACHINE_KEY": "key1",
    "EXEKRA_MACHINE_SECRET": "secret1",
    "EXEKRA_SAMPLE_INTERVAL_SECONDS": "0.5",
    "EXEKRA_RUNNER_INSECURE": "true",
}


def test_from_env_reads_variables_and_applies_defaults() -> None:
    config = RunnerConfig.from_env(ENV)
    assert config.hub_url == "https://hub.local:4545"
    assert (config.machine_key, config.machine_secret, config.sample_interval_seconds) == ("key1", "secret1", 0.5)
    assert config.insecure is True and config.ca_bundle is None
    assert config.workdir == Path("~/.exekra/runner-work/key1").expanduser()
    assert config.name == "key1"
    assert "secret1" not in repr(config)


def test_cli_overrides_win_and_none_is_ignored(tmp_path: Path) -> None:
    config = RunnerConfig.from_env(
        ENV, hub_url="http://other:1", machine_key=None, workdir=str(tmp_path), ca_bundle=tmp_path / "ca.pem"
    )
    assert (config.hub_url, config.machine_key, config.workdir) == ("http://other:1", "key1", tmp_path)
    assert config.ca_bundle == tmp_path / "ca.pem"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "EXEKRA_HUB_URL"),
        ({**ENV, "EXEKRA_MACHINE_SECRET": ""}, "--machine-secret"),
        ({**ENV, "EXEKRA_HUB_URL": "hub.local"}, "http://"),
        ({**ENV, "EXEKRA_SAMPLE_INTERVAL_SECONDS": "soon"}, "EXEKRA_SAMPLE_INTERVAL_SECONDS"),
    ],
)
def test_missing_or_malformed_settings_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(RunnerConfigError, match=message):
        RunnerConfig.from_env(env)


def test_unknown_override_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="colour"):
        RunnerConfig.from_env(ENV, colour="blue")
