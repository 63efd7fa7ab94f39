"""What one app process remembers, every other one knows: a two-factor code signs in once across
two real servers (two gunicorn processes on one SQLite file), and allauth's rate limits count
requests to both. Both live in Django's cache (config/settings.py): the database's, or Redis
when COFFER_RATELIMIT_REDIS_URL is set (the tests run both)."""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import pyotp
import pytest

from tests.api_server import free_port, server_environment

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
PASSWORD = "pw-olivia-shared-1234"
SECRET = pyotp.random_base32()

SEED = rf"""
from allauth.mfa.totp.internal.auth import TOTP
from django.contrib.auth import get_user_model

user = get_user_model().objects.create_user("olivia", "olivia@example.com", "{PASSWORD}")
TOTP.activate(user, "{SECRET}")
"""


REDIS_URL = "redis://127.0.0.1:6379/15"  # the rate-limit tests' database


def redis_running() -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", 6379), 0.5):
        return True
    return False


class Browser:
    """One person's cookies against one server."""

    token = ""  # the CSRF token of the last form read

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, fields: dict | None = None) -> tuple[int, str]:
        headers = {"Host": "127.0.0.1"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if fields is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            body = urlencode(fields)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            page = response.read().decode()
            for name, value in response.getheaders():
                if name.lower() == "set-cookie":
                    key, _, rest = value.partition("=")
                    self.cookies[key.strip()] = rest.split(";", 1)[0]
            return response.status, page
        finally:
            conn.close()

    def post_form(self, path: str, fields: dict) -> int:
        status, page = self.request("GET", path)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert status == 200 and token, (path, status)
        return self.request("POST", path, {"csrfmiddlewaretoken": token[1], **fields})[0]


@contextlib.contextmanager
def two_servers(tmp_path: Path, **overrides: str):
    (tmp_path / "staticfiles").mkdir()
    env = server_environment(
        tmp_path,
        COFFER_WEB_WORKERS="1",
        COFFER_LOG_LEVEL="ERROR",
        COFFER_EMAIL_FILE_PATH=str(tmp_path / "mail"),
        **overrides,
    )
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "--no-input", "-v0"], cwd=ROOT, env=env, check=True
    )
    subprocess.run(
        [PYTHON, "-c", "import django; django.setup(); exec(open(0).read())"],
        input=SEED,
        cwd=ROOT,
        env=env,
        check=True,
        text=True,
    )
    ports, processes = [free_port(), free_port()], []
    try:
        for port in ports:
            processes.append(
                subprocess.Popen(
                    [str(Path(PYTHON).with_name("gunicorn")), "config.wsgi"],
                    cwd=ROOT,
                    env={**env, "COFFER_BIND": f"127.0.0.1:{port}"},
                    stdout=subprocess.DEVNULL,
                )
            )
        deadline = time.monotonic() + 40
        for port, process in zip(ports, processes, strict=True):
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    break
                assert process.poll() is None and time.monotonic() < deadline, "no gunicorn"
                time.sleep(0.1)
        yield ports
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="module", params=["database", "redis"])
def servers(request, tmp_path_factory):
    overrides = {}
    if request.param == "redis":
        if not redis_running():
            pytest.skip("no Redis at 127.0.0.1:6379")
        overrides["COFFER_RATELIMIT_REDIS_URL"] = REDIS_URL
    with two_servers(tmp_path_factory.mktemp("shared-cache"), **overrides) as ports:
        yield ports


def test_a_two_factor_code_signs_in_once_across_two_servers(servers):
    a, b = servers
    browsers = [Browser(a), Browser(b), Browser(a)]
    for browser in browsers:
        assert browser.post_form("/accounts/login/", {"username": "olivia", "password": PASSWORD})
        status, page = browser.request("GET", "/accounts/2fa/authenticate/")
        assert status == 200 and 'name="code"' in page, "asked for a code"
        browser.token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]

    code = pyotp.TOTP(SECRET).now()
    statuses: list[int] = []
    start = threading.Barrier(len(browsers))

    def submit(browser: Browser) -> None:
        start.wait()
        fields = {"csrfmiddlewaretoken": browser.token, "code": code}
        statuses.append(browser.request("POST", "/accounts/2fa/authenticate/", fields)[0])

    threads = [threading.Thread(target=submit, args=(browser,)) for browser in browsers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(statuses) == [200, 200, 302], "one sign-in; the others are asked again"
    late = Browser(b)
    late.post_form("/accounts/login/", {"username": "olivia", "password": PASSWORD})
    assert late.post_form("/accounts/2fa/authenticate/", {"code": code}) == 200, "used already"


def test_allauths_rate_limits_count_requests_to_both_servers(servers):
    """Password-reset mails: 5 a minute for one address (allauth's default), wherever asked."""
    a, b = servers
    statuses = [
        Browser(port).post_form("/accounts/password/reset/", {"email": "olivia@example.com"})
        for port in (a, b, a, b, a, b)
    ]

    assert statuses[:5] == [302] * 5
    assert statuses[5] == 429
