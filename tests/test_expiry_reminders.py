"""Expiry reminders over a simulated calendar: one digest mail per threshold (30, 7, 1 days
before and on the day), never twice, to owners and editors who have not opted out."""

from __future__ import annotations

import datetime as dt
import io

import pytest
import time_machine
from django.core.management import call_command
from django.urls import reverse

from notifications.models import ReminderClaim
from notifications.reminders import next_reminder, run_pass
from tests.factories import MembershipFactory, TokenFactory, UserFactory, WorkspaceFactory
from tests.helpers import SECRET
from workspaces.models import Membership, Role

pytestmark = pytest.mark.django_db

START = dt.datetime(2027, 3, 1, 9, 0, tzinfo=dt.UTC)
EXPIRY = dt.date(2027, 4, 10)  # 40 days after START


@pytest.fixture
def team(workspace):
    """An owner, an editor and a viewer of Acme, with addresses."""
    people = {}
    for name, role in (("olga", Role.OWNER), ("ed", Role.EDITOR), ("vic", Role.VIEWER)):
        people[name] = UserFactory(username=name, email=f"{name}@example.com")
        MembershipFactory(workspace=workspace, user=people[name], role=role)
    return people


def expiring_token(workspace, key="STRIPE_SECRET", expiry=EXPIRY, **fields):
    with time_machine.travel(START, tick=False):
        return TokenFactory(
            workspace=workspace, key=key, value=SECRET, expiry_date=expiry, **fields
        )


def live_through(days: int, *, passes_per_day: int = 1, start=START) -> dict[dt.date, list]:
    """Run the reminder pass every day (at 09:00 UTC) from `start`; the mails sent each day."""
    from django.core import mail

    sent: dict[dt.date, list] = {}
    for day in range(days):
        moment = start + dt.timedelta(days=day)
        with time_machine.travel(moment, tick=False):
            before = len(mail.outbox)
            for _ in range(passes_per_day):
                run_pass()
            if len(mail.outbox) > before:
                sent[moment.date()] = mail.outbox[before:]
    return sent


def test_one_mail_per_threshold_over_the_calendar(workspace, team, mailoutbox):
    expiring_token(workspace)

    sent = live_through(45, passes_per_day=2)

    assert list(sent) == [
        dt.date(2027, 3, 11),  # 30 days before
        dt.date(2027, 4, 3),  # 7 days before
        dt.date(2027, 4, 9),  # 1 day before
        dt.date(2027, 4, 10),  # on the day
    ]
    for mails in sent.values():
        assert sorted(m.to[0] for m in mails) == ["ed@example.com", "olga@example.com"]
    assert ReminderClaim.objects.filter(threshold__gte=0).count() == 4


def test_the_mail_lists_key_workspace_context_when_and_link_never_a_value(
    workspace, team, mailoutbox
):
    token = expiring_token(workspace)
    with time_machine.travel(dt.datetime(2027, 4, 3, 6, 0, tzinfo=dt.UTC), tick=False):
        run_pass()
    mail = next(m for m in mailoutbox if m.to == ["olga@example.com"])
    assert mail.subject == "[Coffer] 1 token expiring soon"
    assert "STRIPE_SECRET in Acme (Production, Sandbox · all products & apps)" in mail.body
    assert "expires in 7 days, 2027-04-10 00:00 UTC" in mail.body
    assert f"/w/acme/tokens/?q=STRIPE_SECRET&highlight={token.pk}" in mail.body
    assert reverse("notifications:reminders", args=["acme"]) in mail.body
    assert SECRET not in mail.message().as_string()
    assert token.value_hint not in mail.message().as_string()


