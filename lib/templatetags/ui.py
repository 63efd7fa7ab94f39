"""The design system's template tags (docs/design.md), built into every template.

`{% page_header "Title" description="One line, `code` in backticks" %}…actions…{% endpage_header %}`
is every page's header: the title, one line saying what the page is for, and the actions at the
top right (secondary ones first, the primary one last, rightmost).

`{% when moment %}` is the one way a date or time is shown anywhere in Coffer: relative ("2 days
ago", "in 3 weeks") with the absolute UTC time on hover and on keyboard focus, and for screen
readers (its description). `now` comes from the template context when the view set one (every
row of a table then agrees), else from the clock.

`{% token_key key %}` is the one way a Token Key (or any identifier that stands for one, such as
a `$Secret{KEY}` reference) is shown: monospace and never broken inside on a desktop (whole on
one line, or cut with an ellipsis where a column must stay narrow, whole in its title); on a
phone it may wrap after an underscore only. An extra class may be given: `{% token_key key "x" %}`.
"""

from __future__ import annotations

import datetime as dt
import html
import re

from django import template
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.timesince import timesince, timeuntil

register = template.Library()


def relative_time(moment: dt.datetime, now: dt.datetime) -> str:
    """ "in 3 weeks", "2 days ago", "just now": one unit, as a table cell has room for."""
    if abs((moment - now).total_seconds()) < 60:
        return "just now"
    if moment <= now:
        return f"{timesince(moment, now, depth=1)} ago"
    return f"in {timeuntil(moment, now, depth=1)}"


def relative_day(day: dt.date, now: dt.datetime) -> str:
    """A calendar day (UTC) against today: "today", "tomorrow", "in 10 days", "3 weeks ago"."""
    today = now.astimezone(dt.UTC).date()
    days = (day - today).days
    if -1 <= days <= 1:
        return {-1: "yesterday", 0: "today", 1: "tomorrow"}[days]
    start = dt.datetime(today.year, today.month, today.day, tzinfo=dt.UTC)
    return relative_time(start + dt.timedelta(days=days), start)


def absolute_utc(moment: dt.date | dt.datetime) -> str:
    """ "Dec 2, 2026, 14:05 UTC" (a calendar day alone: "Dec 2, 2026")."""
    if isinstance(moment, dt.datetime):
        moment = moment.astimezone(dt.UTC)
        return f"{moment:%b} {moment.day}, {moment:%Y, %H:%M} UTC"
    return f"{moment:%b} {moment.day}, {moment.year}"


@register.simple_tag(takes_context=True)
def when(context: template.Context, moment: dt.date | dt.datetime | None) -> SafeString | str:
    """`{% when token.expires_at %}`: <time> showing "in 3 weeks", its UTC time on hover/focus."""
    now = context.get("now")
    return when_html(moment, now if isinstance(now, dt.datetime) else None)


def when_html(moment: dt.date | dt.datetime | None, now: dt.datetime | None) -> SafeString | str:
    """What `{% when %}` writes, for markup built in Python (the Tokens table's rows): the
    <time> of `moment` against `now` (the clock's when None); "" for no moment."""
    if moment is None or moment == "":
        return ""
    if now is None:
        now = timezone.now()
    if isinstance(moment, dt.datetime):
        machine = moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        relative = relative_time(moment, now)
    else:
        machine, relative = moment.isoformat(), relative_day(moment, now)
    absolute = absolute_utc(moment)
    # The title is the hover's tooltip and what a screen reader adds as the date's description;
    # keyboard focus shows data-utc (coffer.css), as a title never appears on focus.
    machine, absolute, relative = html.escape(machine), html.escape(absolute), html.escape(relative)
    return mark_safe(
        f'<time class="when" datetime="{machine}" title="{absolute}" data-utc="{absolute}" '
        f'tabindex="0">{relative}</time>'
    )


BACKTICKS = re.compile(r"`([^`]+)`")


def inline_code(text: str) -> SafeString:
    """Plain text with `code` in backticks: escaped (always: a template's string literal counts
    as safe), the backticked parts in <code>."""
    return mark_safe(BACKTICKS.sub(r"<code>\1</code>", escape(str(text))))


@register.simple_block_tag
def page_header(content: SafeString, title: str, *, description: str = "") -> str:
    """The page header (templates/includes/page_header.html); `content` is the actions."""
    return render_to_string(
        "includes/page_header.html",
        {
            "title": mark_safe(escape(str(title))),
            "description": inline_code(description),
            "actions": mark_safe(content.strip()),  # the template's own markup
        },
    )


def wrappable_key(key: str) -> SafeString:
    """A Token Key, escaped, with a break opportunity after each underscore (<wbr>), which
    only a phone's card uses: a desktop keeps the key on one line (coffer.css)."""
    return mark_safe(html.escape(key).replace("_", "_<wbr>"))


def token_key_html(key: str, extra_class: str = "") -> SafeString:
    """`<span class="token-key" title="KEY">KEY</span>` (`wrappable_key` inside)."""
    classes = f"token-key {extra_class}".strip()
    return format_html('<span class="{}" title="{}">{}</span>', classes, key, wrappable_key(key))


@register.simple_tag
def token_key(key: str, extra_class: str = "") -> SafeString:
    return token_key_html(str(key), extra_class)


@register.filter
def with_token_key(text: str, key: str) -> SafeString:
    """`{{ title|with_token_key:token.key }}`: the text, its (first) Token Key shown as one."""
    escaped, escaped_key = str(escape(text)), str(escape(key))
    if not key or escaped_key not in escaped:
        return mark_safe(escaped)
    before, after = escaped.split(escaped_key, 1)
    return mark_safe(before + token_key_html(str(key)) + after)
