"""COFFER_LOG_FORMAT=json: every log line, Django's and gunicorn's, is one JSON object, and
none carries a value, a password or a query string."""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.test import RequestFactory

from config.json_logs import JsonFormatter
from tests.api_server import free_port, server_environment

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def record(name: str = "coffer.test", message: str = "hello %s", args=("world",), **extra):
    entry = logging.LogRecord(name, logging.WARNING, __file__, 1, message, args, None)
    entry.__dict__.update(extra)
    return entry


def test_a_record_is_one_line_of_json_with_time_level_logger_message():
    line = JsonFormatter().format(record(message="two\nlines %s"))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "two\nlines world"
    assert (entry["level"], entry["logger"]) == ("WARNING", "coffer.test")
    assert entry["time"].endswith("+00:00")


def test_a_request_error_names_the_method_and_path_only():
    secret = "posted-" + secrets.token_hex(8)
    request = RequestFactory().post("/w/acme/tokens/new/?q=" + secret, {"value": secret})
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        exc_info = sys.exc_info()
    entry_record = record(
        "django.request",
        "Internal Server Error: %s",
        ("/w/acme/tokens/new/",),
        request=request,
        status_code=500,
    )
    entry_record.exc_info = exc_info
    line = JsonFormatter().format(entry_record)
    entry = json.loads(line)
    assert (entry["method"], entry["path"], entry["status"]) == ("POST", "/w/acme/tokens/new/", 500)
    assert "RuntimeError: boom" in entry["exception"]
    assert secret not in line


def test_a_gunicorn_access_line_becomes_fields_without_the_query_string():
    atoms = {
        "h": "203.0.113.9",
        "m": "GET",
        "U": "/healthz",
        "q": "key=secret",
        "s": "200",
        "B": "15",
        "M": "3",
        "a": "curl/8",
        "r": "GET /healthz?key=secret HTTP/1.1",
    }
    entry_record = record("gunicorn.access", "%(r)s", ())
    entry_record.args = atoms
    line = JsonFormatter().format(entry_record)
    entry = json.loads(line)
    assert entry["path"] == "/healthz" and entry["status"] == 200 and entry["duration_ms"] == 3
    assert entry["remote_address"] == "203.0.113.9" and entry["user_agent"] == "curl/8"
    assert "secret" not in line


def manage_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    (tmp_path / "staticfiles").mkdir(exist_ok=True)
    return server_environment(tmp_path, **overrides)


def test_settings_refuse_an_unknown_format(tmp_path):
    result = subprocess.run(
        [PYTHON, "manage.py", "check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=manage_env(tmp_path, COFFER_LOG_FORMAT="yaml"),
    )
    assert result.returncode != 0
    assert "COFFER_LOG_FORMAT must be text or json, not 'yaml'." in result.stderr


def test_django_logs_are_json_lines_with_the_setting(tmp_path):
    code = "import logging; logging.getLogger('coffer.test').warning('line one\\nline two')"
    result = subprocess.run(
        [PYTHON, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=manage_env(tmp_path, COFFER_LOG_FORMAT="json"),
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert [json.loads(line)["message"] for line in lines] == ["line one\nline two"]


@pytest.mark.slow
def test_gunicorn_and_django_write_only_json_lines_and_no_secret(tmp_path):
    env = manage_env(tmp_path, COFFER_LOG_FORMAT="json", COFFER_LOG_LEVEL="INFO")
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "--no-input", "-v0"], cwd=ROOT, env=env, check=True
    )
    port = free_port()
    stdout, stderr = tmp_path / "stdout.log", tmp_path / "stderr.log"
    password = "password-" + secrets.token_hex(8)
    query = "query-" + secrets.token_hex(8)
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        server = subprocess.Popen(
            [str(Path(PYTHON).with_name("gunicorn")), "config.wsgi"],
            cwd=ROOT,
            stdout=out,
            stderr=err,
            env={**env, "COFFER_BIND": f"127.0.0.1:{port}", "COFFER_WEB_WORKERS": "1"},
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    break
                assert server.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", f"/healthz?{query}=1")
            assert conn.getresponse().read() and True
            body = urlencode({"username": "nobody", "password": password})
            conn.request(
                "POST",
                "/accounts/login/",
                body=body,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert conn.getresponse().status == 403  # no CSRF cookie: refused, and logged
            conn.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    output = stdout.read_text() + stderr.read_text()
    entries = [json.loads(line) for line in output.splitlines()]  # every line parses
    assert {"gunicorn.error", "gunicorn.access"} <= {entry["logger"] for entry in entries}
    paths = [entry.get("path") for entry in entries if entry["logger"] == "gunicorn.access"]
    assert paths == ["/healthz", "/accounts/login/"]
    assert any(entry["logger"] == "django.security.csrf" for entry in entries)
    assert password not in output and query not in output
