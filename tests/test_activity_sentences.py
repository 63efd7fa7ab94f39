"""Each audit event reads as one sentence, and its details as labelled lines: never `None`,
never a machine name, never a value (audit/wording.py)."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
import time_machine

from audit.models import AuditAction, AuditEvent
from audit.wording import CatalogNames, detail_lines, sentence
from tests.factories import make_access_key
from tests.helpers import event_sentences, text, url

pytestmark = pytest.mark.django_db

NAMES = CatalogNames(
    environment={"production": "Production"}, product={"payments": "Payments"}, app={}
)
API = {"access_key": "ci-deploy", "identifier": "cfr_AbCd…", "client_address": "10.0.0.7"}
KEY_ACTOR = "access key ci-deploy (cfr_AbCd…)"

# (action, actor name, token key, detail, the sentence)
CASES = [
    (AuditAction.CREATED, "olivia", "DB_URL", {}, "olivia created DB_URL"),
    (
        AuditAction.UPDATED,
        "olivia",
        "DB_URL",
        {"changed": ["value"]},
        "olivia changed the value of DB_URL",
    ),
    (
        AuditAction.UPDATED,
        "olivia",
        "DB_URL",
        {"changed": ["key", "description"], "previous_key": "DB_URI"},
        "olivia renamed DB_URI to DB_URL and changed its description",
    ),
    (AuditAction.UPDATED, "olivia", "DB_URL", {}, "olivia edited DB_URL"),
    (AuditAction.REVOKED, "olivia", "DB_URL", {}, "olivia revoked DB_URL"),
    (AuditAction.DELETED, "olivia", "DB_URL", {}, "olivia deleted DB_URL"),
    (
        AuditAction.RESOLVED,
        KEY_ACTOR,
        "",
        {
            **API,
            "keys": ["PROD_DB_PASSWORD"],
            "environment": "production",
            "product": None,
            "app": None,
            "source": "<values>",
        },
        "ci-deploy resolved PROD_DB_PASSWORD in Production from 10.0.0.7",
    ),
    (
        AuditAction.RESOLVED,
        "deployer",
        "",
        {
            "keys": ["A", "B", "C", "D", "E"],
            "environment": "staging",
            "product": "payments",
            "source": "deploy.yaml",
        },
        "deployer resolved A, B, C and 2 more in staging for Payments",
    ),
    (
        AuditAction.VERSION_RESTORED,
        "olivia",
        "DB_URL",
        {"restored_version": 1, "new_version": 3},
        "olivia restored version 2 of DB_URL",
    ),
    (
        AuditAction.VERSION_DESTROYED,
        "olivia",
        "DB_URL",
        {"destroyed_version": 0},
        "olivia destroyed version 1 of DB_URL",
    ),
    (
        AuditAction.KEY_ROTATED,
        "system",
        "",
        {"from_master_key": "k1", "to_master_key": "k2"},
        "system rotated the master key from k1 to k2",
    ),
    (
        AuditAction.MEMBER_ADDED,
        "olivia",
        "",
        {"member": "zed", "role": "viewer"},
        "olivia added zed as Viewer",
    ),
    (
        AuditAction.MEMBER_ROLE_CHANGED,
        "olivia",
        "",
        {"member": "zed", "from": "viewer", "to": "editor"},
        "olivia changed the role of zed from Viewer to Editor",
    ),
    (AuditAction.MEMBER_REMOVED, "olivia", "", {"member": "zed"}, "olivia removed zed"),
    (
        AuditAction.MEMBER_INVITED,
        "olivia",
        "",
        {"email": "z@example.com", "role": "editor"},
        "olivia invited z@example.com as Editor",
    ),
    (
        AuditAction.INVITATION_ACCEPTED,
        "zed",
        "",
        {"member": "zed", "role": "editor"},
        "zed accepted an invitation as Editor",
    ),
    (
        AuditAction.INVITATION_REVOKED,
        "olivia",
        "",
        {"email": "z@example.com", "role": "editor"},
        "olivia revoked the invitation of z@example.com",
    ),
    (AuditAction.MEMBER_LEFT, "zed", "", {"member": "zed"}, "zed left the workspace"),
    (
        AuditAction.PRODUCT_CREATED,
        "olivia",
        "",
        {"name": "Payments", "slug": "payments"},
        "olivia added the product Payments",
    ),
    (
        AuditAction.APP_RENAMED,
        "olivia",
        "",
        {"name": "Pay", "renamed": ["Checkout", "Pay"]},
        "olivia renamed the app “Checkout” to “Pay”",
    ),
    (
        AuditAction.ENVIRONMENT_RENAMED,
        "olivia",
        "",
        {"name": "QA", "slug_changed": ["qa", "q"]},
        "olivia changed the slug of the environment QA from qa to q",
    ),
    (
        AuditAction.ENVIRONMENT_DELETED,
        "olivia",
        "",
        {"name": "QA", "slug": "qa"},
        "olivia deleted the environment QA",
    ),
    (
        AuditAction.WORKSPACE_CREATED,
        "olivia",
        "",
        {"name": "Acme", "slug": "acme"},
        "olivia created the workspace Acme",
    ),
    (
        AuditAction.WORKSPACE_RENAMED,
        "olivia",
        "",
        {"renamed": ["Acme", "Acme Inc"]},
        "olivia renamed the workspace “Acme” to “Acme Inc”",
    ),
    (
        AuditAction.TWO_FACTOR_REQUIREMENT_CHANGED,
        "olivia",
        "",
        {"required": True},
        "olivia required two-factor authentication",
    ),
    (
        AuditAction.SSO_REQUIREMENT_CHANGED,
        "olivia",
        "",
        {"required": False},
        "olivia made single sign-on optional",
    ),
    (
        AuditAction.ACCESS_KEY_CREATED,
        "olivia",
        "",
        {"access_key": "ci-deploy"},
        "olivia created the access key ci-deploy",
    ),
    (
        AuditAction.ACCESS_KEY_REVOKED,
        "olivia",
        "",
        {"access_key": "ci-deploy"},
        "olivia revoked the access key ci-deploy",
    ),
    (
        AuditAction.ACCESS_KEY_DELETED,
        "olivia",
        "",
        {"access_key": "ci-deploy"},
        "olivia deleted the access key ci-deploy",
    ),
    (
        AuditAction.ACCESS_KEY_CHECKED,
        KEY_ACTOR,
        "",
        {**API, "environment": "production"},
        "ci-deploy checked references in Production from 10.0.0.7",
    ),
    (
        AuditAction.ACCESS_KEY_CALL_FAILED,
        KEY_ACTOR,
        "",
        {**API, "reason": "output too large"},
        "ci-deploy made an API call that failed from 10.0.0.7: output too large",
    ),
    (
        AuditAction.WORKLOAD_IDENTITY_CREATED,
        "olivia",
        "",
        {"workload_identity": "gh"},
        "olivia added the workload identity gh",
    ),
    (
        AuditAction.WORKLOAD_IDENTITY_DELETED,
        "olivia",
        "",
        {"workload_identity": "gh"},
        "olivia deleted the workload identity gh",
    ),
    (
        AuditAction.WORKLOAD_IDENTITY_EXCHANGED,
        "workload identity gh",
        "",
        {"workload_identity": "gh", "client_address": "10.0.0.9", "environment": "production"},
        "workload identity gh signed in in Production from 10.0.0.9",
    ),
    (
        AuditAction.ACTIVITY_EXPORTED,
        "olivia",
        "",
        {"format": "csv", "events": 1},
        "olivia exported 1 event as CSV",
    ),
]


def event(workspace, action, actor, key, detail) -> AuditEvent:
    return AuditEvent(
        workspace=workspace, action=action, actor_name=actor, token_key=key, detail=detail
    )


@pytest.mark.parametrize(("action", "actor", "key", "detail", "said"), CASES)
def test_each_event_reads_as_a_sentence(workspace, action, actor, key, detail, said):
    assert sentence(event(workspace, action, actor, key, detail), NAMES) == said


def test_every_action_has_its_own_sentence():
    phrased = {case[0] for case in CASES}
    assert {str(a) for a in AuditAction} - {str(a) for a in phrased} <= {
        "product.renamed",
        "product.deleted",
        "app.created",
        "app.deleted",
        "environment.created",
    }  # the catalog's other changes share one phrase with those tested


@pytest.mark.parametrize(("action", "actor", "key", "detail", "said"), CASES)
def test_details_never_say_none_nor_a_machine_name(workspace, action, actor, key, detail, said):
    lines = detail_lines(event(workspace, action, actor, key, detail), NAMES)
    shown = " ".join(f"{line.label} {line.text} {' '.join(line.keys)}" for line in lines)
    assert "None" not in shown and "<values>" not in shown
    assert shown.startswith("When ") and "Action " in shown


def test_an_unknown_action_still_reads(workspace):
    old = event(workspace, "token.archived", "olivia", "DB_URL", {})
    assert sentence(old) == "olivia did “token.archived” on DB_URL"


def test_the_page_shows_the_sentence_and_its_details_with_names(workspace, owner_client):
    AuditEvent.record(
        workspace,
        AuditAction.RESOLVED,
        actor_name=KEY_ACTOR,
        detail={
            **API,
            "keys": ["PROD_DB_PASSWORD"],
            "references": 2,
            "environment": "production",
            "product": None,
            "app": None,
            "source": "<values>",
        },
    )

    page = text(owner_client.get(url("audit:activity", workspace)))

    assert event_sentences(page) == [
        "ci-deploy resolved PROD_DB_PASSWORD in Production from 10.0.0.7"
    ]
    assert (
        '<span class="token-key event-key" title="PROD_DB_PASSWORD">'
        "PROD_<wbr>DB_<wbr>PASSWORD</span>" in page
    )
    assert "<dt>Recorded as</dt><dd>access key ci-deploy (cfr_AbCd…)</dd>" in page
    assert "<dt>Source</dt><dd>API values request</dd>" in page
    assert "<dt>Environment</dt><dd>Production</dd>" in page
    assert "None" not in page[page.index('id="activity-list"') :]
    assert "<dt>Product</dt>" not in page and "<dt>App</dt>" not in page, "empty: left out"


# --- moments in the details: the one date format ------------------------------------------------

NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)
# Outside a <time> element: a date or time written by hand ("2026-12-31", "12:00", "UTC").
HAND_WRITTEN = re.compile(r"\b\d{4}-\d{2}-\d{2}\b|\b\d{1,2}:\d{2}\b|\bUTC\b")


def shown_outside_times(page: str) -> str:
    """The Activity list as a person reads it, the <time> elements left out."""
    listed = page[page.index('id="activity-list"') :]
    return html.unescape(
        re.sub(r"<[^>]+>", "", re.sub(r"<time .*?</time>", "", listed, flags=re.S))
    )


def times(page: str) -> list[tuple[str, str]]:
    """(machine-readable moment, what it shows) of each <time> in the Activity list."""
    listed = page[page.index('id="activity-list"') :]
    found = re.findall(r'<time class="when" datetime="([^"]+)"[^>]*>([^<]*)</time>', listed)
    return [(moment, shown.replace("\xa0", " ")) for moment, shown in found]


def activity(owner_client, workspace) -> str:
    with time_machine.travel(NOW, tick=False):
        return text(owner_client.get(url("audit:activity", workspace)))


def record(workspace, action, detail, actor="olivia"):
    with time_machine.travel(NOW - dt.timedelta(hours=1), tick=False):
        return AuditEvent.record(workspace, action, actor_name=actor, detail=detail)


def test_a_new_access_keys_expiry_is_shown_in_the_one_date_format(workspace, owner_client):
    """An access key's creation records its expiry as text ("2026-12-31 00:00 UTC", as it
    always has); Activity shows it as every other date, relative with the UTC time on hover."""
    with time_machine.travel(NOW - dt.timedelta(hours=1), tick=False):
        make_access_key(workspace, name="ci-deploy", expires=dt.date(2026, 12, 31))
    event = AuditEvent.objects.get(action=AuditAction.ACCESS_KEY_CREATED)
    assert event.detail["expires"] == "2026-12-31 00:00 UTC", "the stored event keeps its text"

    page = activity(owner_client, workspace)

    assert ("2026-12-31T00:00:00Z", "in 3 weeks") in times(page)
    assert not HAND_WRITTEN.findall(shown_outside_times(page))
    assert "<dt>Expires</dt><dd><time" in page


@pytest.mark.parametrize(
    ("expires", "shown"),
    [
        ("2026-12-31 12:00:00 UTC", ("2026-12-31T12:00:00Z", "in 3 weeks")),  # with seconds
        ("2026-12-31T12:00:00Z", ("2026-12-31T12:00:00Z", "in 3 weeks")),
        ("2026-11-06", ("2026-11-06", "1 month ago")),  # a day alone
    ],
)
def test_an_old_events_expiry_text_is_read_back_as_a_moment(
    workspace, owner_client, expires, shown
):
    record(
        workspace,
        AuditAction.WORKLOAD_IDENTITY_EXCHANGED,
        {"workload_identity": "gh", "expires": expires},
    )
    page = activity(owner_client, workspace)
    assert shown in times(page)
    assert not HAND_WRITTEN.findall(shown_outside_times(page))


@pytest.mark.parametrize(
    ("expires", "shown"),
    [("never", "Never"), ("next Tuesday", "next Tuesday"), ("2026-13-45", "2026-13-45")],
)
def test_an_expiry_that_is_no_moment_stays_as_written(workspace, owner_client, expires, shown):
    record(workspace, AuditAction.ACCESS_KEY_CREATED, {"access_key": "ci", "expires": expires})
    page = activity(owner_client, workspace)
    assert f"<dt>Expires</dt><dd>{shown}</dd>" in page


def test_a_reasons_moment_is_shown_in_the_one_date_format_in_the_sentence_and_details(
    workspace, owner_client
):
    reason = "token expired on 2026-03-04 05:06:07 UTC"
    event = record(
        workspace, AuditAction.ACCESS_KEY_CALL_FAILED, {**API, "reason": reason}, KEY_ACTOR
    )
    assert sentence(event) == f"ci-deploy made an API call that failed from 10.0.0.7: {reason}"

    page = activity(owner_client, workspace)

    assert [said.replace("\xa0", " ") for said in event_sentences(page)] == [
        "ci-deploy made an API call that failed from 10.0.0.7: token expired 9 months ago"
    ]
    assert times(page).count(("2026-03-04T05:06:07Z", "9 months ago")) == 2  # sentence, details
    assert not HAND_WRITTEN.findall(shown_outside_times(page))


def test_an_exports_date_filters_are_shown_in_the_one_date_format(workspace, owner_client):
    filters = {"kind": "tokens", "since": "2026-12-01", "until": "2026-12-05"}
    record(
        workspace, AuditAction.ACTIVITY_EXPORTED, {"format": "csv", "filters": filters, "events": 3}
    )
    page = activity(owner_client, workspace)
    assert ("2026-12-01", "5 days ago") in times(page)
    assert ("2026-12-05", "yesterday") in times(page)
    assert "<dt>Filters</dt><dd>kind: tokens, since: <time" in page
    assert not HAND_WRITTEN.findall(shown_outside_times(page))