def test_one_digest_per_recipient_for_several_tokens_and_workspaces(workspace, team, mailoutbox):
    globex = WorkspaceFactory(name="Globex", slug="globex")
    MembershipFactory(workspace=globex, user=team["olga"], role=Role.EDITOR)
    expiring_token(workspace, "FIRST")
    expiring_token(workspace, "SECOND", expiry=EXPIRY + dt.timedelta(days=3))
    expiring_token(globex, "THIRD")
    with time_machine.travel(dt.datetime(2027, 4, 5, tzinfo=dt.UTC), tick=False):
        run_pass()
    by_address = {m.to[0]: m for m in mailoutbox}
    assert sorted(by_address) == ["ed@example.com", "olga@example.com"]
    olga = by_address["olga@example.com"].body
    assert "FIRST" in olga and "SECOND" in olga and "THIRD in Globex" in olga
    assert "THIRD" not in by_address["ed@example.com"].body


def test_opting_out_is_respected(workspace, team, mailoutbox):
    Membership.objects.filter(user=team["ed"]).update(expiry_reminders=False)
    expiring_token(workspace)
    sent = live_through(45)
    assert {m.to[0] for mails in sent.values() for m in mails} == {"olga@example.com"}


def test_a_workspace_with_reminders_off_sends_none(workspace, team, mailoutbox):
    workspace.reminders_enabled = False
    workspace.save()
    expiring_token(workspace)
    assert live_through(45) == {}


def test_expired_and_revoked_tokens_are_skipped(workspace, team, mailoutbox):
    revoked = expiring_token(workspace, "REVOKED")
    revoked.revoke()
    expiring_token(workspace, "ALREADY_OVER", expiry=START.date() + dt.timedelta(days=1))
    with time_machine.travel(START + dt.timedelta(days=3), tick=False):
        run_pass()
        assert mailoutbox == []
    never = TokenFactory(workspace=workspace, key="NEVER")
    assert never.expires_at is None
    assert live_through(45, start=START + dt.timedelta(days=3)) == {}
    assert ReminderClaim.objects.filter(threshold__gte=0).count() == 0


def test_a_token_made_close_to_its_expiry_gets_only_the_most_urgent_reminder(
    workspace, team, mailoutbox
):
    expiring_token(workspace, expiry=START.date() + dt.timedelta(days=5))
    sent = live_through(8)
    assert list(sent) == [START.date(), dt.date(2027, 3, 5), dt.date(2027, 3, 6)]
    assert "expires in 5 days" in sent[START.date()][0].body


def test_a_renewed_expiry_starts_its_reminders_again(workspace, team, mailoutbox):
    token = expiring_token(workspace, expiry=START.date() + dt.timedelta(days=5))
    live_through(1)
    with time_machine.travel(START + dt.timedelta(hours=1), tick=False):
        token.update(expiry_date=START.date() + dt.timedelta(days=6))
        run_pass()
    assert len(mailoutbox) == 4, "the new expiry's 7-day reminder, to both recipients"


def test_dry_run_says_what_it_would_send_and_sends_nothing(workspace, team, mailoutbox):
    expiring_token(workspace)
    out = io.StringIO()
    with time_machine.travel(dt.datetime(2027, 4, 3, tzinfo=dt.UTC), tick=False):
        call_command("send_expiry_reminders", "--dry-run", stdout=out)
        assert mailoutbox == [] and not ReminderClaim.objects.exists()
        assert "Would send to olga@example.com: STRIPE_SECRET (acme)" in out.getvalue()
        out = io.StringIO()
        call_command("send_expiry_reminders", stdout=out)
    assert "Sent to olga@example.com" in out.getvalue()
    assert "1 reminder(s) due, 2 mail(s)" in out.getvalue()
    assert len(mailoutbox) == 2


def test_a_failed_mail_is_reported_with_exit_status_1(workspace, team, monkeypatch):
    from notifications import reminders

    def broken(*args, **kwargs):
        raise ConnectionRefusedError("no mail server")

    monkeypatch.setattr(reminders, "send_mail", broken)
    expiring_token(workspace)
    err = io.StringIO()
    with (
        time_machine.travel(dt.datetime(2027, 4, 3, tzinfo=dt.UTC), tick=False),
        pytest.raises(SystemExit) as exit_info,
    ):
        call_command("send_expiry_reminders", stdout=io.StringIO(), stderr=err)
    assert exit_info.value.code == 1
    assert "2 mail(s) could not be sent" in err.getvalue()


