"""gunicorn.conf.py: a plain `gunicorn config.wsgi` serves Coffer as the environment says.

The slow test starts a real gunicorn on a free 127.0.0.1 port, signs nothing in, fetches the
sign-in page, counts the worker processes and reads the access log; the quick ones read the
settings the file computes.
"""

from __future__ import annotations

import base64
import http.client
import os
import runpy
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "gunicorn.conf.py"
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))


def settings_from(monkeypatch, **env) -> dict:
    for name in (
        "COFFER_BIND",
        "COFFER_WEB_WORKERS",
        "COFFER_WEB_THREADS",
        "COFFER_WEB_TIMEOUT",
        "COFFER_WEB_SERVER",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(CONF))


def test_defaults_are_a_local_gthread_server(monkeypatch):
    conf = settings_from(monkeypatch)
    assert conf["bind"] == ["127.0.0.1:8000"]
    assert conf["worker_class"] == "gthread"
    assert conf["threads"] == 4
    assert conf["workers"] == min(len(os.sched_getaffinity(0)) + 1, 9)
    assert conf["max_requests"] > 0 and 0 < conf["max_requests_jitter"] < conf["max_requests"]
    assert 0 < conf["timeout"] <= 60


def test_the_environment_sets_bind_workers_and_threads(monkeypatch):
    conf = settings_from(
        monkeypatch,
        COFFER_BIND="0.0.0.0:9000, unix:/run/coffer.sock",
        COFFER_WEB_WORKERS="2",
        COFFER_WEB_THREADS="8",
    )
    assert conf["bind"] == ["0.0.0.0:9000", "unix:/run/coffer.sock"]
    assert (conf["workers"], conf["threads"]) == (2, 8)


def test_asgi_runs_uvicorn_workers_for_the_change_feeds_long_poll(monkeypatch):
    conf = settings_from(monkeypatch, COFFER_WEB_SERVER="asgi")
    assert conf["worker_class"] == "config.asgi_worker.CofferUvicornWorker"
    assert settings_from(monkeypatch, COFFER_WEB_SERVER="wsgi")["worker_class"] == "gthread"


def test_an_unknown_server_kind_stops_with_a_clear_message(monkeypatch):
    with pytest.raises(SystemExit) as stopped:
        settings_from(monkeypatch, COFFER_WEB_SERVER="tornado")
    assert str(stopped.value) == "COFFER_WEB_SERVER is wsgi or asgi, not 'tornado'."


@pytest.mark.parametrize("value", ["three", "0", "-1", "1000"])
def test_a_bad_worker_count_stops_with_a_clear_message(monkeypatch, value):
    with pytest.raises(SystemExit) as stopped:
        settings_from(monkeypatch, COFFER_WEB_WORKERS=value)
    assert str(stopped.value) == (
        f"COFFER_WEB_WORKERS must be a whole number from 1 to 64, not {value!r}."
    )


def test_the_access_log_keeps_no_query_string_or_referrer(monkeypatch):
    log_format = settings_from(monkeypatch)["access_log_format"]
    assert "%(U)s" in log_format  # the path alone
    for atom in ("%(r)s", "%(q)s", "%(f)s"):  # request line with query, query, referrer
        assert atom not in log_format


# --- a real server ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def wait_for(condition, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("gunicorn did not get there in time")
        time.sleep(0.1)


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@pytest.mark.slow
def test_plain_gunicorn_serves_the_sign_in_page_with_the_configured_workers(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COFFER_", "DJANGO_"))}
    env.update(
        COFFER_BIND=f"127.0.0.1:{port}",
        COFFER_WEB_WORKERS="2",
        COFFER_WEB_THREADS="2",
        COFFER_SECRET_KEY=secrets.token_urlsafe(50),
        COFFER_MASTER_KEYS="g1:" + base64.b64encode(secrets.token_bytes(32)).decode(),
        COFFER_ALLOWED_HOSTS="127.0.0.1",
        COFFER_HTTPS="false",
        COFFER_MANIFEST_STATIC="false",
        COFFER_DATA_DIR=str(tmp_path),
    )
    (tmp_path / "staticfiles").mkdir()
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as output:
        # No -c and no flags: gunicorn finds ./gunicorn.conf.py in its working directory.
        server = subprocess.Popen(
            [GUNICORN, "config.wsgi"], cwd=ROOT, env=env, stdout=output, stderr=output
        )
    try:
        wait_for(lambda: listening(port) or server.poll() is not None)
        assert server.poll() is None, log.read_text()
        wait_for(lambda: len(children(server.pid)) >= 2)

        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/accounts/login/?next=/w/acme/tokens/%3Fq%3Dcofferquerymarker")
        response = connection.getresponse()
        page = response.read().decode()
        connection.close()

        assert response.status == 200
        assert 'name="password"' in page
        time.sleep(0.5)  # let the workers settle: none is restarted
        assert len(children(server.pid)) == 2, "COFFER_WEB_WORKERS=2 runs two workers"
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    output = log.read_text()
    assert "Using worker: gthread" in output
    assert '"GET /accounts/login/ HTTP/1.1" 200' in output  # the access log, on stdout
    assert "cofferquerymarker" not in output
