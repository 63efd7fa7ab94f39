"""Activity's filters: who, token, dates and kind, in the URL; a bad value is named, left out,
and changes nothing else."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from tests.factories import AuditEventFactory
from tests.helpers import HTMX, event_sentences, text, url

pytestmark = pytest.mark.django_db


def at(day: str, time: str = "12:00") -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T{time}:00+00:00")


def resolve_event(workspace, keys, *, when=None, actor="access key ci (cfr_x…)"):
    return AuditEvent.record(
        workspace,
        AuditAction.RESOLVED,
        actor_name=actor,
        detail={"keys": keys, "environment": "production", "access_key": "ci"},
        at=when,
    )


def sentences(client, workspace, **query) -> list[str]:
    response = client.get(url("audit:activity", workspace), query)
    assert response.status_code == 200
    return event_sentences(text(response))


def test_who_shows_only_that_actors_events_and_lists_every_actor(workspace, owner_client):
    AuditEventFactory(workspace=workspace, actor_name="olivia", token_key="A_KEY")
    AuditEventFactory(workspace=workspace, actor_name="eddie", token_key="B_KEY")

    assert sentences(owner_client, workspace, actor="eddie") == ["eddie created B_KEY"]
    page = text(owner_client.get(url("audit:activity", workspace)))
    assert '<option value="eddie">eddie</option>' in page
    assert '<option value="olivia">olivia</option>' in page


def test_token_shows_its_own_events_and_the_resolves_that_read_it(workspace, owner_client):
    AuditEventFactory(workspace=workspace, actor_name="olivia", token_key="DB_URL")
    AuditEventFactory(workspace=workspace, actor_name="olivia", token_key="DB_URL_2")
    resolve_event(workspace, ["API_KEY", "DB_URL"])
    resolve_event(workspace, ["DB_URL_2"])

    assert sentences(owner_client, workspace, token="DB_URL") == [
        "ci resolved API_KEY and DB_URL in Production",
        "olivia created DB_URL",
    ]


def test_token_matches_the_whole_key_only(workspace, owner_client):
    resolve_event(workspace, ["DB_URL_2", "MY_DB_URL"])
    AuditEventFactory(workspace=workspace, token_key="DB_URL_OLD")

    for partial in ("DB_URL", "DB", "URL_2", "db_url_2"):
        assert sentences(owner_client, workspace, token=partial) == [], partial


def test_dates_are_whole_utc_days_both_included(workspace, owner_client):
    for day, time, key in [
        ("2026-11-30", "23:59", "BEFORE"),
        ("2026-12-01", "00:00", "FIRST"),
        ("2026-12-02", "23:59", "LAST"),
        ("2026-12-03", "00:00", "AFTER"),
    ]:
        AuditEventFactory(workspace=workspace, token_key=key, created_at=at(day, time))

    shown = sentences(owner_client, workspace, since="2026-12-01", until="2026-12-02")

    assert shown == ["someone created LAST", "someone created FIRST"]
    assert len(sentences(owner_client, workspace, since="2026-12-02")) == 2
    assert len(sentences(owner_client, workspace, until="2026-11-30")) == 1


def test_filters_combine_and_stay_in_the_page_links_and_exports(workspace, owner_client):
    AuditEventFactory.create_batch(60, workspace=workspace, actor_name="olivia", token_key="DB_URL")
    AuditEventFactory(workspace=workspace, actor_name="eddie", token_key="DB_URL")
    query = {"kind": "tokens", "actor": "olivia", "token": "DB_URL", "since": "2020-01-01"}

    page = text(owner_client.get(url("audit:activity", workspace), query, headers=HTMX))

    assert page.lstrip().startswith('<div id="activity-list"')
    assert "1–50 of 60 events" in page
    assert "kind=tokens&amp;actor=olivia&amp;token=DB_URL&amp;since=2020-01-01&amp;page=2" in page
    assert (
        "export/?kind=tokens&amp;actor=olivia&amp;token=DB_URL&amp;since=2020-01-01&amp;format=csv"
        in page
    )
    assert "Tokens by olivia about DB_URL from 2020-01-01" in page
    assert "eddie" not in "".join(event_sentences(page))


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"since": "yesterday"}, "“yesterday” is not a date for “From” (use YYYY-MM-DD"),
        ({"until": "2026-02-30"}, "“2026-02-30” is not a date for “To” (use YYYY-MM-DD"),
        (
            {"since": "2026-12-05", "until": "2026-12-01"},
            "“To” (2026-12-01) is before “From” (2026-12-05). Showing events from 2026-12-05 on.",
        ),
        ({"token": "K" * 129}, "A Token Key has at most 128 characters."),
        ({"kind": "secrets"}, "“secrets” is not a kind of activity"),
    ],
)
def test_a_bad_filter_is_named_and_left_out(workspace, owner_client, query, message):
    AuditEventFactory(workspace=workspace, token_key="SHOWN", created_at=at("2026-12-06"))
    events = AuditEvent.objects.count()

    response = owner_client.get(url("audit:activity", workspace), query)

    assert response.status_code == 200
    page = text(response)
    assert message in page
    assert 'role="alert"' in page
    assert event_sentences(page) == ["someone created SHOWN"]
    assert AuditEvent.objects.count() == events, "looking changes nothing"


def test_hostile_filter_values_are_escaped(workspace, owner_client):
    AuditEventFactory(workspace=workspace)
    page = text(
        owner_client.get(
            url("audit:activity", workspace),
            {"actor": "<script>x</script>", "token": "<b>T</b>", "since": "<i>"},
        )
    )
    assert "<script>x" not in page and "<b>T</b>" not in page and "<i>" not in page


def test_an_empty_result_says_which_filters(workspace, owner_client):
    AuditEventFactory(workspace=workspace, actor_name="olivia")

    page = text(owner_client.get(url("audit:activity", workspace), {"actor": "nobody"}))

    assert "No matching activity" in page
    assert "Nothing matching “by nobody” has happened in Acme." in page
    assert 'href="/w/acme/tokens/activity/">Show all activity' in page


@pytest.mark.parametrize(
    "query",
    [{}, {"kind": "tokens"}, {"actor": "u1"}, {"token": "K1"}, {"since": "2020-01-01"}],
)
def test_the_query_count_does_not_grow_with_the_events(
    workspace, owner_client, query, django_assert_max_num_queries
):
    now = timezone.now()
    AuditEvent.objects.bulk_create(
        AuditEvent(
            workspace=workspace,
            action=AuditAction.RESOLVED if n % 2 else AuditAction.CREATED,
            actor_name=f"u{n % 7}",
            token_key="" if n % 2 else f"K{n % 5}",
            detail={"keys": [f"K{n % 5}"], "environment": "production"} if n % 2 else {},
            created_at=now - dt.timedelta(minutes=n),
        )
        for n in range(400)
    )
    # Session, user, membership, the Who choices, count, the events, the catalog's names,
    # the workspace switcher.
    with django_assert_max_num_queries(8):
        response = owner_client.get(url("audit:activity", workspace), query)
    assert response.status_code == 200


def test_each_key_in_an_events_details_opens_activity_filtered_on_it(workspace, owner_client):
    resolve_event(workspace, ["API_KEY", "DB_URL"])

    page = text(owner_client.get(url("audit:activity", workspace)))

    link = '<a class="event-key-link" href="/w/acme/tokens/activity/?token=DB_URL">'
    assert link + '<span class="token-key event-key" title="DB_URL">DB_<wbr>URL</span></a>' in page
