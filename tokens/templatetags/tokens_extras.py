"""Formatting for the Tokens page, its dialogs and the Activity tab: `{% load tokens_extras %}`.

Times are shown in UTC (the Expiry Date's rule is 00:00 UTC), with a one-unit relative time
beside them. `now` comes from the view, once per request, so every row agrees.
"""

from __future__ import annotations

import datetime as dt

from django import template
from django.utils import timezone
from django.utils.safestring import SafeString

from lib.templatetags.ui import relative_time
from tokens.table import Reminder, TokenRow, row_html

register = template.Library()


@register.filter
def relative_to(moment: dt.datetime | None, now: dt.datetime | None = None) -> str:
    """`{{ token.expires_at|relative_to:now }}`: "in 3 weeks", "2 days ago" (from this moment
    when no `now` is given)."""
    if moment is None:
        return ""
    return relative_time(moment, now if now is not None else timezone.now())


@register.filter
def utc_date(moment: dt.datetime | None) -> str:
    """ "Dec 2, 2026", the day in UTC."""
    if moment is None:
        return ""
    moment = moment.astimezone(dt.UTC)
    return f"{moment:%b} {moment.day}, {moment.year}"


@register.filter
def utc_minute(moment: dt.datetime | None) -> str:
    """ "2026-12-02 14:05 UTC", for a title that gives the exact moment."""
    return f"{moment.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC" if moment is not None else ""


@register.filter
def utc_datetime(moment: dt.datetime | None) -> str:
    """ "Dec 2, 2026, 14:05 UTC", for a sentence."""
    if moment is None:
        return ""
    moment = moment.astimezone(dt.UTC)
    return f"{moment:%b} {moment.day}, {moment:%Y, %H:%M} UTC"


@register.simple_tag(takes_context=True)
def token_row(
    context: template.Context, row: TokenRow, reminder: Reminder | None = None
) -> SafeString:
    """`{% token_row row reminder %}`: one row of the Tokens table, written by
    tokens.table.row_html; `reminder` is the token's next expiry reminder (or None), shown
    unless the token is revoked or the workspace has turned reminders off."""
    if row.token.is_revoked or not context["workspace"].reminders_enabled:
        reminder = None
    return row_html(row, can_manage=context["can_manage"], now=context["now"], reminder=reminder)
