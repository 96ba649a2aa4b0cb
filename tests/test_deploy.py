"""deploy/: what can be checked without systemd running or a Docker daemon. The systemd unit
passes `systemd-analyze verify`; the Dockerfile's HEALTHCHECK command, run as written, tells a
healthy hookd from a missing one."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import REPO_ROOT, HookdProcesses, clean_environ, free_port

UNIT = REPO_ROOT / "deploy" / "hookd.service"
DOCKERFILE = REPO_ROOT / "deploy" / "Dockerfile"


def test_the_systemd_unit_verifies() -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed here")
    if not Path("/usr/bin/python3").exists():
        pytest.skip("the unit's ExecStart interpreter, /usr/bin/python3, is not installed here")
    result = subprocess.run(
        ["systemd-analyze", "verify", str(UNIT)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    # Unknown keys and bad values are only warnings: none may name the unit.
    assert [line for line in result.stderr.splitlines() if "hookd.service" in line] == []

    lines = UNIT.read_text().splitlines()
    assert {
        "User=hookd",
        "StateDirectory=hookd",
        "Environment=HOOKD_DB=/var/lib/hookd/hookd.db",
        "LimitNOFILE=65536",
    } <= set(lines)


def healthcheck_argv() -> list[str]:
    """The Dockerfile's HEALTHCHECK command (exec form), as Docker would run it."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    (line,) = [line for line in text.splitlines() if line.startswith("HEALTHCHECK ")]
    argv: list[str] = json.loads(line.split(" CMD ", 1)[1])
    return argv


def run_healthcheck(port: int) -> subprocess.CompletedProcess[str]:
    program, *args = healthcheck_argv()
    assert program == "python"  # the image's interpreter; here, the one running the tests
    return subprocess.run(
        [sys.executable, *args],
        env=clean_environ(port=str(port)),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_docker_healthcheck_passes_on_a_running_hookd_and_fails_without(tmp_path: Path) -> None:
    with HookdProcesses(tmp_path) as processes:
        hookd = processes.start()
        healthy = run_healthcheck(hookd.port)
        assert healthy.returncode == 0, healthy.stderr

    nobody = run_healthcheck(free_port())
    assert nobody.returncode != 0
    assert "Connection refused" in nobody.stderr


def test_the_compose_file_sets_real_settings_and_the_proxy_reaches_both_nodes() -> None:
    """deploy/compose.yaml cannot be brought up here (no Docker daemon): check what a typo would
    break. Every HOOKD_ variable it sets is a setting hookd reads; the nodes share the database
    and the admin key; the proxy's upstreams are the compose file's hookd services."""
    from settings import SETTINGS

    compose = (REPO_ROOT / "deploy" / "compose.yaml").read_text(encoding="utf-8")
    caddyfile = (REPO_ROOT / "deploy" / "Caddyfile").read_text(encoding="utf-8")
    known = {setting.env for setting in SETTINGS}
    used = set(re.findall(r"^\s+(HOOKD_[A-Z_]+):", compose, flags=re.MULTILINE))
    assert {"HOOKD_DATABASE_URL", "HOOKD_ADMIN_KEY"} <= used <= known
    nodes = re.findall(r"^  (hookd-\d+): \*hookd$", compose, flags=re.MULTILINE)
    assert len(nodes) == 2
    (upstreams,) = re.findall(r"reverse_proxy (.+) \{", caddyfile)
    assert upstreams.split() == [f"{node}:7091" for node in nodes]
    assert 'pip install "/src[mcp,postgres]"' in DOCKERFILE.read_text(encoding="utf-8")
