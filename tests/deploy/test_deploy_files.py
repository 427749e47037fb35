"""The deployment files (deploy/) say what docs/deployment.md promises, checked with the real tools where this
machine has them (`make deploy-tools` installs HAProxy and systemd as root) and by reading the files in any case:
a missing tool skips only its own check, never the reading."""

from __future__ import annotations

import configparser
import re
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNITS = ("exekra-hub.service", "exekra-runner.service")
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
}


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read(DEPLOY / "systemd" / name)
    return parser


@pytest.mark.parametrize("name", UNITS)
def test_each_unit_runs_as_its_own_user_with_the_hardening_keys(name: str) -> None:
    service = unit(name)["Service"]
    assert service["User"] not in ("", "root") and service["Group"] == service["User"]
    for key, value in HARDENING.items():
        assert service.get(key) == value, key
    assert service["EnvironmentFile"].startswith("/etc/exekra/")
    state = f"/var/lib/{service['StateDirectory']}"
    assert service["ReadWritePaths"] == state and state in service["Environment"]
    assert service["ExecStart"].split()[0].endswith("/exekra")
    assert service["CapabilityBoundingSet"] == ""


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("name", UNITS)
def test_systemd_analyze_verify_accepts_each_unit(name: str, tmp_path: Path) -> None:
    # The product's binary is not installed here: a stand-in takes its path, so `verify` checks everything else.
    stand_in = tmp_path / "exekra"
    stand_in.write_text("#!/bin/sh\n")
    stand_in.chmod(stand_in.stat().st_mode | stat.S_IXUSR)
    text = (DEPLOY / "systemd" / name).read_text()
    (tmp_path / name).write_text(text.replace("/opt/exekra/venv/bin/exekra", str(stand_in)))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / name)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def haproxy_sections() -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current = ""
    for line in (DEPLOY / "haproxy.cfg").read_text().splitlines():
        line = line.split("#", 1)[0].rstrip()
        if not line:
            continue
        if not line[0].isspace():
            current = line.strip()
            sections[current] = []
        else:
            sections[current].append(" ".join(line.split()))
    return sections


def test_haproxy_checks_every_hub_on_api_health() -> None:
    backend = haproxy_sections()["backend hubs"]
    assert "option httpchk GET /api/health" in backend and "http-check expect status 200" in backend
    servers = [line for line in backend if line.startswith("server ")]
    assert len(servers) >= 2 and all(line.endswith(" check") for line in servers)
    defaults = haproxy_sections()["defaults"]
    server_timeout = next(line for line in defaults if line.startswith("timeout server"))
    assert int(re.sub(r"\D", "", server_timeout)) > 30, "longer than the longest long poll"


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")
def test_haproxy_accepts_the_configuration() -> None:
    result = subprocess.run(
        ["haproxy", "-c", "-f", str(DEPLOY / "haproxy.cfg")], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return document


def test_compose_names_the_cluster_the_docs_promise() -> None:
    services = compose()["services"]
    assert {"hub1", "hub2", "haproxy", "postgres", "redis", "sentinel1", "sentinel2", "sentinel3"} <= set(services)
    assert any(name.startswith("runner") for name in services)
    for name in ("hub1", "hub2"):
        hub = services[name]
        env = hub["environment"]
        assert env["REDIS_URL"] == "redis+sentinel://sentinel1:26379,sentinel2:26379,sentinel3:26379/mymaster/0"
        assert env["DATABASE_URL"].startswith("postgresql://") and "EXEKRA_SECRET_KEY" in env
        assert "/api/health" in " ".join(hub["healthcheck"]["test"])
        assert hub["build"]["dockerfile"] == "deploy/Dockerfile"
    assert services["haproxy"]["depends_on"]["hub1"]["condition"] == "service_healthy"
    for name in ("postgres", "redis", "sentinel1"):
        assert services[name]["healthcheck"]["test"]
    for name in ("sentinel1", "sentinel2", "sentinel3"):
        assert "sentinel monitor mymaster redis 6379 2" in " ".join(services[name]["entrypoint"])


def test_compose_values_parse_as_the_hub_reads_them() -> None:
    from exekra.redis_url import parse_redis_url

    target = parse_redis_url(compose()["services"]["hub1"]["environment"]["REDIS_URL"])
    assert len(target.sentinels) == 3 and target.service == "mymaster"


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker client")
def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30, check=False)
    if probe.returncode != 0:
        pytest.skip("the docker client has no compose plugin")
    env = {"POSTGRES_PASSWORD": "x", "EXEKRA_SECRET_KEY": "x", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        ["docker", "compose", "-f", str(DEPLOY / "compose.yaml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_the_image_installs_the_repository_and_chromium_only_when_asked() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "ARG BROWSER=0" in dockerfile and "COPY pyproject.toml" in dockerfile and "COPY src" in dockerfile
    assert re.search(r'if \[ "\$BROWSER" = 1 \].*chromium', dockerfile, re.S)
    assert 'ENTRYPOINT ["exekra"]' in dockerfile and "USER exekra" in dockerfile
