"""Template filters for the Access keys tab: moments as a table cell shows them."""

from __future__ import annotations

import datetime as dt

from django import template
from django.utils import timezone
from django.utils.timesince import timesince, timeuntil

register = template.Library()


@register.filter
def relative(moment: dt.datetime | None) -> str:
    """ "in 3 weeks", "2 days ago", "just now": one unit, as a table cell has room for."""
    if moment is None:
        return ""
    now = timezone.now()
    if abs((moment - now).total_seconds()) < 60:
        return "just now"
    if moment <= now:
        return f"{timesince(moment, now, depth=1)} ago"
    return f"in {timeuntil(moment, now, depth=1)}"


@register.filter
def utc(moment: dt.datetime | None) -> str:
    """ "2026-12-02 06:30 UTC" """
    return f"{moment.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC" if moment else ""


@register.filter
def day(moment: dt.datetime | None) -> str:
    """ "Dec 2, 2026" (in UTC)"""
    if moment is None:
        return ""
    moment = moment.astimezone(dt.UTC)
    return f"{moment:%b} {moment.day}, {moment.year}"
