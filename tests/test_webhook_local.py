"""Trying webhooks out: with DEBUG (`make run`) a receiver on this machine may be added (plain
http to 127.0.0.1 included), it gets a test event (`ping`) when added and on "Send test event";
production's rules stay as they were. The list says "All events" when all are chosen."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from notifications.http import UnsafeURL, resolve
from notifications.models import PING, EventType, Webhook, WebhookDelivery
from tests.factories import make_delivery, make_webhook
from tests.helpers import HTMX
from tests.webhook_receiver import Receiver, run_worker, verify

pytestmark = pytest.mark.django_db(transaction=True)

SECRET_RE = r"whsec_[A-Za-z0-9_-]{43}"


def url(name: str, *args) -> str:
    return reverse(f"notifications:{name}", args=["acme", *args])


@pytest.fixture
def development(settings):
    """What `make run` sets: DEBUG, so local receivers are allowed; nothing else is loosened."""
    settings.COFFER_WEBHOOK_ALLOW_LOCAL = True
    settings.COFFER_WEBHOOK_ALLOW_PRIVATE = False
    settings.COFFER_WEBHOOK_TIMEOUT = 2


@pytest.fixture
def production(settings):
    settings.COFFER_WEBHOOK_ALLOW_LOCAL = False
    settings.COFFER_WEBHOOK_ALLOW_PRIVATE = False


@pytest.fixture
def local_receiver(tmp_path):
    with Receiver(tmp_path, tls=False) as running:
        yield running


def add(client, address: str, events=("token.revoked",)):
    data = {"url": address, "description": "local", "events": list(events)}
    return client.post(url("webhook_create"), data, headers=HTMX)


def test_in_development_a_local_receiver_is_added_and_pinged(
    development, local_receiver, owner_client
):
    response = add(owner_client, local_receiver.url())
    assert response.status_code == 200, response.text
    (secret,) = set(re.findall(SECRET_RE, response.text))
    assert "A test event (<code>ping</code>) is on its way" in response.text
    webhook = Webhook.objects.get()
    (ping,) = WebhookDelivery.objects.filter(webhook=webhook)
    assert ping.event_type == PING

    run_worker()
    (request,) = local_receiver.received
    assert request.headers["X-Coffer-Event"] == "ping"
    assert verify(secret, request.body, request.headers["X-Coffer-Signature"])
    event = json.loads(request.body)
    assert event["type"] == "ping" and event["workspace"] == "acme" and event["actor"] == "olivia"
    assert event["webhook"] == {"id": str(webhook.pk), "url": local_receiver.url()}
    ping.refresh_from_db()
    assert ping.status == "succeeded"


@pytest.mark.parametrize("address", ["http://localhost:9/hook", "http://[::1]:9/hook"])
def test_in_development_localhost_and_ipv6_loopback_are_allowed(development, address):
    assert resolve(address).tls is False


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("http://10.0.0.7/hook", "must start with https://"),  # only this machine, not the LAN
        ("https://10.0.0.7/hook", "not a public address"),
        ("http://93.184.216.34/hook", "must start with https://"),
    ],
)
def test_in_development_only_this_machine_is_loosened(development, address, message):
    with pytest.raises(UnsafeURL, match=message):
        resolve(address)


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("http://127.0.0.1:9000/hook", "must start with https://"),
        ("http://localhost:9000/hook", "must start with https://"),
        ("https://127.0.0.1:9000/hook", "not a public address"),
        ("https://[::1]/hook", "not a public address"),
    ],
)
def test_in_production_a_local_receiver_is_refused_as_before(
    production, owner_client, address, message
):
    response = add(owner_client, address)
    assert response.status_code == 200 and message in response.text
    assert not Webhook.objects.exists()
    with pytest.raises(UnsafeURL, match=message):
        resolve(address)


def test_the_form_says_local_receivers_work_only_in_development(owner_client, settings):
    settings.COFFER_WEBHOOK_ALLOW_LOCAL = True
    assert "http://127.0.0.1:PORT/" in owner_client.get(url("webhook_create")).text
    settings.COFFER_WEBHOOK_ALLOW_LOCAL = False
    assert "http://127.0.0.1:PORT/" not in owner_client.get(url("webhook_create")).text


def test_send_test_event_queues_a_ping_and_shows_the_log(
    development, local_receiver, workspace, owner_client
):
    webhook, secret = make_webhook(workspace, url=local_receiver.url(), events=["token.revoked"])
    page = owner_client.get(url("webhooks")).text
    assert f'action="{url("webhook_test", webhook.pk)}"' in page
    assert "Send test event</span></button>" in page

    response = owner_client.post(url("webhook_test", webhook.pk), follow=True)
    assert response.redirect_chain[-1][0] == url("deliveries", webhook.pk)
    assert f"Test event sent to {local_receiver.url()}" in response.text
    assert "<code>ping</code>" in response.text
    run_worker()
    (request,) = local_receiver.received
    assert verify(secret, request.body, request.headers["X-Coffer-Signature"])


def test_a_paused_webhook_is_not_tested(workspace, owner_client):
    webhook, _ = make_webhook(workspace, active=False)
    assert url("webhook_test", webhook.pk) not in owner_client.get(url("webhooks")).text
    response = owner_client.post(url("webhook_test", webhook.pk), follow=True)
    assert "This webhook is paused" in response.text
    assert not WebhookDelivery.objects.exists()


def test_editors_cannot_send_test_events(workspace, editor_client):
    webhook, _ = make_webhook(workspace)
    assert editor_client.post(url("webhook_test", webhook.pk)).status_code == 403
    assert not WebhookDelivery.objects.exists()


def test_all_events_reads_all_events(workspace, owner_client):
    make_webhook(workspace, url="https://hooks.example.com/all", events=EventType.values)
    make_webhook(
        workspace, url="https://hooks.example.com/two", events=["token.deleted", "token.revoked"]
    )
    page = owner_client.get(url("webhooks")).text
    assert page.count('<span class="chip">All events</span>') == 1
    assert "Token revoked" in page and "Token deleted" in page  # chosen ones, in a fixed order
    assert page.index("Token revoked") < page.index("Token deleted")


def test_the_log_counts_its_deliveries_in_words(workspace, owner_client):
    webhook, _ = make_webhook(workspace)
    make_delivery(webhook)
    assert "The one delivery so far" in owner_client.get(url("deliveries", webhook.pk)).text
    make_delivery(webhook)
    assert "The latest 2 deliveries" in owner_client.get(url("deliveries", webhook.pk)).text
