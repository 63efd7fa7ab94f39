"""The Tokens page's template filters: dates in UTC, one-unit relative times."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from tokens.templatetags.tokens_extras import (
    relative_to,
    utc_date,
    utc_datetime,
    utc_minute,
)

NOW = dt.datetime(2026, 12, 2, 14, 5, tzinfo=dt.UTC)


def test_relative_times_use_one_unit():
    assert relative_to(NOW + dt.timedelta(days=22), NOW) == "in 3\xa0weeks"
    assert relative_to(NOW - dt.timedelta(days=2, hours=5), NOW) == "2\xa0days ago"
    assert relative_to(NOW + dt.timedelta(seconds=30), NOW) == "just now"
    assert relative_to(None, NOW) == ""


def test_dates_are_shown_in_utc_whatever_the_moments_zone():
    tokyo = NOW.astimezone(zoneinfo.ZoneInfo("Asia/Tokyo")).replace(hour=1)  # Dec 2 in Tokyo
    assert utc_date(tokyo) == "Dec 1, 2026"
    assert utc_minute(tokyo) == "2026-12-01 16:05 UTC"
    assert utc_datetime(NOW) == "Dec 2, 2026, 14:05 UTC"
    assert utc_date(None) == utc_minute(None) == utc_datetime(None) == ""


def test_relative_to_counts_from_this_moment_without_a_now():
    from django.utils import timezone

    assert relative_to(timezone.now() + dt.timedelta(days=22, minutes=1)) == "in 3\xa0weeks"
    assert relative_to(None) == ""
