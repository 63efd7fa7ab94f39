"""Expiry reminders: which are due, claiming each once, and one digest mail per recipient.

A token with an effective expiry gets a reminder COFFER_REMINDER_DAYS days before it (30, 7, 1
and 0: on the day), counted in whole UTC days to its expiry date. A pass (`run_pass`, run by
`manage.py send_expiry_reminders` or the worker task of the same name) handles, for each active
token, the most urgent threshold it has reached: created five days before it expires, a token
gets the 7-day reminder, not the 30-day one as well. Each (token, threshold, expiry) is claimed
by inserting a `ReminderClaim` row, unique in the database: a second pass, or two workers at
once, skip what was claimed, and a new expiry (a new value with a Period, another Expiry Date)
starts its reminders again. A token whose expiry has passed is claimed once more as "expired"
(a `token.expired` webhook event), within EXPIRED_EVENT_DAYS of it.

Recipients are the owners and editors of the token's workspace who have not turned reminders off
for it, unless the workspace has turned them off. Each gets one mail per pass listing every token
(key, workspace, context, when, a link); never a value.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass, field

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from notifications.delivery import absolute_url
from notifications.events import expiry_event
from notifications.models import EventType, ReminderClaim
from tokens.models import Token, TokenStatus
from workspaces.models import Membership, Role

logger = logging.getLogger(__name__)
EXPIRED_EVENT_DAYS = 7


def thresholds() -> list[int]:
    """The reminder days, largest first (e.g. [30, 7, 1, 0])."""
    return sorted(set(settings.COFFER_REMINDER_DAYS), reverse=True)


def _utc_date(moment: dt.datetime) -> dt.date:
    return moment.astimezone(dt.UTC).date()


def days_left(expires_at: dt.datetime, now: dt.datetime) -> int:
    """Whole UTC days from today to the expiry's date (0: it expires today)."""
    return (_utc_date(expires_at) - _utc_date(now)).days


def due_threshold(left: int, days: list[int]) -> int | None:
    """The most urgent threshold reached `left` days before expiry, or None."""
    reached = [d for d in days if d >= left]
    return min(reached) if reached and left >= 0 else None


@dataclass(frozen=True)
class NextReminder:
    on: dt.date
    threshold: int

    @property
    def label(self) -> str:
        if self.threshold == 0:
            return "on the day"
        return f"{self.threshold} day{'s' if self.threshold != 1 else ''} before"


def next_reminder(expires_at: dt.datetime | None, now: dt.datetime) -> NextReminder | None:
    """The next reminder still to come for an expiry (None: none is left)."""
    if expires_at is None:
        return None
    expiry_day, today = _utc_date(expires_at), _utc_date(now)
    upcoming = [
        NextReminder(expiry_day - dt.timedelta(days=d), d)
        for d in thresholds()
        if expiry_day - dt.timedelta(days=d) > today
    ]
    return min(upcoming, key=lambda reminder: reminder.on) if upcoming else None


@dataclass(frozen=True)
class Reminder:
    token: Token
    threshold: int
    days_left: int

    @property
    def when(self) -> str:
        assert self.token.expires_at is not None
        moment = f"{self.token.expires_at.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"
        if self.token.expires_at <= timezone.now():
            return f"expired {moment}"
        if self.days_left == 0:
            return f"expires today, {moment}"
        if self.days_left == 1:
            return f"expires tomorrow, {moment}"
        return f"expires in {self.days_left} days, {moment}"

    @property
    def context(self) -> str:
        token = self.token
        parts = [", ".join(env.name for env in token.environments.all())]
        scope = [p.name for p in token.products.all()] + [a.name for a in token.apps.all()]
        parts.append(", ".join(scope) if scope else "all products & apps")
        return " · ".join(part for part in parts if part)

    @property
    def link(self) -> str:
        url = reverse("tokens:list", args=[self.token.workspace.slug])
        return absolute_url(f"{url}?q={self.token.key}&highlight={self.token.pk}")


