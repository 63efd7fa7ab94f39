"""The Tokens table's expiry column: each token's next reminder ("Reminder in 2 days", Mar 3
on hover), and the status filter's Expiring soon (active tokens that expire within 7 days).

Everything happens on a fixed day (time-machine): the session is made on that day too.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
import time_machine
from django.test import Client

from tests.factories import MembershipFactory, TokenFactory, UserFactory
from tests.helpers import HTMX, text, url
from tokens.models import Token
from workspaces.models import Role

pytestmark = pytest.mark.django_db

TODAY = dt.datetime(2027, 3, 1, 9, 30, tzinfo=dt.UTC)


@pytest.fixture
def today():
    with time_machine.travel(TODAY, tick=False) as traveller:
        yield traveller


@pytest.fixture
def viewer(workspace, today) -> Client:
    user = UserFactory(username="vera")
    MembershipFactory(workspace=workspace, user=user, role=Role.VIEWER)
    client = Client()
    client.force_login(user)
    client.user = user  # type: ignore[attr-defined]
    return client


def expiring_in(workspace, days: int, key: str, **fields):
    return TokenFactory(
        workspace=workspace,
        key=key,
        expiry_date=TODAY.date() + dt.timedelta(days=days),
        **fields,
    )


def row_of(page: str, key: str) -> str:
    """The table row of `key` (its <tr>...</tr>)."""
    page = page.replace("<wbr>", "")
    start = page.index(f">{key}<")
    return page[page.rindex("<tr", 0, start) : page.index("</tr>", start)]


def reminder_line(page: str, key: str) -> str | None:
    """The line as shown, with the date's UTC day (its title) in brackets."""
    line = (
        r'class="next-reminder[^"]*">.*?</i> (.+?)'
        r'<time[^>]* title="([^"]+)"[^>]*>(.+?)</time>([^<]*)</span>'
    )
    found = re.search(line, row_of(page, key))
    if not found:
        return None
    before, day, shown, after = found.groups()
    return f"{before}{shown} ({day}){after}".replace("\xa0", " ").strip()


def test_each_token_shows_its_next_reminder(workspace, viewer):
    expiring_in(workspace, 40, "IN_40_DAYS")
    expiring_in(workspace, 20, "IN_20_DAYS")
    expiring_in(workspace, 3, "IN_3_DAYS")
    expiring_in(workspace, 1, "TOMORROW")
    TokenFactory(workspace=workspace, key="NEVER_EXPIRES")
    page = text(viewer.get(url("list", workspace)))

    assert reminder_line(page, "IN_40_DAYS") == "Reminder in 1 week (Mar 11, 2027) (30 days before)"
    assert reminder_line(page, "IN_20_DAYS") == "Reminder in 1 week (Mar 14, 2027) (7 days before)"
    assert reminder_line(page, "IN_3_DAYS") == "Reminder in 2 days (Mar 3, 2027) (1 day before)"
    assert reminder_line(page, "TOMORROW") == "Reminder tomorrow (Mar 2, 2027) (on the day)"
    assert reminder_line(page, "NEVER_EXPIRES") is None


def test_the_line_moves_on_as_the_days_pass(workspace, viewer, today):
    expiring_in(workspace, 20, "IN_20_DAYS")
    today.move_to(TODAY + dt.timedelta(days=14))  # 6 days left: the 7-day reminder has gone out
    viewer.force_login(viewer.user)  # a new session: the first one has timed out by now
    page = text(viewer.get(url("list", workspace)))
    assert reminder_line(page, "IN_20_DAYS") == "Reminder in 5 days (Mar 20, 2027) (1 day before)"
    today.move_to(TODAY + dt.timedelta(days=20, hours=-9))  # the day itself: none left to come
    viewer.force_login(viewer.user)
    assert reminder_line(text(viewer.get(url("list", workspace))), "IN_20_DAYS") is None


def test_a_period_counts_from_when_the_value_was_set(workspace, viewer):
    TokenFactory(workspace=workspace, key="MONTHLY", period_days=30)  # expires Mar 31
    page = text(viewer.get(url("list", workspace)))
    assert reminder_line(page, "MONTHLY") == "Reminder in 3 weeks (Mar 24, 2027) (7 days before)"


def test_no_reminder_line_for_revoked_tokens_or_when_the_workspace_sends_none(workspace, viewer):
    expiring_in(workspace, 20, "STILL_ACTIVE")
    expiring_in(workspace, 20, "REVOKED").revoke()
    page = text(viewer.get(url("list", workspace, revoked=1)))
    assert reminder_line(page, "STILL_ACTIVE") and reminder_line(page, "REVOKED") is None

    workspace.reminders_enabled = False
    workspace.save()
    assert reminder_line(text(viewer.get(url("list", workspace))), "STILL_ACTIVE") is None


def test_expiring_soon_lists_active_tokens_that_expire_within_7_days(workspace, viewer):
    keys = {
        "IN_3_DAYS": 3,
        "IN_7_DAYS": 7,
        "IN_8_DAYS": 8,
        "IN_40_DAYS": 40,
        "REVOKED_SOON": 2,
    }
    for key, days in keys.items():
        expiring_in(workspace, days, key)
    Token.objects.get(key="REVOKED_SOON").revoke()
    with time_machine.travel(TODAY - dt.timedelta(days=10), tick=False):
        expiring_in(workspace, 8, "EXPIRED")  # two days ago
    TokenFactory(workspace=workspace, key="NEVER_EXPIRES")

    for headers in ({}, HTMX):
        page = text(viewer.get(url("list", workspace, status="expiring"), headers=headers))
        page = page.replace("<wbr>", "")
        listed = {key for key in [*keys, "EXPIRED", "NEVER_EXPIRES"] if f">{key}<" in page}
        assert listed == {"IN_3_DAYS", "IN_7_DAYS"}
    assert '<option value="expiring" selected>Expiring soon</option>' in text(
        viewer.get(url("list", workspace, status="expiring"))
    )
