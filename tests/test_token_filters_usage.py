"""The Tokens page's "Unused for 30 / 90 days" filter and its sort by last use.

A token counts as unused for N days when nobody resolved it in that time and it existed N days
ago (one made yesterday has not been "unused for 30 days"). Resolving it again takes it off the
list. The clock is moved with time-machine, and the uses are real resolves.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
import time_machine
from django.utils import timezone

from tests.factories import TokenFactory
from tests.helpers import HTMX, text, url
from tokens.models import UseContext
from tokens.references.resolve import resolve_text

pytestmark = pytest.mark.django_db

# The page is read at the real time (a session would not survive a jump ahead); the past is
# made by travelling back.
NOW = timezone.now()
START = NOW - dt.timedelta(days=200)
KEYS = ("NEVER_USED", "USED_TODAY", "USED_40_DAYS_AGO", "USED_100_DAYS_AGO", "MADE_LAST_WEEK")


def resolve_on(moment: dt.datetime, workspace, key: str) -> None:
    production = workspace.environments.get(slug="production")
    with time_machine.travel(moment, tick=False):
        resolve_text(f"$Secret{{{key}}}", UseContext(production), actor="ci")


@pytest.fixture
def tokens(workspace):
    with time_machine.travel(START, tick=False):
        for key in KEYS[:4]:
            TokenFactory(workspace=workspace, key=key)
    with time_machine.travel(NOW - dt.timedelta(days=7), tick=False):
        TokenFactory(workspace=workspace, key="MADE_LAST_WEEK")
    resolve_on(NOW - dt.timedelta(hours=2), workspace, "USED_TODAY")
    resolve_on(NOW - dt.timedelta(days=40), workspace, "USED_40_DAYS_AGO")
    resolve_on(NOW - dt.timedelta(days=100), workspace, "USED_100_DAYS_AGO")


def listed(client, workspace, **query) -> list[str]:
    """The token keys of the table, in its order."""
    page = text(client.get(url("list", workspace, **query))).replace("<wbr>", "")
    return [key for key in re.findall(r">([A-Z_0-9]+)<", page) if key in KEYS]


def test_unused_for_30_days_lists_tokens_nobody_resolved_lately(workspace, viewer_client, tokens):
    assert set(listed(viewer_client, workspace, unused=30)) == {
        "NEVER_USED",
        "USED_40_DAYS_AGO",
        "USED_100_DAYS_AGO",
    }


def test_unused_for_90_days_is_narrower(workspace, viewer_client, tokens):
    assert set(listed(viewer_client, workspace, unused=90)) == {"NEVER_USED", "USED_100_DAYS_AGO"}


def test_a_new_token_is_not_unused_yet(workspace, viewer_client, tokens):
    assert "MADE_LAST_WEEK" not in listed(viewer_client, workspace, unused=30)
    assert "MADE_LAST_WEEK" in listed(viewer_client, workspace)


def test_a_resolve_takes_a_token_off_the_list(workspace, viewer_client, tokens):
    resolve_on(NOW - dt.timedelta(minutes=5), workspace, "USED_100_DAYS_AGO")
    assert set(listed(viewer_client, workspace, unused=90)) == {"NEVER_USED"}


def test_the_filter_works_as_a_fragment_and_keeps_its_choice(workspace, viewer_client, tokens):
    response = viewer_client.get(url("list", workspace, unused=90), headers=HTMX)
    fragment = text(response)
    assert "<html" not in fragment and "USED_100_DAYS_AGO" in fragment.replace("<wbr>", "")
    assert "USED_TODAY" not in fragment.replace("<wbr>", "")
    page = text(viewer_client.get(url("list", workspace, unused=90)))
    assert '<option value="90" selected>Unused for 90 days</option>' in page


@pytest.mark.parametrize("bad", ["45", "abc", "-30", "9" * 30])
def test_a_period_not_offered_is_named_and_ignored(workspace, viewer_client, tokens, bad):
    response = viewer_client.get(url("list", workspace, unused=bad))
    assert response.status_code == 200
    assert "That period of disuse is not offered" in text(response)
    assert set(listed(viewer_client, workspace, unused=bad)) == set(KEYS)


def test_sort_by_last_use_puts_the_most_recent_first_and_never_used_last(
    workspace, viewer_client, tokens
):
    recent = listed(viewer_client, workspace, sort="last_used")
    assert recent[:3] == ["USED_TODAY", "USED_40_DAYS_AGO", "USED_100_DAYS_AGO"]
    assert set(recent[3:]) == {"NEVER_USED", "MADE_LAST_WEEK"}


def test_least_recently_used_first_puts_never_used_first(workspace, viewer_client, tokens):
    least = listed(viewer_client, workspace, sort="-last_used")
    assert set(least[:2]) == {"NEVER_USED", "MADE_LAST_WEEK"}
    assert least[2:] == ["USED_100_DAYS_AGO", "USED_40_DAYS_AGO", "USED_TODAY"]


def test_filter_and_sort_together(workspace, viewer_client, tokens):
    assert listed(viewer_client, workspace, unused=30, sort="last_used") == [
        "USED_40_DAYS_AGO",
        "USED_100_DAYS_AGO",
        "NEVER_USED",
    ]
