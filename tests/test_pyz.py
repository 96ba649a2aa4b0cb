"""The one-file build: `python deploy/build_pyz.py` makes hookd-<version>-<python>-<platform>.pyz,
and `python3 <file> serve` runs hookd from it in any directory, without the checkout."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.processes import REPO_ROOT, HookdProcesses
from tests.remote import Api
from tests.test_deploy import DOCKERFILE

BUILD_TIMEOUT_S = 300.0


@pytest.fixture(scope="session")
def pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once per session: pip installs hookd and its dependencies (about 10 s)."""
    output_dir = tmp_path_factory.mktemp("pyz")
    result = subprocess.run(
        [sys.executable, "deploy/build_pyz.py", "--output-dir", str(output_dir), "--", "--quiet"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = output_dir.glob("*.pyz")
    assert f"Built {built} (" in result.stdout
    return built


def test_the_file_names_its_python_and_platform_and_carries_the_schema(pyz: Path) -> None:
    python = f"cp{sys.version_info.major}{sys.version_info.minor}"
    platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")  # e.g. linux_x86_64
    assert pyz.name == f"hookd-0.1.0-{python}-{platform}.pyz"

    with zipfile.ZipFile(pyz) as archive:
        names = archive.namelist()
        assert archive.read("site-packages/tasks/schema.sql") == (REPO_ROOT / "schema.sql").read_bytes()
        for migration in (REPO_ROOT / "migrations").iterdir():
            assert archive.read(f"site-packages/tasks/migrations/{migration.name}") == migration.read_bytes()
    # aiohttp's compiled parser, for this interpreter only: why the name carries its tags.
    abi = sysconfig.get_config_var("EXT_SUFFIX")
    assert any(name.startswith("site-packages/aiohttp/") and name.endswith(abi) for name in names), abi


async def test_the_file_serves_an_agent_from_another_directory(
    pyz: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shiv_root = tmp_path / "shiv"
    monkeypatch.setenv("SHIV_ROOT", str(shiv_root))  # where the file unpacks; not ~/.shiv
    monkeypatch.delenv("PYTHONPATH", raising=False)  # only the file's own copy of hookd
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with HookdProcesses(tmp_path) as processes:
        hookd = await asyncio.to_thread(
            processes.start,
            elsewhere / "hookd.db",
            command=[sys.executable, str(pyz), "serve"],
            cwd=elsewhere,
            workers=2,
        )
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            api = Api(http, hookd)
            agent = await api.create_agent(llm={"provider": "echo"})
            task_id = await api.trigger(agent, {"question": "Is the one file whole?"})
            done = (await api.wait_all([task_id]))[task_id]
        assert done["status"] == "SUCCESS", done
        assert "Is the one file whole?" in done["result"]["answer"]

        hookd.terminate()
        assert hookd.wait_exit(30) == 0, hookd.log()
    log = hookd.log()
    assert f"hookd on http://127.0.0.1:{hookd.port}, database {elsewhere / 'hookd.db'}" in log
    assert "Traceback" not in log
    # It ran from the unpacked file, whose schema created the database.
    assert list(shiv_root.glob(f"{pyz.name}_*/site-packages/tasks/schema.sql"))


def load_build_pyz() -> Any:
    """deploy/build_pyz.py as a module (deploy/ is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("build_pyz", REPO_ROOT / "deploy" / "build_pyz.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_extras_name_what_pip_installs_besides_hookd() -> None:
    build_pyz = load_build_pyz()
    assert build_pyz.pip_requirement("") == str(REPO_ROOT)  # the default: hookd alone
    assert build_pyz.pip_requirement("mcp") == f"hookd[mcp] @ {REPO_ROOT.as_uri()}"
    assert build_pyz.pip_requirement(" mcp, ") == f"hookd[mcp] @ {REPO_ROOT.as_uri()}"
    with pytest.raises(
        SystemExit, match=r"^build_pyz: unknown extra 'mpc'; hookd's extras are: mcp, postgres\.$"
    ):
        build_pyz.pip_requirement("mpc")
    with pytest.raises(SystemExit, match="unknown extra 'test'"):  # the test tools are no run-time extra
        build_pyz.pip_requirement("test")


def test_the_docker_image_installs_the_mcp_extra() -> None:
    """MCP agents fail config_error where the mcp package is missing."""
    (install,) = [line for line in DOCKERFILE.read_text().splitlines() if line.startswith("RUN pip install")]
    assert install.startswith('RUN pip install "/src[mcp,postgres]" ')
