"""Several app servers on one PostgreSQL, as Coffer runs behind a load balancer: two gunicorn
processes (the production gunicorn.conf.py, 2 workers each, persistent database connections)
on separate ports, like two machines, sharing the test database.

Sessions work on either, a token revoked through one is refused by the other at once, the API
rate limit and the sign-in throttling count requests to both, and the Tokens page, the API and
/healthz under bounded concurrent load on both give no error.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.core.management import call_command
from django.db import connection

from access.models import AccessKey
from tests.api_server import free_port, server_environment
from tests.factories import DEFAULT_PASSWORD, MembershipFactory, UserFactory, WorkspaceFactory
from tokens.models import Token
from workspaces.models import Role

pytestmark = [
    pytest.mark.slow,
    # The rows are committed once for the module (see `cluster`); the tests only read them.
    pytest.mark.django_db,
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="several app servers share a PostgreSQL server (CI's DATABASE_URL pass)",
    ),
]

ROOT = Path(__file__).resolve().parent.parent
RATE_LIMIT = 50  # the load test's ~30 API requests stay below it
TEMPLATE = b"stripe=$Secret{STRIPE_KEY}\n"  # (DB_PASSWORD gets revoked by a test)


class Browser:
    """One user's cookies, shared by connections to every server (as behind a load balancer)."""

    def __init__(self, ports: list[int]) -> None:
        self.cookies: dict[str, str] = {}
        self.connections = {
            port: http.client.HTTPConnection("127.0.0.1", port, timeout=30) for port in ports
        }

    def request(
        self,
        port: int,
        method: str,
        path: str,
        body: bytes | dict | None = None,
        headers: dict | None = None,
    ) -> tuple[int, dict, bytes]:
        headers = {"Host": "127.0.0.1", **(headers or {})}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if isinstance(body, dict):
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["X-CSRFToken"] = self.cookies.get("csrftoken", "")
            body = urlencode(body, doseq=True).encode()
        conn = self.connections[port]
        for attempt in (1, 2):
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                conn.close()  # an idle keep-alive connection the server closed: once more
                if attempt == 2:
                    raise
        content = response.read()
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                key, _, rest = value.partition("=")
                self.cookies[key.strip()] = rest.split(";", 1)[0]
        return response.status, {k.lower(): v for k, v in response.getheaders()}, content

    def sign_in(self, port: int, username: str, password: str) -> int:
        status, _, page = self.request(port, "GET", "/accounts/login/")
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert status == 200 and token
        fields = {
            "csrfmiddlewaretoken": token.group(1).decode(),
            "username": username,
            "password": password,
        }
        return self.request(port, "POST", "/accounts/login/", fields)[0]

    def close(self) -> None:
        for conn in self.connections.values():
            conn.close()


def api(port: int, key: str, body: bytes = TEMPLATE) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(
            "POST", "/api/v1/resolve", body=body, headers={"Authorization": f"Bearer {key}"}
        )
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def database_url() -> str:
    settings = connection.settings_dict
    password = f":{settings['PASSWORD']}" if settings["PASSWORD"] else ""
    host, port = settings["HOST"] or "127.0.0.1", settings["PORT"] or 5432
    return f"postgres://{settings['USER']}{password}@{host}:{port}/{settings['NAME']}"


