"""Webhooks delivered by the real worker (`db_worker`) to an HTTPS receiver on 127.0.0.1:
signed, retried with backoff after 500s and timeouts, logged, redelivered, paused after 24 h."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import time_machine
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from notifications import http as webhook_http
from notifications.models import DeliveryStatus, Webhook, WebhookDelivery
from tests.factories import MembershipFactory, TokenFactory, UserFactory, make_webhook
from tests.helpers import SECRET
from tests.webhook_receiver import Receiver, Reply, run_worker, verify
from workspaces.models import Role

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def receiver(tmp_path, settings):
    settings.COFFER_WEBHOOK_ALLOW_PRIVATE = True  # the receiver is on 127.0.0.1
    settings.COFFER_WEBHOOK_TIMEOUT = 1
    with Receiver(tmp_path) as running:
        settings.COFFER_WEBHOOK_CA_FILE = str(running.certificate)
        yield running


@pytest.fixture
def hook(workspace, receiver):
    owner = UserFactory(username="olga", email="olga@example.com")
    MembershipFactory(workspace=workspace, user=owner, role=Role.OWNER)
    return make_webhook(workspace, url=receiver.url())


def deliveries(webhook) -> list[WebhookDelivery]:
    return list(WebhookDelivery.objects.filter(webhook=webhook).order_by("created_at"))


def test_a_revoke_is_delivered_once_signed_by_the_real_worker(token, hook, receiver):
    webhook, secret = hook

    token.revoke()
    assert receiver.received == [], "nothing is sent from the request: only the worker sends"
    run_worker()

    (request,) = receiver.received
    assert request.path == "/hook"
    assert verify(secret, request.body, request.headers["X-Coffer-Signature"])
    assert not verify("whsec_wrong", request.body, request.headers["X-Coffer-Signature"])
    event = json.loads(request.body)
    assert event["type"] == "token.revoked" == request.headers["X-Coffer-Event"]
    assert event["workspace"] == "acme"
    assert event["token"] == {"id": str(token.pk), "key": "STRIPE_SECRET"}
    assert event["context"]["environments"] == ["production", "sandbox"]
    assert event["actor"] == "system"
    assert set(event) == {"id", "type", "time", "workspace", "actor", "token", "context"}
    assert SECRET not in request.body.decode() and token.value_hint not in request.body.decode()
    (delivery,) = deliveries(webhook)
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert request.headers["X-Coffer-Delivery"] == str(delivery.pk)
    (attempt,) = delivery.attempts.all()
    assert attempt.status_code == 200 and attempt.response_excerpt == "ok"
    run_worker()
    assert len(receiver.received) == 1, "a second worker run sends nothing again"


def test_the_signature_is_over_the_exact_body_and_a_fresh_time(token, hook, receiver):
    webhook, secret = hook
    token.revoke()
    run_worker()
    (request,) = receiver.received
    header = request.headers["X-Coffer-Signature"]
    assert not verify(secret, request.body + b" ", header), "a changed body fails"
    later = int(header.split(",")[0][2:]) + 301
    assert not verify(secret, request.body, header, now=later), "a replay 5 min later fails"


def test_500s_are_retried_with_growing_delays_until_a_success(token, hook, receiver):
    webhook, _ = hook
    receiver.plan = [Reply(500, body=b"boom"), Reply(503), Reply(200)]
    token.revoke()
    with time_machine.travel(timezone.now(), tick=True) as clock:
        run_worker()
        (delivery,) = deliveries(webhook)
        assert delivery.status == DeliveryStatus.RETRYING and delivery.attempt_count == 1
        first_wait = delivery.next_attempt_at - delivery.first_attempt_at
        assert dt.timedelta(seconds=29) < first_wait <= dt.timedelta(seconds=31)
        run_worker()
        assert len(receiver.received) == 1, "not retried before its time"

        clock.shift(dt.timedelta(seconds=31))
        run_worker()
        delivery.refresh_from_db()
        assert delivery.status == DeliveryStatus.RETRYING and delivery.attempt_count == 2
        second_wait = delivery.next_attempt_at - timezone.now()
        assert dt.timedelta(seconds=58) < second_wait <= dt.timedelta(seconds=61), "doubled"

        clock.shift(dt.timedelta(seconds=61))
        run_worker()
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempt_count == 3
    assert [a.status_code for a in delivery.attempts.order_by("attempted_at")] == [500, 503, 200]
    assert delivery.attempts.order_by("attempted_at")[0].response_excerpt == "boom"
    assert len({r.headers["X-Coffer-Event-Id"] for r in receiver.received}) == 1, "same event"
    webhook.refresh_from_db()
    assert webhook.failing_since is None and webhook.active


def test_a_timeout_is_a_failed_attempt_that_is_retried(token, hook, receiver):
    webhook, _ = hook
    receiver.plan = [Reply(200, delay=3)]
    token.revoke()
    run_worker()
    (delivery,) = deliveries(webhook)
    (attempt,) = delivery.attempts.all()
    assert attempt.status_code is None and "Timed out" in attempt.error
    assert attempt.duration_ms < 2500, "the worker gave up at the timeout, not the reply"
    assert delivery.status == DeliveryStatus.RETRYING


def test_redirects_are_not_followed(token, hook, receiver):
    webhook, _ = hook
    receiver.plan = [Reply(302, headers={"Location": receiver.url("/elsewhere")})]
    token.revoke()
    run_worker()
    assert [r.path for r in receiver.received] == ["/hook"]
    (attempt,) = deliveries(webhook)[0].attempts.all()
    assert attempt.status_code == 302 and "Redirects are not followed" in attempt.error


def test_only_the_first_kilobyte_is_logged_and_64_kib_read(token, hook, receiver):
    webhook, _ = hook
    receiver.plan = [Reply(200, body=b"x" * 200_000), Reply(200, body=b"y" * 200_000)]
    token.revoke()
    run_worker()
    (attempt,) = deliveries(webhook)[0].attempts.all()
    assert attempt.response_excerpt == "x" * 1024
    answer = webhook_http.post(receiver.url(), b"{}", {})
    assert answer.status_code == 200 and len(answer.body) == 64 * 1024


def test_failing_for_24_hours_pauses_the_webhook_and_mails_its_owners(
    token, hook, receiver, mailoutbox
):
    webhook, _ = hook
    receiver.plan = [Reply(500)] * 100
    token.revoke()
    with time_machine.travel(timezone.now(), tick=True) as clock:
        for _ in range(40):  # 30 s doubling, at most 6 h apart: about 14 attempts in 24 h
            run_worker()
            delivery = deliveries(webhook)[0]
            if delivery.is_final:
                break
            clock.move_to(delivery.next_attempt_at + dt.timedelta(seconds=1))
    assert delivery.status == DeliveryStatus.FAILED
    assert 10 <= delivery.attempt_count <= 20
    span = delivery.attempts.order_by("-attempted_at")[0].attempted_at - delivery.first_attempt_at
    assert dt.timedelta(hours=24) <= span < dt.timedelta(hours=24, minutes=1)
    webhook.refresh_from_db()
    assert not webhook.active and "every delivery failed for 24 hours" in webhook.paused_reason
    (mail,) = mailoutbox
    assert mail.to == ["olga@example.com"] and webhook.url in mail.body
    assert reverse("notifications:deliveries", args=["acme", webhook.pk]) in mail.body

    TokenFactory(workspace=token.workspace, key="AFTER_PAUSE").revoke()
    assert len(deliveries(webhook)) == 1, "a paused webhook gets no new deliveries"


def test_redeliver_sends_the_same_event_again(token, hook, receiver, owner_client):
    webhook, secret = hook
    token.revoke()
    run_worker()
    (original,) = deliveries(webhook)
    url = reverse("notifications:redeliver", args=["acme", webhook.pk, original.pk])

    response = owner_client.post(url)

    assert response.status_code == 302
    run_worker()
    first, second = receiver.received
    assert first.body == second.body and verify(
        secret, second.body, second.headers["X-Coffer-Signature"]
    )
    assert first.headers["X-Coffer-Delivery"] != second.headers["X-Coffer-Delivery"]
    copy = deliveries(webhook)[1]
    assert copy.redelivery_of == original and copy.status == DeliveryStatus.SUCCEEDED
    page = owner_client.get(reverse("notifications:deliveries", args=["acme", webhook.pk]))
    assert page.text.count("Redeliver</span></button>") == 2 and "redelivery" in page.text


def test_a_rolled_back_change_sends_nothing(token, hook, receiver):
    webhook, _ = hook
    with pytest.raises(RuntimeError), transaction.atomic():
        token.revoke()
        assert WebhookDelivery.objects.count() == 1
        raise RuntimeError("the surrounding work failed")
    assert WebhookDelivery.objects.count() == 0
    run_worker()
    assert receiver.received == []


def test_a_paused_webhook_is_sent_nothing(token, hook, receiver):
    webhook, _ = hook
    token.revoke()
    Webhook.objects.filter(pk=webhook.pk).update(active=False)
    run_worker()
    assert receiver.received == []
    assert deliveries(webhook)[0].status == DeliveryStatus.FAILED
