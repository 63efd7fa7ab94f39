"""The Access keys tab in a real browser: create a key in the modal, use it with curl, revoke it.

Elements are found by role and label, as a user finds them. The key is copied with the modal's
Copy key button (read back from the clipboard) and sent by the curl binary to the live server's
API. axe-core checks the tab, the modals and the Confirm your password page; the screenshots go
to docs/screenshots/ with `make screenshots`.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from importlib import import_module

import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import Page, expect

from access.models import AccessKey
from tests.factories import (
    DEFAULT_PASSWORD,
    MembershipFactory,
    ProductFactory,
    TokenFactory,
    UserFactory,
    WorkspaceFactory,
    make_access_key,
)
from tests.helpers import sign_in
from workspaces.models import Role
from workspaces.reauth import SESSION_KEY

VALUE = "sk_live_browser_7f3e9a1c"


def curl_resolve(live_server, key: str) -> tuple[str, str]:
    """(HTTP status, body) of POST /api/v1/resolve with `key`, sent by the curl binary."""
    curl = shutil.which("curl")
    assert curl, "the curl binary is needed"
    done = subprocess.run(
        [
            curl,
            "-sS",
            "-o",
            "-",
            "-w",
            "\\n%{http_code}",
            "-H",
            f"Authorization: Bearer {key}",
            "--data-binary",
            "STRIPE=$Secret{STRIPE_SECRET}",
            f"{live_server.url}/api/v1/resolve?source=app.env",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    body, _, status = done.stdout.rpartition("\n")
    return status, body


def acme():
    workspace = WorkspaceFactory(name="Acme", slug="acme")
    owner = UserFactory(username="olivia")
    MembershipFactory(user=owner, workspace=workspace, role=Role.OWNER)
    ProductFactory(workspace=workspace, name="Payments", slug="payments")
    TokenFactory(workspace=workspace, key="STRIPE_SECRET", value=VALUE)
    old, _ = make_access_key(
        workspace, name="nightly-backup", expires=5, description="Backups", by=owner
    )
    AccessKey.objects.filter(pk=old.pk).update(
        last_used_at=timezone.now() - dt.timedelta(hours=5),
        last_used_from="203.0.113.40",
        use_count=318,
    )
    return workspace


@pytest.mark.django_db(transaction=True)
def test_owner_creates_uses_and_revokes_a_key(page: Page, live_server, axe, screenshot):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    acme()
    sign_in(page, live_server, "olivia")

    page.get_by_role("navigation", name="Workspace").get_by_role("link", name="Tokens").click()
    page.get_by_role("tab", name="Access keys").click()
    expect(page.get_by_role("tab", name="Access keys")).to_have_attribute("aria-selected", "true")
    table = page.get_by_role("table", name="Access keys of Acme")
    for heading in ("Name", "Identifier", "Context", "Created by", "Expires", "Last used"):
        expect(table.get_by_role("columnheader", name=heading, exact=True)).to_be_visible()
    expect(table.get_by_role("row").filter(has_text="nightly-backup")).to_contain_text(
        "Expires soon"
    )
    axe(page)
    screenshot(page, "access-keys-tab")

    page.get_by_role("link", name="Create access key").first.click()
    dialog = page.get_by_role("dialog", name="Create access key")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Name")).to_be_focused()
    dialog.get_by_label("Name").fill("ci-deploy")
    dialog.get_by_label("Description").fill("GitHub Actions: deploy to production")
    dialog.get_by_label("Environment").select_option(label="Production")
    expect(dialog.get_by_label("Expiry date")).to_be_hidden()
    dialog.get_by_label("Expiry", exact=True).select_option(label="Never")
    expect(dialog.get_by_text("means the key works until someone revokes it")).to_be_visible()
    dialog.get_by_label("Expiry", exact=True).select_option(label="On a date")
    expect(dialog.get_by_label("Expiry date")).to_be_visible()
    dialog.get_by_label("Expiry", exact=True).select_option(label="30 days")
    axe(page, "#modal")
    screenshot(page, "create-access-key-modal")

    # A bad address: the form comes back in the modal with the message, nothing is made.
    dialog.get_by_label("Allowed addresses").fill("10.0.0.1/8")
    dialog.get_by_role("button", name="Create access key").click()
    expect(dialog.get_by_text("did you mean 10.0.0.0/8?")).to_be_visible()
    dialog.get_by_label("Allowed addresses").fill("")
    dialog.get_by_role("button", name="Create access key").click()

    created = page.get_by_role("dialog", name="Access key ci-deploy created")
    expect(created).to_be_visible()
    expect(created).to_contain_text("You won't see this key again")
    created.get_by_role("button", name="Copy key").click()
    expect(page.get_by_role("status").filter(has_text="Copied the access key")).to_be_visible()
    key = page.evaluate("() => navigator.clipboard.readText()")
    assert key.startswith("cfr_") and len(key) == 53
    expect(created.get_by_label("Access key")).to_have_value(key)
    expect(created.get_by_label("Try it")).to_contain_text(f"{live_server.url}/api/v1/resolve")
    assert key not in page.get_by_role("status").all_inner_texts()[0], "the toast names it only"
    axe(page, "#modal")
    screenshot(page, "access-key-created")

    assert curl_resolve(live_server, key) == ("200", f"STRIPE={VALUE}")

    created.get_by_role("link", name="Done").click()
    expect(created).to_be_hidden()
    row = table.get_by_role("row").filter(has_text="ci-deploy")
    expect(row).to_contain_text("Active")
    expect(row).to_contain_text("from 127.0.0.1"), "closing the modal refreshed the table"
    assert key not in page.content(), "the key is gone from the page once the modal closes"

    row.get_by_role("link", name="Revoke ci-deploy").click()
    confirm = page.get_by_role("dialog", name="Revoke ci-deploy?")
    confirm.get_by_role("button", name="Revoke access key").click()
    expect(page.get_by_role("status").filter(has_text="ci-deploy revoked")).to_be_visible()
    expect(row).to_contain_text("Revoked")

    status, body = curl_resolve(live_server, key)
    assert status == "401", body
    assert VALUE not in body


@pytest.mark.django_db(transaction=True)
def test_sudo_mode_asks_for_the_password_once_the_window_has_passed(page: Page, live_server, axe):
    acme()
    sign_in(page, live_server, "olivia")
    cookie = next(c for c in page.context.cookies() if c["name"] == settings.SESSION_COOKIE_NAME)
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key=cookie["value"])
    session[SESSION_KEY] = [  # signed in 16 minutes ago
        {**record, "at": record["at"] - 16 * 60} for record in session[SESSION_KEY]
    ]
    session.save()

    page.goto(f"{live_server.url}/w/acme/tokens/access-keys/")
    page.get_by_role("link", name="Create access key").first.click()
    expect(page.get_by_role("heading", name="Confirm your password")).to_be_visible()
    axe(page)
    page.get_by_label("Password").fill("not my password")
    page.get_by_role("button", name="Confirm password").click()
    expect(page.get_by_text("That is not your password")).to_be_visible()
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Confirm password").click()

    # Back at the form (as a page of its own), which now works without asking again.
    expect(page).to_have_url(f"{live_server.url}/w/acme/tokens/access-keys/new/")
    page.get_by_label("Name").fill("release")
    page.get_by_label("Environment").select_option(label="Production")
    page.get_by_role("button", name="Create access key").click()
    expect(page.get_by_text("You won't see this key again")).to_be_visible()
    assert AccessKey.objects.filter(name="release").exists()
