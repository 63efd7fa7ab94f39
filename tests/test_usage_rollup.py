"""The read path's promises about usage and concurrency (tokens/usage.py, the resolve's
transaction): a read appends one usage record and updates no shared row, so readers with the
same key never wait for each other; the records are folded into usage after a stated delay, and
every page that shows usage is exact when it is shown.

The suite runs with COFFER_USAGE_ROLLUP_SECONDS=0 (conftest.py); these tests run the production
interval.
"""

from __future__ import annotations

import re
import threading
import time

import pytest
from django.db import connection, connections, transaction
from django.test import Client
from django.urls import reverse

from access.models import AccessKey
from audit.models import AuditAction, AuditEvent
from tests.api_helpers import get_values
from tests.factories import TokenFactory, make_access_key
from tokens import usage
from tokens.models import Token, TokenUsage, UseRecord

ADDRESS = "192.0.2.44"


@pytest.fixture
def not_due(settings, monkeypatch):
    """The production interval, with a roll-up just done: the next reads only append."""
    settings.COFFER_USAGE_ROLLUP_SECONDS = 1
    monkeypatch.setattr(usage, "_last_roll_up", time.monotonic())


def read(key: str, client: Client | None = None) -> int:
    response = get_values(client or Client(), key, REMOTE_ADDR=ADDRESS)
    return response.status_code


def test_reads_append_and_the_token_page_shows_exact_usage(
    workspace, owner_client, not_due, django_assert_max_num_queries
):
    token = TokenFactory(workspace=workspace, key="DB_URL", value="postgres://u:p@db/app")
    row, key = make_access_key(workspace, name="ci-deploy")
    for _ in range(3):
        assert read(key) == 200
    # Not folded yet: three records, no usage row, the key's count untouched.
    assert UseRecord.objects.count() == 3
    assert not TokenUsage.objects.exists()
    assert AccessKey.objects.get(pk=row.pk).use_count == 0

    page = owner_client.get(reverse("tokens:detail", args=["acme", token.pk]))

    assert page.status_code == 200
    cells = re.findall(r'<td data-label="Uses">(\d+)</td>', page.content.decode())
    assert cells == ["3"], "the page folded the pending reads before showing them"
    assert not UseRecord.objects.exists()
    usage_row = TokenUsage.objects.get(token=token)
    assert (usage_row.use_count, usage_row.access_key) == (3, "ci-deploy")
    token.refresh_from_db()
    assert token.last_used_at == usage_row.last_used_at
    row.refresh_from_db()
    assert (row.use_count, row.last_used_from) == (3, ADDRESS)


def test_the_access_keys_page_shows_exact_use_counts(workspace, owner_client, not_due):
    TokenFactory(workspace=workspace, key="DB_URL", value="postgres://u:p@db/app")
    _, key = make_access_key(workspace, name="ci-deploy")
    for _ in range(2):
        read(key)
    page = owner_client.get(reverse("access:list", args=["acme"])).content.decode()
    assert re.findall(r'<td data-label="Uses" class="text-end">(\d+)</td>', page) == ["2"]
    assert ADDRESS in page


def test_a_read_after_the_interval_folds_what_is_pending(workspace, not_due, monkeypatch):
    token = TokenFactory(workspace=workspace, key="DB_URL", value="postgres://u:p@db/app")
    _, key = make_access_key(workspace)
    read(key)
    read(key)
    assert UseRecord.objects.count() == 2
    monkeypatch.setattr(usage, "_last_roll_up", time.monotonic() - 1.5)  # a second has passed
    read(key)
    assert not UseRecord.objects.exists()
    assert TokenUsage.objects.get(token=token).use_count == 3


