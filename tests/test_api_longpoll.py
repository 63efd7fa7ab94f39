"""The change feed's long poll on a real server: gunicorn with uvicorn workers (config.asgi,
COFFER_WEB_SERVER=asgi), on SQLite and on PostgreSQL, driven by curl.

A waiter (If-None-Match + wait) is answered when a token it reads is edited, when its key is
revoked, when a token's expiry passes, and with 304 when its wait ends with nothing changed; a
waiter whose client went away stops waiting.
The bounds asserted are the wait's own (an answer before the wait ends), not speeds: how
quickly waiters hear of an edit is bench/longpoll.py's."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api_server import CURL, Server, parse_response, running_server

pytestmark = pytest.mark.slow

PG_ADMIN = os.environ.get("COFFER_TEST_PG_ADMIN", "postgres://postgres@127.0.0.1:5432/postgres")


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh database of its own on the local PostgreSQL server, dropped afterwards."""
    psycopg = pytest.importorskip("psycopg")
    name = f"delivery_db_longpoll_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        pytest.skip("needs a PostgreSQL server (COFFER_TEST_PG_ADMIN)")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def server(request) -> Iterator[Server]:
    with contextlib.ExitStack() as stack:
        env = {"COFFER_API_RATE_LIMIT": "1000"}
        if request.param == "postgresql":
            env["DATABASE_URL"] = stack.enter_context(postgres_database())
        yield stack.enter_context(running_server(asgi=True, **env))


class Waiter:
    """One curl holding `GET /api/v1/values?wait=...` with the ETag it has."""

    def __init__(self, server: Server, key: str, etag: str, wait: int) -> None:
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [
                CURL,
                "-sS",
                "-i",
                "--max-time",
                str(wait + 30),
                "-H",
                f"Authorization: Bearer {key}",
                "-H",
                f"If-None-Match: {etag}",
                f"{server.url}/api/v1/values?wait={wait}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def answer(self) -> tuple[int, dict, bytes, float]:
        out, _ = self.process.communicate(timeout=120)
        return (*parse_response(out), time.monotonic() - self.started)


def current(server: Server, key: str) -> tuple[str, dict]:
    status, headers, body = server.curl("/api/v1/values", key=key)
    assert status == 200
    return headers["etag"], json.loads(body)


def settle() -> None:
    """Give a waiter time to be waiting (its curl started, its first look done)."""
    time.sleep(2)


def test_an_edit_ends_the_wait_with_the_new_values(server):
    key = server.keys["main"]
    etag, values = current(server, key)
    waiter = Waiter(server, key, etag, wait=40)
    settle()
    server.django(
        "from tokens.models import Token\n"
        "Token.objects.get(key='DB_URL').set_value('rotated-db-url-value')"
    )
    status, headers, body, took = waiter.answer()
    assert status == 200
    assert json.loads(body)["DB_URL"] == "rotated-db-url-value"
    assert headers["etag"] != etag
    assert headers["coffer-wait"] == "40"
    assert took < 30, "answered by the edit, not by the end of the wait"


def test_nothing_changed_is_a_304_when_the_wait_ends(server):
    key = server.keys["main"]
    etag, _ = current(server, key)
    status, headers, body, took = Waiter(server, key, etag, wait=2).answer()
    assert status == 304
    assert body == b""
    assert headers["etag"] == etag
    assert took >= 2


def test_a_change_the_context_cannot_see_does_not_end_the_wait(server):
    key = server.keys["main"]
    etag, _ = current(server, key)
    waiter = Waiter(server, key, etag, wait=5)
    settle()
    server.django(
        "from tokens.models import Token\n"
        "Token.objects.get(key='DB_URL').update(description='only words')"
    )
    status, _, _, took = waiter.answer()
    assert status == 304
    assert took >= 5


def test_revoking_the_key_ends_the_wait_with_401(server):
    key = server.keys["spare0"]
    etag, _ = current(server, key)
    waiter = Waiter(server, key, etag, wait=40)
    settle()
    server.django(
        "from access.models import AccessKey\nAccessKey.objects.get(name='spare0').revoke()"
    )
    status, headers, body, took = waiter.answer()
    assert status == 401
    assert "etag" not in headers
    assert took < 30


def test_an_expiry_passing_ends_the_wait(server):
    key = server.keys["main"]
    # An expiry set straight in the database (no edit, no audit event, no counter bump): only
    # the waiter's own deadline can notice it.
    server.django(
        "import datetime as dt\nfrom django.utils import timezone\n"
        "from tokens.models import Token\n"
        "Token.objects.filter(key='QUOTES').update("
        "expires_at=timezone.now() + dt.timedelta(seconds=6))"
    )
    etag, values = current(server, key)
    assert "QUOTES" in values
    status, headers, body, took = Waiter(server, key, etag, wait=40).answer()
    assert status == 200
    assert "QUOTES" not in json.loads(body)
    assert took < 30


def server_threads(server: Server) -> int:
    """The threads of gunicorn's master and workers (each waiter parks one, api/feed.py)."""
    pids = [server.process.pid]
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == server.process.pid:
                pids.append(int(entry.name))
    threads = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{pid}/status").read_text()
            threads += int(status.split("Threads:", 1)[1].split()[0])
    return threads


def key_uses(server: Server, name: str) -> int:
    return int(
        server.django(
            "from access.models import AccessKey\nfrom tokens import usage\nusage.settle()\n"
            f"print(AccessKey.objects.get(name={name!r}).use_count)"
        ).split()[-1]
    )


def until(check, within: float = 30) -> bool:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
def test_a_waiter_whose_client_went_away_stops_waiting(server):
    """Ten raw connections ask to wait 10 s and close once they wait: the server lets them go
    (the threads they parked end at once), and none is answered at the end of its wait: a 304
    there would count as a use of the key, and its count stays as it was well past the end."""
    key, wait, count = server.keys["spare1"], 10, 10
    etag, _ = current(server, key)
    Waiter(server, key, etag, wait=1).answer()  # the change hub's thread is running
    before, uses = server_threads(server), key_uses(server, "spare1")
    host, port = server.url.removeprefix("http://").split(":")
    request = (
        f"HEAD /api/v1/values?wait={wait} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {key}\r\nIf-None-Match: {etag}\r\n\r\n"
    ).encode()
    opened = time.monotonic()
    sockets = [socket.create_connection((host, int(port)), timeout=10) for _ in range(count)]
    try:
        for sock in sockets:
            sock.sendall(request)
        # Each waiter parks a thread: they are waiting (none was answered at once). Two are
        # spared: a thread that was ending when `before` was read.
        assert until(lambda: server_threads(server) >= before + count - 2, within=wait - 2), (
            f"the waiters did not start waiting: {server_threads(server)} threads, {before} before"
        )
    finally:
        for sock in sockets:
            sock.close()
    # Their threads end (the other worker may have started its change hub's thread: +1).
    assert until(lambda: server_threads(server) <= before + 2, within=wait - 2), (
        f"{server_threads(server)} threads, {before} before: the waiters still wait"
    )
    # Well past the end of their wait, no 304 was answered to anyone.
    while time.monotonic() < opened + wait + 6:
        assert key_uses(server, "spare1") == uses, "a waiter whose client left was answered"
        time.sleep(0.5)