def test_thresholds_come_from_the_setting(workspace, team, mailoutbox, settings):
    settings.COFFER_REMINDER_DAYS = [14, 2]
    expiring_token(workspace)
    assert list(live_through(45)) == [dt.date(2027, 3, 27), dt.date(2027, 4, 8)]


def test_next_reminder_for_the_table(settings):
    settings.COFFER_REMINDER_DAYS = [30, 7, 1, 0]
    expires = dt.datetime(2027, 4, 10, tzinfo=dt.UTC)
    assert next_reminder(expires, START).on == dt.date(2027, 3, 11)
    soon = next_reminder(expires, dt.datetime(2027, 4, 5, tzinfo=dt.UTC))
    assert (soon.on, soon.label) == (dt.date(2027, 4, 9), "1 day before")
    last = next_reminder(expires, dt.datetime(2027, 4, 9, 12, tzinfo=dt.UTC))
    assert (last.on, last.label) == (dt.date(2027, 4, 10), "on the day")
    assert next_reminder(expires, dt.datetime(2027, 4, 10, 12, tzinfo=dt.UTC)) is None
    assert next_reminder(None, START) is None


def test_expiring_and_expired_become_webhook_events_once(workspace, team):
    import json

    from notifications.models import WebhookDelivery
    from tests.factories import make_webhook

    make_webhook(workspace, events=["token.expiring", "token.expired"])
    token = expiring_token(workspace)
    live_through(45, passes_per_day=2)
    events = [json.loads(body) for body in WebhookDelivery.objects.values_list("body", flat=True)]
    expiring = sorted(e["days_left"] for e in events if e["type"] == "token.expiring")
    assert expiring == [0, 1, 7, 30]
    (expired,) = [e for e in events if e["type"] == "token.expired"]
    assert expired["token"] == {"id": str(token.pk), "key": "STRIPE_SECRET"}
    assert expired["expires_at"] == "2027-04-10T00:00:00Z"
    assert SECRET not in json.dumps(events)


@pytest.mark.django_db(transaction=True)
def test_the_worker_runs_a_pass_enqueued_as_a_task(workspace, team, mailoutbox):
    from notifications.tasks import send_expiry_reminders
    from tests.webhook_receiver import run_worker

    expiring_token(workspace)
    with time_machine.travel(dt.datetime(2027, 4, 9, 8, tzinfo=dt.UTC), tick=False):
        result = send_expiry_reminders.enqueue()
        assert mailoutbox == []
        run_worker()
        result.refresh()
    assert result.return_value == {"reminders": 1, "expired": 0, "mails": 2, "failed_mails": 0}
    assert sorted(m.to[0] for m in mailoutbox) == ["ed@example.com", "olga@example.com"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_passes_at_the_same_moment_send_each_reminder_once(workspace, team, mailoutbox):
    """On PostgreSQL, two workers racing: the claim's unique row lets exactly one send."""
    import threading

    from django.db import connection, connections

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL): SQLite serialises every writer anyway")
    for n in range(10):
        expiring_token(workspace, f"TOKEN_{n}")
    barrier = threading.Barrier(4)
    results = []

    def one_pass():
        try:
            barrier.wait(timeout=10)
            results.append(run_pass())
        finally:
            connections.close_all()

    threads = [threading.Thread(target=one_pass) for _ in range(4)]
    with time_machine.travel(dt.datetime(2027, 4, 3, tzinfo=dt.UTC), tick=False):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert len(results) == 4
    assert sum(len(r.reminders) for r in results) == 10, "each token claimed by one pass"
    keys = [line for m in mailoutbox for line in m.body.splitlines() if line.startswith("- ")]
    assert len(keys) == 20, "each token in one mail to each of the two recipients"
