"""Leak scan for notifications: webhook payloads, their signatures and delivery log, the Webhooks
and Reminders pages, the admin and the reminder mails never carry a token's value, its hint or
ciphertext, nor a webhook's signing secret (nor its ciphertext).

A workspace with an expiring token lives through a day of changes (created, new value, edited,
revoked, another token expiring), a reminder pass and the real worker delivering every event to
an HTTPS receiver on 127.0.0.1, one delivery failing first. Every log record is captured at
DEBUG (with SQL): the value and the secrets are searched there too; the ciphertexts are searched
on every surface but the SQL log (which carries them as parameters, as the database does).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import re

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core import mail
from django.db import connection
from django.test import Client
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from notifications.models import Webhook, WebhookDelivery
from notifications.reminders import run_pass
from tests.factories import MembershipFactory, TokenFactory, UserFactory, make_webhook
from tests.helpers import HTMX
from tests.test_leak_scan import Scan, admin_url
from tests.url_table import distinctive_value
from tests.webhook_receiver import Receiver, Reply, run_worker, verify
from tokens.models import Token, TokenVersion
from workspaces.models import Role

pytestmark = pytest.mark.django_db(transaction=True)

SECRET_RE = r"whsec_[A-Za-z0-9_-]{43}"
FORBIDDEN_KEYS = {"value", "hint", "value_hint", "ciphertext", "secret", "signing_secret"}


def ciphertext_needles(blob: bytes) -> list[str]:
    """How a ciphertext would show in text: hex, base64 (both alphabets), a 24-character part
    of each."""
    forms = [blob.hex(), base64.b64encode(blob).decode(), base64.urlsafe_b64encode(blob).decode()]
    return [needle for form in forms for needle in (form, form[8:32])]


def keys_of(payload) -> set[str]:
    if isinstance(payload, dict):
        return set(payload) | {k for value in payload.values() for k in keys_of(value)}
    if isinstance(payload, list):
        return {k for item in payload for k in keys_of(item)}
    return set()


@pytest.fixture
def receiver(tmp_path, settings):
    settings.COFFER_WEBHOOK_ALLOW_PRIVATE = True
    settings.COFFER_WEBHOOK_TIMEOUT = 2
    with Receiver(tmp_path) as running:
        settings.COFFER_WEBHOOK_CA_FILE = str(running.certificate)
        yield running


def owner_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_no_value_hint_ciphertext_or_signing_secret_in_notifications(workspace, receiver, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django.db.backends")
    olga = UserFactory(username="olga", email="olga@example.com")
    MembershipFactory(workspace=workspace, user=olga, role=Role.OWNER)
    ed = UserFactory(username="ed", email="ed@example.com")
    MembershipFactory(workspace=workspace, user=ed, role=Role.EDITOR)
    owner = owner_client(olga)
    scan = Scan()

    # A webhook added through the page: its secret belongs only in that one response.
    created = owner.post(
        reverse("notifications:webhook_create", args=["acme"]),
        {"url": receiver.url("/form"), "description": "", "events": ["token.revoked"]},
        headers=HTMX,
    )
    (form_secret,) = set(re.findall(SECRET_RE, created.text))
    hook, secret = make_webhook(workspace, url=receiver.url())
    receiver.plan = [Reply(status=500, body=b"try later")]  # one delivery fails first

    connection.force_debug_cursor = True
    try:
        first, second = distinctive_value(), distinctive_value()
        expiring = TokenFactory(
            workspace=workspace,
            key="STRIPE_SECRET",
            value=first,
            expiry_date=timezone.now().date() + dt.timedelta(days=5),
        )
        expiring.set_value(second)
        doomed_value = distinctive_value()
        doomed = TokenFactory(workspace=workspace, key="OLD_KEY", value=doomed_value)
        doomed.revoke()
        result = run_pass()
        run_worker()
        for delivery in WebhookDelivery.objects.filter(status="retrying"):
            WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=None)
        run_worker()
    finally:
        connection.force_debug_cursor = False

    assert result.counts()["mails"] == 2, "control: owner and editor got a reminder"
    assert len(mail.outbox) == 2
    types = {json.loads(r.body)["type"] for r in receiver.received if r.path == "/hook"}
    assert {"token.created", "token.value_changed", "token.revoked", "token.expiring"} <= types
    assert any(r.path == "/form" for r in receiver.received), "control: the form's webhook too"

    for number, request in enumerate(receiver.received):
        scan.add(f"payload {number}", request.body.decode())
        scan.add(f"request headers {number}", json.dumps(request.headers))
        assert not keys_of(json.loads(request.body)) & FORBIDDEN_KEYS
        if request.path == "/hook":
            assert verify(secret, request.body, request.headers["X-Coffer-Signature"])
    for delivery in WebhookDelivery.objects.all():
        scan.add(f"stored delivery {delivery.pk}", delivery.body)
    for message in mail.outbox:
        scan.add(f"mail to {message.to}", message.message().as_string())
        scan.add(f"mail text to {message.to}", f"{message.subject}\n{message.body}")  # decoded
        assert "STRIPE_SECRET" in message.body, "control: the mail names the token"

    pages = [
        reverse("notifications:webhooks", args=["acme"]),
        reverse("notifications:deliveries", args=["acme", hook.pk]),
        reverse("notifications:webhook_edit", args=["acme", hook.pk]),
        reverse("notifications:webhook_delete", args=["acme", hook.pk]),
        reverse("notifications:reminders", args=["acme"]),
        reverse("tokens:list", args=["acme"]),
        reverse("tokens:detail", args=["acme", expiring.pk]),
        reverse("audit:activity", args=["acme"]),
    ]
    for page in pages:
        scan.add(f"GET {page}", owner.get(page))
        scan.add(f"GET (htmx) {page}", owner.get(page, headers=HTMX))
    deliveries_page = scan.surfaces[f"GET {pages[1]}"]
    assert "token.revoked" in deliveries_page and "500" in deliveries_page, "control: the log"
    redeliver = reverse(
        "notifications:redeliver", args=["acme", hook.pk, WebhookDelivery.objects.first().pk]
    )
    scan.add("redeliver", owner.post(redeliver, follow=True))

    root = get_user_model().objects.create_superuser("root", "root@example.com", None)
    superuser = owner_client(root)
    for model in admin.site._registry:
        scan.add(
            f"admin {model.__name__} changelist", superuser.get(admin_url(model, "changelist"))
        )
        for obj in model.objects.all()[:5]:
            try:
                scan.add(
                    f"admin {model.__name__} {obj.pk}",
                    superuser.get(admin_url(model, "change", obj.pk)),
                )
            except NoReverseMatch:
                continue

    scan.add("log records", "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records))
    values = [first, second, doomed_value, secret, form_secret]
    hits = scan.hits(values)
    assert not hits, "\n".join(hits[:20])

    hints = [f"••••{v[-4:]}" for v in values[:3]]
    ciphertexts = [bytes(t.ciphertext) for t in Token.objects.all()]
    ciphertexts += [bytes(v.ciphertext) for v in TokenVersion.objects.all()]
    ciphertexts += [bytes(w.secret_ciphertext) for w in Webhook.objects.all()]
    assert len(ciphertexts) >= 6
    needles = [n for blob in ciphertexts for n in ciphertext_needles(blob)]
    page_hits = []
    for name, content in scan.surfaces.items():
        text = content if isinstance(content, str) else content.decode(errors="replace")
        if name == "log records":
            text = "\n".join(
                r.getMessage() for r in caplog.records if r.name != "django.db.backends"
            )
        if not name.startswith(("GET /w/acme/tokens/", "GET (htmx) /w/acme/tokens/", "admin")):
            page_hits += [f"hint {hint} in {name}" for hint in hints if hint in text]
        page_hits += [f"ciphertext in {name}" for needle in needles if needle in text]
    assert not page_hits, "\n".join(page_hits[:20])
    print(f"\nnotification leak scan: {len(values)} secrets x {len(scan.surfaces)} surfaces")
