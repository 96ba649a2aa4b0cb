"""The built wheel: schema.sql travels inside it, and `hookd serve` runs from any directory."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

from tests.processes import free_port

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_serves_from_another_directory(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(wheels)],
        check=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("hookd-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = archive.read("hookd-0.1.0.dist-info/entry_points.txt").decode()
    assert "tasks/schema.sql" in names and "tasks/migrations/README.md" in names and "server.py" in names
    assert {"api/static/index.html", "api/static/app.js", "api/static/style.css"} <= set(names)
    assert "hookd = cli:main" in entry_points

    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        timeout=300,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKD_")}
    env["PYTHONPATH"] = str(site)  # only the installed copy; the checkout is not on the path
    log_path = tmp_path / "hookd.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-c", "import cli; cli.main()", "serve", "--port", str(port)],
            cwd=elsewhere,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert process.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "hookd did not start"
                time.sleep(0.1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:  # the web page
            assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        assert (elsewhere / "hookd.db").exists()
        assert (elsewhere / "hookd.db.admin-key").stat().st_mode & 0o077 == 0
    finally:
        process.terminate()
        process.wait(timeout=30)
    log = log_path.read_text()
    assert "generated an admin key" in log
    assert (elsewhere / "hookd.db.admin-key").read_text().strip() not in log
