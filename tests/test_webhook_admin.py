"""The Django admin for webhooks and deliveries (notifications/admin.py): read-only views for
looking into a delivery problem; the signing secret only as its prefix, never its ciphertext."""

from __future__ import annotations

import base64

import pytest
from django.urls import reverse

from notifications.models import Webhook, WebhookAttempt, WebhookDelivery
from tests.factories import make_delivery, make_webhook
from tests.helpers import text

pytestmark = pytest.mark.django_db


@pytest.fixture
def hook(workspace):
    webhook, secret = make_webhook(workspace, description="deploy bot")
    delivery = make_delivery(webhook, body='{"type":"token.revoked","workspace":"acme"}')
    WebhookAttempt.objects.create(delivery=delivery, status_code=500, response_excerpt="oops")
    return webhook, secret, delivery


def test_the_webhook_list_and_page_show_the_prefix_never_the_secret(admin_client, hook):
    webhook, secret, _ = hook
    listing = text(admin_client.get(reverse("admin:notifications_webhook_changelist")))
    page = text(admin_client.get(reverse("admin:notifications_webhook_change", args=[webhook.pk])))
    for content in (listing, page):
        assert "https://hooks.example.com/coffer" in content and webhook.secret_prefix in content
        assert secret not in content
        blob = bytes(webhook.secret_ciphertext)
        assert blob.hex() not in content and base64.b64encode(blob).decode() not in content


def test_a_delivery_page_shows_its_body_and_attempts(admin_client, hook):
    _, secret, delivery = hook
    url = reverse("admin:notifications_webhookdelivery_change", args=[delivery.pk])
    page = text(admin_client.get(url))
    assert "token.revoked" in page and "oops" in page and "500" in page
    assert secret not in page


def test_nothing_is_added_changed_or_deleted_here(admin_client, hook):
    webhook, secret, delivery = hook
    assert admin_client.get(reverse("admin:notifications_webhook_add")).status_code == 403
    change = reverse("admin:notifications_webhook_change", args=[webhook.pk])
    admin_client.post(change, {"url": "https://evil.example.com/", "active": ""})
    webhook.refresh_from_db()
    assert webhook.url == "https://hooks.example.com/coffer" and webhook.active
    delete = reverse("admin:notifications_webhookdelivery_delete", args=[delivery.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert WebhookDelivery.objects.filter(pk=delivery.pk).exists()
    assert Webhook.objects.get().signing_secret() == secret


def test_deleting_the_workspace_in_the_admin_takes_its_webhooks(admin_client, workspace, hook):
    url = reverse("admin:workspaces_workspace_delete", args=[workspace.pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    assert not Webhook.objects.exists() and not WebhookDelivery.objects.exists()