@dataclass
class PassResult:
    dry_run: bool = False
    reminders: list[Reminder] = field(default_factory=list)
    expired: list[Token] = field(default_factory=list)
    mails: dict[str, list[Reminder]] = field(default_factory=dict)  # address -> its digest
    failed_mails: int = 0

    def counts(self) -> dict[str, int]:
        return {
            "reminders": len(self.reminders),
            "expired": len(self.expired),
            "mails": len(self.mails),
            "failed_mails": self.failed_mails,
        }


def _claim(token: Token, threshold: int, *, dry_run: bool) -> bool:
    """True if this pass is the one to handle (token, threshold, expiry)."""
    assert token.expires_at is not None
    key = {"token": token, "threshold": threshold, "expires_at": token.expires_at}
    if dry_run:
        return not ReminderClaim.objects.filter(**key).exists()
    try:
        with transaction.atomic():
            ReminderClaim.objects.create(**key)
    except IntegrityError:
        return False
    return True


def run_pass(now: dt.datetime | None = None, *, dry_run: bool = False) -> PassResult:
    """Claim and send what is due now; `dry_run` claims, sends and emits nothing."""
    now = now or timezone.now()
    days = thresholds()
    result = PassResult(dry_run=dry_run)
    start_of_today = dt.datetime.combine(_utc_date(now), dt.time.min, tzinfo=dt.UTC)
    active = Token.objects.filter(status=TokenStatus.ACTIVE).select_related("workspace")
    with transaction.atomic():
        if days:
            upcoming = active.filter(
                expires_at__gte=start_of_today,
                expires_at__lt=start_of_today + dt.timedelta(days=max(days) + 1),
            ).prefetch_related("environments", "products", "apps")
            for token in upcoming.order_by("expires_at", "key"):
                assert token.expires_at is not None
                left = days_left(token.expires_at, now)
                threshold = due_threshold(left, days)
                if threshold is None or not _claim(token, threshold, dry_run=dry_run):
                    continue
                result.reminders.append(Reminder(token, threshold, left))
                if not dry_run:
                    expiry_event(token, EventType.TOKEN_EXPIRING, days_left=left)
        expired = active.filter(
            expires_at__lte=now, expires_at__gt=now - dt.timedelta(days=EXPIRED_EVENT_DAYS)
        )
        for token in expired.order_by("expires_at", "key"):
            if _claim(token, ReminderClaim.EXPIRED, dry_run=dry_run):
                result.expired.append(token)
                if not dry_run:
                    expiry_event(token, EventType.TOKEN_EXPIRED)
    result.mails = digests(result.reminders)
    if not dry_run:
        for address, reminders in result.mails.items():
            if not send_digest(address, reminders):
                result.failed_mails += 1
    return result


def digests(reminders: list[Reminder]) -> dict[str, list[Reminder]]:
    """Each recipient's reminders: owners and editors who want them, of workspaces that send."""
    by_workspace: dict[int, list[Reminder]] = defaultdict(list)
    for reminder in reminders:
        if reminder.token.workspace.reminders_enabled:
            by_workspace[reminder.token.workspace_id].append(reminder)
    recipients = Membership.objects.filter(
        workspace_id__in=list(by_workspace),
        role__in=[Role.OWNER, Role.EDITOR],
        expiry_reminders=True,
        user__is_active=True,
    ).select_related("user")
    mails: dict[str, list[Reminder]] = defaultdict(list)
    for membership in recipients.order_by("user__email", "workspace_id"):
        if membership.user.email:
            mails[membership.user.email].extend(by_workspace[membership.workspace_id])
    return dict(mails)


def send_digest(address: str, reminders: list[Reminder]) -> bool:
    count = len(reminders)
    subject = f"[Coffer] {count} token{'s' if count != 1 else ''} expiring soon"
    workspaces = {r.token.workspace.slug: r.token.workspace for r in reminders}
    preferences = [
        (ws.name, absolute_url(reverse("notifications:reminders", args=[slug])))
        for slug, ws in sorted(workspaces.items())
    ]
    body = render_to_string(
        "notifications/reminder_mail.txt", {"reminders": reminders, "preferences": preferences}
    )
    try:
        send_mail(subject, body, None, [address])
    except Exception:  # one recipient's mail server problem must not stop the others
        logger.exception("Could not send an expiry reminder mail (%d tokens)", count)
        return False
    return True
