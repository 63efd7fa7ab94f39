"""The Django admin works under Coffer's strict CSP, in a real browser: no violation reported."""

from __future__ import annotations

import re

from django.contrib.auth import get_user_model
from playwright.sync_api import Page, expect

from tests.factories import DEFAULT_PASSWORD, TokenFactory, WorkspaceFactory

# Runs before any page script; records what the browser blocked.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


def watch(page: Page) -> list[str]:
    messages: list[str] = []
    page.add_init_script(RECORD_VIOLATIONS)
    page.on(
        "console",
        lambda message: (
            messages.append(message.text)
            if "Content Security Policy" in message.text or message.type == "error"
            else None
        ),
    )
    page.on("pageerror", lambda error: messages.append(f"page error: {error}"))
    return messages


def violations(page: Page) -> list[str]:
    return page.evaluate("window.__cspViolations || []")


def test_admin_changelist_and_change_form_work_under_strict_csp(
    page: Page, live_server, transactional_db
):
    admin = get_user_model().objects.create_superuser("root", "root@example.com", DEFAULT_PASSWORD)
    workspace = WorkspaceFactory(name="Acme", slug="acme")
    token = TokenFactory(workspace=workspace, key="PAYMENT_API_KEY", value="v" * 24)
    console = watch(page)

    page.goto(f"{live_server.url}/admin/login/")  # sent to the one sign-in page, and back
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next="))
    page.get_by_label("Username").fill(admin.username)
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()

    page.goto(f"{live_server.url}/admin/tokens/token/")
    expect(page.get_by_role("link", name="PAYMENT_API_KEY")).to_be_visible()
    assert violations(page) == []
    # The changelist's scripts run: "select all" ticks every row's checkbox.
    page.get_by_role("checkbox", name="Select all objects on this page for an action").check()
    expect(page.get_by_role("checkbox", name="Select this object for an action")).to_be_checked()
    assert violations(page) == []

    page.get_by_role("link", name="PAYMENT_API_KEY").click()
    expect(page).to_have_url(f"{live_server.url}/admin/tokens/token/{token.pk}/change/")
    expect(page.get_by_label("Description")).to_be_visible()
    page.get_by_label("Description").fill("Edited in the admin under a strict CSP")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("was changed successfully")).to_be_visible()
    assert violations(page) == []
    assert not [m for m in console if "Content Security Policy" in m], console

    token.refresh_from_db()
    assert token.description == "Edited in the admin under a strict CSP"

    # Control: the recorder does see a violation when there is one.
    page.evaluate(
        "() => { const s = document.createElement('script'); s.textContent = '1';"
        " document.body.append(s); }"
    )
    page.wait_for_function("window.__cspViolations.length > 0")
    assert any("script-src" in v for v in violations(page))
