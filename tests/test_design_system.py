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
    """ "1 day ago", and Dec 4, 2026, 14:05 UTC for whoever asks."""
    html = when(dt.datetime(2026, 12, 4, 14, 5, tzinfo=dt.UTC))
    assert html.startswith('<time class="when" datetime="2026-12-04T14:05:00Z"')
    assert 'data-utc="Dec 4, 2026, 14:05 UTC"' in html  # shown on keyboard focus
    assert 'title="Dec 4, 2026, 14:05 UTC"' in html  # on hover, and a screen reader's description
    assert 'tabindex="0"' in html  # a keyboard reaches it
    assert ">1\xa0day ago<" in html


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


def test_the_css_keeps_to_the_design_tokens():
    """Colours are named once, as custom properties in the first :root block of coffer.css
    (docs/design.md lists them with their contrast); rules use the names."""
    css = (ROOT / "static/css/coffer.css").read_text()
    tokens_end = css.index("}", css.index(":root {")) + 1
    one_offs = re.findall(r"#[0-9a-fA-F]{3,8}\b", css[tokens_end:])
    assert not one_offs, one_offs


def test_every_colour_token_is_in_the_design_document():
    css = (ROOT / "static/css/coffer.css").read_text()
    tokens = css[css.index(":root {") : css.index("}", css.index(":root {"))]
    documented = (ROOT / "docs/design.md").read_text()
    names = re.findall(r"(--coffer-[a-z0-9-]+):", tokens)
    missing = [name for name in names if f"`{name}`" not in documented]
    assert not missing, missing


def test_no_template_comment_spans_lines():
    """{# … #} is one line only: a second line would be shown on the page."""
    found = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "templates").rglob("*.html")
        for line in path.read_text().splitlines()
        if "{#" in line and "#}" not in line.split("{#", 1)[1]
    ]
    assert not found, found


def test_a_token_key_is_one_component():
    """{% token_key %}: the key whole in its title, a break only after an underscore (used on a
    phone), escaped; `with_token_key` shows the key of a title the same way."""
    rendered = Template("{% token_key key %} {{ title|with_token_key:key }}").render(
        Context({"key": "DB_<PASSWORD>", "title": "Revoke DB_<PASSWORD> (Production)?"})
    )
    key = '<span class="token-key" title="DB_&lt;PASSWORD&gt;">DB_<wbr>&lt;PASSWORD&gt;</span>'
    assert rendered == f"{key} Revoke {key} (Production)?"
    extra = Template('{% token_key "A_B" "event-key" %}').render(Context())
    assert extra == '<span class="token-key event-key" title="A_B">A_<wbr>B</span>'


def test_templates_show_token_keys_through_the_component():
    """No template writes a Token Key by hand in monospace: {% token_key %} keeps it whole on a
    desktop and its underscores visible in a link (docs/design.md)."""
    by_hand = re.compile(
        r'class="[^"]*font-monospace[^"]*">\{\{ *(token\.key|key|row\.key|entry\.key)'
    )
    found = [
        f"{path.relative_to(ROOT)}: {line.strip()[:80]}"
        for path in (ROOT / "templates").rglob("*.html")
        for line in path.read_text().splitlines()
        if by_hand.search(line)
    ]
    assert not found, found
