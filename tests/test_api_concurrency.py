"""Concurrency on PostgreSQL: an access key revoked while API requests are in flight.

Once the revoke has committed, no request with the key succeeds: each resolve or values call
re-checks the key in its transaction and holds a FOR KEY SHARE lock on its row until the end
(`AccessKey.hold`), and `AccessKey.revoke` locks that row FOR UPDATE. So a revoke waits for the
requests already past that point, and every request after it is refused (401).
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections
from django.test import Client

from access.models import AccessKey
from audit.models import AuditAction, AuditEvent
from tests.api_helpers import bearer
from tests.factories import TokenFactory, WorkspaceFactory, make_access_key
from tokens import usage
from tokens.models import Token

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture(autouse=True)
def on_postgresql(transactional_db, settings):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (SQLite serialises all writers); run with DATABASE_URL")
    settings.COFFER_API_RATE_LIMIT = settings.COFFER_API_AUTH_FAILURE_LIMIT = 1_000_000


def resolve(key: str) -> int:
    response = Client().post(
        "/api/v1/resolve", "$Secret{RACED}", content_type="text/plain", headers=bearer(key)
    )
    return response.status_code


def test_no_request_succeeds_once_the_revoke_has_committed():
    workspace = WorkspaceFactory(slug="acme")
    TokenFactory(workspace=workspace, key="RACED", value="raced-value-0000000000")
    row, key = make_access_key(workspace)
    stop = threading.Event()
    outcomes: list[tuple[float, float, int]] = []  # (started, finished, status)
    lock = threading.Lock()

    def hammer():
        try:
            while not stop.is_set():
                started = time.monotonic()
                status = resolve(key)
                with lock:
                    outcomes.append((started, time.monotonic(), status))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=hammer) for _ in range(6)]
    for thread in threads:
        thread.start()
    try:
        while sum(1 for _, _, status in outcomes if status == 200) < 20:
            time.sleep(0.01)
        AccessKey.objects.get(pk=row.pk).revoke()
        revoked_at = time.monotonic()
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)

    after = [status for started, _, status in outcomes if started > revoked_at]
    assert after and set(after) == {401}, "every request begun after the revoke is refused"
    assert {status for _, _, status in outcomes} <= {200, 401}
    revoke_event = AuditEvent.objects.get(action=AuditAction.ACCESS_KEY_REVOKED)
    resolved = AuditEvent.objects.filter(action=AuditAction.RESOLVED)
    successes = sum(1 for _, _, status in outcomes if status == 200)
    assert resolved.count() == successes, "one audit event per success, none for refusals"
    assert not resolved.filter(id__gt=revoke_event.id).exists(), "none after the revoke"
    usage.settle()  # the last reads' usage records, folded
    row.refresh_from_db()
    assert row.use_count == successes


def test_a_revoke_waits_for_a_resolve_in_flight(monkeypatch):
    workspace = WorkspaceFactory(slug="acme")
    TokenFactory(workspace=workspace, key="RACED", value="raced-value-0000000000")
    row, key = make_access_key(workspace)
    inside, release, revoked = threading.Event(), threading.Event(), threading.Event()
    backends: dict[str, int] = {}
    reveal = Token.objects.reveal_values

    def paused_reveal(tokens, data_keys=None):  # in the request's transaction, key row locked
        backends["request"] = connection.connection.info.backend_pid
        inside.set()
        assert release.wait(timeout=30)
        return reveal(tokens, data_keys)

    monkeypatch.setattr(Token.objects, "reveal_values", paused_reveal)
    outcomes: dict = {}

    def run(name, work):
        try:
            outcomes[name] = work()
        finally:
            connections.close_all()

    def revoke():
        connection.ensure_connection()
        backends["revoke"] = connection.connection.info.backend_pid
        AccessKey.objects.get(pk=row.pk).revoke()
        revoked.set()
        return "revoked"

    request = threading.Thread(target=run, args=("request", lambda: resolve(key)))
    request.start()
    try:
        assert inside.wait(timeout=30)
        revoker = threading.Thread(target=run, args=("revoke", revoke))
        revoker.start()
        blocked = False
        for _ in range(300):
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_blocking_pids(%s)", [backends.get("revoke", 0)])
                blocked = backends["request"] in cursor.fetchone()[0]
            if blocked or revoked.is_set():
                break
            time.sleep(0.05)
        assert blocked, "the revoke did not wait for the request's lock on the key"
    finally:
        release.set()
        request.join(timeout=30)
    revoker.join(timeout=30)
    assert outcomes == {"request": 200, "revoke": "revoked"}
    assert resolve(key) == 401
    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions[-2:] == [AuditAction.RESOLVED, AuditAction.ACCESS_KEY_REVOKED]
