"""The Webhooks page: owners add (the secret shown once), edit, pause, delete, and read each
webhook's delivery log; editors and viewers get 403, outsiders 404."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from notifications.models import Webhook, WebhookAttempt
from tests.factories import make_delivery, make_webhook
from tests.helpers import HTMX, triggers

pytestmark = pytest.mark.django_db

PUBLIC_URL = "https://93.184.216.34/coffer"
SECRET_RE = r"whsec_[A-Za-z0-9_-]{43}"


def url(name: str, *args) -> str:
    return reverse(f"notifications:{name}", args=["acme", *args])


def add(client, headers=None, **overrides):
    data = {"url": PUBLIC_URL, "description": "deploys", "events": ["token.revoked"]}
    return client.post(url("webhook_create"), data | overrides, headers=headers or {})


@pytest.mark.parametrize("headers", [HTMX, {}], ids=["htmx", "plain"])
def test_owner_adds_a_webhook_and_sees_its_secret_once(owner_client, headers):
    response = add(owner_client, headers)

    assert response.status_code == 200
    (secret,) = set(re.findall(SECRET_RE, response.text))
    assert "You won't see this secret again" in response.text
    webhook = Webhook.objects.get()
    assert webhook.url == PUBLIC_URL and webhook.events == ["token.revoked"]
    assert webhook.signing_secret() == secret
    assert secret.encode() not in bytes(webhook.secret_ciphertext), "stored encrypted"
    for later in (url("webhooks"), url("deliveries", webhook.pk), url("webhook_edit", webhook.pk)):
        page = owner_client.get(later)
        assert page.status_code == 200 and secret not in page.text
        assert webhook.secret_prefix in owner_client.get(url("webhooks")).text


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"url": "http://93.184.216.34/"}, "must start with https://"),
        ({"url": "https://127.0.0.1/"}, "not a public address"),
        ({"url": "https://10.0.0.7/"}, "not a public address"),
        ({"url": "https://169.254.169.254/latest/meta-data"}, "not a public address"),
        ({"url": "https://[::1]/"}, "not a public address"),
        ({"url": ""}, "This field is required"),
        ({"events": []}, "Choose at least one event"),
        ({"events": ["token.stolen"]}, "Select a valid choice"),
        ({"description": "a\x00b"}, "Null characters are not allowed"),
        ({"url": "https://93.184.216.34/\x00"}, "Null characters are not allowed"),
        ({"url": "https://" + "a" * 2000 + ".com/"}, "at most 2000 characters"),
    ],
)
def test_bad_input_is_refused_with_a_message_and_creates_nothing(owner_client, overrides, message):
    response = add(owner_client, HTMX, **overrides)
    assert response.status_code == 200
    assert message in response.text
    assert not Webhook.objects.exists()


def test_edit_pauses_and_resumes(owner_client, workspace):
    webhook, _ = make_webhook(workspace, url=PUBLIC_URL)
    data = {"url": PUBLIC_URL, "events": ["token.created", "token.deleted"], "active": ""}
    response = owner_client.post(url("webhook_edit", webhook.pk), data, headers=HTMX)
    assert response.status_code == 204 and "webhooksChanged" in triggers(response)
    webhook.refresh_from_db()
    assert not webhook.active and webhook.events == ["token.created", "token.deleted"]
    assert "Paused" in owner_client.get(url("webhooks")).text
    owner_client.post(url("webhook_edit", webhook.pk), data | {"active": "on"})
    webhook.refresh_from_db()
    assert webhook.active


def test_delete_removes_it_with_its_log(owner_client, workspace):
    webhook, _ = make_webhook(workspace)
    make_delivery(webhook)
    assert "Delete webhook" in owner_client.get(url("webhook_delete", webhook.pk)).text
    response = owner_client.post(url("webhook_delete", webhook.pk))
    assert response.status_code == 302
    assert not Webhook.objects.exists()


def test_the_delivery_log_shows_each_attempt(owner_client, workspace):
    webhook, _ = make_webhook(workspace)
    delivery = make_delivery(webhook, status="retrying")
    WebhookAttempt.objects.create(
        delivery=delivery, status_code=500, duration_ms=42, response_excerpt="<b>down</b>"
    )
    page = owner_client.get(url("deliveries", webhook.pk))
    assert "HTTP 500" in page.text and "42 ms" in page.text
    assert "&lt;b&gt;down&lt;/b&gt;" in page.text, "the receiver's answer is escaped"
    assert "Retrying" in page.text and "Redeliver" in page.text


def test_the_delivery_log_costs_the_same_queries_for_1_and_30_deliveries(
    owner_client, workspace, django_assert_max_num_queries
):
    webhook, _ = make_webhook(workspace)
    for count in (1, 30):
        while webhook.deliveries.count() < count:
            delivery = make_delivery(webhook)
            WebhookAttempt.objects.create(delivery=delivery, status_code=200)
        with django_assert_max_num_queries(8):
            assert owner_client.get(url("deliveries", webhook.pk)).status_code == 200


def test_redeliver_is_refused_while_paused(owner_client, workspace):
    webhook, _ = make_webhook(workspace, active=False)
    delivery = make_delivery(webhook)
    response = owner_client.post(url("redeliver", webhook.pk, delivery.pk), follow=True)
    assert "This webhook is paused" in response.text
    assert webhook.deliveries.count() == 1


def test_another_webhooks_delivery_is_404(owner_client, workspace):
    first, _ = make_webhook(workspace)
    second, _ = make_webhook(workspace)
    delivery = make_delivery(second)
    assert owner_client.post(url("redeliver", first.pk, delivery.pk)).status_code == 404


@pytest.mark.parametrize("role", ["editor", "viewer"])
def test_editors_and_viewers_get_403(role_client, role, workspace):
    webhook, _ = make_webhook(workspace)
    client = role_client[role]
    assert client.get(url("webhooks")).status_code == 403
    assert add(client).status_code == 403
    assert client.get(url("deliveries", webhook.pk)).status_code == 403
    assert "Webhooks" not in client.get(reverse("tokens:list", args=["acme"])).text


def test_the_sidebar_links_owners_to_webhooks(owner_client):
    page = owner_client.get(reverse("tokens:list", args=["acme"]))
    assert f'href="{url("webhooks")}"' in page.text


def test_row_actions_open_the_modal_not_the_tables_own_swap(owner_client, workspace):
    """The table redraws itself with hx-swap="outerHTML"; its rows override it, or Edit,
    Rotate and Delete would replace the modal's content element (found in the browser)."""
    make_webhook(workspace)
    page = owner_client.get(url("webhooks")).text
    assert '<tbody hx-target="#modal-content" hx-swap="innerHTML">' in page
