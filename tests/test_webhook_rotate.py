"""Rotate secret (`notifications:webhook_rotate`): an owner gives a webhook a new signing secret,
shown once; from then on every delivery, retries of earlier events included, is signed with it
and no longer with the old one. Editors and viewers get 403, outsiders 404."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from notifications.delivery import schedule
from notifications.models import Webhook
from tests.factories import make_delivery, make_webhook
from tests.helpers import HTMX, MANAGERS, text
from tests.webhook_receiver import Receiver, run_worker, verify

SECRET_RE = r"whsec_[A-Za-z0-9_-]{43}"


def url(name: str, *args) -> str:
    return reverse(f"notifications:{name}", args=["acme", *args])


@pytest.fixture
def hook(workspace):
    return make_webhook(workspace, url="https://93.184.216.34/coffer")


@pytest.mark.django_db
@pytest.mark.parametrize("headers", [HTMX, {}], ids=["htmx", "plain"])
def test_owner_rotates_and_sees_the_new_secret_once(owner_client, hook, headers):
    webhook, old = hook
    confirm = owner_client.get(url("webhook_rotate", webhook.pk), headers=headers)
    assert "The current secret stops working at once" in text(confirm)
    assert not re.findall(SECRET_RE, text(confirm))

    response = owner_client.post(url("webhook_rotate", webhook.pk), headers=headers)

    assert response.status_code == 200
    (new,) = set(re.findall(SECRET_RE, text(response)))
    assert new != old and "New signing secret" in text(response)
    assert "You won't see this secret again" in text(response)
    webhook.refresh_from_db()
    assert webhook.signing_secret() == new and webhook.secret_prefix == new[:10]
    assert new.encode() not in bytes(webhook.secret_ciphertext), "stored encrypted"
    listing = text(owner_client.get(url("webhooks")))
    assert new not in listing and f"{new[:10]}…" in listing and f"{old[:10]}…" not in listing


@pytest.mark.django_db
def test_the_list_offers_rotate_secret(owner_client, hook):
    webhook, _ = hook
    page = text(owner_client.get(url("webhooks")))
    assert f'href="{url("webhook_rotate", webhook.pk)}"' in page
    assert 'aria-label="Rotate secret of webhook https://93.184.216.34/coffer"' in page


@pytest.mark.django_db
@pytest.mark.parametrize("role", [*MANAGERS[1:], "viewer"])
def test_editor_and_viewer_get_403_and_the_secret_stays(role_client, role, hook):
    webhook, old = hook
    assert role_client[role].get(url("webhook_rotate", webhook.pk)).status_code == 403
    assert role_client[role].post(url("webhook_rotate", webhook.pk)).status_code == 403
    webhook.refresh_from_db()
    assert webhook.signing_secret() == old


@pytest.mark.django_db
def test_outsider_gets_404(outsider_client, hook):
    webhook, old = hook
    assert outsider_client.post(url("webhook_rotate", webhook.pk)).status_code == 404
    webhook.refresh_from_db()
    assert webhook.signing_secret() == old


@pytest.mark.django_db
def test_an_unknown_webhook_is_404(owner_client):
    unknown = url("webhook_rotate", "00000000-0000-0000-0000-000000000000")
    assert owner_client.post(unknown).status_code == 404


@pytest.mark.django_db(transaction=True)
def test_after_rotating_the_old_secret_signs_nothing(workspace, owner_client, tmp_path, settings):
    settings.COFFER_WEBHOOK_ALLOW_PRIVATE = True
    with Receiver(tmp_path) as receiver:
        settings.COFFER_WEBHOOK_CA_FILE = str(receiver.certificate)
        webhook, old = make_webhook(workspace, url=receiver.url())
        schedule(make_delivery(webhook, body='{"type":"token.revoked"}'))  # before rotating
        response = owner_client.post(url("webhook_rotate", webhook.pk), headers=HTMX)
        (new,) = set(re.findall(SECRET_RE, text(response)))
        run_worker()
    (request,) = receiver.received
    signature = request.headers["X-Coffer-Signature"]
    assert verify(new, request.body, signature)
    assert not verify(old, request.body, signature)
    assert Webhook.objects.get().signing_secret() == new