@contextlib.contextmanager
def two_servers(tmp_path: Path):
    env = server_environment(
        tmp_path,
        DATABASE_URL=database_url(),
        COFFER_MASTER_KEYS=os.environ["COFFER_MASTER_KEYS"],
        COFFER_API_RATE_LIMIT=str(RATE_LIMIT),
        COFFER_DB_CONN_MAX_AGE="60",
        COFFER_WEB_WORKERS="2",
        COFFER_WEB_THREADS="2",
        COFFER_LOG_LEVEL="ERROR",
    )
    (tmp_path / "staticfiles").mkdir(exist_ok=True)
    ports, processes = [free_port(), free_port()], []
    try:
        for port in ports:
            processes.append(
                subprocess.Popen(
                    [str(Path(sys.executable).with_name("gunicorn")), "config.wsgi"],
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


@pytest.fixture(scope="module")
def cluster(django_db_setup, django_db_blocker, tmp_path_factory):
    """Committed data (the servers are other processes) and the two servers; the tables are
    emptied afterwards, as a transactional test does."""
    with django_db_blocker.unblock():
        workspace = WorkspaceFactory(slug="acme", name="Acme")
        production = workspace.environments.get(slug="production")
        user = UserFactory(username="olivia")
        MembershipFactory(workspace=workspace, user=user, role=Role.OWNER)
        UserFactory(username="target")  # the sign-in throttling's victim
        values = {
            "STRIPE_KEY": "sk_live_multi_" + os.urandom(8).hex(),
            "DB_PASSWORD": "db-" + os.urandom(8).hex(),
        }
        for key, value in values.items():
            Token.objects.create_token(
                workspace=workspace, key=key, value=value, environments=[production]
            )
        keys = {}
        for name in ("load", "limit", "revoke"):
            keys[name] = AccessKey.objects.create_key(
                workspace=workspace, name=name, environment=production
            )[1]
        try:
            with two_servers(tmp_path_factory.mktemp("servers")) as ports:
                yield {"ports": ports, "keys": keys, "values": values}
        finally:
            call_command("flush", interactive=False, verbosity=0)


def test_a_session_made_on_one_server_works_on_the_other(cluster):
    a, b = cluster["ports"]
    browser = Browser([a, b])
    assert browser.sign_in(a, "olivia", DEFAULT_PASSWORD) == 302
    for port in (b, a, b):
        status, _, page = browser.request(port, "GET", "/w/acme/tokens/")
        assert status == 200 and b"STRIPE_KEY" in page
    browser.close()


def test_a_token_revoked_through_one_server_is_refused_by_the_other_at_once(cluster):
    a, b = cluster["ports"]
    key = cluster["keys"]["revoke"]
    body = b"$Secret{DB_PASSWORD}"
    assert api(b, key, body) == (200, cluster["values"]["DB_PASSWORD"].encode())
    browser = Browser([a, b])
    assert browser.sign_in(b, "olivia", DEFAULT_PASSWORD) == 302
    browser.request(a, "GET", "/w/acme/tokens/")  # a CSRF cookie from server A
    token = Token.objects.get(key="DB_PASSWORD")
    status, _, _ = browser.request(
        a, "POST", f"/w/acme/tokens/{token.pk}/revoke/", {}, headers={"HX-Request": "true"}
    )
    assert status == 204
    status, report = api(b, key, body)
    assert status == 422 and b"token revoked" in report
    assert cluster["values"]["DB_PASSWORD"].encode() not in report
    browser.close()


def _wait_clear_of_a_minute_boundary() -> None:
    """The rate limit counts fixed one-minute windows: start a burst well inside one."""
    if time.time() % 60 > 45:
        time.sleep(61 - time.time() % 60)


def test_the_api_rate_limit_counts_requests_to_both_servers(cluster):
    a, b = cluster["ports"]
    _wait_clear_of_a_minute_boundary()
    statuses = [api(port, cluster["keys"]["limit"])[0] for port in [a, b] * RATE_LIMIT]
    # Per-server counters would let each answer RATE_LIMIT requests: all of them would pass.
    assert statuses.count(200) == RATE_LIMIT, statuses
    assert statuses.count(429) == RATE_LIMIT
    assert {statuses[-1], statuses[-2]} == {429}  # refused by both


def test_sign_in_throttling_counts_failures_on_both_servers(cluster):
    a, b = cluster["ports"]
    browser = Browser([a, b])
    statuses = [browser.sign_in(port, "target", "wrong-password") for port in [a, b, a, b, a]]
    assert statuses == [200, 200, 200, 200, 429]
    assert browser.sign_in(b, "target", DEFAULT_PASSWORD) == 429  # locked out on the other too
    browser.close()


def test_the_tokens_page_the_api_and_healthz_under_load_on_both_servers_give_no_error(cluster):
    ports, key = cluster["ports"], cluster["keys"]["load"]
    errors: list[str] = []
    served: Counter = Counter()
    lock = threading.Lock()

    def client(number: int) -> None:
        rng = random.Random(number)
        browser = Browser(ports)
        try:
            assert browser.sign_in(rng.choice(ports), "olivia", DEFAULT_PASSWORD) == 302
            for _ in range(15):
                port = rng.choice(ports)
                action = rng.choice(["tokens page", "api", "healthz"])
                if action == "tokens page":
                    status, _, _ = browser.request(port, "GET", "/w/acme/tokens/")
                elif action == "api":
                    status, _ = api(port, key)
                else:
                    status, _, _ = browser.request(port, "GET", "/healthz")
                with lock:
                    served[(port, action)] += 1
                    if status != 200:
                        errors.append(f"{action} on {port}: HTTP {status}")
        except Exception as error:  # noqa: BLE001 - every failure is counted
            with lock:
                errors.append(f"{type(error).__name__}: {error}")
        finally:
            browser.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert sum(served.values()) == 90
    assert {port for port, _ in served} == set(ports)
