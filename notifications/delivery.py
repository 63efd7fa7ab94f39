"""Delivering one webhook event: sign, send, log the attempt, retry or give up.

Runs only in the worker (`manage.py db_worker`), never in a web request. A failed attempt (no
answer, a timeout, a refusal by the address check, or any status outside 2xx, redirects
included) is retried with exponential backoff (COFFER_WEBHOOK_RETRY_BASE seconds, doubling, at
most 6 h apart) until COFFER_WEBHOOK_RETRY_SECONDS (24 h) after its first attempt. A webhook
whose deliveries have failed for that long without a success in between is paused, and its
owners get a mail.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from notifications.http import SIGNATURE_HEADER, Answer, post, sign
from notifications.models import (
    RESPONSE_EXCERPT_BYTES,
    DeliveryStatus,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
)
from notifications.tasks import deliver_webhook

logger = logging.getLogger(__name__)
MAX_BACKOFF = dt.timedelta(hours=6)


def backoff(attempt_count: int) -> dt.timedelta:
    """How long to wait after the `attempt_count`-th failed attempt: 30 s, 1 min, 2 min, ..."""
    seconds = settings.COFFER_WEBHOOK_RETRY_BASE * 2 ** max(attempt_count - 1, 0)
    return min(dt.timedelta(seconds=seconds), MAX_BACKOFF)


def absolute_url(path: str) -> str:
    return settings.COFFER_BASE_URL.rstrip("/") + path


def attempt_delivery(delivery_id: str) -> str:
    """One attempt of one delivery (the worker task); returns the delivery's status."""
    delivery = (
        WebhookDelivery.objects.select_related("webhook__workspace").filter(pk=delivery_id).first()
    )
    if delivery is None or delivery.is_final:
        return "gone" if delivery is None else delivery.status
    webhook = delivery.webhook
    if not webhook.active:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=DeliveryStatus.FAILED, next_attempt_at=None
        )
        return DeliveryStatus.FAILED
    body = delivery.body.encode()
    headers = {
        SIGNATURE_HEADER: sign(webhook.signing_secret(), body, int(time.time())),
        "X-Coffer-Event": delivery.event_type,
        "X-Coffer-Event-Id": str(delivery.event_id),
        "X-Coffer-Delivery": str(delivery.pk),
    }
    answer = post(webhook.url, body, headers)
    return record_attempt(delivery, answer)


def record_attempt(delivery: WebhookDelivery, answer: Answer) -> str:
    now = timezone.now()
    succeeded = answer.status_code is not None and 200 <= answer.status_code < 300
    error = answer.error
    if answer.status_code is not None and 300 <= answer.status_code < 400:
        error = "Redirects are not followed: answer 2xx at the URL itself."
    with transaction.atomic():
        WebhookAttempt.objects.create(
            delivery=delivery,
            attempted_at=now,
            status_code=answer.status_code,
            duration_ms=answer.duration_ms,
            response_excerpt=answer.body[:RESPONSE_EXCERPT_BYTES].decode("utf-8", "replace"),
            error=error,
        )
        webhook = Webhook.objects.select_for_update().get(pk=delivery.webhook_id)
        delivery.attempt_count += 1
        delivery.first_attempt_at = delivery.first_attempt_at or now
        if succeeded:
            delivery.status, delivery.next_attempt_at = DeliveryStatus.SUCCEEDED, None
            if webhook.failing_since is not None:
                webhook.failing_since = None
                webhook.save(update_fields=["failing_since"])
        else:
            if webhook.failing_since is None:
                webhook.failing_since = now
                webhook.save(update_fields=["failing_since"])
            window = dt.timedelta(seconds=settings.COFFER_WEBHOOK_RETRY_SECONDS)
            deadline = delivery.first_attempt_at + window
            # The last retry lands on the deadline itself, so a webhook that never answers is
            # seen failing for the whole window (and paused) even with a single event.
            next_at = min(now + backoff(delivery.attempt_count), deadline)
            if now - webhook.failing_since >= window and webhook.active:
                pause(webhook, now)
            if not webhook.active or now >= deadline:
                delivery.status, delivery.next_attempt_at = DeliveryStatus.FAILED, None
            else:
                delivery.status, delivery.next_attempt_at = DeliveryStatus.RETRYING, next_at
                schedule(delivery, next_at)
        delivery.save(
            update_fields=["attempt_count", "first_attempt_at", "status", "next_attempt_at"]
        )
    return delivery.status


def schedule(delivery: WebhookDelivery, when: dt.datetime | None = None) -> None:
    """Enqueue an attempt of `delivery` (at `when`) once the current transaction commits."""
    task = deliver_webhook.using(run_after=when) if when is not None else deliver_webhook
    transaction.on_commit(lambda: task.enqueue(str(delivery.pk)))


def pause(webhook: Webhook, now: dt.datetime) -> None:
    """Pause a webhook that has failed for the whole retry window, and tell its owners."""
    webhook.active = False
    webhook.paused_reason = (
        f"Paused automatically on {now:%Y-%m-%d %H:%M} UTC: every delivery failed for 24 hours."
    )
    webhook.save(update_fields=["active", "paused_reason"])
    recipients = [user.email for user in webhook.owners() if user.email]
    if not recipients:
        return
    workspace = webhook.workspace
    link = absolute_url(reverse("notifications:deliveries", args=[workspace.slug, webhook.pk]))
    message = (
        f"Coffer paused the webhook {webhook.url} of workspace {workspace.name}: its deliveries "
        "have failed for 24 hours.\n\n"
        f"See its delivery log, fix the receiver, then resume it and redeliver:\n{link}\n"
    )
    subject = f"[Coffer] Webhook paused in {workspace.name}"
    transaction.on_commit(lambda: _mail_owners(subject, message, recipients))


def _mail_owners(subject: str, message: str, recipients: list[str]) -> None:
    try:
        send_mail(subject, message, None, recipients)
    except Exception:  # the pause stands; the delivery log and the page say it too
        logger.exception("Could not mail the owners of a paused webhook")


def redeliver(delivery: WebhookDelivery) -> WebhookDelivery:
    """Send the same event (same id and body) again, as a new delivery with its own log."""
    with transaction.atomic():
        copy = WebhookDelivery.objects.create(
            webhook=delivery.webhook,
            event_id=delivery.event_id,
            event_type=delivery.event_type,
            body=delivery.body,
            redelivery_of=delivery,
        )
        schedule(copy)
    return copy
