"""`{% load notifications_extras %}`: the next expiry reminder, for the Tokens table."""

from __future__ import annotations

import datetime as dt

from django import template

from notifications.reminders import NextReminder, next_reminder

register = template.Library()


@register.filter
def next_reminder_at(expires_at: dt.datetime | None, now: dt.datetime) -> NextReminder | None:
    """`{% with reminder=token.expires_at|next_reminder_at:now %}`: its date and threshold."""
    return next_reminder(expires_at, now)