def test_a_failed_read_and_a_304_count_on_the_key_but_not_on_any_token(workspace, client):
    TokenFactory(workspace=workspace, key="DB_URL", value="postgres://u:p@db/app")
    row, key = make_access_key(workspace)
    assert get_values(client, key, "?keys=NOPE").status_code == 422
    first = get_values(client, key)
    assert get_values(client, key, HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304
    usage.settle()
    row.refresh_from_db()
    assert row.use_count == 3
    assert TokenUsage.objects.get().use_count == 1  # only the read that returned values


def test_a_roll_up_waits_for_one_in_progress_and_counts_each_record_once(workspace, not_due):
    token = TokenFactory(workspace=workspace, key="DB_URL", value="postgres://u:p@db/app")
    _, key = make_access_key(workspace)
    for _ in range(5):
        read(key)
    assert usage.roll_up(batch=2) == 5  # in batches of two
    assert usage.roll_up() == 0
    assert TokenUsage.objects.get(token=token).use_count == 5


# --- PostgreSQL: readers in parallel --------------------------------------------------------


@pytest.fixture
def on_postgresql(transactional_db, settings):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (SQLite serialises all writers); run with DATABASE_URL")
    settings.COFFER_API_RATE_LIMIT = settings.COFFER_API_AUTH_FAILURE_LIMIT = 1_000_000


@pytest.mark.postgres
def test_two_reads_with_one_key_do_not_wait_for_each_other(on_postgresql, workspace, monkeypatch):
    """The first read is held inside its transaction (after its lookup, with the key's and the
    token's rows locked FOR KEY SHARE); a second read with the same key completes meanwhile, and
    so does its roll-up of the usage, which updates the token's and the key's rows. (Before,
    each read updated the key's row and every token's, so the second waited for the first.)"""
    TokenFactory(workspace=workspace, key="DB_URL", value="postgres://u:p@db/app")
    _, key = make_access_key(workspace)
    inside, release = threading.Event(), threading.Event()
    reveal = Token.objects.reveal_values
    calls = []

    def held_reveal(tokens, data_keys=None):
        calls.append(1)
        if len(calls) == 1:
            inside.set()
            assert release.wait(timeout=30)
        return reveal(tokens, data_keys)

    monkeypatch.setattr(Token.objects, "reveal_values", held_reveal)
    outcomes: dict[str, int] = {}

    def run(name: str) -> None:
        try:
            outcomes[name] = read(key)
        finally:
            connections.close_all()

    first = threading.Thread(target=run, args=("first",))
    first.start()
    try:
        assert inside.wait(timeout=30)
        second = threading.Thread(target=run, args=("second",))
        second.start()
        second.join(timeout=10)
        assert outcomes.get("second") == 200, "the second read waited for the first"
        assert "first" not in outcomes
    finally:
        release.set()
        first.join(timeout=30)
    assert outcomes == {"first": 200, "second": 200}


@pytest.mark.postgres
@pytest.mark.slow
def test_parallel_reads_are_each_audited_and_counted_exactly_once(on_postgresql, workspace):
    tokens = [
        TokenFactory(workspace=workspace, key=f"KEY_{n}", value=f"value-{n}-000000000000")
        for n in range(5)
    ]
    row, key = make_access_key(workspace)
    threads, per_thread = 6, 15
    statuses: list[int] = []
    lock = threading.Lock()

    def reader() -> None:
        try:
            client = Client()
            for _ in range(per_thread):
                status = read(key, client)
                with lock:
                    statuses.append(status)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=reader) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)

    total = threads * per_thread
    assert statuses == [200] * total
    assert AuditEvent.objects.filter(action=AuditAction.RESOLVED).count() == total
    usage.settle()
    assert not UseRecord.objects.exists()
    for token in tokens:
        assert TokenUsage.objects.get(token=token).use_count == total
    row.refresh_from_db()
    assert row.use_count == total


@pytest.mark.postgres
def test_a_read_commits_without_waiting_for_the_disk_unless_durable_reads(
    on_postgresql, workspace, settings, monkeypatch
):
    TokenFactory(workspace=workspace, key="DB_URL", value="postgres://u:p@db/app")
    _, key = make_access_key(workspace)
    seen = []
    record = AuditEvent.record

    def watching_record(*args, **kwargs):  # after the usage record, before the commit
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            seen.append(cursor.fetchone()[0])
        return record(*args, **kwargs)

    monkeypatch.setattr(AuditEvent, "record", watching_record)
    assert read(key) == 200
    settings.COFFER_DURABLE_READS = True
    assert read(key) == 200
    assert seen == ["off", "on"]


@pytest.mark.postgres
def test_a_roll_up_gives_way_to_a_change_holding_a_token(on_postgresql, workspace, settings):
    """A revoke or a bulk change holding a token's row: the roll-up waits at most LOCK_WAIT,
    leaves the records for later (the read that triggered it is not failed), and the next
    roll-up folds them."""
    token = TokenFactory(workspace=workspace, key="DB_URL", value="postgres://u:p@db/app")
    _, key = make_access_key(workspace)
    settings.COFFER_USAGE_ROLLUP_SECONDS = 3600
    usage._last_roll_up = time.monotonic()
    assert read(key) == 200
    holding, release = threading.Event(), threading.Event()

    def hold_the_token() -> None:
        try:
            with transaction.atomic():
                Token.objects.locked().get(pk=token.pk)
                holding.set()
                release.wait(timeout=30)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_the_token)
    holder.start()
    try:
        assert holding.wait(timeout=30)
        started = time.monotonic()
        usage.settle()  # does not raise
        assert time.monotonic() - started < 5
        assert UseRecord.objects.count() == 1, "left for later"
    finally:
        release.set()
        holder.join(timeout=30)
    usage.settle()
    assert not UseRecord.objects.exists()
    assert TokenUsage.objects.get(token=token).use_count == 1
