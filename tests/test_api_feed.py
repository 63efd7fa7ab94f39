"""The change feed of GET /api/v1/values (api/feed.py): its ETag, If-None-Match and 304, the
`wait` parameter's checks, and the change counter bumped in each change's transaction. The
wait itself is a real server's (ASGI): tests/test_api_longpoll.py."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import transaction
from django.utils import timezone

from api.feed import WAIT_MAX, change_counter
from audit.models import AuditAction, AuditEvent
from tests.api_helpers import api_setup, get_values
from tests.factories import AppFactory, TokenFactory
from tokens.models import Token, TokenUsage

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(workspace):
    return api_setup(workspace)


def etag_of(client, setup, query: str = "") -> str:
    response = get_values(client, setup.key, query)
    assert response.status_code == 200
    return response["ETag"]


def conditional(client, setup, etag: str, query: str = ""):
    return get_values(client, setup.key, query, HTTP_IF_NONE_MATCH=etag)


def test_every_answer_has_an_etag_made_of_no_value(client, setup):
    response = get_values(client, setup.key)
    etag = response["ETag"]
    assert etag.startswith('"v1-') and etag.endswith('"')
    for value in setup.values.values():
        assert value not in etag


def test_an_unchanged_context_answers_304_without_a_body(client, setup):
    etag = etag_of(client, setup)
    response = conditional(client, setup, etag)
    assert response.status_code == 304
    assert response.content == b""
    assert response["ETag"] == etag
    assert response["Cache-Control"] == "no-store"


def test_a_304_is_no_read_but_counts_the_keys_use(client, setup):
    etag = etag_of(client, setup)
    events, usages = AuditEvent.objects.count(), list(TokenUsage.objects.values_list("use_count"))
    setup.row.refresh_from_db()
    uses = setup.row.use_count
    assert conditional(client, setup, etag).status_code == 304
    assert AuditEvent.objects.count() == events  # no "Resolved" event: no value left
    assert list(TokenUsage.objects.values_list("use_count")) == usages
    setup.row.refresh_from_db()
    assert setup.row.use_count == uses + 1


def test_weak_and_listed_etags_match_too(client, setup):
    etag = etag_of(client, setup)
    assert conditional(client, setup, f'"other", W/{etag}').status_code == 304
    assert conditional(client, setup, '"v1-stale"').status_code == 200


@pytest.mark.parametrize(
    "change",
    [
        "edit the value",
        "restore a version",
        "revoke",
        "delete",
        "new token",
        "out of scope",
        "out of the environment",
        "expired",
    ],
)
def test_each_change_that_reaches_the_context_changes_the_etag(client, setup, change):
    token = Token.objects.get(workspace=setup.workspace, key="DB_URL")
    token.set_value("second-value-" + "v" * 20)
    before = etag_of(client, setup)
    if change == "edit the value":
        token.set_value("third-value-" + "v" * 20)
    elif change == "restore a version":
        token.restore_version(0)  # the first value (shown as "Version 1")
    elif change == "revoke":
        token.revoke()
    elif change == "delete":
        token.delete_token()
    elif change == "new token":
        TokenFactory(workspace=setup.workspace, key="NEW_ONE", value="new-value-" + "n" * 20)
    elif change == "out of scope":
        token.update(apps=[AppFactory(workspace=setup.workspace, slug="other")])
    elif change == "out of the environment":
        token.update(environments=[setup.workspace.environments.get(slug="sandbox")])
    elif change == "expired":
        Token.objects.filter(pk=token.pk).update(expires_at=timezone.now() - dt.timedelta(1))
    response = conditional(client, setup, before)
    assert response.status_code == 200, change
    assert response["ETag"] != before


def test_a_description_edit_keeps_the_etag(client, setup):
    before = etag_of(client, setup)
    Token.objects.get(workspace=setup.workspace, key="DB_URL").update(description="Main DB")
    assert conditional(client, setup, before).status_code == 304


def test_the_etag_depends_on_the_question(client, setup):
    tags = {
        etag_of(client, setup),
        etag_of(client, setup, "?keys=DB_URL"),
        etag_of(client, setup, "?format=shell"),
    }
    assert len(tags) == 3
    assert conditional(client, setup, etag_of(client, setup), "?keys=DB_URL").status_code == 200


@pytest.mark.parametrize("wait", ["-1", "61", "1.5", "soon", "", "1e3"])
def test_a_bad_wait_is_a_400_saying_what_is_allowed(client, setup, wait):
    response = get_values(client, setup.key, f"?wait={wait}")
    assert response.status_code == 400
    message = f"wait is a whole number of seconds from 0 to {WAIT_MAX}, e.g. wait=30."
    assert response.json() == {"message": message, "error": message}


def test_under_wsgi_the_server_does_not_hold_and_says_so(client, setup):
    etag = etag_of(client, setup)
    response = conditional(client, setup, etag, "?wait=30")
    assert response.status_code == 304
    assert response["Coffer-Wait"] == "0"


def test_a_revoked_key_gets_401_not_304(client, setup):
    etag = etag_of(client, setup)
    setup.row.revoke()
    response = conditional(client, setup, etag)
    assert response.status_code == 401
    assert "ETag" not in response


def test_other_methods_keep_their_405(client, setup):
    response = client.post("/api/v1/values", headers={"Authorization": f"Bearer {setup.key}"})
    assert response.status_code == 405
    assert response.json()["error"] == response.json()["message"] == "Use GET or HEAD."
    assert response["Allow"] == "GET, HEAD"


def test_head_says_whether_it_changed_without_reading_a_value(client, setup):
    etag = etag_of(client, setup)
    events = AuditEvent.objects.count()
    headers = {"Authorization": f"Bearer {setup.key}"}
    unchanged = client.head("/api/v1/values", headers={**headers, "If-None-Match": etag})
    assert unchanged.status_code == 304
    Token.objects.get(workspace=setup.workspace, key="DB_URL").set_value("new-" + "h" * 20)
    events_after_edit = AuditEvent.objects.count()
    assert events_after_edit == events + 1  # the edit's own event
    changed = client.head("/api/v1/values", headers={**headers, "If-None-Match": etag})
    assert changed.status_code == 200
    assert changed["ETag"] != etag
    assert changed.content == b""
    assert AuditEvent.objects.count() == events_after_edit  # no "Resolved": nothing was read
    assert get_values(client, setup.key)["ETag"] == changed["ETag"]  # the GET's own ETag


def test_a_conditional_request_makes_two_short_queries_more_at_most(
    reads_only, client, setup, django_assert_max_num_queries
):
    etag = etag_of(client, setup)
    with django_assert_max_num_queries(8):  # auth + rate limit + counter + tokens + use
        assert conditional(client, setup, etag).status_code == 304


# --- the change counter ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # each change commits, as each request does
def test_every_change_bumps_the_workspace_counter_and_reads_do_not(client, setup):
    start = change_counter(setup.workspace.pk)
    token = Token.objects.get(workspace=setup.workspace, key="DB_URL")
    token.set_value("changed-value-" + "c" * 20)
    token.revoke()
    assert change_counter(setup.workspace.pk) == start + 2
    get_values(client, setup.key)  # a read: "Resolved" is audited, nothing changed
    assert AuditEvent.objects.filter(action=AuditAction.RESOLVED).exists()
    assert change_counter(setup.workspace.pk) == start + 2
    setup.row.revoke()  # the key itself: its waiters must hear it
    assert change_counter(setup.workspace.pk) == start + 3


def test_a_change_rolled_back_bumps_nothing(setup):
    start = change_counter(setup.workspace.pk)
    token = Token.objects.get(workspace=setup.workspace, key="DB_URL")
    with pytest.raises(RuntimeError), transaction.atomic():
        token.set_value("never-kept-value-" + "r" * 20)
        raise RuntimeError
    assert change_counter(setup.workspace.pk) == start


@pytest.mark.django_db(transaction=True)
def test_one_transaction_bumps_once_however_many_changes(setup):
    """An import or a bulk action of a thousand tokens is one change to a waiter (and one
    upsert, not a thousand)."""
    start = change_counter(setup.workspace.pk)
    with transaction.atomic():
        for token in Token.objects.filter(workspace=setup.workspace):
            token.revoke()
    assert change_counter(setup.workspace.pk) == start + 1


def test_counters_are_per_workspace(setup, other_workspace):
    start = change_counter(setup.workspace.pk)
    TokenFactory(workspace=other_workspace, key="ELSEWHERE", value="elsewhere-" + "e" * 20)
    assert change_counter(setup.workspace.pk) == start
    assert change_counter(other_workspace.pk) >= 1
