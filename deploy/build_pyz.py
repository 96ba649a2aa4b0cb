"""Build hookd as one file: `python deploy/build_pyz.py` writes dist/hookd-<version>-<python>-<platform>.pyz.

The file is a shiv zipapp of hookd and its dependencies, which pip installs from this
checkout the way `pip install .` does, so schema.sql and migrations/ travel inside `tasks`
as in the wheel. aiohttp and a few of its dependencies are compiled extensions: the file
runs only on the Python version and CPU architecture that built it, and its name says
which (e.g. hookd-0.1.0-cp311-linux_x86_64.pyz). Run it with `python3 hookd-….pyz serve`.

`--extras mcp` adds the optional dependencies MCP agents need (pyproject.toml's extras);
without it, such an agent's runs fail `config_error`. Arguments after `--` go to pip, e.g.
`-- --no-index --find-links wheelhouse/` offline.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# What hookd cannot start without, checked in the built file.
REQUIRED_FILES = ("site-packages/tasks/schema.sql", "site-packages/tasks/migrations/README.md")


def pyz_name(version: str) -> str:
    """hookd-<version>-<python tag>-<platform>.pyz for the running interpreter, named like a
    wheel's tags: cp311 is CPython 3.11; linux_x86_64 is Linux (glibc) on x86-64."""
    implementation = {"cpython": "cp", "pypy": "pp"}.get(sys.implementation.name, sys.implementation.name)
    python = f"{implementation}{sys.version_info.major}{sys.version_info.minor}"
    platform = re.sub(r"[^A-Za-z0-9]+", "_", sysconfig.get_platform())
    return f"hookd-{version}-{python}-{platform}.pyz"


def _project() -> dict[str, Any]:
    project: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return project


def pip_requirement(extras: str) -> str:
    """What pip installs: this checkout, with the comma-separated `extras` ("" for none).
    SystemExit naming the known extras for one pyproject.toml does not declare."""
    wanted = [extra.strip() for extra in extras.split(",") if extra.strip()]
    if not wanted:
        return str(ROOT)
    known = sorted(set(_project().get("optional-dependencies", {})) - {"test"})
    unknown = [extra for extra in wanted if extra not in known]
    if unknown:
        raise SystemExit(f"build_pyz: unknown extra '{unknown[0]}'; hookd's extras are: {', '.join(known)}.")
    # A PEP 508 direct reference: unambiguous whatever characters the checkout's path holds.
    return f"hookd[{','.join(wanted)}] @ {ROOT.as_uri()}"


def build(output_dir: Path, pip_args: list[str], extras: str = "") -> Path:
    """Build the file into `output_dir`; its path. CalledProcessError if shiv or pip fails."""
    requirement = pip_requirement(extras)
    version = _project()["version"]
    output_dir.mkdir(parents=True, exist_ok=True)
    pyz = output_dir / pyz_name(version)
    # shiv runs pip with this same interpreter, so pip picks the wheels matching the name.
    command = [sys.executable, "-m", "shiv", "--console-script", "hookd", "--output-file", str(pyz)]
    subprocess.run([*command, requirement, *pip_args], check=True)
    with zipfile.ZipFile(pyz) as archive:
        missing = [name for name in REQUIRED_FILES if name not in archive.namelist()]
    if missing:
        pyz.unlink()
        raise SystemExit(f"build_pyz: {', '.join(missing)} missing from the build; is pyproject.toml intact?")
    return pyz


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--output-dir", type=Path, default=ROOT / "dist", help="default: dist/ in the checkout"
    )
    parser.add_argument(
        "--extras",
        default="",
        metavar="EXTRA[,EXTRA]",
        help="optional dependencies to include, e.g. mcp (for agents with mcp_servers); default: none",
    )
    parser.add_argument("pip_args", nargs="*", help="after --: arguments for pip")
    args = parser.parse_args()
    pyz = build(args.output_dir, args.pip_args, args.extras)
    print(f"Built {pyz} ({pyz.stat().st_size / 1e6:.1f} MB).")
    print(
        f"Run it with Python {sys.version_info.major}.{sys.version_info.minor} on"
        f" {sysconfig.get_platform()}: python3 {pyz.name} serve"
    )


if __name__ == "__main__":
    main()
