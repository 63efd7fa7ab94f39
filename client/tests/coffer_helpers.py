"""Running `coffer` as a subprocess, as a CI job runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CLIENT = Path(__file__).resolve().parent.parent
# The interpreter that runs the client: by default the tests' own; COFFER_CLIENT_PYTHON names
# another (e.g. the oldest Python supported, with the package installed in it).
PYTHON = os.environ.get("COFFER_CLIENT_PYTHON") or sys.executable


def coffer_env(url: str, key: str | None, cache: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COFFER_")}
    env.update(PYTHONPATH=str(CLIENT), COFFER_URL=url, COFFER_CACHE_DIR=str(cache))
    if key is not None:
        env["COFFER_ACCESS_KEY"] = key
    env.update(extra)
    return env


def coffer(*args: str, env: dict[str, str], **options) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-m", "coffer_cli", *args],
        env=env,
        capture_output=True,
        timeout=options.pop("timeout", 60),
        **options,
    )
