"""Outages against a real gunicorn: the server stopped, `coffer run` uses the encrypted
fallback and says how old it is; a revoked key fails closed even with a warm fallback."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from coffer_helpers import coffer, coffer_env
from tests.api_server import PYTHON, ROOT, running_server

pytestmark = pytest.mark.slow

PRINT_DB_URL = "import os; print(os.environ['DB_URL'])"
REVOKE = "from access.models import AccessKey; AccessKey.objects.get(name={!r}).revoke()"


@pytest.fixture
def server():
    with running_server(COFFER_API_RATE_LIMIT="1000") as running:
        yield running


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(timeout=20)


def start_again(server) -> subprocess.Popen:
    """gunicorn again on the same address (the fallback belongs to the URL and the key)."""
    port = int(server.url.rsplit(":", 1)[1])
    process = subprocess.Popen(
        [
            str(Path(PYTHON).with_name("gunicorn")),
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=server.env,
    )
    deadline = time.monotonic() + 30
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return process
        assert process.poll() is None and time.monotonic() < deadline, "gunicorn did not start"
        time.sleep(0.1)


def revoke(server, name: str) -> None:
    subprocess.run(
        [PYTHON, "-c", "import django; django.setup(); exec(open(0).read())"],
        input=REVOKE.format(name),
        cwd=ROOT,
        env=server.env,
        check=True,
        text=True,
    )


def fallback_files(cache: Path) -> list[Path]:
    return [path for path in cache.rglob("*") if path.is_file()]


def test_the_fallback_covers_an_outage_and_never_a_revoked_key(server, cache):
    key = server.keys["spare0"]
    env = coffer_env(server.url, key, cache, COFFER_TIMEOUT="3", COFFER_TRIES="2")
    warm = coffer("run", "--", sys.executable, "-c", PRINT_DB_URL, env=env)
    assert warm.returncode == 0 and warm.stderr == b""
    [file] = fallback_files(cache)
    assert os.stat(file).st_mode & 0o777 == 0o600
    for secret in [*server.values.values(), key]:
        assert secret.encode() not in file.read_bytes()

    stop(server.process)
    time.sleep(1.1)  # an age of at least a second
    cold = coffer("run", "--", sys.executable, "-c", PRINT_DB_URL, env=env)
    assert cold.returncode == 0, cold.stderr
    assert cold.stdout.decode() == server.values["DB_URL"] + "\n"
    warning = cold.stderr.decode().splitlines()[-1]
    assert "Coffer cannot be reached (connection refused" in warning
    assert re.search(
        r"; using the fallback from 20\d\d-\d\d-\d\d \d\d:\d\d:\d\dZ, \ds old$", warning
    )

    too_old = coffer("run", "--fallback-max-age", "1", "--", "true", env=env)
    assert too_old.returncode == 125
    assert b"older than --fallback-max-age 1s: not used" in too_old.stderr
    refused = coffer("run", "--no-fallback", "--", "true", env=env)
    assert refused.returncode == 125 and b"(--no-fallback)" in refused.stderr

    again = start_again(server)
    try:
        revoke(server, "spare0")
        closed = coffer("run", "--", "true", env=env)
        assert closed.returncode == 125
        assert b"refused (HTTP 401)" in closed.stderr
        assert b"its fallback was deleted and is not used" in closed.stderr
        assert fallback_files(cache) == []
    finally:
        stop(again)
    gone = coffer("run", "--", "true", env=env)
    assert gone.returncode == 125 and b"there is no fallback for this key" in gone.stderr
    for result in (warm, cold, too_old, refused, closed, gone):
        assert key.encode() not in result.stdout + result.stderr


def test_no_fallback_writes_none(server, cache):
    env = coffer_env(server.url, server.keys["spare1"], cache)
    assert coffer("run", "--no-fallback", "--", "true", env=env).returncode == 0
    assert fallback_files(cache) == []
