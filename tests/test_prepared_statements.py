"""The statements every API read sends are prepared once per database connection on PostgreSQL
(lib/prepared.py): PostgreSQL parses and plans them on a connection's first read, and the next
reads only execute them. `COFFER_DB_PREPARED=false` (a pooler that cannot carry prepared
statements) prepares nothing and reads the same."""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection
from django.test import Client

from access.models import AccessKey
from audit.models import AuditAction, AuditEvent
from tests.api_helpers import get_values
from tests.factories import TokenFactory, UserFactory, make_access_key


@pytest.fixture
def on_postgresql(transactional_db, settings):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL; run with DATABASE_URL")
    settings.COFFER_API_RATE_LIMIT = settings.COFFER_API_AUTH_FAILURE_LIMIT = 1_000_000
    connection.close()  # a new session: no statement prepared yet


def prepared_statements() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE NOT from_sql")
        return {row[0] for row in cursor.fetchall()}


def read(key: str) -> dict:
    response = get_values(Client(), key)
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.postgres
def test_a_reads_statements_are_planned_once_per_connection(on_postgresql, workspace):
    TokenFactory(workspace=workspace, key="DB_URL", value="postgres://u:p@db/app")
    TokenFactory(workspace=workspace, key="STRIPE_KEY", value="sk_live_abc")
    _, key = make_access_key(workspace)

    assert read(key) == {"DB_URL": "postgres://u:p@db/app", "STRIPE_KEY": "sk_live_abc"}
    first = prepared_statements()
    tables = ("api_ratelimitwindow", "access_accesskey", "tokens_token", "tokens_userecord")
    for table in (*tables, "audit_auditevent"):
        assert any(table in statement for statement in first), table

    for _ in range(3):
        assert read(key)["STRIPE_KEY"] == "sk_live_abc"
    assert prepared_statements() == first  # executed again, not prepared again
    assert AuditEvent.objects.filter(action=AuditAction.RESOLVED).count() == 4


@pytest.mark.postgres
def test_nothing_is_prepared_when_prepared_statements_are_off(on_postgresql, workspace, settings):
    settings.COFFER_DB_PREPARED = False
    TokenFactory(workspace=workspace, key="DB_URL", value="postgres://u:p@db/app")
    _, key = make_access_key(workspace)

    assert read(key) == {"DB_URL": "postgres://u:p@db/app"}
    assert read(key) == {"DB_URL": "postgres://u:p@db/app"}
    assert prepared_statements() == set()
    assert AuditEvent.objects.filter(action=AuditAction.RESOLVED).count() == 2


@pytest.mark.postgres
def test_a_column_changed_under_a_running_server_fails_one_request_not_every_one(
    on_postgresql, workspace
):
    """A migration that changes a column a prepared statement returns (a rolling deploy: the
    old server still runs) makes that statement fail in every later execution on the session
    ("cached plan must not change result type"). The read that meets it is a 503; the
    connection is closed when its request ends, and the next read prepares anew."""
    TokenFactory(workspace=workspace, key="DB_URL", value="postgres://u:p@db/app")
    _, key = make_access_key(workspace)
    assert read(key) == {"DB_URL": "postgres://u:p@db/app"}  # the key's lookup is prepared
    connection.close_at = None  # a kept connection (CONN_MAX_AGE=None): only an error closes it

    settings_dict = connection.settings_dict
    other = psycopg.connect(
        dbname=settings_dict["NAME"],
        host=settings_dict["HOST"] or None,
        port=settings_dict["PORT"] or None,
        user=settings_dict["USER"] or None,
        autocommit=True,
    )
    with other:
        other.execute("ALTER TABLE access_accesskey ALTER COLUMN name TYPE text")
        try:
            failed = get_values(Client(), key)
            assert failed.status_code == 503
            assert connection.close_at is not None
            connection.close_if_unusable_or_obsolete()  # what Django does as the request ends
            assert read(key) == {"DB_URL": "postgres://u:p@db/app"}
        finally:
            connection.close()
            length = AccessKey._meta.get_field("name").max_length
            other.execute(f"ALTER TABLE access_accesskey ALTER COLUMN name TYPE varchar({length})")


@pytest.mark.django_db
def test_a_recorded_event_reads_back_as_it_was_built(workspace):
    """`record` writes the row with its own INSERT: every field comes back as built."""
    user = UserFactory(username="ana")
    detail = {"keys": ["DB_URL", "STRIPE_KEY"], "note": "café ✓", "nested": {"n": 2, "x": None}}
    event = AuditEvent.record(workspace, AuditAction.RESOLVED, by=user, detail=detail)

    assert event.pk is not None and not event._state.adding
    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.workspace_id, stored.action, stored.actor_id, stored.actor_name) == (
        workspace.pk,
        AuditAction.RESOLVED,
        user.pk,
        "ana",
    )
    assert stored.detail == detail
    assert stored.token_id is None and stored.token_key == ""
    assert stored.created_at == event.created_at
    later = AuditEvent.record(workspace, AuditAction.RESOLVED, actor_name="ci-deploy")
    assert later.pk > event.pk
    assert AuditEvent.objects.get(pk=later.pk).actor_name == "ci-deploy"
