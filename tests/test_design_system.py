"""The design system's rules that can be read off the code (docs/design.md): one date format,
no native dialogs."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from django.template import Context, Template

ROOT = Path(__file__).resolve().parents[1]
NOW = dt.datetime(2026, 12, 6, 9, 30, tzinfo=dt.UTC)


def when(moment, now=NOW) -> str:
    return Template("{% when moment %}").render(Context({"moment": moment, "now": now}))


def test_a_moment_reads_relative_with_its_utc_time_for_hover_focus_and_screen_readers():
    html = when(dt.datetime(2026, 12, 4, 14, 5, tzinfo=dt.UTC))
    assert html.startswith('<time class="when" datetime="2026-12-04T14:05:00Z"')
    assert 'data-utc="Dec 4, 2026, 14:05 UTC"' in html  # shown on hover and focus
    assert 'tabindex="0"' in html  # a keyboard reaches it
    assert ">1\xa0day ago<" in html
    assert '<span class="visually-hidden"> (Dec 4, 2026, 14:05 UTC)</span>' in html


def test_a_moment_in_another_time_zone_is_shown_in_utc():
    paris = dt.timezone(dt.timedelta(hours=1))
    html = when(dt.datetime(2026, 12, 4, 15, 5, tzinfo=paris))
    assert 'data-utc="Dec 4, 2026, 14:05 UTC"' in html


def test_the_future_and_the_last_minute():
    assert ">in 3\xa0weeks<" in when(NOW + dt.timedelta(days=22))
    assert ">just now<" in when(NOW - dt.timedelta(seconds=20))


def test_a_calendar_day_counts_days_not_hours():
    assert ">tomorrow<" in when(dt.date(2026, 12, 7))
    assert ">today<" in when(dt.date(2026, 12, 6))
    assert ">in 2\xa0days<" in when(dt.date(2026, 12, 8))
    assert 'data-utc="Dec 8, 2026"' in when(dt.date(2026, 12, 8))


def test_nothing_for_no_moment():
    assert when(None) == ""


def test_no_template_formats_a_date_by_hand():
    """Pages show dates through {% when %} only (mails, plain text, keep their own)."""
    by_hand = re.compile(r"\|(date|time|utc_date|utc_minute|utc_datetime|relative_to)\b")
    found = [
        f"{path.relative_to(ROOT)}: {line.strip()[:80]}"
        for path in (ROOT / "templates").rglob("*.html")
        for line in path.read_text().splitlines()
        if by_hand.search(line.replace("|date:'c'", "")) and "aria-label" not in line
    ]
    assert not found, found


def test_no_native_dialog_in_our_scripts_or_templates():
    native = re.compile(r"\b(window\.)?(confirm|alert|prompt)\s*\(")
    files = [*(ROOT / "static/js").glob("*.js"), *(ROOT / "templates").rglob("*.html")]
    found = [str(p.relative_to(ROOT)) for p in files if native.search(p.read_text())]
    assert not found, found
