"""The Webhooks page in a real browser: an owner adds a webhook, copies its signing secret (shown
once), a revoke is delivered signed to an HTTPS receiver on 127.0.0.1, the delivery log shows
it, Redeliver sends it again, and Rotate secret gives a new secret. axe-core checks the
Webhooks page, the form, the secret and rotate dialogs, the delivery log and the Reminders page.
"""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import Page, expect

from tests.factories import MembershipFactory, TokenFactory, UserFactory, WorkspaceFactory
from tests.helpers import sign_in
from tests.webhook_receiver import Receiver, run_worker, verify
from tokens.models import Token
from workspaces.models import Role

SECRET_RE = re.compile(r"^whsec_[A-Za-z0-9_-]{43}$")


@pytest.fixture
def receiver(tmp_path, settings):
    settings.COFFER_WEBHOOK_ALLOW_PRIVATE = True  # the receiver is on 127.0.0.1
    settings.COFFER_WEBHOOK_TIMEOUT = 5
    with Receiver(tmp_path) as running:
        settings.COFFER_WEBHOOK_CA_FILE = str(running.certificate)
        yield running


def axe_dialog(page: Page, axe) -> None:
    expect(page.locator("#modal")).to_have_css("opacity", "1")  # after the fade-in
    axe(page, "#modal")


def test_owner_adds_a_webhook_and_redelivers_a_signed_event(
    page: Page, live_server, transactional_db, receiver, axe
):
    workspace = WorkspaceFactory(name="Acme", slug="acme")
    MembershipFactory(user=UserFactory(username="olivia"), workspace=workspace, role=Role.OWNER)
    TokenFactory(workspace=workspace, key="STRIPE_SECRET", value="sk_live_webhooks_4d2f8a")
    sign_in(page, live_server, "olivia")

    page.get_by_role("link", name="Webhooks").click()
    expect(page.get_by_role("heading", name="Webhooks", exact=True)).to_be_visible()
    expect(page.get_by_text("No webhooks yet")).to_be_visible()
    axe(page)

    page.get_by_role("link", name="Add webhook").click()
    form = page.get_by_role("dialog", name="Add webhook")
    form.get_by_label("Payload URL").fill(receiver.url())
    form.get_by_label("Description").fill("deploy bot")
    form.get_by_label("Token revoked").check()
    axe_dialog(page, axe)
    form.get_by_role("button", name="Add webhook").click()

    added = page.get_by_role("dialog", name="Webhook added")
    expect(added.get_by_text("You won't see this secret again.")).to_be_visible()
    secret = added.get_by_label("Signing secret").input_value()
    assert SECRET_RE.match(secret)
    axe_dialog(page, axe)
    added.get_by_role("link", name="Done").click()
    expect(added).to_be_hidden()
    table = page.get_by_role("table", name="Webhooks of Acme")
    expect(table).to_contain_text(receiver.url())
    expect(table).to_contain_text(secret[:10] + "…")
    assert secret not in page.content(), "shown once: not on the page after the dialog"
    page.reload()
    assert secret not in page.content()

    run_worker()  # the test event sent when a webhook is added
    (ping,) = receiver.received
    assert json.loads(ping.body)["type"] == "ping"
    assert verify(secret, ping.body, ping.headers["X-Coffer-Signature"])
    Token.objects.get(key="STRIPE_SECRET").revoke()
    run_worker()
    first = receiver.received[1]
    assert verify(secret, first.body, first.headers["X-Coffer-Signature"])

    table.get_by_role("link", name="Deliveries").click()
    expect(page.get_by_role("heading", name="Deliveries")).to_be_visible()
    log = page.get_by_role("table", name=f"Deliveries to {receiver.url()}")
    expect(log.get_by_role("row")).to_have_count(3)  # the heading, the revoke, the ping
    expect(log).to_contain_text("token.revoked")
    expect(log).to_contain_text("Delivered")
    log.get_by_text("HTTP 200").first.click()  # the attempt's details open
    expect(log.get_by_text("ok", exact=True).first).to_be_visible()
    axe(page)

    log.get_by_role("button", name=re.compile(r"^Redeliver token\.revoked")).click()
    expect(page.get_by_text("Redelivery of token.revoked queued.")).to_be_visible()
    run_worker()
    assert len(receiver.received) == 3
    again = receiver.received[2]
    assert verify(secret, again.body, again.headers["X-Coffer-Signature"])
    assert json.loads(again.body)["id"] == json.loads(first.body)["id"], "the same event"
    page.reload()
    expect(log.get_by_role("row")).to_have_count(4)
    expect(log.get_by_role("row").nth(1)).to_contain_text("redelivery")

    page.get_by_role("button", name="Send test event").click()
    expect(page.get_by_text(f"Test event sent to {receiver.url()}")).to_be_visible()
    expect(log.get_by_role("row")).to_have_count(5)
    run_worker()
    assert json.loads(receiver.received[3].body)["type"] == "ping"

    page.get_by_role("link", name="Webhooks", exact=True).first.click()
    page.get_by_role("button", name=f"More actions for {receiver.url()}").click()
    page.get_by_role("link", name=f"Rotate secret of webhook {receiver.url()}").click()
    confirm = page.get_by_role("dialog", name="Rotate the signing secret?")
    expect(confirm).to_contain_text("The current secret stops working at once")
    axe_dialog(page, axe)
    confirm.get_by_role("button", name="Rotate secret").click()
    rotated = page.get_by_role("dialog", name="New signing secret")
    new_secret = rotated.get_by_label("Signing secret").input_value()
    assert SECRET_RE.match(new_secret) and new_secret != secret
    rotated.get_by_role("link", name="Done").click()
    expect(page.get_by_role("table", name="Webhooks of Acme")).to_contain_text(new_secret[:10])

    page.get_by_role("link", name="Reminders", exact=True).click()
    expect(page.get_by_role("heading", name="Expiry reminders")).to_be_visible()
    axe(page)
