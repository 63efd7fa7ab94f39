"""GET /api/v1/values/<KEY> with ETag and If-None-Match (api/value.py): the same semantics as
the change feed's ETag (tests/test_api_feed.py). The ETag is made of versions, never values; a
304 is authenticated, rate-limited and counted as the key's use, but marks no token used and
writes no "Resolved" event; each change that reaches the answer changes the ETag."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from tests.api_helpers import api_setup, bearer, fresh_rate_limit_window
from tests.factories import AppFactory
from tokens.models import Token, TokenUsage

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(workspace):
    return api_setup(workspace)


def get_value(client, key: str, name: str = "DB_URL", etag: str | None = None):
    headers = bearer(key) | ({"If-None-Match": etag} if etag is not None else {})
    return client.get(f"/api/v1/values/{name}", headers=headers)


def etag_of(client, setup, name: str = "DB_URL") -> str:
    response = get_value(client, setup.key, name)
    assert response.status_code == 200
    return response["ETag"]


def test_the_value_comes_with_an_etag_made_of_no_value(client, setup):
    response = get_value(client, setup.key)
    etag = response["ETag"]
    assert etag.startswith('"v1-') and etag.endswith('"')
    for value in setup.values.values():
        assert value not in etag
    assert etag_of(client, setup) == etag  # the same answer, the same ETag


def test_an_unchanged_value_answers_304_without_a_body(client, setup):
    etag = etag_of(client, setup)
    response = get_value(client, setup.key, etag=etag)
    assert response.status_code == 304
    assert response.content == b""
    assert response["ETag"] == etag
    assert response["Cache-Control"] == "no-store"


def test_a_304_is_no_read_but_counts_the_keys_use(client, setup):
    etag = etag_of(client, setup)
    events = AuditEvent.objects.count()
    reads = AuditEvent.objects.filter(action=AuditAction.RESOLVED).count()
    usages = list(TokenUsage.objects.values_list("token__key", "use_count"))
    setup.row.refresh_from_db()
    uses = setup.row.use_count
    assert get_value(client, setup.key, etag=etag).status_code == 304
    assert AuditEvent.objects.count() == events  # no "Resolved" event: no value left
    assert AuditEvent.objects.filter(action=AuditAction.RESOLVED).count() == reads
    assert list(TokenUsage.objects.values_list("token__key", "use_count")) == usages
    setup.row.refresh_from_db()
    assert setup.row.use_count == uses + 1


def test_weak_and_listed_etags_match_and_a_star_alone_does_not(client, setup):
    etag = etag_of(client, setup)
    assert get_value(client, setup.key, etag=f'"other", W/{etag}').status_code == 304
    assert get_value(client, setup.key, etag='"v1-stale"').status_code == 200
    assert get_value(client, setup.key, etag="*").status_code == 200
    assert get_value(client, setup.key, "MOBILE_ONLY", etag="*").status_code == 404


def test_each_key_and_the_values_list_have_their_own_etag(client, setup):
    db_url, stripe = etag_of(client, setup, "DB_URL"), etag_of(client, setup, "STRIPE_KEY")
    assert db_url != stripe
    assert get_value(client, setup.key, "STRIPE_KEY", etag=db_url).status_code == 200
    listed = client.get("/api/v1/values?keys=DB_URL", headers=bearer(setup.key))["ETag"]
    assert listed != db_url  # another representation (the list's format, not {"key","value"})


@pytest.mark.parametrize(
    "change", ["edit the value", "restore a version", "out of scope", "revoke", "expired"]
)
def test_each_change_of_the_token_changes_the_answer(client, setup, change):
    token = Token.objects.get(workspace=setup.workspace, key="DB_URL")
    token.set_value("second-value-" + "v" * 20)
    before = etag_of(client, setup)
    if change == "edit the value":
        token.set_value("third-value-" + "v" * 20)
    elif change == "restore a version":
        token.restore_version(0)
    elif change == "out of scope":
        token.update(apps=[AppFactory(workspace=setup.workspace, slug="other")])
    elif change == "revoke":
        token.revoke()
    elif change == "expired":
        Token.objects.filter(pk=token.pk).update(expires_at=timezone.now() - dt.timedelta(1))
    response = get_value(client, setup.key, etag=before)
    if change in ("edit the value", "restore a version"):
        assert response.status_code == 200
        assert response["ETag"] != before
        expected = (
            "third-value-" + "v" * 20 if change == "edit the value" else setup.values["DB_URL"]
        )
        assert response.json()["value"] == expected
    else:  # gone from the context: the 404 External Secrets reads as "deleted", not a 304
        assert response.status_code == 404
        assert "ETag" not in response


def test_another_tokens_edit_keeps_the_etag(client, setup):
    before = etag_of(client, setup)
    Token.objects.get(workspace=setup.workspace, key="STRIPE_KEY").set_value("new-" + "s" * 20)
    Token.objects.get(workspace=setup.workspace, key="DB_URL").update(description="Main DB")
    assert get_value(client, setup.key, etag=before).status_code == 304


def test_a_revoked_key_gets_401_not_304(client, setup):
    etag = etag_of(client, setup)
    setup.row.revoke()
    response = get_value(client, setup.key, etag=etag)
    assert response.status_code == 401
    assert "ETag" not in response
    assert get_value(client, "cfr_" + "x" * 40, etag=etag).status_code == 401


def test_a_304_counts_against_the_rate_limit(client, setup, settings):
    settings.COFFER_RATELIMIT_REDIS_URL = ""
    fresh_rate_limit_window(margin=5)
    etag = etag_of(client, setup)
    settings.COFFER_API_RATE_LIMIT = 3  # this minute's window already holds the GET above
    statuses = [get_value(client, setup.key, etag=etag).status_code for _ in range(3)]
    assert statuses == [304, 304, 429]


def test_a_304_makes_a_handful_of_queries(reads_only, client, setup, django_assert_max_num_queries):
    etag = etag_of(client, setup)
    with django_assert_max_num_queries(7):  # auth + rate limit + tokens + the key's use
        assert get_value(client, setup.key, etag=etag).status_code == 304
