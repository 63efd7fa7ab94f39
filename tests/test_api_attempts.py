"""What a check or a failed API call may say, and how it is counted and audited.

A key learns nothing about a token outside its environment (not its status, expiry or
environments: the same words as for a key no token has); a token it could use keeps its useful
reason. Every check and failed call counts as a use of the key and is audited, at most one
event per key and kind a minute.
"""

from __future__ import annotations

import datetime as dt

import pytest

from audit.models import AuditAction, AuditEvent
from tests.api_helpers import api_setup, get_values, post_resolve
from tests.factories import TokenFactory, make_access_key
from tokens.models import NOT_AVAILABLE, Token

pytestmark = pytest.mark.django_db

EXPIRY = dt.datetime(2025, 3, 4, 5, 6, 7, tzinfo=dt.UTC)


@pytest.fixture
def sandbox_key(workspace):
    """A key for Sandbox; PROD_ONLY (Production only) expired, REVOKED_PROD revoked, and
    OLD_SANDBOX expired in Sandbox."""
    api_setup(workspace)
    production = workspace.environments.get(slug="production")
    sandbox = workspace.environments.get(slug="sandbox")
    expired = TokenFactory(workspace=workspace, key="PROD_ONLY", environments=[production])
    Token.objects.filter(pk=expired.pk).update(expires_at=EXPIRY)
    TokenFactory(workspace=workspace, key="REVOKED_PROD", environments=[production]).revoke()
    mine = TokenFactory(workspace=workspace, key="OLD_SANDBOX", environments=[sandbox])
    Token.objects.filter(pk=mine.pk).update(expires_at=EXPIRY)
    TokenFactory(workspace=workspace, key="GONE_SANDBOX", environments=[sandbox]).revoke()
    row, key = make_access_key(workspace, name="sandbox-ci", environment=sandbox)
    return row, key


def reasons(response) -> dict:
    return {entry["key"]: entry["reason"] for entry in response.json()["references"]}


@pytest.mark.parametrize("query", ["?check=1", ""])
def test_another_environments_token_reveals_nothing(client, sandbox_key, query):
    _, key = sandbox_key
    template = "$Secret{PROD_ONLY} $Secret{REVOKED_PROD} $Secret{NO_SUCH_KEY}"
    response = post_resolve(client, key, template, query)
    assert response.status_code == 422
    assert reasons(response) == {
        "PROD_ONLY": NOT_AVAILABLE,
        "REVOKED_PROD": NOT_AVAILABLE,
        "NO_SUCH_KEY": NOT_AVAILABLE,  # the same words: existence is not revealed either
    }
    body = response.content.decode()
    for hint in ("production", "Production", "2025-03-04", "expired", "revoked"):
        assert hint not in body


def test_values_reveal_nothing_of_another_environment_either(client, sandbox_key):
    _, key = sandbox_key
    response = get_values(client, key, "?keys=PROD_ONLY,REVOKED_PROD")
    assert response.status_code == 422
    assert set(reasons(response).values()) == {NOT_AVAILABLE}
    assert "2025-03-04" not in response.content.decode()


def test_a_token_the_context_may_see_keeps_its_reason(client, sandbox_key):
    _, key = sandbox_key
    response = post_resolve(client, key, "$Secret{OLD_SANDBOX} $Secret{GONE_SANDBOX}", "?check=1")
    assert reasons(response) == {
        "OLD_SANDBOX": "token expired on 2025-03-04 05:06:07 UTC",
        "GONE_SANDBOX": "token revoked",
    }


def test_check_calls_are_counted_and_audited(client, sandbox_key):
    row, key = sandbox_key
    response = post_resolve(
        client, key, "$Secret{PROD_ONLY}", "?check=1&source=ci.yaml", REMOTE_ADDR="192.0.2.7"
    )
    assert response.status_code == 422
    row.refresh_from_db()
    assert row.use_count == 1 and row.last_used_from == "192.0.2.7"
    event = AuditEvent.objects.get(action=AuditAction.ACCESS_KEY_CHECKED)
    assert event.actor_name == row.actor_name
    assert event.detail["access_key"] == "sandbox-ci"
    assert event.detail["environment"] == "sandbox"
    assert event.detail["source"] == "ci.yaml"
    assert (event.detail["ok"], event.detail["problems"]) == (False, 1)
    assert event.detail["client_address"] == "192.0.2.7"


def test_a_checks_event_counts_every_failing_occurrence(client, sandbox_key):
    """The report keeps the first 1,000 failing occurrences; the event counts them all."""
    _, key = sandbox_key
    template = "$Secret{PROD_ONLY}\n" * 1_500
    assert post_resolve(client, key, template, "?check=1").status_code == 422
    event = AuditEvent.objects.get(action=AuditAction.ACCESS_KEY_CHECKED)
    assert (event.detail["ok"], event.detail["problems"]) == (False, 1_500)


def test_failed_calls_are_counted_and_audited(client, sandbox_key):
    row, key = sandbox_key
    assert post_resolve(client, key, "$Secret{PROD_ONLY}").status_code == 422
    assert get_values(client, key, "?keys=PROD_ONLY").status_code == 422
    row.refresh_from_db()
    assert row.use_count == 2
    events = AuditEvent.objects.filter(action=AuditAction.ACCESS_KEY_CALL_FAILED)
    assert events.count() == 1, "one event per key per minute"
    assert events.get().detail["problems"] == 1
    assert not AuditEvent.objects.filter(action=AuditAction.RESOLVED).exists()


def test_a_client_failing_in_a_loop_writes_one_event_a_minute(client, sandbox_key):
    row, key = sandbox_key
    for _ in range(12):
        post_resolve(client, key, "$Secret{PROD_ONLY}")
        post_resolve(client, key, "$Secret{PROD_ONLY}", "?check=1")
    row.refresh_from_db()
    assert row.use_count == 24, "every call is counted on the key"
    assert AuditEvent.objects.filter(action=AuditAction.ACCESS_KEY_CALL_FAILED).count() == 1
    assert AuditEvent.objects.filter(action=AuditAction.ACCESS_KEY_CHECKED).count() == 1


def test_an_output_too_large_is_a_failed_call(client, sandbox_key, settings):
    row, key = sandbox_key
    TokenFactory(workspace=row.workspace, key="BIG", value="x" * 1000)
    settings.COFFER_RESOLVE_MAX_OUTPUT_BYTES = 1500
    assert post_resolve(client, key, "$Secret{BIG}" * 2).status_code == 413
    event = AuditEvent.objects.get(action=AuditAction.ACCESS_KEY_CALL_FAILED)
    assert event.detail["reason"] == "output too large"
