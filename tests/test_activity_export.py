"""Exporting Activity: the filtered events, all of them, as CSV or JSON lines, streamed,
recorded in the trail, and never a value or an access key."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditAction, AuditEvent
from audit.wording import sentence
from tests.api_helpers import api_setup, get_values, post_resolve
from tests.factories import AuditEventFactory
from tests.helpers import url

pytestmark = pytest.mark.django_db


def export(client, workspace, **query):
    return client.get(url("audit:export", workspace), query)


def body(response) -> str:
    assert response.streaming, "an export is streamed, not built in memory"
    return b"".join(response.streaming_content).decode()


def csv_rows(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(body(response).removeprefix("\ufeff"))))


def json_rows(response) -> list[dict]:
    return [json.loads(line) for line in body(response).splitlines()]


def test_csv_holds_every_filtered_event_not_just_a_page(workspace, viewer_client):
    AuditEventFactory.create_batch(120, workspace=workspace, actor_name="olivia", token_key="K")
    AuditEventFactory(workspace=workspace, actor_name="eddie", token_key="OTHER")

    response = export(viewer_client, workspace, actor="olivia")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="acme-activity-')
    rows = csv_rows(response)
    assert len(rows) == 120
    assert set(rows[0]) == {"time", "actor", "action", "event", "token", "detail"}
    assert rows[0]["event"] == "olivia created K"
    assert rows[0]["action"] == "token.created" and rows[0]["time"].endswith("Z")


def test_json_lines_hold_the_same_fields_with_the_detail_as_json(workspace, owner_client):
    AuditEvent.record(
        workspace,
        AuditAction.MEMBER_ROLE_CHANGED,
        actor_name="olivia",
        detail={"member": "zed", "from": "viewer", "to": "editor"},
    )

    response = export(owner_client, workspace, format="jsonl")

    assert response["Content-Type"] == "application/jsonl"
    (row,) = [r for r in json_rows(response) if r["action"] == "member.role_changed"]
    assert row["event"] == "olivia changed the role of zed from Viewer to Editor"
    assert row["detail"] == {"member": "zed", "from": "viewer", "to": "editor"}


def test_an_export_is_recorded_with_its_format_filters_and_count(workspace, owner_client):
    AuditEventFactory.create_batch(3, workspace=workspace, token_key="K")

    rows = json_rows(export(owner_client, workspace, format="jsonl", token="K"))

    event = AuditEvent.objects.get(action=AuditAction.ACTIVITY_EXPORTED)
    assert event.actor_name == "olivia"
    assert event.detail == {"format": "jsonl", "filters": {"token": "K"}, "events": 3}
    assert sentence(event) == "olivia exported 3 events as JSON lines"
    assert len(rows) == 3, "the export does not hold its own record"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"format": "xlsx"}, "“xlsx” is not an export format: use csv (CSV) or jsonl"),
        ({"format": ""}, "Choose a format for the export"),
        ({"since": "soon"}, "“soon” is not a date for “From”"),
        ({"kind": "all"}, "“all” is not a kind of activity"),
    ],
)
def test_a_bad_format_or_filter_exports_nothing_and_says_why(
    workspace, owner_client, query, message
):
    AuditEventFactory(workspace=workspace)
    events = AuditEvent.objects.count()

    response = export(owner_client, workspace, **query)

    assert response.status_code == 400
    page = response.content.decode()
    assert "Nothing was exported." in page and message in page
    assert AuditEvent.objects.count() == events, "nothing recorded: nothing was exported"


def test_an_outsider_gets_404_and_nothing_is_recorded(workspace, outsider_client):
    AuditEventFactory(workspace=workspace)
    assert export(outsider_client, workspace).status_code == 404
    assert not AuditEvent.objects.filter(action=AuditAction.ACTIVITY_EXPORTED).exists()


def test_no_value_or_access_key_is_ever_exported(client, workspace, owner_client):
    setup = api_setup(workspace)
    assert get_values(client, setup.key, "?keys=DB_URL,STRIPE_KEY").status_code == 200
    assert (
        post_resolve(client, setup.key, "$Secret{DB_URL}", "?source=deploy.yaml").status_code == 200
    )
    assert post_resolve(client, setup.key, "$Secret{NOPE}").status_code == 422  # a failed call

    exported = body(export(owner_client, workspace)) + body(
        export(owner_client, workspace, format="jsonl")
    )

    assert "ci resolved" not in exported and "deploy resolved DB_URL and STRIPE_KEY" in exported
    assert "API call that failed" in exported, "control: the failed call is exported too"
    for value in setup.values.values():
        assert value not in exported
        assert json.dumps(value)[1:-1] not in exported
    assert setup.key not in exported
    assert setup.key[len(setup.row.identifier) :] not in exported, "not even the key's secret part"


def test_a_cell_a_spreadsheet_would_run_is_defused(workspace, owner_client):
    AuditEvent.record(
        workspace,
        AuditAction.PRODUCT_CREATED,
        actor_name="=HYPERLINK(1)",
        detail={"name": "@SUM(1)", "slug": "x"},
    )

    (row,) = [
        r for r in csv_rows(export(owner_client, workspace)) if r["action"] == "product.created"
    ]

    assert row["actor"] == "'=HYPERLINK(1)"
    assert row["event"] == "'=HYPERLINK(1) added the product @SUM(1)"
    rows = json_rows(export(owner_client, workspace, format="jsonl"))
    assert any(r["actor"] == "=HYPERLINK(1)" for r in rows), "JSON keeps the text as it is"


def test_the_export_costs_the_same_queries_for_10_or_1200_events(workspace, owner_client):
    def queries_for(count: int) -> int:
        AuditEvent.objects.all().delete()
        AuditEvent.objects.bulk_create(
            AuditEvent(workspace=workspace, action=AuditAction.CREATED, token_key=f"K{n}")
            for n in range(count)
        )
        with CaptureQueriesContext(connection) as captured:
            rows = csv_rows(export(owner_client, workspace))
        assert len(rows) == count
        return len(captured)

    assert queries_for(10) == queries_for(1200)


@pytest.mark.django_db(transaction=True)
def test_a_large_export_streams_in_autocommit_as_a_server_would(workspace, owner_client):
    """Outside a test transaction, as in production (on PostgreSQL a server-side cursor held
    across the streamed response's chunks)."""
    AuditEvent.objects.bulk_create(
        AuditEvent(workspace=workspace, action=AuditAction.CREATED, token_key=f"K{n:04d}")
        for n in range(2500)
    )

    rows = csv_rows(export(owner_client, workspace))

    assert len(rows) == 2500
    assert [row["token"] for row in rows[:2]] == ["K2499", "K2498"]
